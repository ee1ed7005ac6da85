// The error every GPU failure becomes: a CUDA or cuBLAS call that failed (with the call site), a device out of
// memory (with sizes), or a lane the GPU backend cannot run (naming what).
#pragma once

#include <stdexcept>

namespace mpscope::gpu {

struct GpuError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mpscope::gpu
