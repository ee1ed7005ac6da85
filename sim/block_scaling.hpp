// Block-scaled formats: a tensor quantized in blocks of consecutive values along one axis, each block with its own
// scale, so that a narrow element format (FP8, FP6, FP4) covers a wide range of magnitudes.
//
//   OCP Microscaling (MX v1.0)  mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1: blocks of 32, one
//                               power-of-two scale per block (an E8M0 byte).
//   NVIDIA NVFP4                nvfp4: blocks of 16 FP4 (E2M1) values, an E4M3 scale per block times one float32
//                               scale per tensor.
//   FP8 current scaling         fp8_current_e4m3, fp8_current_e5m2: one float32 scale for the whole tensor, from its
//                               amax now (TransformerEngine's Float8CurrentScaling).
//   FP8 block scaling           fp8_block_e4m3 (1x128: activations, gradients), fp8_block2d_e4m3 (128x128 tiles:
//                               weights): a float32 power-of-two scale per block (TE's Float8BlockScaling,
//                               DeepSeek-V3's recipe).
//
// The MX scale per block, two rules:
//   ocp       shared = floor(log2(amax)) - emax(element), clamped to [-127, 127] (OCP's specification; Microsoft's
//             microxcaling reference, whose log2 is float32's): the block's largest values can exceed the element's
//             largest finite value and saturate.
//   round-up  TransformerEngine's MXFP8: 2^e = float32 amax * (1 / max finite of the element) rounded up to a power
//             of two (E8M0's ceiling): nothing saturates, small values underflow more.
// float32 scales (TE's compute_scale_from_amax): scale = max / amax (float32 division; 1 where amax is 0, inf or NaN;
// float32's largest where the quotient overflows), cut to a power of two (mantissa bits cleared) for block scaling;
// elements = x * scale rounded, values = element * float32(1 / scale).
// Elements: value / scale, rounded to the element format (subnormals kept) and saturated at its largest finite value:
// ties to even, ties away from zero (microxcaling's default "nearest"), or stochastic (NVFP4's gradients).
// Dequantized: element * scale, exactly a float32.
//
// Layout: x viewed as (rows, length), blocks along the last axis (callers move the blocked axis last); the last
// block of a row may be short. A block spans `block` values of a row (0: the whole row) and `block_rows` rows (1;
// 128 for 2-D tiles; 0: all rows). Block scales come out as (row blocks, blocks per row), row-major.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sim/format.hpp"
#include "sim/random.hpp"

namespace mpscope::sim {

enum class ScaleKind {
  e8m0,           // MX: a power of two per block, stored as its biased exponent (ue8m0)
  e4m3_and_fp32,  // NVFP4: an E4M3 value per block times a float32 value per tensor
  fp32,           // FP8 current and block scaling: a float32 scale per block
};

struct BlockFormat {
  std::string name;  // "mxfp8_e4m3", ...
  Format element;    // saturating
  std::int64_t block = 32;      // values of a row per block (0: the whole row)
  ScaleKind scale = ScaleKind::e8m0;
  std::string description;
  std::int64_t block_rows = 1;  // rows per block (0: all)
  bool power_of_two = false;    // fp32 scales cut to a power of two
};

// The block-scaled formats, one table (CLI, lanes and statistics derive theirs from it).
std::span<const BlockFormat> block_formats();
// By name; std::invalid_argument listing the names.
const BlockFormat& block_format(std::string_view name);
bool is_block_format(std::string_view name);
std::string block_format_names();  // "mxfp8_e4m3, mxfp8_e5m2, ..."

enum class ScaleRule { ocp, round_up };
enum class ElementRounding { nearest_even, nearest_away, stochastic };
ScaleRule parse_scale_rule(std::string_view text);               // "ocp", "round-up"
ElementRounding parse_element_rounding(std::string_view text);   // "nearest", "nearest-away", "stochastic"
std::string_view to_string(ScaleRule rule);
std::string_view to_string(ElementRounding rounding);

struct BlockOptions {
  ScaleRule rule = ScaleRule::ocp;  // MX formats only
  ElementRounding rounding = ElementRounding::nearest_even;
  std::uint64_t seed = 0;           // stochastic rounding's stream
};

struct BlockQuantized {
  std::vector<float> values;             // dequantized, x's layout
  std::int64_t row_blocks = 0, blocks_per_row = 0;  // the block grid
  std::vector<float> block_scales;       // (row_blocks, blocks_per_row): the decode scale (2^shared; NVFP4: the E4M3
                                         // value; fp32 scales: 1 / scale)
  std::vector<std::uint8_t> scale_bits;  // the same grid: the E8M0 byte (biased exponent) or the E4M3 byte; empty for
                                         // fp32 scales
  float tensor_scale = 1.0f;             // NVFP4: the float32 decode scale of the tensor (values = q * s_b * it)
  std::int64_t underflows = 0;           // nonzero values that became zero
  std::int64_t saturated = 0;            // finite values clipped to the element's largest (times the scale)
};

// Throws std::invalid_argument when x's size is not rows * length (or a size is negative).
BlockQuantized quantize_blocks(std::span<const float> x, std::int64_t rows, std::int64_t length, const BlockFormat& f,
                               const BlockOptions& options = {});

// The OCP rule's shared exponent of a block with this amax (finite, >= 0) and element format: microxcaling's
// floor(float32 log2(amax)) - emax, clamped to [-127, 127] (amax 0 counts as float32's smallest normal).
int ocp_shared_exponent(float amax, const Format& element);
// TransformerEngine's float32 scale for an amax (compute_scale_from_amax with epsilon 0).
float fp32_scale(float amax, float max, bool power_of_two);
// TransformerEngine's MXFP8 scale byte for a block amax: float32 amax * (1/max) rounded up to a power of two, as
// its float_to_e8m0 (0xFF for NaN).
std::uint8_t round_up_scale_bits(float amax, const Format& element);

}  // namespace mpscope::sim
