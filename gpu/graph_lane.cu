// The GPU graph lane (gpu/graph_lane.cuh): set-up, the step's device work in sim::GraphLane's order, and the one
// read-back per step that becomes a sim::StepResult.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "gpu/check.cuh"
#include "gpu/graph_lane.cuh"
#include "gpu/stats_host.hpp"

namespace mpscope::gpu {

template <typename Tc, typename Tm>
GpuGraphLane<Tc, Tm>::GpuGraphLane(const sim::LaneConfig& c, const sim::ModelConfig& m, const sim::InitialWeights& init,
                                   const GpuLaneOptions& o)
    : device_(make_current(o.device)), config_(c), model_(m), graph_(sim::build_graph(m)), options_(o),
      exact_(o.mode == GemmMode::exact), fp8_(c.recipe.name == "fp8") {
  if (graph_.parameters() == 0) throw GpuError("lane " + c.name + ": the model has no parameters to train");
  const cudaStream_t stream = stream_.get();
  blas_ = make_fast_blas(c.recipe, o.mode, stream);
  tensors_ = graph_.tensors;
  for (std::size_t i = 0; i < tensors_.size(); ++i)
    tensors_[i].format = graph_.tensor_roles[i] == sim::Role::master || graph_.tensor_roles[i] == sim::Role::promoted
                             ? Element<Tm>::name
                             : Element<Tc>::name;
  for (const sim::Node& n : graph_.nodes) {
    using T = sim::LayerSpec::Type;
    if (n.spec.type == T::embedding || n.spec.type == T::position_embedding || n.spec.type == T::causal_attention)
      throw GpuError("lane " + c.name + ": " + n.module + " (" + std::string(sim::to_string(n.spec.type)) +
                     "): GPU lanes do not run transformer layers yet; run this lane on the CPU (\"backend\": \"cpu\")");
    if (!std::is_same_v<Tc, Tm> && n.promoted)
      throw GpuError("lane " + c.name + ": the output of " + n.module + " (" + std::string(sim::to_string(n.spec.type)) +
                       ") stays float32 under autocast (no linear or conv2d layer alone reads it); GPU lanes of " +
                       c.recipe.name + " keep activations in " + Element<Tc>::name +
                       " only: run this lane on the CPU (\"backend\": \"cpu\")");
  }

  const sim::OptimizerConfig& oc = c.optimizer;
  const bool first = oc.type != sim::OptimizerConfig::Type::sgd || oc.momentum != 0;
  const bool second = oc.type != sim::OptimizerConfig::Type::sgd;
  group_params_.resize(graph_.groups.size());
  for (const sim::Node& n : graph_.nodes) {
    ops_.push_back(make_gpu_op<Tc, Tm>(n));
    const sim::Group& g = graph_.groups[static_cast<std::size_t>(n.group)];
    for (Param& p : ops_.back()->params()) {
      p.tensor = p.info->is_bias ? g.bias : g.weight;
      p.grad_tensor = p.info->is_bias ? g.bias_grad : g.weight_grad;
      const sim::ParamValues& v = init.at(p.info->name);
      if (v.values.size() != p.size())
        throw GpuError("initial values of " + p.info->name + ": " + std::to_string(v.values.size()) +
                       " values, the model needs " + std::to_string(p.size()));
      upload_master(p.master, v.values, stream);
      for (auto [buffer, needed] : {std::pair{&p.state1, first}, std::pair{&p.state2, second}}) {
        if (!needed) continue;
        *buffer = DeviceBuffer<Tm>(p.size());
        buffer->zero(stream);
      }
      p.grad.zero(stream);
      p.grad_m.zero(stream);
      group_params_[static_cast<std::size_t>(n.group)].push_back(&p);
    }
  }
  for (const auto& group : group_params_) {
    params_.insert(params_.end(), group.begin(), group.end());
    std::size_t values = 0;
    for (const Param* q : group) values += q->size();
    group_values_.push_back(values);
  }
  if (fp8_) {
    fp8_state_ = Fp8State(3 * graph_.gemms, c, stream);
    for (std::size_t i = 0; i < ops_.size(); ++i)
      if (graph_.nodes[i].gemm >= 0) ops_[i]->use_fp8(!exact_);
  }

  const kernels::DeviceScaler scaler = initial_scaler(c.loss_scale);
  scaler_ = DeviceBuffer<kernels::DeviceScaler>(1);
  scaler_.upload(&scaler, 1, stream);
  lost_offset_ = aligned(sizeof(kernels::DeviceStepOut));
  flags_offset_ = aligned(lost_offset_ + graph_.groups.size() * sizeof(unsigned long long));
  flag_slots_ = 16 * graph_.nodes.size() + 4 * params_.size() + 16;
  step_block_ = DeviceBuffer<char>(flags_offset_ + flag_slots_ * sizeof(int));
  step_block_.zero(stream);
  step_block_host_ = PinnedBuffer<char>(step_block_.size());
  grad_partials_ = DeviceBuffer<double>(params_.size() * kernels::grad_partial_slots);
  grad_partials_.zero(stream);  // (then left zero by every step's end)
  eval_loss_ = DeviceBuffer<double>(1);
  histograms_offset_ = aligned(tensors_.size() * sizeof(DeviceEffects));
  stats_block_ = DeviceBuffer<char>(histograms_offset_ + tensors_.size() * sizeof(DeviceHistogram));
  stats_block_.zero(stream);
  stats_host_ = PinnedBuffer<char>(stats_block_.size());
  if (o.data) data_.upload(*o.data, stream);
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

template <typename Tc, typename Tm>
GpuGraphLane<Tc, Tm>::~GpuGraphLane() {
  cudaStreamSynchronize(stream_.get());
}

template <typename Tc, typename Tm>
typename GpuGraphLane<Tc, Tm>::Pass& GpuGraphLane<Tc, Tm>::pass(Pass& p, std::int64_t rows, bool training) {
  // (a training pass is the graphs': exactly its rows; an evaluation reuses larger buffers)
  if (p.training == training && (training ? p.capacity == rows : p.capacity >= rows)) {
    p.rows = rows;
    return p;
  }
  if (&p == &train_) {  // the graphs hold the old buffers
    graph_exec_.reset();
    recording_graph_.reset();
    warm_rows_ = -1;
  }
  p = Pass{};  // (rows stays -1 until every buffer is made: an allocation that fails leaves none)
  const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  const std::int64_t outputs = graph_.outputs(), inputs = graph_.nodes.front().in_size();
  for (std::size_t i = 0; i <= graph_.nodes.size(); ++i) {
    const std::int64_t size = i < graph_.nodes.size() ? graph_.nodes[i].in_size() : outputs;
    p.acts.emplace_back(n(rows * size));
    const bool grad = training && (i == graph_.nodes.size() || graph_.nodes[i].needs_input_grad);
    p.grads.emplace_back(grad ? n(rows * size) : 0);
  }
  for (const auto& op : ops_) p.op_buffers.push_back(op->make_buffers(rows, training));
  const bool mse = model_.loss == sim::LossType::mse;
  p.terms = DeviceBuffer<double>(n(mse ? rows * outputs : rows));
  p.correct = DeviceBuffer<int>(n(rows));
  p.row_numbers = DeviceBuffer<std::int64_t>(n(rows));
  p.labels = DeviceBuffer<std::int64_t>(n(rows));
  p.targets = DeviceBuffer<float>(n(rows * outputs));
  if (!options_.data) p.x = DeviceBuffer<float>(n(rows * inputs));
  p.has_labels = data_.has_labels;
  p.has_targets = data_.has_targets;
  if (&p == &train_) {
    inputs_ = DeviceBuffer<char>(rows_offset + n(rows) * sizeof(std::int64_t));
    inputs_host_ = PinnedBuffer<char>(inputs_.size());
  }
  p.rows = p.capacity = rows;
  p.training = training;
  return p;
}

// The batch: row numbers into the device dataset (training: into pinned memory, which the step copies from), or
// the values themselves.
template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::load_batch(Pass& p, const sim::Batch& b) {
  if (options_.data) {
    if (static_cast<std::int64_t>(b.rows.size()) != p.rows)
      throw GpuError("GPU lane " + config_.name + ": the batch does not name its dataset rows");
    if (&p == &train_) {
      std::memcpy(inputs_host_.get() + rows_offset, b.rows.data(), b.rows.size() * sizeof(std::int64_t));
    } else {
      p.row_numbers.upload(b.rows, stream_.get());
    }
    return;
  }
  if (b.x.cols != graph_.nodes.front().in_size())
    throw GpuError("GPU lane " + config_.name + ": the batch has the wrong number of features");
  p.x.upload(b.x.data, stream_.get());
  p.has_labels = !b.labels.empty();
  p.has_targets = b.targets.rows > 0;
  if (p.has_labels) p.labels.upload(b.labels, stream_.get());
  if (p.has_targets) p.targets.upload(b.targets.data, stream_.get());
}

template <typename Tc, typename Tm>
GpuOpContext<Tc, Tm> GpuGraphLane<Tc, Tm>::context(int node, bool training) {
  Gemm gemm{blas_.get(), config_.recipe.mma == sim::Accumulation::h100, stream_.get()};
  const sim::Node& n = graph_.nodes[static_cast<std::size_t>(node)];
  const std::size_t in = node == 0 ? 0 : graph_.output_tensor(node - 1);
  GpuOpContext<Tc, Tm> cx{stream_.get(), gemm, points_, in, graph_.output_tensor(node), graph_.input_grad_tensor(node)};
  cx.out_grad_tensor = graph_.groups[static_cast<std::size_t>(n.group)].activation_grad;
  if (fp8_ && n.gemm >= 0) {
    cx.fp8 = fp8_state_.slots.get() + 3 * n.gemm;
    cx.fp8_unit = fp8_state_.unit.get();
  }
  cx.fp8_amax = training;
  return cx;
}

template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::forward(Pass& p) {
  const cudaStream_t stream = stream_.get();
  const std::int64_t rows = p.rows, features = graph_.nodes.front().in_size();
  const PointStats input = points_.point<Tc>(0);
  if (options_.data) {
    const kernels::BatchGather b{p.training ? step_rows() : p.row_numbers.get(), rows, features, graph_.outputs(),
                                 data_.has_labels ? data_.labels.get() : nullptr,
                                 data_.has_targets ? data_.targets.get() : nullptr, p.labels.get(), p.targets.get()};
    kernels::gather_input<Tc>(data_.x.get(), b, p.acts[0].get(), input, stream);
  } else {
    kernels::cast<float, Tc>(p.x.get(), p.acts[0].get(), static_cast<std::size_t>(rows * features), input, stream);
  }
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    GpuOpContext<Tc, Tm> cx = context(static_cast<int>(i), p.training);
    if (graph_.nodes[i].residual >= 0) cx.residual = p.acts[static_cast<std::size_t>(graph_.nodes[i].residual)].get();
    ops_[i]->forward(cx, p.op_buffers[i].get(), p.acts[i].get(), p.acts[i + 1].get(), rows, p.training);
  }
}

// The loss (into *total) and, training, d(S loss)/d logits.
template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::loss(Pass& p, double* total) {
  const std::int64_t rows = p.rows, n = graph_.outputs();
  const bool mse = model_.loss == sim::LossType::mse;
  const std::size_t last = graph_.groups[static_cast<std::size_t>(graph_.nodes.back().group)].activation_grad;
  const PointStats grad_stats = p.training ? points_.point<Tc>(last) : PointStats{};
  if (p.training) points_.slot("loss", true);  // the CPU checks the loss after its gradient
  kernels::loss_rows<Tc>(p.acts.back().get(), p.has_labels ? p.labels.get() : nullptr,
                         p.has_targets ? p.targets.get() : nullptr, rows, n, mse ? 1 : 0,
                         model_.loss_logits == sim::LossLogits::fp32 ? 1 : 0, p.training ? &scaler_.get()->scale : nullptr,
                         p.terms.get(), p.training ? p.grads.back().get() : nullptr, p.correct.get(), grad_stats,
                         stream_.get());
  kernels::sum_terms(p.terms.get(), mse ? rows * n : rows, mse ? 1.0 : 1.0 / static_cast<double>(rows), exact_, total,
                     stream_.get());
}

// GraphLane::backward: each op in reverse; a residual edge's source activation a gets round(d_a + the add's d) once
// its consumer (node a) has sent its gradient back.
template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::backward(Pass& p) {
  std::vector<const Tc*> residual_grad(graph_.nodes.size() + 1, nullptr);
  for (std::size_t i = ops_.size(); i-- > 0;) {
    const sim::Node& n = graph_.nodes[i];
    GpuOpContext<Tc, Tm> cx = context(static_cast<int>(i), true);
    Tc* din = n.needs_input_grad ? p.grads[i].get() : nullptr;
    ops_[i]->backward(cx, p.op_buffers[i].get(), p.acts[i].get(), p.acts[i + 1].get(), p.grads[i + 1].get(), din, p.rows);
    if (n.residual >= 0) residual_grad[static_cast<std::size_t>(n.residual)] = p.grads[i + 1].get();
    if (din && residual_grad[i])
      add_values<Tc>(din, residual_grad[i], din, p.grads[i].size(), points_.point<Tc>(graph_.input_grad_tensor(static_cast<int>(i))),
                     stream_.get());
  }
}

// Every gradient unscaled and checked, in parameter order (GraphLane::unscale): the sum of squares and found_inf;
// without master gradients (fp16-pure) the unscaling rounds, a rounding point of its own.
template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::unscale_and_check() {
  const bool master = config_.recipe.master_gradients;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    kernels::GradCheck check{scaler_.get(), grad_partials_.get() + i * kernels::grad_partial_slots, master ? 1 : 0, {}};
    if (p.master_typed_grad) {
      if (!master) check.unscale = points_.point<Tm>(p.grad_tensor);
      kernels::check_gradient<Tm>(p.grad_m.get(), p.size(), check, stream_.get());
    } else {
      if (!master) check.unscale = points_.point<Tc>(p.grad_tensor);
      kernels::check_gradient<Tc>(p.grad.get(), p.size(), check, stream_.get());
    }
  }
}

