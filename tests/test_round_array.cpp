// Array rounding: every kernel (portable, AVX2+F16C, AVX-512, the conversion instructions) gives exactly the
// scalar reference's result, for every format, switch and rounding mode, stochastic included (same stream).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <sstream>

#include "sim/round_array.hpp"
#include "sim/rounding.hpp"
#include "sim/simd/round_kernels.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
using mpscope::test::same_value;

namespace {

// Random float32 bit patterns (all exponents, NaNs and infinities included) plus structured patterns: for every
// exponent, mantissas whose low bits sit at and around each possible rounding boundary.
std::vector<float> test_inputs(std::int64_t random_count) {
  std::vector<float> v;
  std::mt19937 rng(99);
  for (std::int64_t i = 0; i < random_count; ++i) v.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  for (std::uint32_t sign : {0u, 0x80000000u})
    for (std::uint32_t field = 0; field < 256; ++field)
      for (int shift = 0; shift <= 23; ++shift) {
        const std::uint32_t half = shift == 0 ? 0 : 1u << (shift - 1);
        for (std::uint32_t low : {0u, 1u, half - 1, half, half + 1, (1u << shift) - 1}) {
          for (std::uint32_t high : {0u, 1u << shift, 0x7FFFFFu & ~((1u << shift) - 1)}) {
            const std::uint32_t mantissa = (high | (low & ((1u << shift) - 1))) & 0x7FFFFFu;
            v.push_back(std::bit_cast<float>(sign | (field << 23) | mantissa));
          }
        }
      }
  return v;
}

std::vector<Format> formats_under_test() {
  std::vector<Format> f = {fp16(), bf16(), e4m3fn(), e5m2(), tf32(), fp32(), make_format(6, 9), make_format(3, 2),
                           make_format(8, 0), make_format(4, 3), make_format(7, 1)};
  for (const Format& mx : microscaling_formats()) f.push_back(mx);  // (no inf/NaN; the unsigned scale)
  const std::size_t plain = f.size();
  for (std::size_t i = 0; i < plain; ++i) {
    f.push_back(f[i].with_subnormals(false));
    f.push_back(f[i].with_overflow(Overflow::saturate));
  }
  return f;
}

std::string describe(const Format& f, Rounding mode, Isa isa) {
  std::ostringstream s;
  PrintTo(f, &s);
  s << " " << to_string(mode) << " " << to_string(isa);
  return s.str();
}

TEST(RoundArray, EveryKernelMatchesTheScalarReference) {
  const std::vector<float> in = test_inputs(mpscope::test::scaled(200'000));
  std::vector<float> out(in.size()), want(in.size());
  for (const Format& f : formats_under_test()) {
    for (Rounding mode : {Rounding::nearest_even, Rounding::toward_zero, Rounding::up, Rounding::down,
                          Rounding::stochastic}) {
      RandomStream reference_stream(5);
      for (std::size_t i = 0; i < in.size(); ++i) {
        const std::uint64_t r = mode == Rounding::stochastic ? reference_stream.next() : 0;
        want[i] = static_cast<float>(round(in[i], f, mode, r));
      }
      for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
        if (!isa_supported(isa)) continue;
        RandomStream stream(5);
        round_array(in, out, f, mode, &stream, isa);
        for (std::size_t i = 0; i < in.size(); ++i)
          ASSERT_TRUE(same_value(out[i], want[i])) << describe(f, mode, isa) << " x=" << std::hexfloat << in[i]
                                                   << " got " << out[i] << " want " << want[i];
      }
    }
  }
}

// Doubles rounded to float32-sized formats (round-to-odd at 24 bits, then the float kernels) equal the scalar
// reference on random doubles that reach every rounding situation, including values beyond float32's range.
TEST(RoundArray, DoublesToFormatsEqualTheScalarReference) {
  std::mt19937_64 rng(17);
  std::vector<double> in;
  for (int i = 0; i < mpscope::test::scaled(200'000); ++i) {
    const int e = static_cast<int>(rng() % 320) - 170;
    double x = std::ldexp(1.0 + std::ldexp(static_cast<double>(rng() >> 12), -52), e);
    if (i % 3 == 0) x = std::ldexp(std::round(std::ldexp(x, 30 - e)), e - 30);  // ties and exact values
    in.push_back((rng() & 1) ? -x : x);
  }
  in.insert(in.end(), {0.0, -0.0, INFINITY, -INFINITY, NAN, 1e300, -1e-300, 65519.99, 65520.0, 448.5, 464.0});
  std::vector<float> out(in.size());
  for (const Format& f : formats_under_test()) {
    for (Rounding mode : {Rounding::nearest_even, Rounding::toward_zero, Rounding::up, Rounding::down, Rounding::stochastic}) {
      RandomStream a(9), b(9);
      round_array(std::span<const double>(in), std::span<float>(out), f, mode, &a);
      for (std::size_t i = 0; i < in.size(); ++i) {
        const std::uint64_t r = mode == Rounding::stochastic ? b.next() : 0;
        ASSERT_TRUE(same_value(out[i], static_cast<float>(round(in[i], f, mode, r))))
            << describe(f, mode, Isa::portable) << " x=" << std::hexfloat << in[i] << " got " << out[i];
      }
    }
  }
}

TEST(RoundArray, RunsOnTheBestKernelOfThisCpu) {
#if defined(__x86_64__)
  // Every x86-64 machine mpscope targets has at least AVX2 + F16C; CI's has AVX-512.
  EXPECT_TRUE(isa_supported(Isa::avx2) || std::getenv("MPSCOPE_ISA") != nullptr);
#endif
  EXPECT_TRUE(isa_supported(best_isa()));
  EXPECT_TRUE(isa_supported(Isa::portable));
}

TEST(RoundArray, InPlaceAndOddLengths) {
  for (std::size_t n : {0u, 1u, 7u, 15u, 16u, 17u, 33u, 1000u}) {
    std::vector<float> v(n), copy;
    for (std::size_t i = 0; i < n; ++i) v[i] = 0.1f * static_cast<float>(i) - 3.0f;
    copy = v;
    round_array(v, v, fp16(), Rounding::nearest_even);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], static_cast<float>(round(copy[i], fp16())));
  }
}

TEST(RoundArray, WideFormatsGoThroughDouble) {
  const std::vector<float> in = {0.1f, 1e-40f, 3e38f, -2.5f};
  std::vector<float> out(in.size());
  round_array(in, out, fp64(), Rounding::nearest_even);
  EXPECT_EQ(out, in);  // float32 values are fp64 values
  round_array(in, out, make_format(9, 10), Rounding::nearest_even);
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], static_cast<float>(round(in[i], make_format(9, 10))));

  const std::vector<double> wide = {0.1, 1e-300, 1e300};
  std::vector<double> wide_out(3);
  round_array(wide, wide_out, fp32(), Rounding::toward_zero);
  EXPECT_EQ(wide_out[0], static_cast<double>(0.099999994f));
  EXPECT_EQ(wide_out[1], 0.0);
  EXPECT_EQ(wide_out[2], static_cast<double>(std::numeric_limits<float>::max()));
}

