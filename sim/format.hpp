// Number formats: (exponent bits, mantissa bits, bias, subnormals, overflow behaviour, special encodings).
// A Format is a plain value; every rounding and arithmetic function takes one at run time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mpscope::sim {

enum class Rounding { nearest_even, toward_zero, up, down, stochastic };

// How the all-ones exponent field is used.
//  ieee: infinity (mantissa 0) and NaN (mantissa != 0), as binary16/32/64 and e5m2.
//  fn:   "finite, NaN only" (OCP FP8 E4M3): no infinity; only S.1..1.1..1 is NaN.
//  none: every encoding is a finite number (OCP MX element formats E2M1, E2M3, E3M2): no infinity, no NaN; results
//        too large saturate. round() of a NaN is NaN (the dequantized view); encode() of one throws.
//  unsigned_scale: an unsigned power of two with no zero (OCP E8M0, the MX block scale): 2^(field - bias) for every
//        field but the all-ones one, which is NaN. Negative values and zero become NaN; results below the smallest
//        value are clamped to it.
// A format with 0 mantissa bits has no room for both: there the all-ones exponent is NaN and nothing is infinite.
enum class Specials { ieee, fn, none, unsigned_scale };

// What a result too large for the format becomes: infinity (NaN where the format has no infinity, as e4m3fn),
// or the largest finite value of that sign ("satfinite").
enum class Overflow { infinity, saturate };

enum class Category { zero, subnormal, normal, infinite, nan };

struct Format {
  std::string name;
  int exponent_bits = 8;
  int mantissa_bits = 23;
  int bias = 127;
  bool subnormals = true;  // false: results below the smallest normal are flushed to zero
  Overflow overflow = Overflow::infinity;
  Specials specials = Specials::ieee;

  bool is_signed() const { return specials != Specials::unsigned_scale; }
  int total_bits() const { return (is_signed() ? 1 : 0) + exponent_bits + mantissa_bits; }
  int emin() const { return specials == Specials::unsigned_scale ? -bias : 1 - bias; }  // smallest normal's exponent
  int emax() const;                      // exponent of the largest finite value
  bool has_infinity() const { return specials == Specials::ieee && mantissa_bits > 0; }
  bool has_nan() const { return specials != Specials::none; }
  bool has_zero() const { return specials != Specials::unsigned_scale; }

  std::uint64_t sign_mask() const { return is_signed() ? std::uint64_t{1} << (exponent_bits + mantissa_bits) : 0; }
  std::uint64_t mantissa_mask() const { return (std::uint64_t{1} << mantissa_bits) - 1; }
  std::uint64_t exponent_field_max() const { return (std::uint64_t{1} << exponent_bits) - 1; }
  std::uint64_t max_finite_bits() const;   // positive
  std::uint64_t infinity_bits() const;     // positive; only when has_infinity()
  std::uint64_t nan_bits() const;          // positive canonical (quiet) NaN; only when has_nan()
  std::uint64_t min_normal_bits() const { return has_zero() ? std::uint64_t{1} << mantissa_bits : 0; }

  double max_finite() const;
  double min_normal() const;
  double min_subnormal() const;  // the smallest positive value even when subnormals are flushed in arithmetic
  double epsilon() const;        // 2^-mantissa_bits: the distance from 1 to the next larger value

  // True when every finite value of the format is a normal or subnormal float32 value or zero, with the same or a
  // coarser grid: the fast float32 array paths apply.
  bool within_float32() const;
  // True when every finite value is exactly a float32 value (ue8m0's smallest, 2^-127, is a float32 subnormal, so
  // it fits float32 output though not the fast paths' grid).
  bool values_fit_float32() const;

  Format with_subnormals(bool keep) const;
  Format with_overflow(Overflow mode) const;  // formats without inf and NaN (none, unsigned_scale) always saturate
  bool saturates_always() const;
  // A short description of the switches that differ from the defaults, e.g. "no-subnormals,saturate" ("" if none).
  std::string switches() const;
};

bool operator==(const Format& a, const Format& b);

// eXmY with the IEEE-style bias 2^(X-1)-1. Throws std::invalid_argument naming the bad part
// (exponent bits must be 2..11, mantissa bits 0..52; fn and none need at least one mantissa bit, unsigned_scale
// none). none and unsigned_scale formats saturate.
Format make_format(int exponent_bits, int mantissa_bits, Specials specials = Specials::ieee);

const Format& fp64();
const Format& fp32();
const Format& tf32();
const Format& fp16();
const Format& bf16();
const Format& e5m2();
const Format& e4m3fn();
std::span<const Format> standard_formats();  // the seven above, widest first

// The OCP Microscaling (MX v1.0) element formats and the block scale format, named as OCP writes them: apart from
// the IEEE-style e3m2, e2m3, e2m1, e8m0 (make_format), whose all-ones exponent is inf/NaN.
const Format& fp6_e3m2();  // FP6: bias 3, max 28, no inf/NaN
const Format& fp6_e2m3();  // FP6: bias 1, max 7.5, no inf/NaN
const Format& fp4_e2m1();  // FP4: bias 1, max 6, no inf/NaN
const Format& ue8m0();     // scale: 2^(e - 127), e = 0..254; 0xFF NaN
std::span<const Format> microscaling_formats();  // the four above

// "fp16", "half", "float16", "bf16", "e4m3fn", "e4m3", "e5m2", "tf32", "fp32", "fp64", the MX formats "fp6_e3m2",
// "fp6_e2m3", "fp4_e2m1" (or "fp4"), "ue8m0" (or "e8m0fnu"), "fp8_e4m3", "fp8_e5m2", or any "eXmY" / "eXmYfn"
// (X 2..11, Y 0..52). Throws std::invalid_argument with the accepted spellings.
Format parse_format(std::string_view text);
// "an fp16", "a bf16", "an e4m3fn": a format's name with the article it is read with (letters named with a vowel
// sound take "an").
std::string with_article(const std::string& name);

std::string_view to_string(Rounding mode);
// "nearest" (also "nearest-even", "rne"), "toward-zero" ("zero", "rz"), "up" ("ru"), "down" ("rd"),
// "stochastic" ("sr"). Throws std::invalid_argument.
Rounding parse_rounding(std::string_view text);
std::string_view to_string(Category category);

}  // namespace mpscope::sim
