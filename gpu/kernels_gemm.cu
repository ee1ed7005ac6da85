// The exact-mode GEMMs of GPU lanes (kernels.cuh): the CUDA twins of sim::gemm's h100 and fp32 accumulation
// models, with the K order fixed so that a CPU lane computes the same bits.
#include <cuda_fp16.h>

#include <cstdint>

#include "gpu/check.cuh"
#include "gpu/kernels.cuh"

namespace mpscope::gpu::kernels {

namespace {

template <typename T>
__device__ T element(const T* p, bool trans, std::int64_t ld, std::int64_t r, std::int64_t c, std::int64_t rows,
                     std::int64_t cols) {
  if (r >= rows || c >= cols) return T(0.0f);  // padding: zero products take no part
  return trans ? p[c * ld + r] : p[r * ld + c];
}

__device__ std::uint32_t pack(__half lo, __half hi) {
  const __half2 h = __halves2half2(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&h);
}

// One warp per 16 x 8 tile of C; K walked in blocks of 16 in order, each block's result the next block's
// accumulator (mma.sync m16n8k16: fp16 inputs, fp32 accumulation): the hardware does what sim's h100 model does.
__global__ void mma_fp16_kernel(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const __half* a,
                                std::int64_t lda, const __half* b, std::int64_t ldb, const float* c, float* d) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warp = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const std::int64_t tiles_n = (n + 7) / 8;
  const std::int64_t tile_m = warp / tiles_n, tile_n = warp % tiles_n;
  if (tile_m * 16 >= m) return;
  const std::int64_t row0 = tile_m * 16, col0 = tile_n * 8;
  const int g = lane >> 2, t = lane & 3;
  // this lane's four accumulators: rows g and g + 8, columns 2t and 2t + 1 of the tile
  const std::int64_t r0 = row0 + g, r1 = row0 + g + 8, c0 = col0 + 2 * t, c1 = col0 + 2 * t + 1;
  const auto initial = [&](std::int64_t r, std::int64_t col) { return c != nullptr && r < m && col < n ? c[r * n + col] : 0.0f; };
  float d0 = initial(r0, c0), d1 = initial(r0, c1), d2 = initial(r1, c0), d3 = initial(r1, c1);
  for (std::int64_t k0 = 0; k0 < k; k0 += 16) {
    const auto A = [&](int r, int col) { return element(a, ta, lda, row0 + r, k0 + col, m, k); };
    const auto B = [&](int r, int col) { return element(b, tb, ldb, k0 + r, col0 + col, k, n); };
    const std::uint32_t a0 = pack(A(g, 2 * t), A(g, 2 * t + 1)), a1 = pack(A(g + 8, 2 * t), A(g + 8, 2 * t + 1)),
                        a2 = pack(A(g, 2 * t + 8), A(g, 2 * t + 9)), a3 = pack(A(g + 8, 2 * t + 8), A(g + 8, 2 * t + 9));
    const std::uint32_t b0 = pack(B(2 * t, g), B(2 * t + 1, g)), b1 = pack(B(2 * t + 8, g), B(2 * t + 9, g));
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  if (r0 < m && c0 < n) d[r0 * n + c0] = d0;
  if (r0 < m && c1 < n) d[r0 * n + c1] = d1;
  if (r1 < m && c0 < n) d[r1 * n + c0] = d2;
  if (r1 < m && c1 < n) d[r1 * n + c1] = d3;
}

template <typename T>
__device__ float as_float(T x) {
  return static_cast<float>(x);
}
template <>
__device__ float as_float<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ float as_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

// One thread per element of C: d = fma(a_k, b_k, d) for k in order, from d = 0.
template <typename T>
__global__ void fma_kernel(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                           std::int64_t lda, const T* b, std::int64_t ldb, float* c) {
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= m * n) return;
  const std::int64_t i = idx / n, j = idx % n;
  float d = 0.0f;
  for (std::int64_t kk = 0; kk < k; ++kk)
    d = __fmaf_rn(as_float(ta ? a[kk * lda + i] : a[i * lda + kk]), as_float(tb ? b[j * ldb + kk] : b[kk * ldb + j]), d);
  c[idx] = d;
}

}  // namespace

void gemm_mma_fp16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const __half* a,
                   std::int64_t lda, const __half* b, std::int64_t ldb, const float* c, float* d, cudaStream_t s) {
  const std::int64_t warps = ((m + 15) / 16) * ((n + 7) / 8);
  const int per_block = 4;
  const auto blocks = static_cast<unsigned>((warps + per_block - 1) / per_block);
  mma_fp16_kernel<<<blocks, per_block * 32, 0, s>>>(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, d);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void gemm_fma(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
              const T* b, std::int64_t ldb, float* c, cudaStream_t s) {
  if (m * n == 0) return;
  const auto blocks = static_cast<unsigned>((m * n + 255) / 256);
  fma_kernel<<<blocks, 256, 0, s>>>(trans_a, trans_b, m, n, k, a, lda, b, ldb, c);
  MPSCOPE_LAUNCH_CHECK();
}

template void gemm_fma<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                              const float*, std::int64_t, float*, cudaStream_t);
template void gemm_fma<__half>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const __half*, std::int64_t,
                               const __half*, std::int64_t, float*, cudaStream_t);
template void gemm_fma<__nv_bfloat16>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const __nv_bfloat16*,
                                      std::int64_t, const __nv_bfloat16*, std::int64_t, float*, cudaStream_t);

}  // namespace mpscope::gpu::kernels