TEST(RoundArray, Errors) {
  std::vector<float> a(4), b(3);
  EXPECT_THROW(round_array(a, b, fp16(), Rounding::nearest_even), std::invalid_argument);
  EXPECT_THROW(round_array(a, a, fp16(), Rounding::stochastic, nullptr), std::invalid_argument);
}

TEST(RoundArray, CountsWhatRoundingDid) {
  const std::vector<float> before = {1e-8f, 3e-6f, 70000.f, 1.0f, 0.0f, -1e-9f, INFINITY, NAN, 1e5f};
  std::vector<float> after(before.size());
  round_array(before, after, fp16(), Rounding::nearest_even);
  const RoundingEffects e = count_rounding_effects(before, after, fp16());
  EXPECT_EQ(e.elements, 9);
  EXPECT_EQ(e.underflow, 2);  // 1e-8 and -1e-9 (below half of 2^-24)
  EXPECT_EQ(e.subnormal, 1);  // 3e-6
  EXPECT_EQ(e.overflow, 2);   // 70000 and 1e5; the infinite input was not finite before
  EXPECT_EQ(e.saturated, 0);

  const Format saturating = fp16().with_overflow(Overflow::saturate);
  round_array(before, after, saturating, Rounding::nearest_even);
  const RoundingEffects s = count_rounding_effects(before, after, saturating);
  EXPECT_EQ(s.overflow, 0);
  EXPECT_EQ(s.saturated, 2);
}

}  // namespace

