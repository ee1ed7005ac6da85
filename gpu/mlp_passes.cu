// The device work of a GPU lane's step, in sim::GraphLane's order: forward, loss, backward, unscale and check, scaler
// update, optimizer (mlp_lane.cuh). Everything here is enqueued on the lane's stream, so a step can be captured
// into a CUDA graph; nothing synchronizes.
#include "gpu/check.cuh"
#include "gpu/mlp_lane.cuh"

namespace mpscope::gpu {

template <typename Tc, typename Tm>
int* GpuMlpLane<Tc, Tm>::flag_slot(const Stats& s, const std::string& name, int phase, int rank, bool loss, int cast) {
  if (!s.flags) return nullptr;
  const std::size_t slot = next_point_++;
  if (slot >= flag_slots_) throw GpuError("GPU lane: more rounding points than flag slots");
  if (slot == points_.size()) points_.push_back(Point{name, phase, rank, loss, cast});
  return reinterpret_cast<int*>(step_block_.get() + flags_offset_) + slot;
}

template <typename Tc, typename Tm>
PointStats GpuMlpLane<Tc, Tm>::point(const Stats& s, std::size_t t, bool histogram) {
  PointStats p;
  if (s.recording && counts) p.fx = s.effects + t;
  if (s.recording && histogram) p.hist = s.histograms + t;
  p.nonfinite = flag_slot(s, tensors_[t].name, 0, static_cast<int>(next_point_));
  return p;
}

template <typename Tc, typename Tm>
kernels::GradCheck GpuMlpLane<Tc, Tm>::grad_check(int slot, const Stats& s, std::size_t t) {
  kernels::GradCheck c{scaler_.get(), grad_partials_.get() + static_cast<std::size_t>(slot) * kernels::grad_partial_slots,
                       config_.recipe.master_gradients ? 1 : 0, PointStats{}};
  if (!config_.recipe.master_gradients) {  // unscaling rounds: a point of the unscale phase, in layer order
    if (s.recording && counts) c.unscale.fx = s.effects + t;
    c.unscale.nonfinite = flag_slot(s, tensors_[t].name, 1, slot);
  }
  return c;
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::exact_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const Tc* a,
                                    std::int64_t lda, const Tc* b, std::int64_t ldb, float* d) {
  if constexpr (std::is_same_v<Tc, __half>) {
    if (config_.recipe.mma == sim::Accumulation::h100) {
      kernels::gemm_mma_fp16(ta, tb, m, n, k, a, lda, b, ldb, nullptr, d, stream_.get());
      return;
    }
  }
  kernels::gemm_fma<Tc>(ta, tb, m, n, k, a, lda, b, ldb, d, stream_.get());
}

// The compute copies of the initial weights (the CPU lane's first weight cast), counted as the first step's.
template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::initial_casts() {
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    Layer& L = layers_[k];
    const int layer = static_cast<int>(k);
    const auto stats = [&](Kind kind, int parameter) {
      return PointStats{counts ? cast_fx_next_.get() + tensor(layer, kind) : nullptr, nullptr,
                        cast_flags_next_.get() + 2 * layer + parameter};
    };
    if constexpr (has_copy) {
      kernels::cast<Tm, Tc>(L.w.get(), L.wc.get(), L.w.size(), stats(weight, 0), stream_.get());
      kernels::cast<Tm, Tc>(L.b.get(), L.bc.get(), L.b.size(), stats(bias, 1), stream_.get());
    } else {  // the cast is the identity, but the CPU lane counts it (fp16-pure) and checks it
      kernels::cast<Tc, Tc>(L.w.get(), L.w.get(), L.w.size(), stats(weight, 0), stream_.get());
      kernels::cast<Tc, Tc>(L.b.get(), L.b.get(), L.b.size(), stats(bias, 1), stream_.get());
    }
  }
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::run_step(Activations& a, const Stats& s) {
  const cudaStream_t stream = stream_.get();
  next_point_ = 0;
  // the optimizer's constants and (with a device dataset) the batch's rows, in one copy
  const std::size_t inputs = options_.data ? inputs_.size() : rows_offset;
  MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), inputs_host_.get(), inputs, cudaMemcpyHostToDevice, stream));
  if (s.recording)  // this step's effects and histograms (the weight casts' effects come from begin_step)
    MPSCOPE_CUDA_CHECK(cudaMemsetAsync(stats_block_.get() + effects_offset_, 0, stats_block_.size() - effects_offset_, stream));
  kernels::begin_step(scaler_.get(), cast_fx_now(), cast_fx_next_.get(), static_cast<int>(tensors_.size()),
                      cast_flags_next_.get(), step_block(), stream);
  forward(a, s);
  loss(a, true, s, &step_out()->loss);
  backward(a, s);
  if (fp8_) fp8_end_step();
  kernels::finish_backward(grad_partials_.get(), static_cast<int>(grad_partials_.size()), scaler_.get(), step_out(), stream);
  update(s);
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::forward(Activations& a, const Stats& s) {
  const cudaStream_t stream = stream_.get();
  const std::int64_t rows = a.rows, features = model_.widths[0];
  if (options_.data) {
    const kernels::BatchGather b{a.training ? step_rows() : a.row_numbers.get(), rows, features, model_.widths.back(),
                                 data_.has_labels ? data_.labels.get() : nullptr, data_.has_targets ? data_.targets.get() : nullptr,
                                 a.labels.get(), a.targets.get()};
    kernels::gather_input<Tc>(data_.x.get(), b, a.input.get(), point(s, input_tensor, true), stream);
  } else {
    kernels::cast<float, Tc>(a.x.get(), a.input.get(), a.x.size(), point(s, input_tensor, true), stream);
  }
  const int activation_kind = static_cast<int>(model_.activation);
  const Tc* in = a.input.get();
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    const Layer& L = layers_[k];
    const int layer = static_cast<int>(k);
    const std::size_t act = tensor(layer, activation);
    const bool last = k + 1 == layers_.size();
    const auto n = static_cast<std::size_t>(rows * L.out);
    const auto weight_cast = [&](Kind kind, int parameter) {  // made by the last update; its flag is in the block
      flag_slot(s, tensors_[tensor(layer, kind)].name, 0, static_cast<int>(next_point_), false, 2 * layer + parameter);
    };
    weight_cast(weight, 0);
    // z = round(in · Wᵀ + b)   (rows, out): the bias added to the float32 accumulator, one rounding
    if (exact_ || fp8_) {
      if (fp8_) {
        if constexpr (fp8_capable) fp8_forward_gemm(a, layer, in, s);  // (also the bias cast's flag)
      } else {
        weight_cast(bias, 1);
        exact_gemm(false, true, rows, L.out, L.in, in, L.in, L.weight_c(), L.in, a.scratch.get());
      }
      kernels::bias_add<Tc>(a.scratch.get(), L.bias_c(), a.z[k].get(), rows, L.out, point(s, act, last), stream);
    } else {
      weight_cast(bias, 1);
      const bool fused_relu = !keeps_z(k);  // (hidden ReLU layers) h = relu(in · Wᵀ + b) in one rounding
      blas_->gemm(false, true, rows, L.out, L.in, in, L.in, L.weight_c(), L.in, fused_relu ? a.h[k].get() : a.z[k].get(),
                  cuda_type<Tc>, cuda_type<Tc>, fused_relu ? Epilogue::relu_bias : Epilogue::bias, L.bias_c());
      if (s.recording && (last || fused_relu))  // cuBLAS wrote the recorded values: histogram them
        kernels::histogram(last ? a.z[k].get() : a.h[k].get(), n, s.histograms + act, stream);
    }
    if (last) break;
    // h = round(act(z))
    if (keeps_z(k)) kernels::activate<Tc>(a.z[k].get(), a.h[k].get(), n, activation_kind, point(s, act, true), stream);
    in = a.output(k);
  }
}