// The optimizer, one launch per group (skipped on the device when the scaler skips the step); recorded steps
// histogram the updated parameters there.
template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::update(bool record) {
  const int master = config_.recipe.master_gradients ? 1 : 0;
  for (std::size_t g = 1; g < group_params_.size(); ++g) {
    int* nonfinite = points_.slot(tensors_[graph_.groups[g].weight].name);
    // (the group's tensors show its first op's weight and bias: an mlp's LayerNorm parameters join no histogram)
    const auto& primary = ops_[static_cast<std::size_t>(graph_.groups[g].first_node)]->params();
    const auto stats = [&](const Param& p) {
      PointStats s;
      if (record && (&p == &primary[0] || (primary.size() > 1 && &p == &primary[1]))) s.hist = histograms() + p.tensor;
      s.nonfinite = nonfinite;
      return s;
    };
    // One launch per gradient type (an mlp group holds a Linear's compute-format gradients and its LayerNorm's
    // master-format ones); both add their lost updates into the group's counter.
    kernels::OptimizerTensors<Tm, Tm, Tm> typed;
    kernels::OptimizerTensors<Tc, Tm, Tc> produced;
    for (Param* p : group_params_[g]) {
      if (p->master_typed_grad) {
        typed.t[typed.count++] = {p->master.get(), p->grad_m.get(), p->state1.get(), p->state2.get(), nullptr, p->size(), stats(*p), nullptr};
      } else {
        produced.t[produced.count++] = {p->master.get(), p->grad.get(), p->state1.get(), p->state2.get(), nullptr, p->size(), stats(*p), nullptr};
      }
    }
    if (typed.count > 0) kernels::optimizer_step<Tm, Tm, Tm>(typed, constants(), scaler_.get(), master, lost() + g - 1, stream_.get());
    if (produced.count > 0)
      kernels::optimizer_step<Tc, Tm, Tc>(produced, constants(), scaler_.get(), master, lost() + g - 1, stream_.get());
  }
}