namespace {

// The definitions of sim/round_array.hpp, value by value.
template <typename Before, typename After>
RoundingEffects reference_effects(const std::vector<Before>& before, const std::vector<After>& after, const Format& f) {
  RoundingEffects e;
  e.elements = static_cast<std::int64_t>(before.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    const double x = std::fabs(static_cast<double>(before[i])), y = std::fabs(static_cast<double>(after[i]));
    e.underflow += x != 0 && !std::isnan(x) && y == 0;
    e.subnormal += y != 0 && y < f.min_normal();
    e.overflow += std::isfinite(x) && !std::isfinite(y);
    e.saturated += std::isfinite(x) && x > f.max_finite() && y == static_cast<double>(static_cast<After>(f.max_finite()));
  }
  return e;
}

// Tensors as lanes round them: mostly ordinary values, ReLU-style zeros, and now and then (or in stretches) values
// that underflow, become subnormal, overflow or are not finite, anywhere in the blocks the counting checks at once.
std::vector<double> effect_inputs(std::mt19937_64& rng, std::size_t n, int regime) {
  std::vector<double> v(n);
  std::normal_distribution<double> normal;
  for (auto& x : v) {
    x = normal(rng) * (regime == 3 ? 1e-7 : 1.0);  // regime 3: mostly below fp16's normals
    if (rng() % 2 == 0) x = 0;
  }
  const std::size_t specials = regime == 0 ? 0 : regime == 1 ? 1 : n / 10 + 1;
  for (std::size_t k = 0; k < specials && n > 0; ++k) {
    const std::size_t at = rng() % n;
    switch (rng() % 6) {
      case 0: v[at] = 1e-9; break;      // underflows fp16 / fp8
      case 1: v[at] = -3e-6; break;     // an fp16 subnormal
      case 2: v[at] = 1e6; break;       // overflows (or saturates)
      case 3: v[at] = -INFINITY; break;
      case 4: v[at] = NAN; break;
      default: v[at] = 1e-40; break;    // below float32's normals too
    }
  }
  return v;
}

void expect_same(const RoundingEffects& got, const RoundingEffects& want, const std::string& at) {
  EXPECT_EQ(got.elements, want.elements) << at;
  EXPECT_EQ(got.underflow, want.underflow) << at;
  EXPECT_EQ(got.subnormal, want.subnormal) << at;
  EXPECT_EQ(got.overflow, want.overflow) << at;
  EXPECT_EQ(got.saturated, want.saturated) << at;
}

}  // namespace

TEST(RoundArray, EveryCountKernelMatchesTheDefinitions) {
  const Format formats[] = {fp16(), bf16(), e5m2(), e4m3fn(), fp16().with_overflow(Overflow::saturate)};
  std::mt19937_64 rng(7);
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    const simd::RoundKernels& k = simd::kernels_for(isa);
    for (const Format& f : formats)
      for (std::size_t n : {0, 1, 63, 64, 65, 200, 1000, 4096})
        for (int regime = 0; regime < 4; ++regime) {
          const std::string at = std::string(to_string(isa)) + " " + f.name + " n=" + std::to_string(n) +
                                 " regime=" + std::to_string(regime);
          const std::vector<double> wide = effect_inputs(rng, n, regime);
          std::vector<float> narrow(n), from_narrow(n), from_wide(n);
          std::vector<double> wide_rounded(n);
          for (std::size_t i = 0; i < n; ++i) narrow[i] = static_cast<float>(wide[i]);
          round_array(narrow, from_narrow, f, Rounding::nearest_even);
          round_array(wide, from_wide, f, Rounding::nearest_even);
          round_array(wide, wide_rounded, f, Rounding::nearest_even);
          RoundingEffects got;
          k.count_float_float(narrow.data(), from_narrow.data(), n, f.min_normal(), f.max_finite(), &got);
          expect_same(got, reference_effects(narrow, from_narrow, f), at + " float->float");
          k.count_double_float(wide.data(), from_wide.data(), n, f.min_normal(), f.max_finite(), &got);
          expect_same(got, reference_effects(wide, from_wide, f), at + " double->float");
          k.count_double_double(wide.data(), wide_rounded.data(), n, f.min_normal(), f.max_finite(), &got);
          expect_same(got, reference_effects(wide, wide_rounded, f), at + " double->double");
        }
  }
}

