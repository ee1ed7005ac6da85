// The CUDA twin of sim/ops/layer_norm.cpp over the last dimension of each sample, one thread per row (the kernels
// are gpu/kernels_forward.cu's layer_norm_forward and gpu/kernels_backward.cu's layer_norm_backward).
//
//   forward   y = round_T(round_P((x − mean)·rstd·γ + β))   γ, β the master values (P = Tm, the promoted format:
//                                                           autocast's fp32 list); mean, rstd (rows) kept in double
//   backward  dγ, dβ in Tm (the CPU stores them first), then dx = round_T(round_P(...))
// An output autocast keeps in fp32 (sim::Node::promoted) needs a Tm activation buffer: refused by the graph lane
// where Tc is not Tm.
#include "gpu/ops/op.cuh"

namespace mpscope::gpu {

namespace {

template <typename Tc, typename Tm>
class GpuLayerNorm final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;
  using Base::params_;

  explicit GpuLayerNorm(const sim::Node& n) : Base(n), d_(n.in_shape.back()) { this->add_params(true); }

  struct Scratch final : Buffers {
    DeviceBuffer<double> mean, rstd;  // (rows)
    DeviceBuffer<Tc> dx;              // (rows, d) when no input gradient is wanted (the kernel writes one)
  };
  std::unique_ptr<Buffers> make_buffers(std::int64_t batch, bool training) const override {
    auto b = std::make_unique<Scratch>();
    b->mean = DeviceBuffer<double>(static_cast<std::size_t>(rows(batch)));
    b->rstd = DeviceBuffer<double>(b->mean.size());
    if (training && !this->node().needs_input_grad) b->dx = DeviceBuffer<Tc>(static_cast<std::size_t>(rows(batch) * d_));
    return b;
  }

  void forward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    auto& b = static_cast<Scratch&>(*buffers);
    kernels::layer_norm_forward<Tc, Tm>(x, params_[0].master.get(), beta() ? beta()->master.get() : nullptr, y, b.mean.get(),
                                        b.rstd.get(), rows(batch), d_, this->node().spec.eps,
                                        cx.points.template point<Tc>(cx.out_tensor), cx.stream);
  }
  void backward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc* x, const Tc*, const Tc* dy, Tc* dx,
                std::int64_t batch) override {
    auto& b = static_cast<Scratch&>(*buffers);
    const PointStats dgamma = cx.points.template point<Tm>(params_[0].grad_tensor);
    const PointStats dbeta = beta() ? cx.points.template point<Tm>(beta()->grad_tensor) : PointStats{};
    const PointStats dx_st = dx ? cx.points.template point<Tc>(cx.in_grad_tensor) : PointStats{};
    kernels::layer_norm_backward<Tc, Tm>(dy, x, params_[0].master.get(), b.mean.get(), b.rstd.get(), dx ? dx : b.dx.get(),
                                         params_[0].grad_m.get(), beta() ? beta()->grad_m.get() : nullptr, rows(batch), d_,
                                         dx_st, dgamma, dbeta, cx.stream);
  }

 private:
  std::int64_t rows(std::int64_t batch) const { return batch * this->node().in_size() / d_; }
  GpuParam<Tc, Tm>* beta() { return params_.size() > 1 ? &params_[1] : nullptr; }
  std::int64_t d_;
};

}  // namespace

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_layer_norm(const sim::Node& n) {
  return std::make_unique<GpuLayerNorm<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_layer_norm)

}  // namespace mpscope::gpu
