#include "sim/arith.hpp"

#include <bit>
#include <cmath>
#include <limits>

#include "sim/exact.hpp"
#include "sim/rounding.hpp"

namespace mpscope::sim {

namespace {

// The double-based path is exact when the format's values have <= 26 significant bits and every product and
// quotient of two of them stays inside double's normal range.
bool fast_format(const Format& f) { return f.mantissa_bits <= 25 && f.emax() < 480 && f.emin() - f.mantissa_bits > -480; }

// An operand the double path can take: zero, or at most 26 significant bits with |x| in [2^-500, 2^500].
bool fast_operand(double x) {
  if (x == 0) return true;
  const auto bits = std::bit_cast<std::uint64_t>(x);
  const auto field = static_cast<int>((bits >> 52) & 0x7FF);
  return (bits & ((std::uint64_t{1} << 27) - 1)) == 0 && field > 1023 - 500 && field < 1023 + 500;
}

// s = RN(x) and the sign of x - s (-1, 0, +1): the 53-bit round-to-odd of x.
double round_to_odd(double s, int residual_sign) {
  if (residual_sign == 0) return s;
  auto bits = std::bit_cast<std::uint64_t>(s);
  if ((residual_sign < 0) != std::signbit(s)) bits -= 1;  // x lies between s and zero: truncate to s's neighbour
  return std::bit_cast<double>(bits | 1);
}

int sign_of(double x) { return (x > 0) - (x < 0); }

double finish(double odd, const Format& f, Rounding mode, std::uint64_t random) {
  return round(odd, f, mode, random);
}

double finish(const BigExact& exact, const Format& f, Rounding mode, std::uint64_t random) {
  return decode(round_to_bits(exact.to_exact_value(), f, mode, random), f);
}

// IEEE 754 sign of an exact zero sum of two nonzero-or-zero terms with the given signs.
double zero_sum(bool negative_a, bool negative_b, Rounding mode) {
  if (negative_a && negative_b) return -0.0;
  if (negative_a != negative_b && mode == Rounding::down) return -0.0;
  return 0.0;
}

// Non-finite operands or results: IEEE double arithmetic decides, then the format encodes (NaN, inf, saturation).
double special(double ieee_result, const Format& f) { return round(ieee_result, f); }

}  // namespace

double add(double a, double b, const Format& f, Rounding mode, std::uint64_t random) {
  if (!std::isfinite(a) || !std::isfinite(b)) return special(a + b, f);
  if (a == -b) return zero_sum(std::signbit(a), std::signbit(b), mode);
  if (fast_format(f) && fast_operand(a) && fast_operand(b)) {
    const double s = a + b;  // TwoSum: e = (a + b) - s exactly
    const double bb = s - a;
    const double e = (a - (s - bb)) + (b - bb);
    return finish(round_to_odd(s, sign_of(e)), f, mode, random);
  }
  return finish(exact_add(BigExact::from_double(a), BigExact::from_double(b)), f, mode, random);
}

double sub(double a, double b, const Format& f, Rounding mode, std::uint64_t random) {
  return add(a, -b, f, mode, random);
}

double mul(double a, double b, const Format& f, Rounding mode, std::uint64_t random) {
  if (!std::isfinite(a) || !std::isfinite(b)) return special(a * b, f);
  if (a == 0 || b == 0) return std::signbit(a) != std::signbit(b) ? -0.0 : 0.0;
  if (fast_format(f) && fast_operand(a) && fast_operand(b)) return finish(a * b, f, mode, random);  // exact
  return finish(exact_mul(BigExact::from_double(a), BigExact::from_double(b)), f, mode, random);
}

double div(double a, double b, const Format& f, Rounding mode, std::uint64_t random) {
  if (!std::isfinite(a) || !std::isfinite(b) || b == 0) return special(a / b, f);
  if (a == 0) return std::signbit(a) != std::signbit(b) ? -0.0 : 0.0;
  if (fast_format(f) && fast_operand(a) && fast_operand(b)) {
    const double q = a / b;
    const double remainder = std::fma(-q, b, a);  // a - q*b, exact
    return finish(round_to_odd(q, sign_of(remainder) * sign_of(b)), f, mode, random);
  }
  return finish(exact_div(BigExact::from_double(a), BigExact::from_double(b)), f, mode, random);
}

double sqrt(double a, const Format& f, Rounding mode, std::uint64_t random) {
  if (!std::isfinite(a) || a < 0) return special(std::sqrt(a), f);
  if (a == 0) return a;
  if (fast_format(f) && fast_operand(a)) {
    const double s = std::sqrt(a);
    const double remainder = std::fma(-s, s, a);  // a - s*s, exact
    return finish(round_to_odd(s, sign_of(remainder)), f, mode, random);
  }
  return finish(exact_sqrt(BigExact::from_double(a)), f, mode, random);
}

double fma(double a, double b, double c, const Format& f, Rounding mode, std::uint64_t random) {
  if (!std::isfinite(a) || !std::isfinite(b) || !std::isfinite(c)) return special(std::fma(a, b, c), f);
  const bool product_negative = std::signbit(a) != std::signbit(b);
  if (a == 0 || b == 0) {  // a*b is an exact (signed) zero
    if (c == 0) return zero_sum(product_negative, std::signbit(c), mode);
    return round(c, f, mode, random);
  }
  if (fast_format(f) && fast_operand(a) && fast_operand(b) && fast_operand(c)) {
    const double p = a * b;  // exact: <= 52 significant bits
    const double s = p + c;
    if (s == 0 && p == -c) return zero_sum(product_negative, std::signbit(c), mode);
    const double pp = s - c;
    const double e = (c - (s - pp)) + (p - pp);
    return finish(round_to_odd(s, sign_of(e)), f, mode, random);
  }
  const BigExact sum = exact_add(exact_mul(BigExact::from_double(a), BigExact::from_double(b)), BigExact::from_double(c));
  if (sum.is_zero()) return zero_sum(product_negative, std::signbit(c), mode);
  return finish(sum, f, mode, random);
}

}  // namespace mpscope::sim
