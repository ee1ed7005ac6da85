#include "sim/rounding.hpp"

#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace mpscope::sim {

ExactValue ExactValue::from_double(double x) {
  const auto bits = std::bit_cast<std::uint64_t>(x);
  ExactValue v;
  v.negative = (bits >> 63) != 0;
  const auto field = static_cast<int>((bits >> 52) & 0x7FF);
  const std::uint64_t fraction = bits & ((std::uint64_t{1} << 52) - 1);
  if (field == 0) {  // zero or subnormal: fraction * 2^-1074
    v.significand = fraction;
    v.exponent = -1074;
  } else {
    v.significand = fraction | (std::uint64_t{1} << 52);
    v.exponent = field - 1075;
  }
  return v;
}

ExactValue ExactValue::normalized() const {
  ExactValue v = *this;
  if (v.significand == 0) return v;
  const int up = std::countl_zero(v.significand);
  v.significand <<= up;
  v.exponent -= up;
  return v;
}

namespace {

// What a result too large in magnitude becomes, given the direction the rounding mode pushes it.
std::uint64_t overflow_bits(const Format& f, Rounding mode, bool negative) {
  bool to_infinity = true;  // nearest and stochastic go to infinity
  if (mode == Rounding::toward_zero) to_infinity = false;
  if (mode == Rounding::up) to_infinity = !negative;
  if (mode == Rounding::down) to_infinity = negative;
  const std::uint64_t sign = negative ? f.sign_mask() : 0;
  if (!to_infinity || f.overflow == Overflow::saturate || !f.has_nan()) return sign | f.max_finite_bits();
  return sign | (f.has_infinity() ? f.infinity_bits() : f.nan_bits());
}

std::uint64_t max_mantissa_at_emax(const Format& f) { return f.max_finite_bits() & f.mantissa_mask(); }

}  // namespace

std::uint64_t round_to_bits(const ExactValue& v, const Format& f, Rounding mode, std::uint64_t random) {
  const std::uint64_t sign = v.negative ? f.sign_mask() : 0;
  if (!f.is_signed() && v.negative && v.significand != 0) return f.nan_bits();
  if (v.significand == 0) return sign;  // a sticky value always has a nonzero significand; an unsigned scale's
                                        // pattern 0 is its smallest value, where zero is clamped

  const int m = f.mantissa_bits;
  const int value_exp = v.exponent + 63 - std::countl_zero(v.significand);  // floor(log2 |value|)
  // Flushing formats round with the precision of normal numbers at every exponent, then flush tiny results.
  const int lowest_exp = f.subnormals ? f.emin() : std::numeric_limits<int>::min() / 4;
  int quantum_exp = std::max(value_exp, lowest_exp) - m;
  const int shift = quantum_exp - v.exponent;  // how many low bits of the significand fall below the quantum

  std::uint64_t kept = 0;
  std::uint64_t fraction = 0;  // dropped part as a 64-bit binary fraction of the quantum
  bool sticky_below = v.sticky;
  if (shift <= 0) {
    kept = v.significand << -shift;  // exact; a normalized sticky value never gets here (shift >= 11)
  } else if (shift < 64) {
    kept = v.significand >> shift;
    fraction = v.significand << (64 - shift);
  } else {
    // Below the quantum entirely: the fraction keeps what fits in 64 bits, the rest goes to sticky.
    const int down = shift - 64;
    fraction = down >= 64 ? 0 : v.significand >> down;
    if (down >= 64 || (down > 0 && (v.significand << (64 - down)) != 0)) sticky_below = true;
  }

  const std::uint64_t half = std::uint64_t{1} << 63;
  const bool inexact = fraction != 0 || sticky_below;
  bool away = false;  // round the magnitude up
  switch (mode) {
    case Rounding::nearest_even:
      away = fraction > half || (fraction == half && (sticky_below || (kept & 1) != 0));
      break;
    case Rounding::toward_zero: break;
    case Rounding::up: away = inexact && !v.negative; break;
    case Rounding::down: away = inexact && v.negative; break;
    case Rounding::stochastic: away = random < fraction; break;
  }
  kept += away ? 1 : 0;

  if (kept == 0) return sign;
  if (kept == (std::uint64_t{2} << m)) {  // carried into the next binade
    kept >>= 1;
    ++quantum_exp;
  }
  const int result_exp = quantum_exp + m;  // exponent of the leading bit when kept >= 2^m
  const std::uint64_t implicit = std::uint64_t{1} << m;
  if (kept < implicit) return sign | kept;  // subnormal: exponent field 0 (only reachable with subnormals kept)
  if (result_exp < f.emin()) return sign;   // flushed: below the smallest normal (an unsigned scale: clamped to it)
  if (result_exp > f.emax() || (result_exp == f.emax() && (kept - implicit) > max_mantissa_at_emax(f)))
    return overflow_bits(f, mode, v.negative);
  const auto field = static_cast<std::uint64_t>(result_exp + f.bias);
  return sign | (field << m) | (kept - implicit);
}

