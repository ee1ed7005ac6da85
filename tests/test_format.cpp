// Formats: parameters, names, and every bit pattern of the 16- and 8-bit formats decoded and re-encoded.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "sim/format.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
using mpscope::test::same_value;

TEST(Format, StandardParameters) {
  EXPECT_EQ(fp16().max_finite(), 65504.0);
  EXPECT_EQ(fp16().min_normal(), std::ldexp(1.0, -14));
  EXPECT_EQ(fp16().min_subnormal(), std::ldexp(1.0, -24));
  EXPECT_EQ(fp16().epsilon(), std::ldexp(1.0, -10));
  EXPECT_EQ(bf16().max_finite(), std::ldexp(255.0, 120));  // 0x7F7F: (2 - 2^-7) * 2^127
  EXPECT_EQ(bf16().min_subnormal(), std::ldexp(1.0, -133));
  EXPECT_EQ(tf32().min_subnormal(), std::ldexp(1.0, -136));
  EXPECT_EQ(e5m2().max_finite(), 57344.0);
  EXPECT_EQ(e5m2().min_subnormal(), std::ldexp(1.0, -16));
  EXPECT_EQ(e4m3fn().max_finite(), 448.0);
  EXPECT_EQ(e4m3fn().min_normal(), std::ldexp(1.0, -6));
  EXPECT_EQ(e4m3fn().min_subnormal(), std::ldexp(1.0, -9));
  EXPECT_FALSE(e4m3fn().has_infinity());
  EXPECT_EQ(fp32().max_finite(), static_cast<double>(std::numeric_limits<float>::max()));
  EXPECT_EQ(fp32().min_subnormal(), static_cast<double>(std::numeric_limits<float>::denorm_min()));
  EXPECT_EQ(fp64().max_finite(), std::numeric_limits<double>::max());
  EXPECT_EQ(fp64().min_subnormal(), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(standard_formats().size(), 7u);
}

TEST(Format, ParseNamesAndCustomFormats) {
  EXPECT_EQ(parse_format("fp16"), fp16());
  EXPECT_EQ(parse_format("HALF"), fp16());
  EXPECT_EQ(parse_format("bfloat16"), bf16());
  EXPECT_EQ(parse_format("e4m3"), e4m3fn());
  EXPECT_EQ(parse_format("e5m10"), fp16());  // same parameters, different name
  EXPECT_EQ(parse_format("e8m7"), bf16());
  EXPECT_EQ(parse_format("e4m3fn"), e4m3fn());
  const Format f = parse_format("e6m9");
  EXPECT_EQ(f.exponent_bits, 6);
  EXPECT_EQ(f.mantissa_bits, 9);
  EXPECT_EQ(f.bias, 31);
  EXPECT_EQ(f.name, "e6m9");
  EXPECT_EQ(parse_format("e11m0").total_bits(), 12);
  EXPECT_EQ(parse_format("e2m52").total_bits(), 55);
}

TEST(Format, ParseErrorsNameTheProblem) {
  const auto message = [](const char* text) {
    try {
      parse_format(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("e12m3").find("exponent bits must be 2..11"), std::string::npos);
  EXPECT_NE(message("e1m3").find("exponent bits must be 2..11"), std::string::npos);
  EXPECT_NE(message("e5m53").find("mantissa bits must be 0..52"), std::string::npos);
  EXPECT_NE(message("e5m0fn").find("fn format needs"), std::string::npos);
  EXPECT_NE(message("fp17").find("unknown format 'fp17'"), std::string::npos);
  EXPECT_NE(message("e5mx").find("unknown format"), std::string::npos);
  EXPECT_THROW(parse_rounding("sideways"), std::invalid_argument);
  EXPECT_EQ(parse_rounding("rne"), Rounding::nearest_even);
  EXPECT_EQ(parse_rounding("toward-zero"), Rounding::toward_zero);
  EXPECT_EQ(parse_rounding("sr"), Rounding::stochastic);
}

// Every fp16 pattern: decode agrees with the compiler's _Float16 conversion, and encode(decode(p)) == p.
TEST(Format, EveryFp16PatternRoundTrips) {
  for (std::uint32_t p = 0; p < 65536; ++p) {
    const double v = decode(p, fp16());
    const auto h = std::bit_cast<_Float16>(static_cast<std::uint16_t>(p));
    ASSERT_TRUE(same_value(v, static_cast<double>(h))) << std::hex << p;
    if (std::isnan(v)) {
      EXPECT_EQ(classify_bits(p, fp16()), Category::nan);
      EXPECT_EQ(encode(v, fp16()) & 0x7FFF, 0x7E00u);  // canonical quiet NaN
    } else {
      ASSERT_EQ(encode(v, fp16()), p) << std::hex << p;
    }
  }
}

TEST(Format, EveryBf16PatternRoundTrips) {
  for (std::uint32_t p = 0; p < 65536; ++p) {
    const double v = decode(p, bf16());
    ASSERT_TRUE(same_value(v, static_cast<double>(std::bit_cast<float>(p << 16)))) << std::hex << p;
    if (!std::isnan(v)) {
      ASSERT_EQ(encode(v, bf16()), p) << std::hex << p;
    }
  }
}

// eXmY with fp16's and bf16's parameters is the same format: same values, same categories, same encodings.
TEST(Format, CustomE5M10IsFp16AndE8M7IsBf16OnEveryPattern) {
  for (const auto& [custom, standard] : {std::pair{make_format(5, 10), fp16()}, std::pair{make_format(8, 7), bf16()}}) {
    for (std::uint32_t p = 0; p < 65536; ++p) {
      const double v = decode(p, custom);
      ASSERT_TRUE(same_value(v, decode(p, standard))) << custom.name << " " << p;
      ASSERT_EQ(classify_bits(p, custom), classify_bits(p, standard));
      ASSERT_EQ(encode(v, custom), encode(v, standard));
    }
  }
}

TEST(Format, EightBitFormatsEveryPattern) {
  int e4m3_nans = 0, e5m2_nans = 0, e5m2_infs = 0;
  for (std::uint32_t p = 0; p < 256; ++p) {
    const double a = decode(p, e4m3fn()), b = decode(p, e5m2());
    e4m3_nans += std::isnan(a);
    e5m2_nans += std::isnan(b);
    e5m2_infs += std::isinf(b);
    if (!std::isnan(a)) {
      ASSERT_EQ(encode(a, e4m3fn()), p);
    }
    if (!std::isnan(b)) {
      ASSERT_EQ(encode(b, e5m2()), p);
    }
  }
  EXPECT_EQ(e4m3_nans, 2);  // S.1111.111 only
  EXPECT_EQ(e5m2_nans, 6);
  EXPECT_EQ(e5m2_infs, 2);
  EXPECT_EQ(decode(0x7E, e4m3fn()), 448.0);
  EXPECT_EQ(decode(0x01, e4m3fn()), std::ldexp(1.0, -9));
  EXPECT_EQ(decode(0x7B, e5m2()), 57344.0);
  EXPECT_TRUE(std::isinf(decode(0x7C, e5m2())));
}

TEST(Format, MantissaLessFormatHasNaNButNoInfinity) {
  const Format f = make_format(5, 0);
  EXPECT_FALSE(f.has_infinity());
  EXPECT_TRUE(std::isnan(decode(0x1F, f)));
  EXPECT_EQ(f.max_finite(), std::ldexp(1.0, 15));
  EXPECT_TRUE(std::isnan(round(1e9, f)));
  EXPECT_EQ(round(3.0, f), 4.0);  // tie between 2 and 4: the even significand (1.0 * 2^2)
}

TEST(Format, WithinFloat32) {
  EXPECT_TRUE(fp32().within_float32());
  EXPECT_TRUE(fp16().within_float32());
  EXPECT_TRUE(bf16().within_float32());
  EXPECT_TRUE(e4m3fn().within_float32());
  EXPECT_TRUE(make_format(6, 9).within_float32());
  EXPECT_FALSE(fp64().within_float32());
  EXPECT_FALSE(make_format(9, 10).within_float32());
  EXPECT_FALSE(make_format(8, 24).within_float32());
}

// The OCP MX v1.0 element formats, from the spec's tables: every pattern's value, no inf/NaN, saturation.
TEST(Format, MicroscalingElementFormats) {
  EXPECT_EQ(fp4_e2m1().max_finite(), 6.0);
  EXPECT_EQ(fp4_e2m1().min_normal(), 1.0);
  EXPECT_EQ(fp4_e2m1().min_subnormal(), 0.5);
  EXPECT_EQ(fp6_e2m3().max_finite(), 7.5);
  EXPECT_EQ(fp6_e2m3().min_subnormal(), 0.125);
  EXPECT_EQ(fp6_e3m2().max_finite(), 28.0);
  EXPECT_EQ(fp6_e3m2().min_normal(), 0.25);
  EXPECT_EQ(fp6_e3m2().min_subnormal(), 0.0625);
  EXPECT_EQ(fp4_e2m1().total_bits(), 4);
  EXPECT_EQ(fp6_e3m2().total_bits(), 6);
  const double fp4_values[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  for (std::uint64_t bits = 0; bits < 16; ++bits) {
    const double expected = (bits & 8) != 0 ? -fp4_values[bits & 7] : fp4_values[bits & 7];
    EXPECT_TRUE(same_value(decode(bits, fp4_e2m1()), expected)) << bits;
    EXPECT_EQ(encode(expected, fp4_e2m1()), bits);
  }
  for (const Format& f : {fp6_e3m2(), fp6_e2m3(), fp4_e2m1()}) {
    EXPECT_FALSE(f.has_infinity());
    EXPECT_FALSE(f.has_nan());
    double previous = -1;
    for (std::uint64_t bits = 0; bits < (f.sign_mask() << 1); ++bits) {
      EXPECT_NE(classify_bits(bits, f), Category::nan) << f.name << " " << bits;
      if (bits < f.sign_mask()) {  // positive patterns grow strictly
        EXPECT_GT(decode(bits, f), previous) << f.name << " " << bits;
        previous = decode(bits, f);
      }
    }
    EXPECT_EQ(previous, f.max_finite());
    EXPECT_EQ(round(1e30, f), f.max_finite());  // saturates, even rounding up
    EXPECT_EQ(round(-INFINITY, f), -f.max_finite());
    EXPECT_EQ(round(1e30, f, Rounding::up), f.max_finite());
    EXPECT_EQ(f.with_overflow(Overflow::infinity).overflow, Overflow::saturate);  // nothing else to overflow to
    EXPECT_TRUE(std::isnan(round(NAN, f)));
    EXPECT_THROW(encode(NAN, f), std::domain_error);
    EXPECT_TRUE(std::isnan(next_up(f.max_finite(), f)));  // no neighbour above the largest
  }
  EXPECT_EQ(round(5.0, fp4_e2m1()), 4.0);   // tie: to the even mantissa
  EXPECT_EQ(round(0.75, fp4_e2m1()), 1.0);  // tie between the subnormal 0.5 (odd) and 1
  EXPECT_EQ(round(0.25, fp4_e2m1()), 0.0);
  EXPECT_EQ(parse_format("fp4"), fp4_e2m1());
  EXPECT_EQ(parse_format("fp4_e2m1"), fp4_e2m1());
  EXPECT_EQ(parse_format("e2m1"), make_format(2, 1));  // eXmY stays the IEEE-style format, with inf and NaN
  EXPECT_TRUE(parse_format("e3m2").has_infinity());
  EXPECT_EQ(parse_format("FP6_E3M2"), fp6_e3m2());
  EXPECT_EQ(parse_format("fp6_e2m3"), fp6_e2m3());
  EXPECT_EQ(parse_format("fp8_e4m3"), e4m3fn());
}

// E8M0, the MX block scale: 2^(e - 127) for e = 0..254, 0xFF NaN, no sign, no zero.
TEST(Format, E8m0Scale) {
  const Format& f = ue8m0();
  EXPECT_EQ(f.total_bits(), 8);
  EXPECT_FALSE(f.is_signed());
  EXPECT_EQ(decode(0, f), std::ldexp(1.0, -127));
  EXPECT_EQ(decode(127, f), 1.0);
  EXPECT_EQ(decode(254, f), std::ldexp(1.0, 127));
  EXPECT_TRUE(std::isnan(decode(255, f)));
  EXPECT_EQ(f.max_finite(), std::ldexp(1.0, 127));
  EXPECT_EQ(f.min_normal(), std::ldexp(1.0, -127));
  for (std::uint64_t e = 0; e < 255; ++e) {
    EXPECT_EQ(classify_bits(e, f), Category::normal);
    EXPECT_EQ(encode(decode(e, f), f), e);
  }
  EXPECT_EQ(encode(1.0, f), 127u);
  EXPECT_EQ(encode(1.4, f), 127u);
  EXPECT_EQ(encode(1.6, f), 128u);
  EXPECT_EQ(encode(1.6, f, Rounding::toward_zero), 127u);
  EXPECT_EQ(encode(1.1, f, Rounding::up), 128u);
  EXPECT_EQ(encode(0.0, f), 0u);                    // no zero: the smallest scale
  EXPECT_EQ(encode(std::ldexp(1.0, -200), f), 0u);  // clamped
  EXPECT_EQ(encode(std::ldexp(1.0, 200), f), 254u); // saturates
  EXPECT_EQ(encode(INFINITY, f), 254u);
  EXPECT_EQ(encode(-1.0, f), 255u);  // no negative scales
  EXPECT_EQ(encode(NAN, f), 255u);
  EXPECT_TRUE(std::isnan(next_down(std::ldexp(1.0, -127), f)));
  EXPECT_EQ(next_up(1.0, f), 2.0);
  EXPECT_EQ(parse_format("ue8m0"), f);
  EXPECT_EQ(parse_format("e8m0fnu"), f);
  EXPECT_EQ(parse_format("e8m0"), make_format(8, 0));  // the IEEE-style mantissa-less format
  EXPECT_EQ(microscaling_formats().size(), 4u);
}
