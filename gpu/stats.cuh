// Internal, device code: the statistics that kernels gather on the way while they produce, cast or unscale a
// tensor (no extra pass over memory): rounding effects (sim::count_rounding_effects' definitions) and log2
// histograms (analysis::Log2Histogram's bins). Counts live in registers / shared memory and reach global memory once
// per block. Every thread of a block must call add() the same number of times (whole warps, `active` says whether
// the element is real) and reach flush(): kernels loop with for_each() below, or one row per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "gpu/types.cuh"

namespace mpscope::gpu {

constexpr unsigned full_warp = 0xffffffffu;

// Grid-stride loop in whole warps: body(i, active) with i < n when active. Every thread of a block runs the same
// number of iterations.
template <typename Body>
__device__ void for_each(std::size_t n, Body body) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t base = static_cast<std::size_t>(blockIdx.x) * blockDim.x; base < n; base += stride) {
    const std::size_t i = base + threadIdx.x;
    body(i < n ? i : 0, i < n);
  }
}

// Elementwise loops in packs: each thread takes 8 consecutive elements at a time, loaded and stored as whole
// 16-byte vectors where the pointer is aligned (cudaMalloc's are), so that few wide loads keep memory busy.
constexpr int pack_size = 8;
template <typename T>
struct alignas(sizeof(T) * pack_size >= 16 ? 16 : sizeof(T) * pack_size) Pack {
  T v[pack_size];
};
template <typename T>
__device__ inline bool pack_aligned(const T* p) {
  return (reinterpret_cast<std::uintptr_t>(p) % alignof(Pack<T>)) == 0;
}
// The elements [first, first + 8) of p, those at or past n zero. Whole packs move as 16-byte words (uint4): a
// struct of __half would be copied member by member.
template <typename T>
__device__ inline Pack<T> load_pack(const T* p, std::size_t first, std::size_t n) {
  Pack<T> r;
  if (first + pack_size <= n && pack_aligned(p)) {
    constexpr int words = sizeof(Pack<T>) / 16;
    static_assert(sizeof(Pack<T>) % 16 == 0);
    uint4 raw[words];
#pragma unroll
    for (int w = 0; w < words; ++w) raw[w] = reinterpret_cast<const uint4*>(p + first)[w];
    memcpy(&r, raw, sizeof r);
    return r;
  }
#pragma unroll
  for (int k = 0; k < pack_size; ++k) r.v[k] = first + k < n ? p[first + k] : T{};
  return r;
}
template <typename T>
__device__ inline void store_pack(T* p, std::size_t first, std::size_t n, const Pack<T>& x) {
  if (first + pack_size <= n && pack_aligned(p)) {
    constexpr int words = sizeof(Pack<T>) / 16;
    uint4 raw[words];
    memcpy(raw, &x, sizeof x);
#pragma unroll
    for (int w = 0; w < words; ++w) reinterpret_cast<uint4*>(p + first)[w] = raw[w];
    return;
  }
#pragma unroll
  for (int k = 0; k < pack_size; ++k)
    if (first + k < n) p[first + k] = x.v[k];
}
// Grid-stride loop over packs, in whole blocks: body(first, active), `active` when the thread has a pack. `block`
// of `blocks`: the blocks that share the work (a kernel over several tensors gives each its own range).
template <typename Body>
__device__ void for_each_pack(std::size_t n, Body body, unsigned block, unsigned blocks) {
  const std::size_t packs = (n + pack_size - 1) / pack_size, stride = static_cast<std::size_t>(blocks) * blockDim.x;
  for (std::size_t base = static_cast<std::size_t>(block) * blockDim.x; base < packs; base += stride) {
    const std::size_t p = base + threadIdx.x;
    body(p * pack_size, p < packs);
  }
}
template <typename Body>
__device__ void for_each_pack(std::size_t n, Body body) {
  const std::size_t packs = (n + pack_size - 1) / pack_size, stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t base = static_cast<std::size_t>(blockIdx.x) * blockDim.x; base < packs; base += stride) {
    const std::size_t p = base + threadIdx.x;
    body(p * pack_size, p < packs);
  }
}

