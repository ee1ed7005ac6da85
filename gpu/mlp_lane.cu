// The GPU lane's set-up and the host side of a step: buffers, the device copy of the dataset, CUDA graphs, and the
// one read-back per step that turns into a sim::StepResult (mlp_lane.cuh).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "gpu/check.cuh"
#include "gpu/mlp_lane.cuh"
#include "gpu/stats_host.hpp"

namespace mpscope::gpu {

template <typename Tc, typename Tm>
GpuMlpLane<Tc, Tm>::GpuMlpLane(const sim::LaneConfig& c, const sim::ModelConfig& m, const sim::InitialWeights& init,
                               const GpuLaneOptions& o)
    : device_(make_current(o.device)), config_(c), model_(m), options_(o), exact_(o.mode == GemmMode::exact),
      fp8_(c.recipe.name == "fp8") {
  if (m.layer_norm)  // (make_gpu_lane sends these to GpuGraphLane)
    throw GpuError("GPU lane " + c.name + ": the mlp lane has no LayerNorm; mlps with \"layer_norm\" run on the graph "
                   "lane, whose LayerNorm keeps autocast's float32 parameters and output");
  blas_ = make_fast_blas(c.recipe, o.mode, stream_.get());
  build_catalogue();
  if (fp8_) fp8_setup();
  for (int k = 0; k < m.layers(); ++k) layers_.push_back(make_layer(k, init));

  const kernels::DeviceScaler scaler = initial_scaler(c.loss_scale);
  scaler_ = DeviceBuffer<kernels::DeviceScaler>(1);
  scaler_.upload(&scaler, 1, stream_.get());

  const auto layers = static_cast<std::size_t>(m.layers());
  lost_offset_ = aligned(sizeof(kernels::DeviceStepOut));
  cast_flags_offset_ = aligned(lost_offset_ + layers * sizeof(unsigned long long));
  flags_offset_ = aligned(cast_flags_offset_ + 2 * layers * sizeof(int));
  flag_slots_ = 24 * layers + 8;
  cast_flags_next_ = DeviceBuffer<int>(2 * layers);
  cast_flags_next_.zero(stream_.get());
  step_block_ = DeviceBuffer<char>(flags_offset_ + flag_slots_ * sizeof(int));
  step_block_.zero(stream_.get());
  step_block_host_ = PinnedBuffer<char>(step_block_.size());
  grad_partials_ = DeviceBuffer<double>(2 * layers * kernels::grad_partial_slots);
  grad_partials_.zero(stream_.get());  // (then left zero by every step's end)
  eval_loss_ = DeviceBuffer<double>(1);
  cast_fx_next_ = DeviceBuffer<DeviceEffects>(tensors_.size());
  cast_fx_next_.zero(stream_.get());
  effects_offset_ = aligned(tensors_.size() * sizeof(DeviceEffects));
  histograms_offset_ = aligned(effects_offset_ + tensors_.size() * sizeof(DeviceEffects));
  stats_block_ = DeviceBuffer<char>(histograms_offset_ + tensors_.size() * sizeof(DeviceHistogram));
  stats_block_.zero(stream_.get());
  stats_host_ = PinnedBuffer<char>(stats_block_.size());
  if (o.data) data_.upload(*o.data, stream_.get());
  initial_casts();
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
}

template <typename Tc, typename Tm>
GpuMlpLane<Tc, Tm>::~GpuMlpLane() {
  cudaStreamSynchronize(stream_.get());
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::build_catalogue() {
  // sim::GraphLane's catalogue (sim/ops/graph.cpp), with this lane's formats
  const std::string c = Element<Tc>::name, master = Element<Tm>::name;
  tensors_.push_back({"input", "input", 0, c, 0});
  for (int k = 0; k < model_.layers(); ++k) {
    const std::int64_t in = model_.widths[static_cast<std::size_t>(k)], out = model_.widths[static_cast<std::size_t>(k) + 1];
    const std::string p = "layer" + std::to_string(k + 1) + ".";
    tensors_.push_back({p + "weight", "weight", k + 1, master, in * out});
    tensors_.push_back({p + "bias", "bias", k + 1, master, out});
    tensors_.push_back({p + "weight_grad", "weight_grad", k + 1, c, in * out});
    tensors_.push_back({p + "bias_grad", "bias_grad", k + 1, c, out});
    tensors_.push_back({p + "activation", "activation", k + 1, c, 0});
    tensors_.push_back({p + "activation_grad", "activation_grad", k + 1, c, 0});
  }
}

template <typename Tc, typename Tm>
typename GpuMlpLane<Tc, Tm>::Layer GpuMlpLane<Tc, Tm>::make_layer(int k, const sim::InitialWeights& init) {
  Layer L;
  const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  const std::size_t kk = n(k);
  L.in = model_.widths[kk];
  L.out = model_.widths[kk + 1];
  L.w = DeviceBuffer<Tm>(n(L.in * L.out));
  L.b = DeviceBuffer<Tm>(n(L.out));
  const std::string name = "layer" + std::to_string(k + 1);  // the mlp's parameter names (sim/ops/graph.cpp)
  upload_master(L.w, init.at(name + ".weight").values, stream_.get());
  upload_master(L.b, init.at(name + ".bias").values, stream_.get());
  if constexpr (has_copy) {
    L.wc = DeviceBuffer<Tc>(L.w.size());
    L.bc = DeviceBuffer<Tc>(L.b.size());
  }
  if (fp8_) fp8_layer_buffers(L);
  L.gw = DeviceBuffer<Tc>(L.w.size());
  L.gb = DeviceBuffer<Tc>(L.b.size());
  for (auto* g : {&L.gw, &L.gb}) g->zero(stream_.get());
  const sim::OptimizerConfig& oc = config_.optimizer;
  const bool first = oc.type != sim::OptimizerConfig::Type::sgd || oc.momentum != 0;
  const bool second = oc.type != sim::OptimizerConfig::Type::sgd;
  const auto state = [&](DeviceBuffer<Tm>& buf, std::size_t size, bool needed) {
    if (!needed) return;
    buf = DeviceBuffer<Tm>(size);
    buf.zero(stream_.get());
  };
  state(L.w1, L.w.size(), first), state(L.w2, L.w.size(), second);
  state(L.b1, L.b.size(), first), state(L.b2, L.b.size(), second);
  return L;
}

template <typename Tc, typename Tm>
bool GpuMlpLane<Tc, Tm>::keeps_z(std::size_t k) const {
  // fast mode fuses bias + ReLU into the GEMM (h directly); ReLU's backward reads h
  return exact_ || fp8_ || k + 1 == layers_.size() || model_.activation != sim::Activation::relu;
}

template <typename Tc, typename Tm>
typename GpuMlpLane<Tc, Tm>::Activations& GpuMlpLane<Tc, Tm>::activations(Activations& a, std::int64_t rows, bool training) {
  if (a.rows == rows && a.training == training) return a;
  if (&a == &train_) {  // the graphs hold the old buffers
    graph_.reset();
    recording_graph_.reset();
    warm_rows_ = -1;
  }
  a = Activations{};  // (rows stays -1 until every buffer is made: an allocation that fails leaves none)
  const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  const std::int64_t outputs = model_.widths.back();
  std::int64_t widest = 0, largest_weight = 0;
  for (std::int64_t w : model_.widths) widest = std::max(widest, w);
  a.input = DeviceBuffer<Tc>(n(rows * model_.widths[0]));
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    const Layer& L = layers_[k];
    const bool last = k + 1 == layers_.size();
    largest_weight = std::max(largest_weight, L.in * L.out);
    a.z.emplace_back(keeps_z(k) ? n(rows * L.out) : 0);
    a.h.emplace_back(last ? 0 : n(rows * L.out));
  }
  // float32 GEMM results: exact mode's outputs (rows, widest) and weight gradients (out, in) before rounding
  std::int64_t scratch = exact_ || fp8_ ? rows * widest : 0;
  if (fp8_) fp8_batch_buffers(a, rows, training);
  if (training && !std::is_same_v<Tc, float>) scratch = std::max(scratch, largest_weight);
  a.scratch = DeviceBuffer<float>(n(scratch));
  if (training) {
    for (auto& g : a.gz) g = DeviceBuffer<Tc>(n(rows * widest));
    a.da = DeviceBuffer<Tc>(n(rows * widest));
    if (!exact_) {
      const DeviceBuffer<float> one = [&] {
        DeviceBuffer<float> b(n(rows));
        b.upload(std::vector<float>(n(rows), 1.0f), stream_.get());
        return b;
      }();
      a.ones = DeviceBuffer<Tc>(n(rows));
      kernels::cast<float, Tc>(one.get(), a.ones.get(), one.size(), PointStats{}, stream_.get());
      MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
      a.bias32 = DeviceBuffer<float>(n(widest));
    }
  }
  const bool mse = model_.loss == sim::LossType::mse;
  a.terms = DeviceBuffer<double>(n(mse ? rows * outputs : rows));
  a.correct = DeviceBuffer<int>(n(rows));
  a.row_numbers = DeviceBuffer<std::int64_t>(n(rows));
  a.labels = DeviceBuffer<std::int64_t>(n(rows));
  a.targets = DeviceBuffer<float>(n(rows * outputs));
  if (!options_.data) a.x = DeviceBuffer<float>(n(rows * model_.widths[0]));
  a.has_labels = data_.has_labels;
  a.has_targets = data_.has_targets;
  if (&a == &train_) {
    inputs_ = DeviceBuffer<char>(rows_offset + n(rows) * sizeof(std::int64_t));
    inputs_host_ = PinnedBuffer<char>(inputs_.size());
  }
  a.rows = rows;
  a.training = training;
  return a;
}

// The batch: row numbers into the device dataset (training: into pinned memory, which the step copies from), or
// the values themselves.
template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::load_batch(Activations& a, const sim::Batch& b) {
  if (options_.data) {
    if (static_cast<std::int64_t>(b.rows.size()) != a.rows)
      throw GpuError("GPU lane " + config_.name + ": the batch does not name its dataset rows");
    if (&a == &train_) {
      std::memcpy(inputs_host_.get() + rows_offset, b.rows.data(), b.rows.size() * sizeof(std::int64_t));
    } else {
      a.row_numbers.upload(b.rows, stream_.get());
    }
    return;
  }
  if (b.x.cols != model_.widths[0]) throw GpuError("GPU lane " + config_.name + ": the batch has the wrong number of features");
  a.x.upload(b.x.data, stream_.get());
  a.has_labels = !b.labels.empty();
  a.has_targets = b.targets.rows > 0;
  if (a.has_labels) a.labels.upload(b.labels, stream_.get());
  if (a.has_targets) a.targets.upload(b.targets.data, stream_.get());
}

template <typename Tc, typename Tm>
sim::StepResult GpuMlpLane<Tc, Tm>::step(const sim::Batch& batch, double lr, bool record) {
  MPSCOPE_CUDA_CHECK(cudaSetDevice(device_));
  const cudaStream_t stream = stream_.get();
  const std::int64_t rows = options_.data ? static_cast<std::int64_t>(batch.rows.size()) : batch.x.rows;
  Activations& a = activations(train_, rows, true);
  const kernels::OptimizerConstants k = kernels::optimizer_constants(config_.optimizer, lr, t_ + 1);
  std::memcpy(inputs_host_.get(), &k, sizeof k);
  load_batch(a, batch);
  const Stats stats{true, record, record ? effects() : nullptr, record ? histograms() : nullptr};
  if (options_.graphs && options_.data && warm_rows_ == rows) {
    GraphExec& g = record ? recording_graph_ : graph_;
    if (!g) g.reset(capture_graph(stream, [&] { run_step(a, stats); }));
    MPSCOPE_CUDA_CHECK(cudaGraphLaunch(g.get(), stream));
  } else {
    run_step(a, stats);
    warm_rows_ = rows;  // the cuBLASLt plans of this batch size exist now: graphs can capture
  }
  MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(step_block_host_.get(), step_block_.get(), step_block_.size(), cudaMemcpyDeviceToHost, stream));
  if (record)
    MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(stats_host_.get(), stats_block_.get(), stats_block_.size(), cudaMemcpyDeviceToHost, stream));
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));

  kernels::DeviceStepOut out;
  std::memcpy(&out, step_block_host_.get(), sizeof out);
  std::vector<unsigned long long> lost(layers_.size());
  std::memcpy(lost.data(), step_block_host_.get() + lost_offset_, lost.size() * sizeof(unsigned long long));
  const auto* flags = reinterpret_cast<const int*>(step_block_host_.get() + flags_offset_);

  sim::StepResult r = step_scalars(out);
  for (std::size_t i = 0; i < points_.size(); ++i)
    if (points_[i].phase == 2 && flags[i]) r.weights_nonfinite = true;
  r.first_nonfinite = first_nonfinite(r.loss, flags, reinterpret_cast<const int*>(step_block_host_.get() + cast_flags_offset_));
  last_scale_used_ = out.scale_used;
  if (!r.skipped) ++t_;
  for (std::size_t k = 0; k < layers_.size(); ++k)
    r.lost_updates.push_back(static_cast<double>(lost[k]) / static_cast<double>(layers_[k].parameters()));

  if (record) {
    const auto* cast_effects = reinterpret_cast<const DeviceEffects*>(stats_host_.get());
    const auto* effects = reinterpret_cast<const DeviceEffects*>(stats_host_.get() + effects_offset_);
    const auto* histograms = reinterpret_cast<const DeviceHistogram*>(stats_host_.get() + histograms_offset_);
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      sim::TensorInfo& info = tensors_[t];
      if (info.kind == "input") info.elements = rows * model_.widths[0];
      if (info.kind == "activation" || info.kind == "activation_grad")
        info.elements = rows * model_.widths[static_cast<std::size_t>(info.layer)];
      sim::TensorRecord rec;
      rec.index = t;
      rec.histogram = to_histogram(histograms[t]);
      if (counts || (fp8_ && fp8_rounds(info))) {
        rec.effects = to_effects(effects[t]);
        *rec.effects += cast_effects[t];
      }
      r.tensors.push_back(std::move(rec));
    }
  }
  return r;
}