// The recorded step's other tensors (the parameters' histograms come from the update).
template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::record_histograms(Pass& p) {
  for (std::size_t t = 0; t < tensors_.size(); ++t) {
    const std::string& kind = tensors_[t].kind;
    if (kind == "weight" || kind == "bias") continue;
    const Values v = values_of(p, t);
    if (v.master_type) kernels::histogram<Tm>(static_cast<const Tm*>(v.data), v.n, histograms() + t, stream_.get());
    else kernels::histogram<Tc>(static_cast<const Tc*>(v.data), v.n, histograms() + t, stream_.get());
  }
}

// GraphLane::values_of: the input, a group's primary parameter or its gradient, the group's output, or the gradient
// at its first op's output.
template <typename Tc, typename Tm>
typename GpuGraphLane<Tc, Tm>::Values GpuGraphLane<Tc, Tm>::values_of(const Pass& p, std::size_t t) const {
  if (t == 0) return {p.acts[0].get(), false, p.acts[0].size()};
  const sim::TensorInfo& info = tensors_[t];
  const sim::Group& g = graph_.groups[static_cast<std::size_t>(info.layer)];
  const auto& params = ops_[static_cast<std::size_t>(g.first_node)]->params();
  const auto param = [&](const Param& q, bool grad) -> Values {
    if (!grad) return {q.master.get(), true, q.size()};
    if (q.master_typed_grad) return {q.grad_m.get(), true, q.size()};
    return {q.grad.get(), false, q.size()};
  };
  if (info.kind == "weight") return param(params[0], false);
  if (info.kind == "bias") return param(params[1], false);
  if (info.kind == "weight_grad") return param(params[0], true);
  if (info.kind == "bias_grad") return param(params[1], true);
  if (info.kind == "activation_grad") {
    const auto& b = p.grads[static_cast<std::size_t>(g.first_node) + 1];
    return {b.get(), false, b.size()};
  }
  std::size_t last = static_cast<std::size_t>(g.first_node);
  while (last + 1 < graph_.nodes.size() && graph_.nodes[last + 1].group == info.layer) ++last;
  return {p.acts[last + 1].get(), false, p.acts[last + 1].size()};
}

