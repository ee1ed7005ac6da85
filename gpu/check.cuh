// CUDA error handling: every runtime / cuBLASLt call is checked; failures become gpu::GpuError with the call site
// and a plain-words reason (out of memory says how much was asked and how much is free).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "gpu/error.hpp"

namespace mpscope::gpu {

[[noreturn]] void fail_cuda(cudaError_t e, const char* what, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t s, const char* what, const char* file, int line);

}  // namespace mpscope::gpu

#define MPSCOPE_CUDA_CHECK(call)                                                                   \
  do {                                                                                             \
    const cudaError_t mpscope_e = (call);                                                          \
    if (mpscope_e != cudaSuccess) ::mpscope::gpu::fail_cuda(mpscope_e, #call, __FILE__, __LINE__); \
  } while (0)
#define MPSCOPE_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                                 \
    const cublasStatus_t mpscope_s = (call);                                                           \
    if (mpscope_s != CUBLAS_STATUS_SUCCESS) ::mpscope::gpu::fail_cublas(mpscope_s, #call, __FILE__, __LINE__); \
  } while (0)
// After a kernel launch: launch-configuration errors now, execution errors at the next synchronization.
#define MPSCOPE_LAUNCH_CHECK() MPSCOPE_CUDA_CHECK(cudaGetLastError())
