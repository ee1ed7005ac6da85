#include "sim/block_scaling.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "sim/rounding.hpp"

namespace mpscope::sim {

namespace {

BlockFormat mx(const char* name, const Format& element, const char* description) {
  return {name, element.with_overflow(Overflow::saturate), 32, ScaleKind::e8m0, description};
}

BlockFormat fp8_scaled(const char* name, const Format& element, std::int64_t block, std::int64_t rows, bool power_of_two,
                       const char* description) {
  return {name, element.with_overflow(Overflow::saturate), block, ScaleKind::fp32, description, rows, power_of_two};
}

const std::array<BlockFormat, 10>& table() {
  static const std::array<BlockFormat, 10> formats = {
      mx("mxfp8_e4m3", e4m3fn(), "OCP MXFP8: 32 E4M3 values sharing an E8M0 scale"),
      mx("mxfp8_e5m2", e5m2(), "OCP MXFP8: 32 E5M2 values sharing an E8M0 scale"),
      mx("mxfp6_e3m2", fp6_e3m2(), "OCP MXFP6: 32 FP6 E3M2 values sharing an E8M0 scale"),
      mx("mxfp6_e2m3", fp6_e2m3(), "OCP MXFP6: 32 FP6 E2M3 values sharing an E8M0 scale"),
      mx("mxfp4_e2m1", fp4_e2m1(), "OCP MXFP4: 32 FP4 E2M1 values sharing an E8M0 scale"),
      BlockFormat{"nvfp4", fp4_e2m1(), 16, ScaleKind::e4m3_and_fp32,
                  "NVIDIA NVFP4: 16 FP4 E2M1 values sharing an E4M3 scale, times a float32 scale per tensor"},
      fp8_scaled("fp8_current_e4m3", e4m3fn(), 0, 0, false, "FP8 current scaling: E4M3, one float32 scale per tensor"),
      fp8_scaled("fp8_current_e5m2", e5m2(), 0, 0, false, "FP8 current scaling: E5M2, one float32 scale per tensor"),
      fp8_scaled("fp8_block_e4m3", e4m3fn(), 128, 1, true,
                 "FP8 block scaling: E4M3, a power-of-two float32 scale per 1x128 block (activations, gradients)"),
      fp8_scaled("fp8_block2d_e4m3", e4m3fn(), 128, 128, true,
                 "FP8 block scaling: E4M3, a power-of-two float32 scale per 128x128 tile (weights)")};
  return formats;
}

// v rounded to the element format e (saturating), as the rounding says.
double round_element(double v, const Format& e, ElementRounding rounding, RandomStream& random) {
  switch (rounding) {
    case ElementRounding::nearest_even: return round(v, e);
    case ElementRounding::stochastic: return round(v, e, Rounding::stochastic, random.next());
    case ElementRounding::nearest_away: {
      const double low = round(v, e, Rounding::toward_zero);
      const double high = round(v, e, v >= 0 ? Rounding::up : Rounding::down);
      if (!(low != high)) return low;  // exact, saturated or NaN
      // (v has float32's 24 bits, low and high a few: both differences are exact)
      return std::fabs(high - v) <= std::fabs(v - low) ? high : low;
    }
  }
  return v;
}

float block_amax(std::span<const float> block) {
  float amax = 0;
  for (float v : block) {
    if (std::isnan(v)) return v;
    amax = std::max(amax, std::fabs(v));
  }
  return amax;
}

}  // namespace

std::span<const BlockFormat> block_formats() { return table(); }

bool is_block_format(std::string_view name) {
  return std::any_of(table().begin(), table().end(), [&](const BlockFormat& f) { return f.name == name; });
}

std::string block_format_names() {
  std::string names;
  for (const BlockFormat& f : table()) names += (names.empty() ? "" : ", ") + f.name;
  return names;
}

const BlockFormat& block_format(std::string_view name) {
  for (const BlockFormat& f : table())
    if (f.name == name) return f;
  throw std::invalid_argument("unknown block-scaled format '" + std::string(name) + "' (expected " + block_format_names() + ")");
}

ScaleRule parse_scale_rule(std::string_view text) {
  if (text == "ocp") return ScaleRule::ocp;
  if (text == "round-up") return ScaleRule::round_up;
  throw std::invalid_argument("unknown scale rule '" + std::string(text) + "' (expected ocp or round-up)");
}

ElementRounding parse_element_rounding(std::string_view text) {
  if (text == "nearest" || text == "nearest-even") return ElementRounding::nearest_even;
  if (text == "nearest-away") return ElementRounding::nearest_away;
  if (text == "stochastic") return ElementRounding::stochastic;
  throw std::invalid_argument("unknown element rounding '" + std::string(text) +
                              "' (expected nearest, nearest-away or stochastic)");
}

std::string_view to_string(ScaleRule rule) { return rule == ScaleRule::ocp ? "ocp" : "round-up"; }

std::string_view to_string(ElementRounding rounding) {
  switch (rounding) {
    case ElementRounding::nearest_even: return "nearest";
    case ElementRounding::nearest_away: return "nearest-away";
    case ElementRounding::stochastic: return "stochastic";
  }
  return "?";
}

int ocp_shared_exponent(float amax, const Format& element) {
  const float a = amax == 0 ? 0x1p-126f : amax;
  // float32's log2, as microxcaling's torch.log2: just below a power of two it can round up to the power's exponent
  const auto l = static_cast<float>(std::log2(static_cast<double>(a)));
  return std::clamp(static_cast<int>(std::floor(l)) - element.emax(), -127, 127);
}

float fp32_scale(float amax, float max, bool power_of_two) {
  if (std::isnan(amax) || std::isinf(amax) || amax == 0) return 1.0f;
  float scale = max / amax;
  if (std::isinf(scale)) scale = std::numeric_limits<float>::max();
  if (power_of_two) scale = std::bit_cast<float>(std::bit_cast<std::uint32_t>(scale) & 0xFF800000u);
  return scale;
}

std::uint8_t round_up_scale_bits(float amax, const Format& element) {
  const float inverse = 1.0f / static_cast<float>(element.max_finite());
  const float p = amax * inverse;  // (float32 arithmetic, as TransformerEngine's kernel)
  if (std::isnan(p)) return 0xFF;
  if (std::isinf(p)) return 0xFE;
  if (p == 0) return 0;
  const auto bits = std::bit_cast<std::uint32_t>(p);
  auto exponent = static_cast<std::uint8_t>(bits >> 23);
  const std::uint32_t mantissa = bits & 0x7FFFFFu;
  // up to the next power of two unless p is one; a subnormal p at most 2^-127 stays at 2^-127
  if (mantissa > 0 && exponent != 0xFE && !(exponent == 0 && mantissa <= 0x400000u)) ++exponent;
  return exponent;
}

BlockQuantized quantize_blocks(std::span<const float> x, std::int64_t rows, std::int64_t length, const BlockFormat& f,
                               const BlockOptions& o) {
  if (rows < 0 || length < 0 || static_cast<std::int64_t>(x.size()) != rows * length)
    throw std::invalid_argument("quantize_blocks: " + std::to_string(x.size()) + " values are not " + std::to_string(rows) +
                                " rows of " + std::to_string(length));
  const std::int64_t width = f.block > 0 ? f.block : std::max<std::int64_t>(length, 1);
  const std::int64_t height = f.block_rows > 0 ? f.block_rows : std::max<std::int64_t>(rows, 1);
  BlockQuantized q;
  q.row_blocks = (rows + height - 1) / height;
  q.blocks_per_row = (length + width - 1) / width;
  q.values.resize(x.size());
  q.block_scales.resize(static_cast<std::size_t>(q.row_blocks * q.blocks_per_row));
  if (f.scale != ScaleKind::fp32) q.scale_bits.resize(q.block_scales.size());
  RandomStream random(o.seed);
  const Format& element = f.element;
  const double max = element.max_finite();
  const float nan = std::numeric_limits<float>::quiet_NaN();

  // NVFP4's tensor scale: s_enc = 448 * 6 / amax (1 where amax is 0 or the quotient is not a positive float)
  float s_enc = 1.0f;
  if (f.scale == ScaleKind::e4m3_and_fp32) {
    const float amax = block_amax(x);
    const float e = static_cast<float>(e4m3fn().max_finite() * max) / amax;
    if (std::isfinite(e) && e > 0) s_enc = e;
    q.tensor_scale = 1.0f / s_enc;
  }
  const Format scale_format = e4m3fn().with_overflow(Overflow::saturate);

  for (std::int64_t rb = 0; rb < q.row_blocks; ++rb) {
    const std::int64_t r0 = rb * height, nr = std::min(height, rows - r0);
    for (std::int64_t b = 0; b < q.blocks_per_row; ++b) {
      const std::int64_t c0 = b * width, n = std::min(width, length - c0);
      const auto at = static_cast<std::size_t>(rb * q.blocks_per_row + b);
      float amax = 0;
      for (std::int64_t r = r0; r < r0 + nr && !std::isnan(amax); ++r) {
        const float a = block_amax(x.subspan(static_cast<std::size_t>(r * length + c0), static_cast<std::size_t>(n)));
        amax = std::isnan(a) ? a : std::max(amax, a);
      }
      // the element's value of x: x * to_element, and back: element * to_value
      double to_element = 0, to_value = 0;
      bool invalid = std::isnan(amax) || std::isinf(amax);
      bool float32_product = true;  // x * to_element rounded to float32, as the GPU kernels compute it
      if (f.scale == ScaleKind::e8m0) {
        int shared = 0;
        if (o.rule == ScaleRule::ocp) {
          shared = invalid ? 0 : ocp_shared_exponent(amax, element);
          float32_product = false;  // (exact: a power of two)
        } else {
          const std::uint8_t bits = round_up_scale_bits(amax, element);
          invalid = invalid || bits == 0xFF;
          shared = bits - 127;
        }
        q.scale_bits[at] = invalid ? 0xFF : static_cast<std::uint8_t>(shared + 127);
        q.block_scales[at] = invalid ? nan : std::ldexp(1.0f, shared);
        to_element = std::ldexp(1.0, -shared);
        to_value = std::ldexp(1.0, shared);
      } else if (f.scale == ScaleKind::e4m3_and_fp32) {
        // s_b = E4M3(amax / 6 * s_enc) (float32 arithmetic), elements x * (s_enc / s_b), values e * s_b / s_enc
        const float s_dec = amax / static_cast<float>(max) * s_enc;
        const std::uint64_t bits = invalid ? scale_format.nan_bits() : encode(s_dec, scale_format);
        const double s = decode(bits, scale_format);
        q.scale_bits[at] = static_cast<std::uint8_t>(bits);
        q.block_scales[at] = static_cast<float>(s);
        to_element = s > 0 ? static_cast<double>(static_cast<float>(s_enc / static_cast<float>(s))) : 0.0;
        to_value = s / static_cast<double>(s_enc);
      } else {
        // (a NaN amax gives scale 1, as TE's; its NaN values stay NaN through the element rounding)
        invalid = false;
        const float scale = fp32_scale(amax, static_cast<float>(max), f.power_of_two);
        const float inverse = 1.0f / scale;
        q.block_scales[at] = inverse;
        to_element = scale;
        to_value = inverse;
      }
      for (std::int64_t r = r0; r < r0 + nr; ++r) {
        for (std::int64_t i = 0; i < n; ++i) {
          const auto k = static_cast<std::size_t>(r * length + c0 + i);
          const float v = x[k];
          if (invalid) {
            q.values[k] = nan;
            continue;
          }
          double scaled = static_cast<double>(v) * to_element;
          if (float32_product) scaled = static_cast<float>(scaled);
          q.saturated += std::fabs(scaled) > max ? 1 : 0;
          const double e = round_element(scaled, element, o.rounding, random);
          q.values[k] = static_cast<float>(e * to_value);
          q.underflows += v != 0 && q.values[k] == 0 ? 1 : 0;
        }
      }
    }
  }
  return q;
}

}  // namespace mpscope::sim
