// An independent reference for rounding and arithmetic, written with Boost.Multiprecision floating point
// (cpp_bin_float, 512 bits) and none of sim/'s rounding code: exact results are computed in Big, then rounded
// by the textbook definition (scale to the quantum, floor, compare the fraction with one half).
#pragma once

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <cmath>
#include <limits>

#include "sim/format.hpp"

namespace mpscope::test {

namespace bmp = boost::multiprecision;
using Big = bmp::number<bmp::cpp_bin_float<512, bmp::digit_base_2, void, std::int32_t, -30000, 30000>, bmp::et_off>;

// A real number known exactly as value, or as "value plus a tiny amount of sign residual" when residual != 0
// (for quotients and roots that are not exact at 512 bits).
struct RealValue {
  Big value;
  int residual = 0;
};

// The largest finite value of f, computed from its parameters (not from sim/).
inline Big max_finite_of(const sim::Format& f) {
  const int m = f.mantissa_bits;
  const int top_field = (1 << f.exponent_bits) - 1;
  if (m == 0) return bmp::ldexp(Big(1), top_field - 1 - f.bias);
  if (f.specials == sim::Specials::fn)
    return bmp::ldexp(Big(2) - bmp::ldexp(Big(1), 1 - m), top_field - f.bias);  // mantissa all ones is NaN
  if (f.specials == sim::Specials::none) return bmp::ldexp(Big(2) - bmp::ldexp(Big(1), -m), top_field - f.bias);
  return bmp::ldexp(Big(2) - bmp::ldexp(Big(1), -m), top_field - 1 - f.bias);
}

// Round x (exact real) to f in mode; the result as a double (every format here fits in double).
// Stochastic rounding is not covered (no single answer).
inline double reference_round(const RealValue& x, const sim::Format& f, sim::Rounding mode) {
  const bool negative = x.value < 0 || (x.value == 0 && x.residual < 0);
  Big a = bmp::abs(x.value);
  const int residual = negative ? -x.residual : x.residual;  // of the magnitude
  if (a == 0 && residual == 0) return negative ? -0.0 : 0.0;

  // Direction rule on the magnitude: away = round the magnitude up.
  enum class Dir { nearest, toward_zero, away };
  Dir dir = Dir::nearest;
  if (mode == sim::Rounding::toward_zero) dir = Dir::toward_zero;
  if (mode == sim::Rounding::up) dir = negative ? Dir::toward_zero : Dir::away;
  if (mode == sim::Rounding::down) dir = negative ? Dir::away : Dir::toward_zero;

  int e = 0;  // a = fr * 2^e with fr in [0.5, 1)  ->  floor(log2 a) = e - 1
  if (a == 0) {
    e = -30000;  // a positive residual only: smaller than anything
  } else {
    bmp::frexp(a, &e);
    e -= 1;
  }
  const int m = f.mantissa_bits;
  const int emin = 1 - f.bias;
  const int quantum_exp = (f.subnormals ? std::max(e, emin) : e) - m;
  const Big scaled = bmp::ldexp(a, -quantum_exp);
  Big lower = bmp::floor(scaled);
  const Big fraction = scaled - lower;
  // Compare the true fraction (fraction + tiny residual) with 0 and with one half.
  const bool exact = fraction == 0 && residual == 0;
  int versus_half = fraction < Big(0.5) ? -1 : (fraction > Big(0.5) ? 1 : residual);
  if (fraction == 0 && residual < 0) {  // just below an integer: the floor is one lower, fraction just below 1
    lower -= 1;
    versus_half = 1;
  }
  bool up = false;
  if (!exact) {
    if (dir == Dir::away) up = true;
    if (dir == Dir::nearest) up = versus_half > 0 || (versus_half == 0 && bmp::fmod(lower, Big(2)) != 0);
  }
  Big result = bmp::ldexp(lower + (up ? 1 : 0), quantum_exp);

  const Big max = max_finite_of(f);
  if (result > max) {
    const bool to_max = dir == Dir::toward_zero || f.overflow == sim::Overflow::saturate;
    double r = to_max ? static_cast<double>(max)
                      : (f.has_infinity() ? std::numeric_limits<double>::infinity()
                                          : std::numeric_limits<double>::quiet_NaN());
    return negative ? -r : r;
  }
  if (!f.subnormals && result != 0 && result < bmp::ldexp(Big(1), emin)) result = 0;
  const double r = static_cast<double>(result);  // exact: at most 53 significant bits
  return negative ? -r : r;
}

inline Big big(double x) { return Big(x); }

inline RealValue exact_quotient(double a, double b) {
  // q truncated to 400 bits, so that q*b (<= 453 bits) is exact and gives the remainder's sign.
  const Big q = big(a) / big(b);
  int e = 0;
  bmp::frexp(q, &e);
  const Big qt = bmp::ldexp(bmp::trunc(bmp::ldexp(q, 400 - e)), e - 400);
  const Big remainder = big(a) - qt * big(b);
  const int sign = (remainder > 0) - (remainder < 0);
  return {qt, sign * (b < 0 ? -1 : 1)};
}

inline RealValue exact_root(double a) {
  const Big s = bmp::sqrt(big(a));
  int e = 0;
  bmp::frexp(s, &e);
  const Big st = bmp::ldexp(bmp::trunc(bmp::ldexp(s, 250 - e)), e - 250);
  const Big remainder = big(a) - st * st;
  return {st, (remainder > 0) - (remainder < 0)};
}

}  // namespace mpscope::test
