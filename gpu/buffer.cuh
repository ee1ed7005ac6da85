// Device memory: RAII buffers whose allocations are counted, so that a lane can report its peak device memory.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

#include "gpu/check.cuh"

namespace mpscope::gpu {

// Bytes allocated through DeviceBuffer in this process: now and at most.
struct MemoryCounter {
  static std::atomic<std::size_t>& current();
  static std::atomic<std::size_t>& peak();
  static void reset_peak() { peak().store(current().load()); }
};

void* device_allocate(std::size_t bytes);  // GpuError naming the size and the free memory when it fails
void device_free(void* p, std::size_t bytes);

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) { p_ = n ? static_cast<T*>(device_allocate(n * sizeof(T))) : nullptr; }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    release();
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const T* host, std::size_t n, cudaStream_t s) {
    MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(p_, host, n * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  void upload(const std::vector<T>& host, cudaStream_t s) { upload(host.data(), host.size(), s); }
  std::vector<T> download(cudaStream_t s) const {
    std::vector<T> out(n_);
    if (n_) MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(out.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost, s));
    MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(s));
    return out;
  }
  void zero(cudaStream_t s) {
    if (n_) MPSCOPE_CUDA_CHECK(cudaMemsetAsync(p_, 0, n_ * sizeof(T), s));
  }

 private:
  void release() {
    if (p_) device_free(p_, n_ * sizeof(T));
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// Page-locked host memory: what CUDA graphs copy from and into, read or written by the host between steps.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t n) : n_(n) {
    if (n) MPSCOPE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  ~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (p_) cudaFreeHost(p_);
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// A non-blocking stream, destroyed with its owner.
class Stream {
 public:
  Stream() { MPSCOPE_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// An instantiated CUDA graph.
class GraphExec {
 public:
  GraphExec() = default;
  ~GraphExec() { reset(); }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  void reset(cudaGraphExec_t e = nullptr) {
    if (e_) cudaGraphExecDestroy(e_);
    e_ = e;
  }
  cudaGraphExec_t get() const { return e_; }
  explicit operator bool() const { return e_ != nullptr; }

 private:
  cudaGraphExec_t e_ = nullptr;
};

}  // namespace mpscope::gpu
