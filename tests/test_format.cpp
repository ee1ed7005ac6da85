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