// The block checks look at 16 or more values at once: a zero from a nonzero among zeros from zeros (the ReLU case)
// must be seen in every position of a block, whichever lanes its neighbours occupy.
TEST(RoundArray, EveryCountKernelSeesOneUnderflowAmongZerosAtEveryPosition) {
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    const simd::RoundKernels& k = simd::kernels_for(isa);
    for (std::size_t at = 0; at < 128; ++at) {
      std::vector<double> wide(128, 0.0);
      wide[at] = 1e-9;  // rounds to zero in fp16
      std::vector<float> narrow(wide.begin(), wide.end()), zeros(128, 0.0f);
      std::vector<double> wide_zeros(128, 0.0);
      const std::string where = std::string(to_string(isa)) + " at " + std::to_string(at);
      RoundingEffects e;
      k.count_float_float(narrow.data(), zeros.data(), 128, fp16().min_normal(), fp16().max_finite(), &e);
      EXPECT_EQ(e.underflow, 1) << where << " float->float";
      k.count_double_float(wide.data(), zeros.data(), 128, fp16().min_normal(), fp16().max_finite(), &e);
      EXPECT_EQ(e.underflow, 1) << where << " double->float";
      k.count_double_double(wide.data(), wide_zeros.data(), 128, fp16().min_normal(), fp16().max_finite(), &e);
      EXPECT_EQ(e.underflow, 1) << where << " double->double";
    }
  }
}

// round_array_counted = round_array, then count_rounding_effects of its input and output: the same results (bit for
// bit), the same counts and the same random draws, in place or not, at and around its chunk edges.
TEST(RoundArray, RoundingAndCountingInOneGoMatchesTheTwoCalls) {
  const Format formats[] = {fp16(), bf16(), e4m3fn(), fp16().with_overflow(Overflow::saturate), make_format(6, 9)};
  std::mt19937_64 rng(11);
  for (const Format& f : formats)
    for (Rounding mode : {Rounding::nearest_even, Rounding::toward_zero, Rounding::stochastic})
      for (std::size_t n : {0, 1, 1023, 1024, 1025, 3000})
        for (int regime = 0; regime < 4; ++regime) {
          const std::string at = f.name + " " + std::string(to_string(mode)) + " n=" + std::to_string(n) +
                                 " regime=" + std::to_string(regime);
          const std::vector<double> wide = effect_inputs(rng, n, regime);
          std::vector<float> narrow(n);
          for (std::size_t i = 0; i < n; ++i) narrow[i] = static_cast<float>(wide[i]);

          RandomStream want_stream(5, 1), got_stream(5, 1), in_place_stream(5, 1);
          std::vector<float> want(n), got(n), in_place = narrow;
          round_array(narrow, want, f, mode, &want_stream);
          const RoundingEffects want_effects = count_rounding_effects(narrow, want, f);
          expect_same(round_array_counted(narrow, got, f, mode, &got_stream), want_effects, at + " float");
          expect_same(round_array_counted(in_place, in_place, f, mode, &in_place_stream), want_effects, at + " in place");
          for (std::size_t i = 0; i < n; ++i) {
            ASSERT_TRUE(same_value(got[i], want[i])) << at << " at " << i;
            ASSERT_TRUE(same_value(in_place[i], want[i])) << at << " in place, at " << i;
          }
          const std::uint64_t next_draw = want_stream.next();  // as many draws taken
          EXPECT_EQ(got_stream.next(), next_draw) << at;
          EXPECT_EQ(in_place_stream.next(), next_draw) << at;

          RandomStream want_wide_stream(6, 2), got_wide_stream(6, 2);
          std::vector<float> want_wide(n), got_wide(n);
          round_array(wide, want_wide, f, mode, &want_wide_stream);
          expect_same(round_array_counted(wide, got_wide, f, mode, &got_wide_stream),
                      count_rounding_effects(wide, want_wide, f), at + " double");
          for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(same_value(got_wide[i], want_wide[i])) << at << " double, at " << i;
          EXPECT_EQ(got_wide_stream.next(), want_wide_stream.next()) << at;
        }
  std::vector<float> a(4), b(3);
  EXPECT_THROW(round_array_counted(a, b, fp16(), Rounding::nearest_even), std::invalid_argument);
}
