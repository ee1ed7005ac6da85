// Rounding whole arrays to a Format, with SIMD kernels chosen at run time (F16C / AVX2 / AVX-512) that give
// results identical to the scalar reference in sim/rounding.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "sim/format.hpp"
#include "sim/random.hpp"

namespace mpscope::sim {

// Instruction sets the array kernels are built for. best_isa() is what this CPU runs; the environment variable
// MPSCOPE_ISA=portable|avx2|avx512 lowers it (never raises it), e.g. to compare paths.
enum class Isa { portable, avx2, avx512 };
Isa best_isa();
bool isa_supported(Isa isa);
std::string_view to_string(Isa isa);

// out[i] = the value of in[i] rounded to f (NaN results are the canonical quiet NaN of that sign). in and out may
// be the same array. Stochastic rounding draws one 64-bit number per element from `random` in element order, so a
// stream gives the same results on every ISA. Throws std::invalid_argument on size mismatch or a missing stream.
// Formats whose values do not all fit float32 (fp64, e9..e11, more than 23 mantissa bits) round through the
// scalar double path; a result beyond float32's range is then +-inf.
void round_array(std::span<const float> in, std::span<float> out, const Format& f, Rounding mode,
                 RandomStream* random = nullptr);
void round_array(std::span<const float> in, std::span<float> out, const Format& f, Rounding mode,
                 RandomStream* random, Isa isa);
void round_array(std::span<const double> in, std::span<double> out, const Format& f, Rounding mode,
                 RandomStream* random = nullptr);
// Doubles rounded once to a format that fits float32 (Format::within_float32), results as float. For formats of at
// most 21 mantissa bits and directed or nearest rounding it rounds to odd at float32's 24 bits first (exact for the
// final rounding, since 24 >= p + 2; Boldo & Melquiond) and then runs the float32 kernels; otherwise the scalar
// reference.
void round_array(std::span<const double> in, std::span<float> out, const Format& f, Rounding mode,
                 RandomStream* random = nullptr);

// What rounding did to an array, comparing values before and after (docs/design.md "What is recorded"):
//  underflow: nonzero before, zero after; subnormal: a nonzero subnormal of f after;
//  overflow: finite before, infinite or NaN after; saturated: beyond f's largest finite value before, clamped to it.
struct RoundingEffects {
  std::int64_t elements = 0;
  std::int64_t underflow = 0;
  std::int64_t subnormal = 0;
  std::int64_t overflow = 0;
  std::int64_t saturated = 0;
  RoundingEffects& operator+=(const RoundingEffects& o);
};
RoundingEffects count_rounding_effects(std::span<const float> before, std::span<const float> after, const Format& f);
RoundingEffects count_rounding_effects(std::span<const double> before, std::span<const double> after, const Format& f);
RoundingEffects count_rounding_effects(std::span<const double> before, std::span<const float> after, const Format& f);

// round_array and count_rounding_effects of its input and output in one go, a few KB at a time, so that the counts
// read both from L1 (and an in-place rounding keeps only a chunk of its inputs aside, not a copy of the array).
// Results, random draws and counts are those of the two calls.
RoundingEffects round_array_counted(std::span<const float> in, std::span<float> out, const Format& f, Rounding mode,
                                    RandomStream* random = nullptr);
RoundingEffects round_array_counted(std::span<const double> in, std::span<float> out, const Format& f,
                                    Rounding mode, RandomStream* random = nullptr);

}  // namespace mpscope::sim
