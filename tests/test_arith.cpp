// Scalar arithmetic against the Boost.Multiprecision reference: a million random operand sets per operation for
// fp16, bf16 and e6m9, each checked in all four directed modes; the wide-format (exact integer) path; the
// the double-rounding FMA case (docs/formats.md); special values and signed zeros; stochastic rounding of results.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "boost_reference.hpp"
#include "sim/arith.hpp"
#include "sim/random.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
using mpscope::test::big;
using mpscope::test::RealValue;
using mpscope::test::reference_round;
using mpscope::test::same_value;

namespace {

enum class Op { add, sub, mul, div, sqrt, fma };
const char* name(Op op) {
  constexpr const char* names[] = {"add", "sub", "mul", "div", "sqrt", "fma"};
  return names[static_cast<int>(op)];
}

double apply(Op op, double a, double b, double c, const Format& f, Rounding mode, std::uint64_t r = 0) {
  switch (op) {
    case Op::add: return add(a, b, f, mode, r);
    case Op::sub: return sub(a, b, f, mode, r);
    case Op::mul: return mul(a, b, f, mode, r);
    case Op::div: return div(a, b, f, mode, r);
    case Op::sqrt: return mpscope::sim::sqrt(a, f, mode, r);
    case Op::fma: return mpscope::sim::fma(a, b, c, f, mode, r);
  }
  return 0;
}

// x + y exactly when their binary exponents are within 400 of each other (then the sum fits 512 bits); otherwise
// the larger term plus "a little" in the smaller's direction, which rounds the same way to <= 53 bits.
RealValue exact_sum(const mpscope::test::Big& x, const mpscope::test::Big& y) {
  if (x == 0 || y == 0) return {x + y};
  int ex = 0, ey = 0;
  boost::multiprecision::frexp(x, &ex);
  boost::multiprecision::frexp(y, &ey);
  if (std::abs(ex - ey) < 400) return {x + y};
  const bool x_larger = ex > ey;
  const auto& smaller = x_larger ? y : x;
  return {x_larger ? x : y, smaller > 0 ? 1 : -1};
}

// The exact result (nonzero, finite operands).
RealValue exact(Op op, double a, double b, double c) {
  switch (op) {
    case Op::add: return exact_sum(big(a), big(b));
    case Op::sub: return exact_sum(big(a), -big(b));
    case Op::mul: return {big(a) * big(b)};
    case Op::div: return mpscope::test::exact_quotient(a, b);
    case Op::sqrt: return mpscope::test::exact_root(a);
    case Op::fma: return exact_sum(big(a) * big(b), big(c));
  }
  return {};
}

// A random finite value of f: half uniform over all finite patterns, half with an exponent near `near` (so that
// sums cancel and round in interesting places).
double random_value(const Format& f, std::mt19937_64& rng, int near) {
  const std::uint64_t patterns = std::uint64_t{1} << (f.exponent_bits + f.mantissa_bits);
  for (;;) {
    std::uint64_t bits = rng() & (patterns - 1);
    if ((rng() & 1) != 0) {
      const int e = std::clamp(near + static_cast<int>(rng() % 7) - 3, f.emin() - 1, f.emax());
      const std::uint64_t field = e < f.emin() ? 0 : static_cast<std::uint64_t>(e + f.bias);
      bits = (field << f.mantissa_bits) | (bits & f.mantissa_mask());
    }
    if ((rng() & 1) != 0) bits |= f.sign_mask();
    const double v = decode(bits, f);
    if (std::isfinite(v) && v != 0) return v;
  }
}

struct ArithCase {
  Format format;
  Op op;
  std::int64_t cases;
};
void PrintTo(const ArithCase& c, std::ostream* os) { *os << name(c.op) << " in " << c.format.name << ", " << c.cases << " cases"; }

class ArithAgainstBoost : public ::testing::TestWithParam<ArithCase> {};

TEST_P(ArithAgainstBoost, RandomOperandsAllDirectedModes) {
  const auto [f, op, count] = GetParam();
  std::mt19937_64 rng(static_cast<std::uint64_t>(op) * 1000 + static_cast<std::uint64_t>(f.mantissa_bits));
  const std::int64_t cases = mpscope::test::scaled(count);
  std::uniform_int_distribution<int> exponent(f.emin() - 2, f.emax());
  for (std::int64_t i = 0; i < cases; ++i) {
    const int near = exponent(rng);
    double a = random_value(f, rng, near), b = random_value(f, rng, near), c = random_value(f, rng, near);
    if (op == Op::sqrt) a = std::fabs(a);
    const RealValue want_exact = exact(op, a, b, c);
    for (Rounding mode : {Rounding::nearest_even, Rounding::toward_zero, Rounding::up, Rounding::down}) {
      const double got = apply(op, a, b, c, f, mode);
      // An exact zero sum's sign is IEEE's rule (+0, or -0 rounding down), not a rounding question.
      const double want = want_exact.value == 0 && want_exact.residual == 0
                              ? (mode == Rounding::down ? -0.0 : 0.0)
                              : reference_round(want_exact, f, mode);
      ASSERT_TRUE(same_value(got, want)) << name(op) << " " << f.name << " " << to_string(mode) << std::hexfloat
                                         << " a=" << a << " b=" << b << " c=" << c << " got " << got << " want "
                                         << want;
    }
  }
}

std::vector<ArithCase> arith_cases() {
  std::vector<ArithCase> v;
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::sqrt, Op::fma}) {
    for (const Format& f : {fp16(), bf16(), make_format(6, 9)}) v.push_back({f, op, 1'000'000});
    // Wide formats take the exact-integer path (beyond double's error-free range): fewer cases, same checks.
    v.push_back({make_format(10, 40), op, 100'000});
    v.push_back({fp64(), op, 100'000});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Ops, ArithAgainstBoost, ::testing::ValuesIn(arith_cases()), [](const auto& info) {
  return std::string(name(info.param.op)) + "_" + info.param.format.name;
});

// fma(a, b, c) computed as fmaf and then rounded to fp16 gives 0x3C02, the correctly rounded result
// is 0x3C01 (double rounding is not innocuous for FMA).
TEST(Arith, FmaIsNotFloatFmaThenRound) {
  const double a = decode(0x0FFE, fp16()), b = decode(0x3C01, fp16()), c = b;
  const double naive = round(static_cast<double>(std::fmaf(static_cast<float>(a), static_cast<float>(b),
                                                           static_cast<float>(c))), fp16());
  EXPECT_EQ(encode(naive, fp16()), 0x3C02u);
  EXPECT_EQ(encode(mpscope::sim::fma(a, b, c, fp16()), fp16()), 0x3C01u);
}

TEST(Arith, SpecialValuesAndSignedZeros) {
  const Format f = fp16();
  EXPECT_TRUE(std::isnan(add(INFINITY, -INFINITY, f)));
  EXPECT_TRUE(std::isnan(mul(0.0, INFINITY, f)));
  EXPECT_TRUE(std::isnan(mpscope::sim::sqrt(-1.0, f)));
  EXPECT_TRUE(std::isnan(div(0.0, 0.0, f)));
  EXPECT_EQ(div(1.0, 0.0, f), INFINITY);
  EXPECT_EQ(div(-1.0, 0.0, f), -INFINITY);
  EXPECT_EQ(div(1.0, -INFINITY, f), 0.0);
  EXPECT_TRUE(std::signbit(div(1.0, -INFINITY, f)));
  EXPECT_TRUE(std::signbit(add(1.0, -1.0, f, Rounding::down)));
  EXPECT_FALSE(std::signbit(add(1.0, -1.0, f, Rounding::nearest_even)));
  EXPECT_TRUE(std::signbit(add(-0.0, -0.0, f)));
  EXPECT_TRUE(std::signbit(mul(-2.0, 0.0, f)));
  EXPECT_TRUE(std::signbit(mpscope::sim::sqrt(-0.0, f)));
  EXPECT_TRUE(std::signbit(mpscope::sim::fma(-1.0, 0.0, -0.0, f)));
  EXPECT_FALSE(std::signbit(mpscope::sim::fma(-1.0, 0.0, 0.0, f)));
  EXPECT_EQ(add(60000.0, 60000.0, f), INFINITY);
  EXPECT_EQ(add(60000.0, 60000.0, f, Rounding::toward_zero), 65504.0);
  EXPECT_TRUE(std::isnan(add(400.0, 400.0, e4m3fn())));  // no infinity in e4m3fn
  EXPECT_EQ(add(400.0, 400.0, e4m3fn().with_overflow(Overflow::saturate)), 448.0);
  EXPECT_EQ(mul(std::ldexp(1.0, -20), std::ldexp(1.0, -10), f), 0.0);  // underflow
  EXPECT_EQ(mul(std::ldexp(1.0, -20), std::ldexp(1.0, -10), f, Rounding::up), std::ldexp(1.0, -24));
}

// Operands that are not values of the format are still computed exactly (rounded once): the exact path.
TEST(Arith, OperandsOutsideTheFormat) {
  const double third = 1.0 / 3.0;  // 53 significant bits
  EXPECT_EQ(add(third, third, fp16()), round(2.0 / 3.0, fp16()));
  EXPECT_EQ(mul(0.1, 0.1, bf16()), reference_round(RealValue{big(0.1) * big(0.1)}, bf16(), Rounding::nearest_even));
}

TEST(Arith, StochasticResultsAreNeighboursInTheRightProportion) {
  RandomStream random(11);
  const Format f = fp16();
  const double a = 1.0, b = std::ldexp(1.0, -12);  // 1 + 2^-12: a quarter of the way from 1 to 1 + 2^-10
  const std::int64_t n = mpscope::test::scaled(100'000);
  std::int64_t ups = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double r = add(a, b, f, Rounding::stochastic, random.next());
    ASSERT_TRUE(r == 1.0 || r == 1.0 + std::ldexp(1.0, -10));
    ups += r != 1.0;
  }
  EXPECT_NEAR(static_cast<double>(ups), n * 0.25, 6 * std::sqrt(n * 0.25 * 0.75));
}

}  // namespace
