// Scalar arithmetic in any Format, correctly rounded in every rounding mode: each result is the exact result of
// the operation on the operands (doubles, normally values of the format) rounded once to the format.
// Special values follow IEEE 754 (inf - inf and 0 * inf give NaN, x / 0 gives +-inf, sqrt of a negative gives
// NaN; an exact zero sum is +0, or -0 when rounding down); formats without infinity give NaN or saturate instead.
//
// How: for formats with at most 25 mantissa bits and a range well inside double's, operands with at most 26
// significant bits are combined in double with error-free transformations (TwoSum, an FMA residual), which give
// the result rounded to odd at 53 bits; rounding that once more to the format is correct (Boldo & Melquiond 2008:
// round-to-odd followed by any rounding at p+2 <= 53 bits). Everything else is computed exactly with
// Boost.Multiprecision integers. Computing in float and rounding, which is right for +-*/sqrt in fp16, is wrong
// for FMA (docs/formats.md: fp16 a=0x0FFE, b=c=0x3C01).
#pragma once

#include <cstdint>

#include "sim/format.hpp"

namespace mpscope::sim {

double add(double a, double b, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);
double sub(double a, double b, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);
double mul(double a, double b, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);
double div(double a, double b, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);
double sqrt(double a, const Format& f, Rounding mode = Rounding::nearest_even, std::uint64_t random = 0);
// a * b + c with a single rounding.
double fma(double a, double b, double c, const Format& f, Rounding mode = Rounding::nearest_even,
           std::uint64_t random = 0);

}  // namespace mpscope::sim
