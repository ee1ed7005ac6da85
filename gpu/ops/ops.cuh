// Internal: the CUDA twins of sim/ops/*.cpp (same file names), the kernels a GPU lane runs a graph's ops with; each
// computes the CPU op's bits in exact mode (same operations, same order of additions, one rounding where the CPU
// rounds). GEMMs go through gpu/kernels.cuh's exact-mode GEMMs (or cuBLAS in fast mode); these kernels do the
// layouts and the elementwise parts around them. Row-major, shapes beside every pointer; PointStats as in
// gpu/kernels.cuh. The GpuOp classes in the same files drive them (gpu/ops/op.cuh); tested op by op against the CPU
// (tests/gpu/test_gpu_ops.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gpu/types.cuh"

namespace mpscope::gpu::ops {

// ---- conv2d (sim/ops/conv2d.cpp) ------------------------------------------------------------------------------
struct ConvShape {
  std::int64_t batch, c, h, w;  // input (batch, c, h, w)
  std::int64_t f, ho, wo;       // output (batch, f, ho, wo)
  std::int64_t k, stride, pad;
  __host__ __device__ std::int64_t patch() const { return c * k * k; }  // a GEMM row of the forward pass
  __host__ __device__ std::int64_t positions() const { return ho * wo; }
};
// cols (batch·ho·wo, c·k·k) = the patches of x (batch, c, h, w), zero where they reach into the padding
template <typename T>
void im2col(const T* x, T* cols, const ConvShape& s, cudaStream_t stream);
// y (batch, f, ho, wo) = round(sum) from the GEMM's float32 result sum (batch·ho·wo, f)
template <typename T>
void conv_output(const float* sum, T* y, const ConvShape& s, PointStats st, cudaStream_t stream);
// y = round(y + bias[f]) in place (bias (f)): PyTorch's separate bias addition after the convolution
template <typename T>
void conv_bias(T* y, const T* bias, const ConvShape& s, PointStats st, cudaStream_t stream);
// dy_rows (batch·ho·wo, f) = dy (batch, f, ho, wo) in the forward GEMM's layout
template <typename T>
void conv_grad_rows(const T* dy, T* dy_rows, const ConvShape& s, cudaStream_t stream);
// db[f] = round(Σ_b Σ_p dy(b, f, p)) in that order (one thread per channel, as the CPU adds)
template <typename T>
void conv_bias_grad(const T* dy, T* db, const ConvShape& s, PointStats st, cudaStream_t stream);
// dcols (batch·h·w, f·k·k): for each input position, the output gradients it fed (zero where it fed none)
template <typename T>
void conv_input_grad_rows(const T* dy, T* dcols, const ConvShape& s, cudaStream_t stream);
// w_rows (f·k·k, c) = w (f, c, k, k) read by output tap
template <typename T>
void conv_weights_by_output(const T* w, T* w_rows, const ConvShape& s, cudaStream_t stream);
// dx (batch, c, h, w) = round(out) from the transposed convolution's float32 GEMM result out (batch·h·w, c)
template <typename T>
void conv_input_grad(const float* out, T* dx, const ConvShape& s, PointStats st, cudaStream_t stream);

// ---- max / avg pooling (sim/ops/pool.cpp) ---------------------------------------------------------------------
struct PoolShape {
  std::int64_t batch, c, h, w, ho, wo, k, stride;
  bool max;
};
// y (batch, c, ho, wo): the window's first maximum (the last NaN), argmax (batch, c·ho·wo) its index within the
// sample; or round(Σ window / k²) (argmax unused)
template <typename T>
void pool_forward(const T* x, T* y, std::int64_t* argmax, const PoolShape& s, PointStats st, cudaStream_t stream);
// dx (batch, c, h, w) = round(Σ over the windows holding x, in the CPU's window order, of dy (max: where x was the
// window's maximum; avg: dy / k²))
template <typename T>
void pool_backward(const T* dy, const std::int64_t* argmax, T* dx, const PoolShape& s, PointStats st,
                   cudaStream_t stream);

// ---- batch_norm2d (sim/ops/batch_norm.cpp) --------------------------------------------------------------------
struct NormShape {
  std::int64_t batch, c, area;  // x (batch, c, area), area = h·w
  double eps, momentum;
};
// Training: per channel (one thread each, the CPU's order) the batch mean and rstd (c), the running statistics
// (c, double holding float32 values) updated; evaluation (training 0): mean and rstd from the running statistics.
// Then y (batch, c, area) = round((x − mean)·rstd·γ + β), γ, β (c) in the parameters' type M.
template <typename T, typename M>
void batch_norm_forward(const T* x, const M* gamma, const M* beta, T* y, double* mean, double* rstd,
                        double* running_mean, double* running_var, const NormShape& s, int training, PointStats st,
                        cudaStream_t stream);
// dγ, dβ (c) rounded to M; sums (2·c) the per-channel Σ dx̂ and Σ dx̂·x̂; dx (batch, c, area) rounded to T (null:
// not needed)
template <typename T, typename M>
void batch_norm_backward(const T* x, const T* dy, const M* gamma, const double* mean, const double* rstd, M* dgamma,
                         M* dbeta, double* sums, T* dx, const NormShape& s, PointStats dgamma_st, PointStats dbeta_st,
                         PointStats dx_st, cudaStream_t stream);

}  // namespace mpscope::gpu::ops