// The sum of v over the block, valid in thread 0 (the block size is a multiple of 32; every thread calls it).
template <typename V>
__device__ V block_sum(V v) {
  __shared__ V warp_sums[32];
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(full_warp, v, d);
  const int warp = static_cast<int>(threadIdx.x + threadIdx.y * blockDim.x) / 32;
  const int lane = static_cast<int>(threadIdx.x + threadIdx.y * blockDim.x) % 32;
  __syncthreads();  // (warp_sums may still be read by the previous call)
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = 0;
  if (warp == 0) {
    const int warps = static_cast<int>(blockDim.x * blockDim.y) / 32;
    v = lane < warps ? warp_sums[lane] : V(0);
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(full_warp, v, d);
  }
  return v;
}
__device__ inline int thread_in_block() { return static_cast<int>(threadIdx.x + threadIdx.y * blockDim.x); }
__device__ inline int threads_in_block() { return static_cast<int>(blockDim.x * blockDim.y); }
__device__ inline bool first_thread() { return threadIdx.x == 0 && threadIdx.y == 0; }

// Rounding effects of one rounding point, per thread; flush() adds the block's sums to `target` (may be null:
// then nothing is counted).
struct EffectTally {
  DeviceEffects* target;
  double min_normal, max_finite;  // of the format rounded to
  unsigned long long elements = 0, underflow = 0, subnormal = 0, overflow = 0, saturated = 0;

  __device__ EffectTally(DeviceEffects* t, double min_normal_, double max_finite_)
      : target(t), min_normal(min_normal_), max_finite(max_finite_) {}
  template <typename T>
  __device__ static EffectTally of(DeviceEffects* t) {
    return EffectTally(t, Element<T>::min_normal, Element<T>::max_finite);
  }

  // `before` rounded to `after`
  __device__ void add(bool active, double before, double after) {
    if (target == nullptr || !active) return;
    const double b = fabs(before), a = fabs(after);
    elements += 1;
    underflow += (b != 0 && !isnan(b) && a == 0) ? 1 : 0;
    subnormal += (a != 0 && a < min_normal) ? 1 : 0;
    overflow += (isfinite(b) && !isfinite(a)) ? 1 : 0;
    saturated += (isfinite(b) && b > max_finite && a == max_finite) ? 1 : 0;
  }
  __device__ void flush() {
    if (target == nullptr) return;  // (uniform over the grid)
    unsigned long long* fields[5] = {&target->elements, &target->underflow, &target->subnormal, &target->overflow,
                                     &target->saturated};
    const unsigned long long values[5] = {elements, underflow, subnormal, overflow, saturated};
    for (int f = 0; f < 5; ++f) {
      const unsigned long long total = block_sum<unsigned long long>(values[f]);
      if (first_thread() && total != 0) atomicAdd(fields[f], total);
    }
  }
};

// A block's log2 histogram. Each thread counts the values in a window of 48 exponents in its own 16-bit counters in
// shared memory (no atomics, no waiting on other threads) and zeros in a register; the rare values outside the
// window go straight to the global bins. The window holds every fp16 exponent (-24 .. 23) for fp16 tensors and
// -40 .. 7 for float32 and bf16 ones. Kernels declare `__shared__ unsigned bins[BlockHistogram::shared_size]` and
// run at most 256 threads per block while collecting; a thread counts at most 65535 values (a grid of at least
// 256 threads covers 16M values).
struct BlockHistogram {
  static constexpr int window = 48;
  static constexpr int max_threads = 256;
  static constexpr int shared_size = window * max_threads / 2;  // unsigned words holding two 16-bit counters
  DeviceHistogram* target;  // null: nothing is collected
  unsigned short* counters;  // [bin in window][thread]
  int lo_slot;               // the slot of the window's first bin
  unsigned long long zeros = 0;

