// Internal, device code shared by the kernel files: launch shapes and the elementwise functions of the model,
// written as sim/ops/*.cpp write them (same operations, same order, sim/mathfn.hpp's functions), so that the
// GPU computes the CPU lane's bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gpu/kernels.cuh"
#include "sim/mathfn.hpp"

namespace mpscope::gpu::kernels {

namespace mf = mpscope::sim::mathfn;

constexpr int block_threads = 256;
// Grid-stride kernels: enough blocks to fill an H100 several times over; at most grad_partial_slots.
inline int blocks_for(std::size_t n) {
  const std::size_t b = (n + block_threads - 1) / block_threads;
  return static_cast<int>(b == 0 ? 1 : (b < grad_partial_slots ? b : grad_partial_slots));
}
// Loops over packs of 8 elements (stats.cuh).
inline int pack_blocks(std::size_t n) { return blocks_for((n + 7) / 8); }
// One thread per row (or column): small blocks, so that short tensors still spread over the GPU.
constexpr int row_threads = 64;
inline unsigned row_blocks(std::int64_t rows) {
  return static_cast<unsigned>(rows <= 0 ? 1 : (rows + row_threads - 1) / row_threads);
}

// sim/ops/activation.cpp's constants, computed in double as it computes them.
__device__ inline double pi() { return 3.14159265358979323846; }
__device__ inline double inv_sqrt2() { return mf::sqrt(0.5); }
__device__ inline double inv_sqrt_2pi() { return mf::sqrt(0.5 / pi()); }
__device__ inline double sqrt_2_over_pi() { return mf::sqrt(2.0 / pi()); }
__device__ inline double gelu_cubic() { return 44715.0 / 1000000.0; }

// sim/ops/activation.cpp: activate
__device__ inline double activate_value(double z, int a) {
  switch (a) {
    case relu: return z > 0 ? z : 0.0;
    case gelu: return 0.5 * z * (1.0 + mf::erf(z * inv_sqrt2()));
    case gelu_tanh: {
      const double u = sqrt_2_over_pi() * (z + gelu_cubic() * z * z * z);
      return 0.5 * z * (1.0 + mf::tanh(u));
    }
    case tanh_act: return mf::tanh(z);
    case sigmoid: return 1.0 / (1.0 + mf::exp(-z));
    case silu: return z * (1.0 / (1.0 + mf::exp(-z)));
  }
  return z;
}

// sim/ops/activation.cpp: derivative_times (here the slope d act / d z at z, h = act(z))
__device__ inline double activation_slope(double z, double h, int a) {
  switch (a) {
    case relu: return z > 0 ? 1.0 : 0.0;
    case gelu: {
      const double cdf = 0.5 * (1.0 + mf::erf(z * inv_sqrt2()));
      const double pdf = mf::exp(-0.5 * z * z) * inv_sqrt_2pi();
      return cdf + z * pdf;
    }
    case gelu_tanh: {
      const double k0 = sqrt_2_over_pi(), k1 = gelu_cubic();
      const double t = mf::tanh(k0 * (z + k1 * z * z * z));
      return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * k0 * (1.0 + 3.0 * k1 * z * z);
    }
    case tanh_act: return 1.0 - h * h;
    case sigmoid: return h * (1.0 - h);
    case silu: {
      const double s = 1.0 / (1.0 + mf::exp(-z));
      return s * (1.0 + z * (1.0 - s));
    }
  }
  return 1.0;
}

}  // namespace mpscope::gpu::kernels