template <typename Tc, typename Tm>
kernels::StepBlock GpuMlpLane<Tc, Tm>::step_block() const {
  char* base = step_block_.get();
  return {reinterpret_cast<kernels::DeviceStepOut*>(base), reinterpret_cast<unsigned long long*>(base + lost_offset_),
          static_cast<int>(layers_.size()), reinterpret_cast<int*>(base + cast_flags_offset_),
          static_cast<int>(cast_flags_next_.size()), reinterpret_cast<int*>(base + flags_offset_), static_cast<int>(flag_slots_)};
}

// The first rounding point of the step that wrote inf/NaN, in the CPU lane's order.
template <typename Tc, typename Tm>
std::string GpuMlpLane<Tc, Tm>::first_nonfinite(double loss, const int* flags, const int* cast_flags) {
  if (point_order_.size() != points_.size()) {
    point_order_.resize(points_.size());
    std::iota(point_order_.begin(), point_order_.end(), std::size_t{0});
    std::stable_sort(point_order_.begin(), point_order_.end(), [&](std::size_t x, std::size_t y) {
      return std::pair(points_[x].phase, points_[x].rank) < std::pair(points_[y].phase, points_[y].rank);
    });
  }
  for (std::size_t i : point_order_) {
    const Point& p = points_[i];
    if (p.loss ? !std::isfinite(loss) : p.cast >= 0 ? cast_flags[p.cast] != 0 : flags[i] != 0) return p.name;
  }
  return "";
}

