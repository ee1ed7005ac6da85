// What CUDA devices this machine has, for `mpscope doctor` and for choosing lanes' backends.
// No CUDA types here: code built without nvcc can include this header (the functions then live only in
// mpscope_gpu, which exists when MPSCOPE_CUDA is on).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace mpscope::gpu {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  std::size_t total_memory = 0;  // bytes
  std::size_t free_memory = 0;   // bytes, when it was queried
  int multiprocessors = 0;
};

struct CudaInfo {
  int driver_version = 0;   // e.g. 13000 for CUDA 13.0; 0 when there is no driver
  int runtime_version = 0;  // the CUDA runtime mpscope was built with
  std::vector<DeviceInfo> devices;
  std::string problem;  // why there are no devices ("no CUDA driver", "no CUDA device", ...), empty otherwise
};

CudaInfo query_cuda();
std::string version_string(int cuda_version);  // 13000 -> "13.0"

}  // namespace mpscope::gpu
