// The CUDA twin of sim/ops/activation.cpp: y = round(act(x)), dx = round(dy · act'(x)), elementwise on any shape
// (the kernels are gpu/kernels_forward.cu's activate and gpu/kernels_backward.cu's activation_backward).
#include "gpu/ops/op.cuh"

namespace mpscope::gpu {

namespace {

template <typename Tc, typename Tm>
class GpuActivation final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;

  explicit GpuActivation(const sim::Node& n) : Base(n), kind_(static_cast<int>(n.spec.activation)) {}

  void forward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    kernels::activate<Tc>(x, y, count(batch), kind_, cx.points.template point<Tc>(cx.out_tensor), cx.stream);
  }
  void backward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc* x, const Tc* y, const Tc* dy, Tc* dx, std::int64_t batch) override {
    if (!dx) return;
    kernels::activation_backward<Tc>(dy, x, y, dx, count(batch), kind_, cx.points.template point<Tc>(cx.in_grad_tensor),
                                     cx.stream);
  }

 private:
  std::size_t count(std::int64_t batch) const { return static_cast<std::size_t>(batch * this->node().in_size()); }
  int kind_;  // kernels::ActivationKind, sim::Activation's order
};

}  // namespace

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_activation(const sim::Node& n) {
  return std::make_unique<GpuActivation<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_activation)

}  // namespace mpscope::gpu
