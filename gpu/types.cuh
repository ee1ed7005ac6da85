// Element types of GPU lanes and their conversions. from_double rounds once, to nearest-even, as the CPU lanes'
// round_array does for the same formats; to_double is exact.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace mpscope::gpu {

template <typename T>
struct Element;

template <>
struct Element<float> {
  static constexpr const char* name = "fp32";
  __device__ static double to_double(float x) { return x; }
  __device__ static float from_double(double x) { return __double2float_rn(x); }
  static constexpr double min_normal = 1.1754943508222875e-38;  // 2^-126
  static constexpr double max_finite = 3.4028234663852886e38;
};

template <>
struct Element<__half> {
  static constexpr const char* name = "fp16";
  __device__ static double to_double(__half x) { return static_cast<double>(__half2float(x)); }
  __device__ static __half from_double(double x) { return __double2half(x); }
  static constexpr double min_normal = 6.103515625e-05;  // 2^-14
  static constexpr double max_finite = 65504.0;
};

template <>
struct Element<__nv_bfloat16> {
  static constexpr const char* name = "bf16";
  __device__ static double to_double(__nv_bfloat16 x) { return static_cast<double>(__bfloat162float(x)); }
  __device__ static __nv_bfloat16 from_double(double x) { return __double2bfloat16(x); }
  static constexpr double min_normal = 1.1754943508222875e-38;  // 2^-126
  static constexpr double max_finite = 3.3895313892515355e38;
};

template <typename T>
__device__ inline double to_double(T x) {
  return Element<T>::to_double(x);
}
template <typename T>
__device__ inline T from_double(double x) {
  return Element<T>::from_double(x);
}

// Rounding effects of the rounding points of one tensor, accumulated on the device (sim::RoundingEffects).
struct DeviceEffects {
  unsigned long long elements, underflow, subnormal, overflow, saturated;
};

// A device log2 histogram (analysis::Log2Histogram's bins): exponents -149 .. 127, float32's range, which holds
// every fp16 and bf16 value; zeros, infinities and NaNs apart.
constexpr int histogram_lowest = -149;
constexpr int histogram_bins = 277;
struct DeviceHistogram {
  unsigned long long bins[histogram_bins];
  unsigned long long zeros, infs, nans;
};

// What a kernel reports about one rounding point it computes (each may be null): the rounding effects, the log2
// histogram of the values written (the tensor's recorded histogram), and a flag raised by any inf/NaN written.
struct PointStats {
  DeviceEffects* fx = nullptr;
  DeviceHistogram* hist = nullptr;
  int* nonfinite = nullptr;
};

}  // namespace mpscope::gpu