std::uint64_t encode(double x, const Format& f, Rounding mode, std::uint64_t random) {
  const std::uint64_t sign = std::signbit(x) ? f.sign_mask() : 0;
  if (std::isnan(x)) {
    if (!f.has_nan()) throw std::domain_error(f.name + " has no NaN: a NaN cannot be encoded");
    return sign | f.nan_bits();
  }
  if (!f.is_signed() && x < 0) return f.nan_bits();
  if (std::isinf(x)) {
    if (f.has_infinity()) return sign | f.infinity_bits();
    return sign | (f.overflow == Overflow::saturate ? f.max_finite_bits() : f.nan_bits());
  }
  return round_to_bits(ExactValue::from_double(x), f, mode, random);
}

double round(double x, const Format& f, Rounding mode, std::uint64_t random) {
  if (std::isnan(x)) return x;  // also where f has no NaN (the value is not a number of f either way)
  return decode(encode(x, f, mode, random), f);
}

double decode(std::uint64_t bits, const Format& f) {
  const int m = f.mantissa_bits;
  const bool negative = (bits & f.sign_mask()) != 0;
  const std::uint64_t field = (bits >> m) & f.exponent_field_max();
  const std::uint64_t mantissa = bits & f.mantissa_mask();
  double magnitude = 0;
  switch (classify_bits(bits, f)) {
    case Category::nan: magnitude = std::numeric_limits<double>::quiet_NaN(); break;
    case Category::infinite: magnitude = std::numeric_limits<double>::infinity(); break;
    case Category::zero: magnitude = 0; break;
    case Category::subnormal: magnitude = std::ldexp(static_cast<double>(mantissa), f.emin() - m); break;
    case Category::normal:
      magnitude = std::ldexp(static_cast<double>(mantissa | (std::uint64_t{1} << m)),
                             static_cast<int>(field) - f.bias - m);
      break;
  }
  return negative ? -magnitude : magnitude;
}

Category classify_bits(std::uint64_t bits, const Format& f) {
  const std::uint64_t field = (bits >> f.mantissa_bits) & f.exponent_field_max();
  const std::uint64_t mantissa = bits & f.mantissa_mask();
  if (f.specials == Specials::unsigned_scale) return field == f.exponent_field_max() ? Category::nan : Category::normal;
  if (field == f.exponent_field_max() && f.specials != Specials::none) {
    if (f.mantissa_bits == 0) return Category::nan;
    if (f.specials == Specials::fn) return mantissa == f.mantissa_mask() ? Category::nan : Category::normal;
    return mantissa == 0 ? Category::infinite : Category::nan;
  }
  if (field == 0) return mantissa == 0 ? Category::zero : Category::subnormal;
  return Category::normal;
}

Category classify(double x, const Format& f) { return classify_bits(encode(x, f), f); }

bool is_representable(double x, const Format& f) {
  if (std::isnan(x)) return f.has_nan();
  if (std::isinf(x)) return f.has_infinity();
  const double r = round(x, f);
  return r == x && std::signbit(r) == std::signbit(x);
}

namespace {
// Step a finite pattern's magnitude by one in the direction that increases (+1) or decreases (-1) the value.
// A flushing format has no subnormal values: its neighbours of zero are the smallest normals.
double step(double x, const Format& f, int direction) {
  if (std::isnan(x)) return x;
  // Past the largest finite value: infinity, or NaN (no value) where the format has none.
  const double beyond = f.has_infinity() ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(x)) {
    if ((x > 0) == (direction > 0)) return x;
    return decode((x > 0 ? 0 : f.sign_mask()) | f.max_finite_bits(), f);
  }
  std::uint64_t bits = encode(x, f);
  if (!f.has_zero()) {  // an unsigned scale: its patterns in order, nothing below the smallest
    if (classify_bits(bits, f) == Category::nan) return std::numeric_limits<double>::quiet_NaN();
    if (direction > 0) return bits == f.max_finite_bits() ? beyond : decode(bits + 1, f);
    return bits == 0 ? std::numeric_limits<double>::quiet_NaN() : decode(bits - 1, f);
  }
  const std::uint64_t smallest = f.subnormals ? 1 : f.min_normal_bits();
  if (classify_bits(bits, f) == Category::zero) return decode((direction > 0 ? 0 : f.sign_mask()) | smallest, f);
  const bool negative = (bits & f.sign_mask()) != 0;
  std::uint64_t magnitude = bits & ~f.sign_mask();
  if (negative == (direction > 0)) {
    magnitude = magnitude == smallest ? 0 : magnitude - 1;  // toward zero
  } else {
    if (magnitude == f.max_finite_bits()) return negative ? -beyond : beyond;
    magnitude += 1;
  }
  bits = (negative ? f.sign_mask() : 0) | magnitude;
  return decode(bits, f);
}
}  // namespace

double next_up(double x, const Format& f) { return step(x, f, +1); }
double next_down(double x, const Format& f) { return step(x, f, -1); }

double ulp(double x, const Format& f) {
  if (!std::isfinite(x)) return std::numeric_limits<double>::quiet_NaN();
  const double r = std::fabs(round(x, f));
  if (r == 0) return f.subnormals ? f.min_subnormal() : f.min_normal();
  if (std::isinf(r)) return std::ldexp(1.0, f.emax() - f.mantissa_bits);
  const int exp = std::ilogb(r);
  return std::ldexp(1.0, std::max(exp, f.emin()) - f.mantissa_bits);
}

}  // namespace mpscope::sim