template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::run_step(Pass& p, bool record) {
  const cudaStream_t stream = stream_.get();
  points_.begin(flags(), flag_slots_, record ? effects() : nullptr, &tensors_);
  const std::size_t inputs = options_.data ? inputs_.size() : rows_offset;
  MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), inputs_host_.get(), inputs, cudaMemcpyHostToDevice, stream));
  if (record) MPSCOPE_CUDA_CHECK(cudaMemsetAsync(stats_block_.get(), 0, stats_block_.size(), stream));
  const kernels::StepBlock block{step_out(), lost(), static_cast<int>(graph_.groups.size() - 1), nullptr, 0, flags(),
                                 static_cast<int>(flag_slots_)};
  kernels::begin_step(scaler_.get(), nullptr, nullptr, 0, nullptr, block, stream);
  forward(p);
  loss(p, &step_out()->loss);
  backward(p);
  if (fp8_) fp8_state_.end_step(config_, stream);  // (RoundedOps::end_step, before the unscaling)
  unscale_and_check();
  kernels::finish_backward(grad_partials_.get(), static_cast<int>(grad_partials_.size()), scaler_.get(), step_out(), stream);
  update(record);
  if (record) record_histograms(p);
  points_.end();
}

template <typename Tc, typename Tm>
sim::StepResult GpuGraphLane<Tc, Tm>::step(const sim::Batch& batch, double lr, bool record) {
  MPSCOPE_CUDA_CHECK(cudaSetDevice(device_));
  const cudaStream_t stream = stream_.get();
  const std::int64_t rows = options_.data ? static_cast<std::int64_t>(batch.rows.size()) : batch.x.rows;
  Pass& p = pass(train_, rows, true);
  const kernels::OptimizerConstants k = kernels::optimizer_constants(config_.optimizer, lr, t_ + 1);
  std::memcpy(inputs_host_.get(), &k, sizeof k);
  load_batch(p, batch);
  if (options_.graphs && options_.data && warm_rows_ == rows) {
    GraphExec& g = record ? recording_graph_ : graph_exec_;
    if (!g) g.reset(capture_graph(stream, [&] { run_step(p, record); }));
    MPSCOPE_CUDA_CHECK(cudaGraphLaunch(g.get(), stream));
  } else {
    run_step(p, record);
    warm_rows_ = rows;  // the cuBLASLt plans of this batch size exist now: graphs can capture
  }
  MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(step_block_host_.get(), step_block_.get(), step_block_.size(), cudaMemcpyDeviceToHost, stream));
  if (record)
    MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(stats_host_.get(), stats_block_.get(), stats_block_.size(), cudaMemcpyDeviceToHost, stream));
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));

  kernels::DeviceStepOut out;
  std::memcpy(&out, step_block_host_.get(), sizeof out);
  std::vector<unsigned long long> lost_updates(graph_.groups.size() - 1);
  std::memcpy(lost_updates.data(), step_block_host_.get() + lost_offset_, lost_updates.size() * sizeof(unsigned long long));
  const auto* point_flags = reinterpret_cast<const int*>(step_block_host_.get() + flags_offset_);

  sim::StepResult r = step_scalars(out);
  // the update's flags are the last group-count slots
  const std::size_t slots = points_.slots().size(), groups = graph_.groups.size() - 1;
  for (std::size_t i = slots - groups; i < slots; ++i) r.weights_nonfinite = r.weights_nonfinite || point_flags[i] != 0;
  r.first_nonfinite = first_nonfinite(r.loss, point_flags);
  last_scale_used_ = out.scale_used;
  if (!r.skipped) ++t_;
  for (std::size_t g = 1; g < group_params_.size(); ++g)
    r.lost_updates.push_back(static_cast<double>(lost_updates[g - 1]) / static_cast<double>(group_values_[g]));

  if (record) {
    const auto* effects = reinterpret_cast<const DeviceEffects*>(stats_host_.get());
    const auto* histograms = reinterpret_cast<const DeviceHistogram*>(stats_host_.get() + histograms_offset_);
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      tensors_[t].elements = static_cast<std::int64_t>(values_of(p, t).n);
      sim::TensorRecord rec;
      rec.index = t;
      rec.histogram = to_histogram(histograms[t]);
      if (points_.counted(t)) rec.effects = to_effects(effects[t]);
      r.tensors.push_back(std::move(rec));
    }
  }
  return r;
}