  template <typename T>
  __device__ static int lowest_exponent() {
    return std::is_same_v<T, __half> ? -24 : -40;  // (fp16: its every exponent)
  }

  __device__ BlockHistogram(DeviceHistogram* t, unsigned* shared_bins, int lowest)
      : target(t), counters(reinterpret_cast<unsigned short*>(shared_bins)), lo_slot(lowest - histogram_lowest) {
    if (target == nullptr) return;
    for (int i = thread_in_block(); i < shared_size; i += threads_in_block()) shared_bins[i] = 0;
    __syncthreads();
  }

  __device__ static int slot_of(float x) {
    const unsigned a = __float_as_uint(x) & 0x7FFFFFFFu;
    if (a == 0) return histogram_bins;                   // zero
    if (a == 0x7F800000u) return histogram_bins + 1;     // inf
    if (a > 0x7F800000u) return histogram_bins + 2;      // NaN
    if ((a >> 23) != 0) return static_cast<int>(a >> 23) - 127 - histogram_lowest;
    return (31 - __clz(static_cast<int>(a))) - 149 - histogram_lowest;  // float32 subnormal
  }

  __device__ void add(bool active, float x) {
    if (target == nullptr || !active) return;
    if ((__float_as_uint(x) & 0x7FFFFFFFu) == 0) {
      ++zeros;
      return;
    }
    const int slot = slot_of(x);
    const unsigned in_window = static_cast<unsigned>(slot - lo_slot);
    if (in_window < static_cast<unsigned>(window)) {
      ++counters[in_window * static_cast<unsigned>(threads_in_block()) + static_cast<unsigned>(thread_in_block())];
      return;
    }
    unsigned long long* dst = slot < histogram_bins ? &target->bins[slot] : slot == histogram_bins + 1 ? &target->infs : &target->nans;
    atomicAdd(dst, 1ull);
  }

  // Every thread of the block calls it.
  __device__ void flush() {
    if (target == nullptr) return;
    const unsigned long long z = block_sum<unsigned long long>(zeros);
    if (first_thread() && z != 0) atomicAdd(&target->zeros, z);
    __syncthreads();
    const int threads = threads_in_block(), warps = threads / 32, lane = thread_in_block() % 32;
    for (int bin = thread_in_block() / 32; bin < window; bin += warps) {  // a warp a bin at a time
      unsigned long long c = 0;
      for (int t = lane; t < threads; t += 32) c += counters[bin * threads + t];
      for (int d = 16; d > 0; d /= 2) c += __shfl_down_sync(full_warp, c, d);
      if (lane == 0 && c != 0) atomicAdd(&target->bins[lo_slot + bin], c);
    }
  }
};

// Everything a kernel gathers about one rounding point (PointStats): effects, histogram, inf/NaN flag. Declare the
// histogram's shared bins in the kernel: `__shared__ unsigned bins[BlockHistogram::shared_size];`.
template <typename T>
struct PointTally {
  EffectTally effects;
  BlockHistogram histogram;
  int* nonfinite;
  bool seen_nonfinite = false;

  __device__ PointTally(const PointStats& s, unsigned* bins)
      : effects(EffectTally::of<T>(s.fx)),
        histogram(s.hist, bins, BlockHistogram::lowest_exponent<T>()),
        nonfinite(s.nonfinite) {}
  // `before` rounded to `after` (a value of T); every lane of the warp calls it
  __device__ void add(bool active, double before, double after) {
    effects.add(active, before, after);
    histogram.add(active, static_cast<float>(after));
    seen_nonfinite = seen_nonfinite || (active && !isfinite(after));
  }
  __device__ void flush() {
    effects.flush();
    histogram.flush();
    if (seen_nonfinite && nonfinite != nullptr) *nonfinite = 1;
  }
};

template <typename T>
__device__ inline float to_float(T x) {
  return static_cast<float>(Element<T>::to_double(x));
}
template <>
__device__ inline float to_float<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ inline float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

}  // namespace mpscope::gpu