template <typename Tc, typename Tm>
sim::Evaluation GpuMlpLane<Tc, Tm>::evaluate(const sim::Batch& data) {
  MPSCOPE_CUDA_CHECK(cudaSetDevice(device_));
  const std::int64_t rows = options_.data ? static_cast<std::int64_t>(data.rows.size()) : data.x.rows;
  Activations& a = activations(eval_, rows, false);
  load_batch(a, data);
  const Stats none{};
  forward(a, none);
  loss(a, false, none, eval_loss_.get());
  const std::vector<double> total = eval_loss_.download(stream_.get());
  const std::vector<int> correct = a.correct.download(stream_.get());
  sim::Evaluation e;
  e.loss = static_cast<double>(static_cast<float>(total[0]));
  if (model_.loss == sim::LossType::cross_entropy || !data.labels.empty())
    e.accuracy = static_cast<double>(std::accumulate(correct.begin(), correct.end(), std::int64_t{0})) /
                 static_cast<double>(rows);
  return e;
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::read_weights(sim::LayerValues& out) const {
  out.resize(layers_.size());
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    const Layer& L = layers_[k];
    std::vector<double>& v = out[k];
    v.clear();
    for (const auto* p : {&L.w, &L.b}) {
      const std::vector<float> f = download_as_float(p->get(), p->size(), stream_.get());
      v.insert(v.end(), f.begin(), f.end());
    }
  }
}

// The last step's master gradients, unscaled on the host as the device unscales them (GraphLane::unscale).
template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::read_gradients(sim::LayerValues& out) const {
  out.resize(layers_.size());
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    const Layer& L = layers_[k];
    std::vector<double>& v = out[k];
    v.clear();
    for (const auto* p : {&L.gw, &L.gb}) {
      std::vector<float> g = download_as_float(p->get(), p->size(), stream_.get());
      unscale_on_host(g, last_scale_used_, config_.recipe.master_gradients);
      v.insert(v.end(), g.begin(), g.end());
    }
  }
}

template class GpuMlpLane<float, float>;
template class GpuMlpLane<__half, float>;
template class GpuMlpLane<__nv_bfloat16, float>;
template class GpuMlpLane<__half, __half>;

}  // namespace mpscope::gpu