// The first rounding point of the step that wrote inf/NaN, in the CPU lane's order (the order they were issued).
template <typename Tc, typename Tm>
std::string GpuGraphLane<Tc, Tm>::first_nonfinite(double loss, const int* point_flags) const {
  const auto& slots = points_.slots();
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (slots[i].loss ? !std::isfinite(loss) : point_flags[i] != 0) return slots[i].name;
  return "";
}

// GraphLane::evaluate: in chunks as the CPU chunks (Graph::evaluation_chunk), each chunk's loss kept as float32
// and the chunks' losses averaged in double, then kept as float32.
template <typename Tc, typename Tm>
sim::Evaluation GpuGraphLane<Tc, Tm>::evaluate(const sim::Batch& data) {
  MPSCOPE_CUDA_CHECK(cudaSetDevice(device_));
  const std::int64_t rows = options_.data ? static_cast<std::int64_t>(data.rows.size()) : data.x.rows;
  const std::int64_t chunk = graph_.evaluation_chunk(rows);
  points_.end();  // (no statistics)
  double loss_sum = 0, last_loss = 0;
  std::int64_t correct = 0;
  for (std::int64_t begin = 0; begin < rows; begin += chunk) {
    const std::int64_t end = std::min(rows, begin + chunk);
    const sim::Batch part = chunk >= rows ? sim::Batch{} : sim::slice(data, begin, end);
    Pass& p = pass(eval_, end - begin, false);
    load_batch(p, chunk >= rows ? data : part);
    forward(p);
    loss(p, eval_loss_.get());
    const std::vector<double> total = eval_loss_.download(stream_.get());
    const std::vector<int> hits = p.correct.download(stream_.get());
    last_loss = static_cast<double>(static_cast<float>(total[0]));
    loss_sum += last_loss * static_cast<double>(end - begin);
    correct += std::accumulate(hits.begin(), hits.begin() + (end - begin), std::int64_t{0});
  }
  sim::Evaluation e;
  e.loss = chunk >= rows ? last_loss : static_cast<double>(static_cast<float>(loss_sum / static_cast<double>(rows)));
  if (model_.loss == sim::LossType::cross_entropy || !data.labels.empty())
    e.accuracy = static_cast<double>(correct) / static_cast<double>(rows);
  return e;
}

