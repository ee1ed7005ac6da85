// GPU runtime services: error messages, counted device memory, whether GPU lanes can run.
#include <atomic>
#include <string>

#include "gpu/buffer.cuh"
#include "gpu/check.cuh"
#include "gpu/device.hpp"
#include "gpu/gpu_lane.hpp"
#include "gpu/stats_host.hpp"

namespace mpscope::gpu {

void fail_cuda(cudaError_t e, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a sticky error where possible
  std::string where = std::string(file);
  where = where.substr(where.find_last_of('/') + 1) + ":" + std::to_string(line);
  throw GpuError(std::string("CUDA error: ") + cudaGetErrorString(e) + " (" + what + " at " + where + ")");
}

void fail_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  std::string where = std::string(file);
  where = where.substr(where.find_last_of('/') + 1) + ":" + std::to_string(line);
  throw GpuError(std::string("cuBLAS error: ") + cublasLtGetStatusString(s) + " (" + what + " at " + where + ")");
}

std::atomic<std::size_t>& MemoryCounter::current() {
  static std::atomic<std::size_t> c{0};
  return c;
}
std::atomic<std::size_t>& MemoryCounter::peak() {
  static std::atomic<std::size_t> p{0};
  return p;
}

void* device_allocate(std::size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    throw GpuError("out of GPU memory: asked for " + std::to_string(bytes >> 20) + " MiB with " +
                   std::to_string(free >> 20) + " MiB free of " + std::to_string(total >> 20) +
                   " MiB (a smaller model or batch, or fewer GPU lanes, would fit)");
  }
  MPSCOPE_CUDA_CHECK(e);
  const std::size_t now = MemoryCounter::current().fetch_add(bytes) + bytes;
  std::size_t peak = MemoryCounter::peak().load();
  while (now > peak && !MemoryCounter::peak().compare_exchange_weak(peak, now)) {
  }
  return p;
}

void device_free(void* p, std::size_t bytes) {
  cudaFree(p);
  MemoryCounter::current().fetch_sub(bytes);
}

std::size_t peak_device_memory() { return MemoryCounter::peak().load(); }
void reset_peak_device_memory() { MemoryCounter::reset_peak(); }

std::string unavailable_reason() {
  const CudaInfo info = query_cuda();
  if (info.devices.empty()) return info.problem;
  return "";
}

analysis::Log2Histogram to_histogram(const DeviceHistogram& d) {
  analysis::Log2Histogram h;
  h.zeros = static_cast<std::int64_t>(d.zeros);
  h.infs = static_cast<std::int64_t>(d.infs);
  h.nans = static_cast<std::int64_t>(d.nans);
  int first = 0, last = histogram_bins - 1;
  while (first < histogram_bins && d.bins[first] == 0) ++first;
  if (first == histogram_bins) return h;
  while (d.bins[last] == 0) --last;
  h.lo = histogram_lowest + first;
  for (int i = first; i <= last; ++i) h.counts.push_back(static_cast<std::int64_t>(d.bins[i]));
  return h;
}

sim::RoundingEffects to_effects(const DeviceEffects& d) {
  sim::RoundingEffects e;
  e += d;
  return e;
}

sim::RoundingEffects& operator+=(sim::RoundingEffects& a, const DeviceEffects& b) {
  a.elements += static_cast<std::int64_t>(b.elements);
  a.underflow += static_cast<std::int64_t>(b.underflow);
  a.subnormal += static_cast<std::int64_t>(b.subnormal);
  a.overflow += static_cast<std::int64_t>(b.overflow);
  a.saturated += static_cast<std::int64_t>(b.saturated);
  return a;
}

}  // namespace mpscope::gpu
