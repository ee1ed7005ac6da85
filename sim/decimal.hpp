// Exact conversions between decimal text and binary values, for the Float Toy (`mpscope inspect`): a decimal
// string is kept as an exact rational, so rounding it to any format is correct (no detour through double).
#pragma once

#include <boost/multiprecision/cpp_int.hpp>
#include <string>
#include <string_view>

#include "sim/rounding.hpp"

namespace mpscope::sim {

struct ParsedReal {
  enum class Kind { finite, infinity, nan };
  Kind kind = Kind::finite;
  bool negative = false;
  boost::multiprecision::cpp_rational magnitude = 0;  // finite only
};

// "[+-]digits[.digits][e[+-]digits]", "[+-]inf", "infinity", "nan", or a C99 hex float ("0x1.8p3").
// Throws std::invalid_argument saying what was expected. Decimal exponents beyond +-9999 are refused.
ParsedReal parse_real(std::string_view text);

// The correctly rounded bit pattern of p in f (specials as in encode()).
std::uint64_t encode(const ParsedReal& p, const Format& f, Rounding mode = Rounding::nearest_even,
                     std::uint64_t random = 0);

// The exact decimal expansion of a finite double (every binary fraction has one), e.g. 0.1 in fp16 is
// "0.0999755859375". Integers print without a point; NaN and infinities as "nan", "inf", "-inf".
std::string exact_decimal(double x);

// x - p as a decimal with `digits` significant digits ("0" when exact), and (x - p) / |p|.
std::string difference(double x, const ParsedReal& p, int digits = 6);
std::string relative_difference(double x, const ParsedReal& p, int digits = 3);

// Shortest decimal that reads back as x (std::to_chars), e.g. for neighbours and ulps.
std::string shortest(double x);
std::string shortest(float x);  // shortest that reads back as the float, e.g. 0.1f -> "0.1"

}  // namespace mpscope::sim