template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::read_weights(sim::LayerValues& out) const {
  out.resize(group_params_.size() - 1);
  for (std::size_t g = 1; g < group_params_.size(); ++g) {
    std::vector<double>& v = out[g - 1];
    v.clear();
    for (const Param* p : group_params_[g]) {
      const std::vector<float> f = download_as_float<Tm>(p->master.get(), p->size(), stream_.get());
      v.insert(v.end(), f.begin(), f.end());
    }
  }
}

template <typename Tc, typename Tm>
void GpuGraphLane<Tc, Tm>::read_gradients(sim::LayerValues& out) const {
  out.resize(group_params_.size() - 1);
  for (std::size_t g = 1; g < group_params_.size(); ++g) {
    std::vector<double>& v = out[g - 1];
    v.clear();
    for (const Param* p : group_params_[g]) {
      std::vector<float> f = p->master_typed_grad ? download_as_float<Tm>(p->grad_m.get(), p->size(), stream_.get())
                                                  : download_as_float<Tc>(p->grad.get(), p->size(), stream_.get());
      unscale_on_host(f, last_scale_used_, config_.recipe.master_gradients);
      v.insert(v.end(), f.begin(), f.end());
    }
  }
}

template class GpuGraphLane<float, float>;
template class GpuGraphLane<__half, float>;
template class GpuGraphLane<__nv_bfloat16, float>;
template class GpuGraphLane<__half, __half>;

}  // namespace mpscope::gpu
