// Internal: the CUDA twin of sim/block_scaling.hpp — block-scaled quantization (MXFP8/6/4 under OCP's or
// TransformerEngine's scale rule, NVFP4) of a device tensor viewed as (rows, length), blocks along the last axis,
// bit-identical to sim::quantize_blocks for nearest-even and nearest-away element rounding (stochastic rounding
// draws from the CPU's pcg64 stream, and FP8 current and block scaling are new: CPU only for now).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "sim/block_scaling.hpp"

namespace mpscope::gpu::kernels {

// out (rows, length) = the dequantized values, scale_bits (rows, blocks) the E8M0 or E4M3 bytes; scratch: one float
// of device memory (NVFP4's tensor amax). Throws GpuError for stochastic rounding and float32-scaled formats.
void quantize_blocks(const float* x, std::int64_t rows, std::int64_t length, const sim::BlockFormat& format,
                     const sim::BlockOptions& options, float* out, std::uint8_t* scale_bits, float* scratch, cudaStream_t s);

}  // namespace mpscope::gpu::kernels
