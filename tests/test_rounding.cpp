// Scalar rounding from double against the Boost.Multiprecision reference (tests/boost_reference.hpp): random
// values over each format's whole range, every fp16/bf16 midpoint and its neighbours, subnormal boundaries and
// the overflow threshold, in all four directed modes; stochastic rounding's statistics.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "boost_reference.hpp"
#include "sim/random.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
using mpscope::test::RealValue;
using mpscope::test::reference_round;
using mpscope::test::same_value;

namespace {

constexpr Rounding directed_modes[] = {Rounding::nearest_even, Rounding::toward_zero, Rounding::up, Rounding::down};

void expect_matches_reference(double x, const Format& f) {
  for (Rounding mode : directed_modes) {
    const double got = round(x, f, mode);
    // (Big has no negative zero: a zero input keeps its own sign.)
    const double want = x == 0 ? x : reference_round(RealValue{mpscope::test::big(x)}, f, mode);
    ASSERT_TRUE(same_value(got, want)) << f.name << " " << f.switches() << " " << to_string(mode) << " x=" << std::hexfloat
                                       << x << " got " << got << " want " << want;
  }
}

// A random double whose magnitude spans the format's range and a little beyond on both sides, with random
// mantissa bits: most values are not representable, some are ties.
double random_double_around(const Format& f, std::mt19937_64& rng) {
  const int lo = std::max(f.emin() - f.mantissa_bits - 3, -1074), hi = std::min(f.emax() + 2, 1023);
  std::uniform_int_distribution<int> exponent(lo, hi);
  std::uniform_int_distribution<int> kind(0, 3);
  std::uint64_t mantissa = rng() >> 12;  // 52 random bits
  if (kind(rng) == 0) mantissa &= ~((std::uint64_t{1} << (52 - f.mantissa_bits - 1)) - 1);  // a tie or exact
  const double x = std::ldexp(1.0 + std::ldexp(static_cast<double>(mantissa), -52), exponent(rng));
  return (rng() & 1) != 0 ? -x : x;
}

class RoundingAgainstBoost : public ::testing::TestWithParam<Format> {};

TEST_P(RoundingAgainstBoost, RandomValuesAllDirectedModes) {
  const Format base = GetParam();
  std::mt19937_64 rng(12345);
  const std::int64_t cases = mpscope::test::scaled(1'000'000);
  const Format variants[] = {base, base.with_subnormals(false), base.with_overflow(Overflow::saturate)};
  for (std::int64_t i = 0; i < cases; ++i) {
    const Format& f = variants[i % 8 == 0 ? 1 : (i % 8 == 1 ? 2 : 0)];  // a quarter of the cases with a switch
    expect_matches_reference(random_double_around(f, rng), f);
  }
}

TEST_P(RoundingAgainstBoost, EdgeCases) {
  const Format f = GetParam();
  const double minsub = f.min_subnormal(), minnorm = f.min_normal(), max = f.max_finite();
  const double edges[] = {0.0, minsub, minsub / 2, minsub * 0.75, minsub * 1.5, minsub * 2.5, minnorm,
                          minnorm - minsub / 2, minnorm - minsub, minnorm * (1 - f.epsilon() / 4), max,
                          max + ulp(max, f) / 2, max + ulp(max, f) / 4, max * 2, 1.0, 1.0 + f.epsilon() / 2,
                          1.0 + f.epsilon() * 1.5, std::numeric_limits<double>::denorm_min(),
                          std::numeric_limits<double>::max()};
  for (double x : edges) {
    for (double s : {x, -x, std::nextafter(x, 0.0), std::nextafter(x, 1e300), -std::nextafter(x, 1e300)}) {
      if (!std::isfinite(s)) continue;  // (max * 2 of an 11-bit-exponent format; infinities: KnownAnswers)
      expect_matches_reference(s, f);
      expect_matches_reference(s, f.with_subnormals(false));
      expect_matches_reference(s, f.with_overflow(Overflow::saturate));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundingAgainstBoost,
                         ::testing::Values(fp16(), bf16(), make_format(6, 9), e4m3fn(), e5m2(), tf32(), fp32(),
                                           make_format(3, 2), make_format(11, 30), make_format(5, 0), fp6_e3m2(),
                                           fp6_e2m3(), fp4_e2m1()),
                         [](const auto& info) { return info.param.name; });

// Every midpoint between neighbouring fp16 / bf16 values, and the doubles one ulp either side of it.
TEST(Rounding, EveryMidpointOfFp16AndBf16) {
  for (const Format& f : {fp16(), bf16()}) {
    const std::uint32_t infinity = f == fp16() ? 0x7C00u : 0x7F80u;
    for (std::uint32_t p = 0; p + 1 < infinity; ++p) {
      const double lo = decode(p, f), hi = decode(p + 1, f);
      const double mid = lo + (hi - lo) / 2;  // exact in double
      for (double x : {mid, std::nextafter(mid, 0.0), std::nextafter(mid, 1e300)}) {
        expect_matches_reference(x, f);
        expect_matches_reference(-x, f);
      }
    }
  }
}

TEST(Rounding, KnownAnswers) {
  EXPECT_EQ(round(65519.0, fp16()), 65504.0);
  EXPECT_TRUE(std::isinf(round(65520.0, fp16())));  // the tie goes to the even 65536, beyond max: inf
  EXPECT_EQ(round(1e10, fp16(), Rounding::toward_zero), 65504.0);
  EXPECT_EQ(round(-1e10, fp16(), Rounding::up), -65504.0);
  EXPECT_TRUE(std::isinf(round(-1e10, fp16(), Rounding::down)));
  EXPECT_EQ(round(1e10, fp16().with_overflow(Overflow::saturate)), 65504.0);
  EXPECT_EQ(round(464.0, e4m3fn()), 448.0);  // tie to even
  EXPECT_TRUE(std::isnan(round(465.0, e4m3fn())));
  EXPECT_TRUE(std::isinf(round(61440.0, e5m2())));
  EXPECT_EQ(round(65504.0, bf16()), 65536.0);
  EXPECT_EQ(round(std::ldexp(1.0, -25), fp16()), 0.0);  // half the smallest subnormal: tie to even (zero)
  EXPECT_EQ(round(std::ldexp(1.5, -25), fp16()), std::ldexp(1.0, -24));
  EXPECT_TRUE(std::signbit(round(-1e-30, fp16())));  // underflow keeps the sign
  EXPECT_EQ(round(std::ldexp(1.0, -20), fp16().with_subnormals(false)), 0.0);
  EXPECT_TRUE(std::isinf(round(INFINITY, fp16().with_overflow(Overflow::saturate))));  // inf stays inf
  EXPECT_EQ(round(INFINITY, e4m3fn().with_overflow(Overflow::saturate)), 448.0);
  EXPECT_TRUE(std::isnan(round(INFINITY, e4m3fn())));
}

TEST(Rounding, NeighboursAndUlp) {
  EXPECT_EQ(next_up(1.0, fp16()), 1.0009765625);
  EXPECT_EQ(next_down(1.0, fp16()), 1.0 - std::ldexp(1.0, -11));
  EXPECT_EQ(next_up(0.0, fp16()), std::ldexp(1.0, -24));
  EXPECT_EQ(next_down(0.0, fp16()), -std::ldexp(1.0, -24));
  EXPECT_EQ(next_up(0.0, fp16().with_subnormals(false)), std::ldexp(1.0, -14));
  EXPECT_TRUE(std::isinf(next_up(65504.0, fp16())));
  EXPECT_TRUE(std::isnan(next_up(448.0, e4m3fn())));
  EXPECT_EQ(next_down(INFINITY, fp16()), 65504.0);
  EXPECT_EQ(ulp(1.0, fp16()), std::ldexp(1.0, -10));
  EXPECT_EQ(ulp(1e-6, fp16()), std::ldexp(1.0, -24));  // subnormal range: fixed spacing
  EXPECT_EQ(ulp(0.0, bf16()), std::ldexp(1.0, -133));
  EXPECT_EQ(classify(1e-6, fp16()), Category::subnormal);
  EXPECT_EQ(classify(1e-9, fp16()), Category::zero);
  EXPECT_EQ(classify(1e9, fp16()), Category::infinite);
  EXPECT_TRUE(is_representable(0.5, e4m3fn()));
  EXPECT_FALSE(is_representable(0.1, fp16()));
}

// Stochastic rounding rounds up with probability (x - lo) / (hi - lo). For n draws the count of "up" is
// Binomial(n, p); we require it within 6 standard deviations (a false alarm has probability ~2e-9 per check).
TEST(Rounding, StochasticIsUnbiasedWithinSixSigma) {
  RandomStream random(2024);
  const std::int64_t n = mpscope::test::scaled(200'000);
  for (const Format& f : {fp16(), bf16(), e4m3fn()}) {
    for (double fraction : {0.5, 0.1, 0.001, 0.9}) {
      const double lo = 1.0, hi = next_up(1.0, f);
      const double x = lo + fraction * (hi - lo);
      const double p = (x - lo) / (hi - lo);
      std::int64_t ups = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const double r = round(x, f, Rounding::stochastic, random.next());
        ASSERT_TRUE(r == lo || r == hi);
        ups += r == hi;
      }
      const double sigma = std::sqrt(static_cast<double>(n) * p * (1 - p));
      EXPECT_NEAR(static_cast<double>(ups), static_cast<double>(n) * p, 6 * sigma) << f.name << " p=" << p;
      // the mean of the rounded values is x within the same bound
      const double mean = lo + (hi - lo) * static_cast<double>(ups) / static_cast<double>(n);
      EXPECT_NEAR(mean, x, 6 * sigma / static_cast<double>(n) * (hi - lo));
    }
  }
  // Exact values never move; a value in the subnormal range rounds to one of its two neighbours.
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(round(1.5, fp16(), Rounding::stochastic, random.next()), 1.5);
  const double tiny = std::ldexp(1.0, -26);  // a quarter of fp16's smallest subnormal
  std::int64_t ups = 0;
  for (std::int64_t i = 0; i < n; ++i) ups += round(tiny, fp16(), Rounding::stochastic, random.next()) != 0;
  EXPECT_NEAR(static_cast<double>(ups), n * 0.25, 6 * std::sqrt(n * 0.25 * 0.75));
}

TEST(Rounding, StochasticStreamsAreReproducible) {
  RandomStream a(7), b(7), c(8), d(7, 1);
  int same_c = 0, same_d = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t x = a.next();
    ASSERT_EQ(x, b.next());
    same_c += x == c.next();
    same_d += x == d.next();
  }
  EXPECT_LT(same_c, 2);
  EXPECT_LT(same_d, 2);
}

}  // namespace
