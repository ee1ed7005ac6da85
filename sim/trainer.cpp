#include "sim/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "analysis/divergence.hpp"

namespace mpscope::sim {

namespace {

// A fixed set of workers running one batch of independent jobs at a time.
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  // Runs every job (on the workers; inline when there are none) and waits for all; rethrows the first failure.
  void run(std::vector<std::function<void()>> jobs) {
    if (workers_.empty()) {
      for (auto& j : jobs) j();
      return;
    }
    std::unique_lock lock(mutex_);
    jobs_ = std::move(jobs);
    next_ = 0;
    pending_ = jobs_.size();
    error_ = nullptr;
    wake_.notify_all();
    done_.wait(lock, [this] { return pending_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return quit_ || next_ < jobs_.size(); });
      if (quit_) return;
      auto job = std::move(jobs_[next_++]);
      lock.unlock();
      std::exception_ptr failure;
      try {
        job();
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      if (failure && !error_) error_ = failure;
      if (--pending_ == 0) done_.notify_all();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::function<void()>> jobs_;
  std::size_t next_ = 0, pending_ = 0;
  std::exception_ptr error_;
  bool quit_ = false;
};

struct LaneState {
  std::unique_ptr<Lane> lane;
  LaneSummary summary;
  std::int64_t db_id = 0;
  std::vector<std::int64_t> tensor_ids;
  bool active = true;
  StepResult last;
  std::optional<Evaluation> evaluation;
  std::int64_t underflow = 0, rounded = 0;  // gradient tensors, recorded steps
  std::optional<double> smoothed_loss;       // exponential moving average, for the divergence test
  LayerValues weights, gradients;            // read at recorded steps to compare with the reference (buffers reused)
  std::vector<analysis::TensorStatRow> stat_rows;  // (reused)
  double step_seconds = 0;                   // the last step's time, to hand the longest lanes out first
};

// Per-batch losses are noisy; lanes are compared on their losses smoothed over about ten steps.
constexpr double loss_smoothing = 0.1;
void smooth(std::optional<double>& average, double loss) {
  average = average ? *average + loss_smoothing * (loss - *average) : loss;
}

bool is_gradient(const std::string& kind) { return kind == "weight_grad" || kind == "bias_grad" || kind == "activation_grad"; }

}  // namespace

TrainResult train(const Experiment& e, const Prepared& p, analysis::RunWriter* writer, const TrainOptions& options) {
  const auto make = options.make_lane ? options.make_lane
                                      : [](const LaneSpec& s, const ModelConfig& m, const InitialWeights& w) {
                                          return make_lane(s.lane, m, w);
                                        };
  std::vector<LaneState> lanes;
  for (const LaneSpec& s : e.lanes) {
    LaneState st;
    st.lane = make(s, e.model, p.init);
    st.summary.name = s.lane.name;
    st.summary.recipe = s.lane.recipe.name;
    st.summary.backend = s.backend;
    st.summary.reference = s.reference;
    lanes.push_back(std::move(st));
  }
  const int reference = e.reference;

  if (!writer && options.open_writer) writer = options.open_writer();
  if (writer) {
    const nlohmann::json resolved = resolved_json(e);
    for (std::size_t i = 0; i < lanes.size(); ++i) {
      LaneState& st = lanes[i];
      analysis::LaneRow row;
      row.name = st.summary.name;
      row.recipe = st.summary.recipe;
      row.backend = st.summary.backend;
      row.mma = std::string(to_string(e.lanes[i].lane.recipe.mma));
      row.is_reference = st.summary.reference;
      row.config_json = resolved["lanes"][i].dump();
      st.db_id = writer->add_lane(row);
      for (const TensorInfo& t : st.lane->tensors()) {
        analysis::TensorRow tr;
        tr.lane_id = st.db_id;
        tr.layer = t.layer;
        tr.name = t.name;
        tr.kind = t.kind;
        tr.format = t.format;
        // (GPU lanes run mlps and leave per_sample to the model's widths)
        if (t.elements > 0) {
          tr.elements = t.elements;
        } else {
          tr.elements = e.batch_size * (t.per_sample > 0 ? t.per_sample : e.model.widths[static_cast<std::size_t>(t.layer)]);
        }
        st.tensor_ids.push_back(writer->add_tensor(tr));
      }
    }
    writer->commit();
  }

  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // one lane per task: more threads than lanes would only wait (and --threads 100000 must not start 100000)
  const int lane_count = static_cast<int>(lanes.size());
  const int threads = std::min(options.threads > 0 ? options.threads : hardware, lane_count);
  WorkerPool pool(threads > 1 ? threads : 0);
  Batcher batcher(p.data, e.batch_size, e.seed);
  const Batch everything = p.data.all();

  TrainResult result;
  double reference_start = 0;
  auto last_commit = std::chrono::steady_clock::now();
  std::int64_t steps_since_commit = 0;
  const auto commit = [&](bool wait) {
    writer->set_meta("steps_done", std::to_string(result.steps_done));
    if (wait) writer->commit_and_wait();  // pausing: a reader must see every step so far before the gate waits
    else writer->commit();
    steps_since_commit = 0;
    last_commit = std::chrono::steady_clock::now();
  };
  for (std::int64_t step = 0; step < e.steps; ++step) {
    if (options.gate && options.gate->hold(step)) {
      if (writer && steps_since_commit > 0) commit(true);
      options.gate->wait(step);
    }
    if (options.stop && options.stop->load()) {
      result.interrupted = true;
      break;
    }
    const Batch batch = batcher.batch(step);
    const double lr = learning_rate(e.optimizer, step, e.steps);
    const bool record = step % e.record.every == 0 || step + 1 == e.steps;
    const bool evaluate = step % e.record.accuracy_every == 0 || step + 1 == e.steps;

    // Longest lanes first (by their last step's time): with fewer threads than lanes, the short ones then fill the
    // gaps at the end of the step instead of a long one starting last. (Lanes are independent within a step: the
    // order changes no result.)
    std::vector<LaneState*> order;
    for (LaneState& st : lanes)
      if (st.active) order.push_back(&st);
    std::stable_sort(order.begin(), order.end(), [](const LaneState* a, const LaneState* b) { return a->step_seconds > b->step_seconds; });
    // Every lane is measured against the reference (when it is still running): losses every step, weights and
    // gradients (which GPU lanes must copy to the host) at recorded steps, read by each lane's own job.
    const bool have_reference = reference >= 0 && lanes[static_cast<std::size_t>(reference)].active;
    const bool others = order.size() > 1;
    const bool read_weights = record && have_reference && others, read_gradients = read_weights && writer;
    std::vector<std::function<void()>> jobs;
    for (LaneState* st : order)
      jobs.push_back([=, &batch, &everything, classification = p.data.classification()] {
        const auto start = std::chrono::steady_clock::now();
        st->last = st->lane->step(batch, lr, record);
        st->evaluation.reset();
        if (evaluate && classification && !st->last.weights_nonfinite) st->evaluation = st->lane->evaluate(everything);
        if (read_weights) st->lane->read_weights(st->weights);
        if (read_gradients) st->lane->read_gradients(st->gradients);
        st->step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      });
    pool.run(std::move(jobs));

    LaneState* ref = have_reference ? &lanes[static_cast<std::size_t>(reference)] : nullptr;
    const double ref_loss = ref ? ref->last.loss : 0.0;
    for (LaneState& st : lanes)
      if (st.active) smooth(st.smoothed_loss, st.last.loss);
    const double ref_smoothed = have_reference ? *lanes[static_cast<std::size_t>(reference)].smoothed_loss : 0.0;
    if (have_reference && step == 0) reference_start = std::fabs(ref_smoothed);
    // Loss differences are relative to the reference's smoothed loss, but never to less than a thousandth of its
    // first loss: near zero, relative differences of noise would be huge.
    const double ref_scale = std::max(std::fabs(ref_smoothed), 1e-3 * reference_start);
    for (std::size_t i = 0; i < lanes.size(); ++i) {
      LaneState& st = lanes[i];
      if (!st.active) continue;
      StepResult& r = st.last;
      LaneSummary& s = st.summary;
      s.steps_run = step + 1;
      s.final_loss = r.loss;
      s.skipped_steps += r.skipped ? 1 : 0;
      if (st.evaluation) s.accuracy = st.evaluation->accuracy;

      analysis::StepRow row;
      row.lane_id = st.db_id;
      row.step = step;
      row.loss = r.loss;
      row.loss_scale = r.loss_scale;
      row.found_inf = r.found_inf;
      row.skipped = r.skipped;
      row.lr = lr;
      row.grad_norm = r.grad_norm;
      if (st.evaluation) row.accuracy = st.evaluation->accuracy;
      std::vector<analysis::DistanceSums> layer_distance;
      const bool compare = have_reference && static_cast<int>(i) != reference;
      if (compare) {
        row.loss_delta = std::fabs(r.loss - ref_loss);
        s.max_loss_delta = std::max(s.max_loss_delta.value_or(0.0), std::isnan(*row.loss_delta) ? INFINITY : *row.loss_delta);
        if (record) {
          analysis::DistanceSums all;  // over every layer, from the per-layer sums
          for (std::size_t k = 0; k < st.weights.size(); ++k)
            all += layer_distance.emplace_back(analysis::DistanceSums::of(st.weights[k], ref->weights[k]));
          row.weight_distance = all.relative();
          s.final_weight_distance = row.weight_distance;
        }
        const double smoothed_relative = std::fabs(*st.smoothed_loss - ref_smoothed) / std::max(ref_scale, 1e-300);
        if (!s.first_divergence_step && !(smoothed_relative <= e.record.divergence_threshold)) {
          s.first_divergence_step = step;
          if (writer)
            writer->add_event({st.db_id, step, "divergence", "", smoothed_relative,
                               "smoothed loss differs from the reference's by " + std::to_string(smoothed_relative * 100) + "%"});
        }
      }
      if (writer) {
        writer->add_step(row);
        if (record) {
          for (std::size_t k = 0; k < r.lost_updates.size(); ++k) {
            analysis::LayerStatRow ls;
            ls.lane_id = st.db_id;
            ls.step = step;
            ls.layer = static_cast<int>(k) + 1;
            ls.lost_updates = r.lost_updates[k];
            if (compare) {
              ls.weight_distance = layer_distance[k].relative();
              ls.grad_cosine = analysis::cosine(st.gradients[k], ref->gradients[k]);
            }
            writer->add_layer_stats(ls);
          }
        }
        std::vector<analysis::TensorStatRow>& stats = st.stat_rows;
        stats.clear();
        for (TensorRecord& t : r.tensors) {
          analysis::TensorStatRow ts;
          ts.tensor_id = st.tensor_ids[t.index];
          ts.histogram = std::move(t.histogram);
          if (t.effects) {
            ts.rounded = t.effects->elements;
            ts.underflow = t.effects->underflow;
            ts.subnormal = t.effects->subnormal;
            ts.overflow = t.effects->overflow;
          }
          stats.push_back(std::move(ts));
        }
        if (!stats.empty()) writer->add_tensor_stats(st.db_id, step, stats);
      }
      for (const TensorRecord& t : r.tensors)
        if (t.effects && is_gradient(st.lane->tensors()[t.index].kind)) {
          st.underflow += t.effects->underflow;
          st.rounded += t.effects->elements;
        }
      if (writer) {
        if (r.found_inf) writer->add_event({st.db_id, step, "overflow", r.first_nonfinite, std::nullopt, "gradients hold inf/NaN"});
        if (r.skipped) writer->add_event({st.db_id, step, "skip", "", r.loss_scale, "optimizer step skipped"});
        if (r.scale_backed_off) writer->add_event({st.db_id, step, "scale_backoff", "", r.scale_after, "loss scale backed off"});
        if (r.scale_grew) writer->add_event({st.db_id, step, "scale_growth", "", r.scale_after, "loss scale grew"});
      }
      if (!r.first_nonfinite.empty() && s.first_nonfinite.empty()) {
        s.first_nonfinite = r.first_nonfinite;
        s.first_nonfinite_step = step;
        if (writer) writer->add_event({st.db_id, step, "nonfinite", r.first_nonfinite, std::nullopt, "first tensor holding inf/NaN"});
      }
      if (r.weights_nonfinite) {
        st.active = false;
        s.diverged_step = step;
        if (writer) writer->add_event({st.db_id, step, "diverged", r.first_nonfinite, std::nullopt, "NaN/inf reached the weights: the lane stops"});
      }
    }
    result.steps_done = step + 1;
    ++steps_since_commit;
    const auto now = std::chrono::steady_clock::now();
    if (writer && (steps_since_commit >= options.commit_every_steps ||
                   std::chrono::duration<double>(now - last_commit).count() >= options.commit_every_seconds))
      commit(false);
    if (options.progress) options.progress(result.steps_done, e.steps);
    if (std::none_of(lanes.begin(), lanes.end(), [](const LaneState& l) { return l.active; })) break;
  }

  for (LaneState& st : lanes) {
    LaneSummary& s = st.summary;
    if (st.rounded > 0) s.gradient_underflow_share = static_cast<double>(st.underflow) / static_cast<double>(st.rounded);
    // degraded: the lane ends with a (smoothed) loss worse than the reference's by more than the threshold.
    bool worse = false;
    if (reference >= 0 && !s.reference && st.smoothed_loss && lanes[static_cast<std::size_t>(reference)].smoothed_loss) {
      const double ref = *lanes[static_cast<std::size_t>(reference)].smoothed_loss;
      const double scale = std::max(std::fabs(ref), 1e-3 * reference_start);
      worse = !(*st.smoothed_loss - ref <= e.record.divergence_threshold * scale);
    }
    s.verdict = s.diverged_step ? "diverged" : (worse ? "degraded" : "ok");
    if (writer) {
      analysis::LaneRow row;
      row.id = st.db_id;
      row.verdict = s.verdict;
      row.diverged_step = s.diverged_step;
      row.first_divergence_step = s.first_divergence_step;
      row.first_nonfinite = s.first_nonfinite;
      row.first_nonfinite_step = s.first_nonfinite_step;
      writer->update_lane(row);
    }
    result.lanes.push_back(s);
  }
  if (writer) {
    writer->set_meta("steps_done", std::to_string(result.steps_done));
    writer->finish(result.interrupted ? "interrupted" : "finished");
  }
  return result;
}

}  // namespace mpscope::sim
