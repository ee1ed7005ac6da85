// Scalar rounding to any Format, bit patterns and their values, classification and neighbours.
// This is the readable reference: every faster path (arrays, SIMD, GPU) must agree with it bit for bit.
#pragma once

#include <cstdint>

#include "sim/format.hpp"

namespace mpscope::sim {

// A real number given exactly, or as "slightly more than" when sticky is set:
//   |value| = (significand + s) * 2^exponent,  s = 0 if !sticky, 0 < s < 1 if sticky.
// Anything that can be written as a binary fraction plus a "there was more" bit can be rounded correctly from it
// (exact sums, quotients with a remainder, decimal strings). A sticky value must have bit 63 of significand set,
// so that the unknown part lies far below half of any quantum of a format with at most 52 mantissa bits.
struct ExactValue {
  bool negative = false;
  std::uint64_t significand = 0;
  int exponent = 0;
  bool sticky = false;

  static ExactValue from_double(double x);  // x finite
  ExactValue normalized() const;            // shifts significand up until bit 63 is set (value unchanged)
};

// The correctly rounded bit pattern of v in format f. `random` is used by Rounding::stochastic only: the result
// rounds away from zero with probability (distance to the lower neighbour / quantum), decided as
// random < (that distance as a 64-bit fraction).
std::uint64_t round_to_bits(const ExactValue& v, const Format& f, Rounding mode, std::uint64_t random = 0);

// Round a double (NaN, infinities included) to f; the result as a bit pattern or as its value.
// An infinite input stays infinite where the format has infinities (also when saturating); elsewhere it becomes
// NaN, or the largest finite value when the format saturates.
std::uint64_t encode(double x, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);
double round(double x, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);

// The value of a bit pattern (bits above total_bits() are ignored). NaN patterns give a NaN of the same sign.
double decode(std::uint64_t bits, const Format& f);

Category classify_bits(std::uint64_t bits, const Format& f);
Category classify(double x, const Format& f);  // x is rounded to f (nearest) first
bool is_representable(double x, const Format& f);  // finite x with round(x) == x, or inf/NaN f can hold

// Neighbours and spacing of values of f (x is rounded to f first). next_up(max finite) is +inf, or NaN (no value)
// where the format has no infinity; a format that flushes subnormals steps from zero to its smallest normal; an
// unsigned scale (e8m0) has no neighbour below its smallest value (NaN).
// ulp(x) is the spacing of f at |x|: 2^(max(floor(log2|x|), emin) - mantissa_bits); ulp(0) is the smallest
// subnormal (smallest normal when flushing); NaN for non-finite x.
double next_up(double x, const Format& f);
double next_down(double x, const Format& f);
double ulp(double x, const Format& f);

}  // namespace mpscope::sim
