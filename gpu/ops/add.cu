// The CUDA twin of sim/ops/add.cpp (a residual edge): y = round(x + r); backward dx = dy, and the lane adds the
// same dy to the gradient of r's activation with add_values (gpu/graph_lane.cu).
#include "gpu/check.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/ops/op.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu {

namespace {

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::size_t n, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  for_each(n, [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      v = to_double(a[i]) + to_double(b[i]);
      out[i] = from_double<T>(v);
      r = to_double(out[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename Tc, typename Tm>
class GpuAdd final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;

  explicit GpuAdd(const sim::Node& n) : Base(n) {}
  void forward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    add_values<Tc>(x, cx.residual, y, static_cast<std::size_t>(batch * this->node().in_size()),
                   cx.points.template point<Tc>(cx.out_tensor), cx.stream);
  }
  void backward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc*, const Tc*, const Tc* dy, Tc* dx, std::int64_t batch) override {
    if (dx) copy_values(dy, dx, static_cast<std::size_t>(batch * this->node().in_size()), cx.stream);
  }
};

}  // namespace

template <typename T>
void add_values(const T* a, const T* b, T* out, std::size_t n, PointStats st, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<T><<<kernels::blocks_for(n), kernels::block_threads, 0, stream>>>(a, b, out, n, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template void add_values<float>(const float*, const float*, float*, std::size_t, PointStats, cudaStream_t);
template void add_values<__half>(const __half*, const __half*, __half*, std::size_t, PointStats, cudaStream_t);
template void add_values<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, __nv_bfloat16*, std::size_t, PointStats,
                                        cudaStream_t);

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_add(const sim::Node& n) {
  return std::make_unique<GpuAdd<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_add)

}  // namespace mpscope::gpu