// The loss (into *total) and, training, d(S loss)/d logits into the last layer's gz.
template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::loss(Activations& a, bool training, const Stats& s, double* total) {
  const std::size_t last = layers_.size() - 1;
  const std::int64_t rows = a.rows, n = model_.widths.back();
  const bool mse = model_.loss == sim::LossType::mse;
  const PointStats grad_stats = training ? point(s, tensor(static_cast<int>(last), activation_grad), true) : PointStats{};
  if (training) flag_slot(s, "loss", 0, static_cast<int>(next_point_), true);  // the CPU checks the loss after its gradient
  kernels::loss_rows<Tc>(a.z[last].get(), a.has_labels ? a.labels.get() : nullptr, a.has_targets ? a.targets.get() : nullptr,
                         rows, n, mse ? 1 : 0, model_.loss_logits == sim::LossLogits::fp32 ? 1 : 0,
                         training ? &scaler_.get()->scale : nullptr, a.terms.get(),
                         training ? a.gz[last % 2].get() : nullptr, a.correct.get(), grad_stats, stream_.get());
  kernels::sum_terms(a.terms.get(), mse ? rows * n : rows, mse ? 1.0 : 1.0 / static_cast<double>(rows), exact_, total,
                     stream_.get());
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::backward(Activations& a, const Stats& s) {
  constexpr std::int64_t short_batch = 512;
  const cudaStream_t stream = stream_.get();
  const std::int64_t rows = a.rows;
  const int activation_kind = static_cast<int>(model_.activation);
  for (int k = static_cast<int>(layers_.size()) - 1; k >= 0; --k) {
    Layer& L = layers_[static_cast<std::size_t>(k)];
    const Tc* in = k == 0 ? a.input.get() : a.output(static_cast<std::size_t>(k) - 1);
    const Tc* gz = a.gz[k % 2].get();
    // dW = round(gzᵀ · in) (out, in), in float32 first: the rounding to the gradient format is mpscope's (counted)
    float* dw32 = nullptr;
    if constexpr (std::is_same_v<Tc, float>) dw32 = L.gw.get();
    else dw32 = a.scratch.get();
    if (fp8_) {
      if constexpr (fp8_capable) fp8_backward_gemms(a, k, gz, k > 0, s);  // dW, and da into scratch
    } else if (exact_) {
      exact_gemm(true, false, L.out, L.in, rows, gz, L.out, in, L.in, dw32);
    } else {
      blas_->gemm(true, false, L.out, L.in, rows, gz, L.out, in, L.in, dw32, cuda_type<Tc>, CUDA_R_32F);
    }
    kernels::round_gradient<Tc>(dw32, L.gw.get(), L.gw.size(), point(s, tensor(k, weight_grad), true),
                                grad_check(2 * k, s, tensor(k, weight_grad)), stream);
    // db = round(sum over rows of gz): in the CPU's order (exact, h100 and short batches), or by cuBLAS as ones · gz
    // in float32 (fast mode's long batches: a little faster)
    if (exact_ || config_.recipe.mma == sim::Accumulation::h100 || rows <= short_batch) {
      kernels::column_sums<Tc>(gz, L.gb.get(), rows, L.out, point(s, tensor(k, bias_grad), true),
                               grad_check(2 * k + 1, s, tensor(k, bias_grad)), stream);
    } else {
      blas_->gemm(false, false, 1, L.out, rows, a.ones.get(), rows, gz, L.out, a.bias32.get(), cuda_type<Tc>, CUDA_R_32F);
      kernels::round_gradient<Tc>(a.bias32.get(), L.gb.get(), L.gb.size(), point(s, tensor(k, bias_grad), true),
                                  grad_check(2 * k + 1, s, tensor(k, bias_grad)), stream);
    }
    if (k == 0) break;

    Layer& P = layers_[static_cast<std::size_t>(k) - 1];  // the layer below: its output is our input
    const auto p = static_cast<std::size_t>(k) - 1;
    const std::size_t below = tensor(k - 1, activation_grad);
    // da = round(gz · W) (rows, in)
    if (exact_ || fp8_) {
      if (!fp8_) exact_gemm(false, false, rows, L.in, L.out, gz, L.out, L.weight_c(), L.in, a.scratch.get());
      kernels::cast<float, Tc>(a.scratch.get(), a.da.get(), static_cast<std::size_t>(rows * L.in), point(s, below, false), stream);
    } else {
      blas_->gemm(false, false, rows, L.in, L.out, gz, L.out, L.weight_c(), L.in, a.da.get(), cuda_type<Tc>, cuda_type<Tc>);
    }
    // gz of the layer below = round(da * act'(z))
    const Tc* z = keeps_z(p) ? a.z[p].get() : a.h[p].get();
    kernels::activation_backward<Tc>(a.da.get(), z, a.h[p].get(), a.gz[(k - 1) % 2].get(), static_cast<std::size_t>(rows * P.out),
                                     activation_kind, point(s, below, true), stream);
  }
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::update(const Stats& s) {
  const cudaStream_t stream = stream_.get();
  const int master = config_.recipe.master_gradients ? 1 : 0;
  auto* lost = reinterpret_cast<unsigned long long*>(step_block_.get() + lost_offset_);
  for (std::size_t k = 0; k < layers_.size(); ++k) {
    Layer& L = layers_[k];
    const int layer = static_cast<int>(k);
    int* nonfinite = flag_slot(s, tensors_[tensor(layer, weight)].name, 2, layer);
    // the next forward pass's cast, counted now; the recorded parameters are the updated ones
    const auto stats = [&](Kind kind, bool histogram) {
      PointStats p;
      if (counts) p.fx = cast_fx_next_.get() + tensor(layer, kind);
      if (s.recording && histogram) p.hist = s.histograms + tensor(layer, kind);
      p.nonfinite = nonfinite;
      return p;
    };
    Tc* const no_copy = nullptr;
    const auto copy = [&](DeviceBuffer<Tc>& c) { return has_copy ? c.get() : no_copy; };
    int* const cast_flag = cast_flags_next_.get() + 2 * k;
    kernels::OptimizerTensors<Tc, Tm, Tc> t;
    t.t[0] = {L.w.get(), L.gw.get(), L.w1.get(), L.w2.get(), copy(L.wc), L.w.size(), stats(weight, true), cast_flag};
    t.t[1] = {L.b.get(), L.gb.get(), L.b1.get(), L.b2.get(), copy(L.bc), L.b.size(), stats(bias, true), cast_flag + 1};
    t.count = 2;
    kernels::optimizer_step<Tc, Tm, Tc>(t, constants(), scaler_.get(), master, lost + k, stream);
  }
}

// (the class itself is instantiated in mlp_lane.cu; these are the members defined here)
#define MPSCOPE_PASSES(Tc, Tm)                                                                                          \
  template int* GpuMlpLane<Tc, Tm>::flag_slot(const Stats&, const std::string&, int, int, bool, int);                   \
  template PointStats GpuMlpLane<Tc, Tm>::point(const Stats&, std::size_t, bool);                                       \
  template kernels::GradCheck GpuMlpLane<Tc, Tm>::grad_check(int, const Stats&, std::size_t);                           \
  template void GpuMlpLane<Tc, Tm>::exact_gemm(bool, bool, std::int64_t, std::int64_t, std::int64_t, const Tc*,         \
                                               std::int64_t, const Tc*, std::int64_t, float*);                          \
  template void GpuMlpLane<Tc, Tm>::initial_casts();                                                                    \
  template void GpuMlpLane<Tc, Tm>::run_step(Activations&, const Stats&);                                               \
  template void GpuMlpLane<Tc, Tm>::forward(Activations&, const Stats&);                                                \
  template void GpuMlpLane<Tc, Tm>::loss(Activations&, bool, const Stats&, double*);                                    \
  template void GpuMlpLane<Tc, Tm>::backward(Activations&, const Stats&);                                               \
  template void GpuMlpLane<Tc, Tm>::update(const Stats&);
MPSCOPE_PASSES(float, float)
MPSCOPE_PASSES(__half, float)
MPSCOPE_PASSES(__nv_bfloat16, float)
MPSCOPE_PASSES(__half, __half)
#undef MPSCOPE_PASSES

}  // namespace mpscope::gpu
