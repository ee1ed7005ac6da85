// The GPU op list (the twin of sim/ops/ops.cpp): a layer type's op, one factory per op file.
#include "gpu/ops/op.cuh"

namespace mpscope::gpu {

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_op(const sim::Node& n) {
  using T = sim::LayerSpec::Type;
  switch (n.spec.type) {
    case T::linear: return make_gpu_linear<Tc, Tm>(n);
    case T::conv2d: return make_gpu_conv2d<Tc, Tm>(n);
    case T::maxpool2d:
    case T::avgpool2d: return make_gpu_pool<Tc, Tm>(n);
    case T::flatten: return make_gpu_flatten<Tc, Tm>(n);
    case T::activation: return make_gpu_activation<Tc, Tm>(n);
    case T::layer_norm: return make_gpu_layer_norm<Tc, Tm>(n);
    case T::batch_norm2d: return make_gpu_batch_norm2d<Tc, Tm>(n);
    case T::add: return make_gpu_add<Tc, Tm>(n);
    case T::embedding:
    case T::position_embedding:
    case T::causal_attention:
      throw GpuError(n.module + " (" + std::string(sim::to_string(n.spec.type)) +
                     "): GPU lanes do not run transformer layers yet; run the lane on the CPU (\"backend\": \"cpu\")");
  }
  throw GpuError("GPU lane: unknown layer type");
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_op)

}  // namespace mpscope::gpu
