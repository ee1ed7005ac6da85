// Exact decimal parsing and printing for the Float Toy.
#include <gtest/gtest.h>

#include "sim/decimal.hpp"
#include "sim/rounding.hpp"

using namespace mpscope::sim;

TEST(Decimal, ExactExpansions) {
  EXPECT_EQ(exact_decimal(0.1), "0.1000000000000000055511151231257827021181583404541015625");
  EXPECT_EQ(exact_decimal(round(0.1, fp16())), "0.0999755859375");
  EXPECT_EQ(exact_decimal(-65504.0), "-65504");
  EXPECT_EQ(exact_decimal(std::ldexp(1.0, -24)), "0.000000059604644775390625");
  EXPECT_EQ(exact_decimal(-0.0), "-0");
  EXPECT_EQ(exact_decimal(1e22), "10000000000000000000000");
  EXPECT_EQ(exact_decimal(INFINITY), "inf");
}

// Decimal strings round directly to the format: no detour through double, which would round twice.
TEST(Decimal, ParsesExactlyAndRoundsOnce) {
  const ParsedReal p = parse_real("1.00048828125000000001");  // just above the fp16 midpoint 1 + 2^-11
  EXPECT_EQ(encode(p, fp16()), 0x3C01u);
  EXPECT_EQ(encode(std::strtod("1.00048828125000000001", nullptr), fp16()), 0x3C00u);  // via double: wrong
  EXPECT_EQ(encode(parse_real("0.1"), fp16()), 0x2E66u);
  EXPECT_EQ(encode(parse_real("-65520"), fp16()), 0xFC00u);
  EXPECT_EQ(encode(parse_real("1e-8"), fp16(), Rounding::up), 0x0001u);
  EXPECT_EQ(encode(parse_real("0x1p-24"), fp16()), 0x0001u);
  EXPECT_EQ(encode(parse_real("inf"), fp16()), 0x7C00u);
  EXPECT_EQ(encode(parse_real("-Infinity"), fp16()), 0xFC00u);
  EXPECT_EQ(classify_bits(encode(parse_real("nan"), fp16()), fp16()), Category::nan);
  EXPECT_EQ(encode(parse_real("1e-9999"), fp16(), Rounding::up), 0x0001u);
  EXPECT_EQ(encode(parse_real("+2.5e3"), fp16()), encode(2500.0, fp16()));
  EXPECT_EQ(encode(parse_real("0"), fp16()), 0u);
  EXPECT_EQ(encode(parse_real("-0.0"), fp16()), 0x8000u);
}

TEST(Decimal, Errors) {
  EXPECT_THROW(parse_real("abc"), std::invalid_argument);
  EXPECT_THROW(parse_real("1.2.3"), std::invalid_argument);
  EXPECT_THROW(parse_real("1e"), std::invalid_argument);
  EXPECT_THROW(parse_real("1e99999"), std::invalid_argument);
  EXPECT_THROW(parse_real(""), std::invalid_argument);
  EXPECT_THROW(parse_real("0x"), std::invalid_argument);
}

TEST(Decimal, Differences) {
  const ParsedReal p = parse_real("0.1");
  EXPECT_EQ(difference(round(0.1, fp16()), p), "-2.441406e-05");
  EXPECT_EQ(relative_difference(round(0.1, fp16()), p), "-2.441e-04");
  EXPECT_EQ(difference(0.5, parse_real("0.5")), "0");
  EXPECT_EQ(shortest(0.1), "0.1");
}
