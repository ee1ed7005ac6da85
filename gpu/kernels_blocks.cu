// Block-scaled quantization on the device (gpu/block_scaling.cuh), the twin of sim/block_scaling.cpp: the same
// operations in the same precision (double where the CPU computes in double, float32 where it rounds to float32),
// one thread per block.
#include <cuda_fp8.h>

#include <string>

#include "gpu/block_scaling.cuh"
#include "gpu/check.cuh"
#include "gpu/error.hpp"
#include "gpu/kernels_common.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::kernels {

namespace {

// An element format as the kernels need it: saturating, subnormals kept (every block format's elements are).
struct Element {
  int mantissa_bits;
  int emin;     // exponent of the smallest normal
  double max;   // largest finite value
};

Element element_of(const sim::Format& f) { return {f.mantissa_bits, f.emin(), f.max_finite()}; }

// v rounded to the element format, saturating: ties to even (away = false) or away from zero, as sim::round and
// sim's round_element. v is exact (a float32 times a power of two, or a float32).
__device__ double round_element(double v, Element e, bool away) {
  if (isnan(v)) return v;
  const double a = fabs(v);
  if (a == 0) return v;
  if (a > e.max) return copysign(e.max, v);
  const int exponent = max(ilogb(a), e.emin);
  const double quantum = ldexp(1.0, exponent - e.mantissa_bits);
  const double t = a / quantum;  // exact: a power-of-two division of a value with few bits
  double r = floor(t);
  const double fraction = t - r;
  if (fraction > 0.5 || (fraction == 0.5 && (away || fmod(r, 2.0) != 0))) r += 1;
  return copysign(fmin(r * quantum, e.max), v);
}

__device__ float block_amax(const float* x, std::int64_t n) {
  float amax = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (isnan(x[i])) return x[i];
    amax = fmaxf(amax, fabsf(x[i]));
  }
  return amax;
}

// sim::ocp_shared_exponent: floor(float32 log2(amax)) - emax, clamped to [-127, 127]
__device__ int ocp_shared(float amax, int element_emax) {
  const float a = amax == 0 ? 0x1p-126f : amax;
  const float l = __double2float_rn(log2(static_cast<double>(a)));
  return min(max(static_cast<int>(floorf(l)) - element_emax, -127), 127);
}

// sim::round_up_scale_bits
__device__ unsigned round_up_bits(float amax, float inverse_max) {
  const float p = __fmul_rn(amax, inverse_max);
  if (isnan(p)) return 0xFF;
  if (isinf(p)) return 0xFE;
  if (p == 0) return 0;
  const unsigned bits = __float_as_uint(p);
  unsigned exponent = (bits >> 23) & 0xFF;
  const unsigned mantissa = bits & 0x7FFFFF;
  if (mantissa > 0 && exponent != 0xFE && !(exponent == 0 && mantissa <= 0x400000)) ++exponent;
  return exponent;
}

struct Launch {
  Element element;
  int element_emax;
  std::int64_t block;
  bool nvfp4, round_up, away;
  float inverse_max;  // float32 1 / max (the round-up rule)
  float max_f;        // the element's max as float32 (NVFP4's amax / 6)
};

__global__ void amax_kernel(const float* x, std::size_t n, float* amax) {
  for_each(n, [&](std::size_t i, bool active) {
    if (active) atomicMax(reinterpret_cast<unsigned*>(amax), __float_as_uint(fabsf(x[i])));  // (NaN sorts last)
  });
}

__global__ void blocks_kernel(const float* x, std::int64_t rows, std::int64_t length, Launch k, const float* tensor_amax,
                              float* out, std::uint8_t* scale_bits) {
  const std::int64_t blocks = (length + k.block - 1) / k.block;
  const std::int64_t id = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= rows * blocks) return;
  const std::int64_t r = id / blocks, b = id % blocks;
  const std::int64_t first = r * length + b * k.block, n = min(k.block, length - b * k.block);
  const float amax = block_amax(x + first, n);
  bool invalid = isnan(amax) || isinf(amax);
  double to_element = 0, to_value = 0;
  bool float32_product = k.round_up || k.nvfp4;
  if (!k.nvfp4) {
    int shared = 0;
    if (!k.round_up) {
      shared = invalid ? 0 : ocp_shared(amax, k.element_emax);
    } else {
      const unsigned bits = round_up_bits(amax, k.inverse_max);
      invalid = invalid || bits == 0xFF;
      shared = static_cast<int>(bits) - 127;
    }
    scale_bits[id] = invalid ? 0xFF : static_cast<std::uint8_t>(shared + 127);
    to_element = ldexp(1.0, -shared);
    to_value = ldexp(1.0, shared);
  } else {
    const float t = *tensor_amax;
    const float e = __fdiv_rn(static_cast<float>(448.0 * static_cast<double>(k.max_f)), t);
    const float s_enc = isfinite(e) && e > 0 ? e : 1.0f;
    const float s_dec = __fmul_rn(__fdiv_rn(amax, k.max_f), s_enc);
    const Element e4m3{3, -6, 448.0};
    const double s = invalid ? 0.0 : round_element(s_dec, e4m3, false);
    scale_bits[id] = invalid ? 0x7F : __nv_cvt_float_to_fp8(static_cast<float>(s), __NV_SATFINITE, __NV_E4M3);
    to_element = s > 0 ? static_cast<double>(__fdiv_rn(s_enc, static_cast<float>(s))) : 0.0;
    to_value = s / static_cast<double>(s_enc);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if (invalid) {
      out[first + i] = __int_as_float(0x7FC00000);
      continue;
    }
    double scaled = static_cast<double>(x[first + i]) * to_element;
    if (float32_product) scaled = __double2float_rn(scaled);
    out[first + i] = __double2float_rn(round_element(scaled, k.element, k.away) * to_value);
  }
}

}  // namespace

void quantize_blocks(const float* x, std::int64_t rows, std::int64_t length, const sim::BlockFormat& f,
                     const sim::BlockOptions& o, float* out, std::uint8_t* scale_bits, float* scratch, cudaStream_t s) {
  if (f.scale == sim::ScaleKind::fp32)
    throw GpuError("block quantization on the GPU: " + f.name + " (float32 scales) runs on the CPU for now");
  if (o.rounding == sim::ElementRounding::stochastic)
    throw GpuError("block quantization on the GPU: stochastic rounding draws from the CPU's random stream; run it on the CPU");
  Launch k{};
  k.element = element_of(f.element);
  k.element_emax = f.element.emax();
  k.block = f.block;
  k.nvfp4 = f.scale == sim::ScaleKind::e4m3_and_fp32;
  k.round_up = !k.nvfp4 && o.rule == sim::ScaleRule::round_up;
  k.away = o.rounding == sim::ElementRounding::nearest_away;
  k.max_f = static_cast<float>(f.element.max_finite());
  k.inverse_max = 1.0f / k.max_f;
  const auto n = static_cast<std::size_t>(rows * length);
  if (n == 0) return;
  if (k.nvfp4) {
    MPSCOPE_CUDA_CHECK(cudaMemsetAsync(scratch, 0, sizeof(float), s));
    amax_kernel<<<blocks_for(n), block_threads, 0, s>>>(x, n, scratch);
    MPSCOPE_LAUNCH_CHECK();
  }
  const auto blocks = static_cast<std::size_t>(rows * ((length + f.block - 1) / f.block));
  blocks_kernel<<<blocks_for(blocks), block_threads, 0, s>>>(x, rows, length, k, scratch, out, scale_bits);
  MPSCOPE_LAUNCH_CHECK();
}

}  // namespace mpscope::gpu::kernels
