// GEMM accumulation models: the h100 model bit-exact on every H100 oracle tile; blocks chain for long K; the
// AVX-512 kernels equal the portable ones; the exact model equals a Boost sum rounded once; fp32 equals a
// sequential fmaf loop; inputs that are not fp16 values are refused with the element named.
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <random>

#include "boost_reference.hpp"
#include "sim/gemm.hpp"
#include "sim/npy.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
using mpscope::test::same_value;

namespace {

std::vector<float> fp16_values(std::span<const std::uint16_t> bits) {
  std::vector<float> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) v[i] = static_cast<float>(decode(bits[i], fp16()));
  return v;
}

// Random fp16 values over a wide exponent range, with zeros and subnormals, like the oracle's inputs.
std::vector<float> random_fp16(std::size_t n, std::mt19937& rng, int max_exponent = 8) {
  std::vector<float> v(n);
  std::uniform_int_distribution<int> kind(0, 9), e(-24, max_exponent);
  for (auto& x : v) {
    const int k = kind(rng);
    if (k == 0) {
      x = 0.0f;
    } else {
      const double m = 1.0 + std::ldexp(static_cast<double>(rng() & 1023), -10);
      x = static_cast<float>(round(std::ldexp(k == 1 ? m - 1.0 : m, e(rng)) * ((rng() & 1) ? -1 : 1), fp16()));
    }
  }
  return v;
}

std::vector<float> run(Accumulation model, const std::vector<float>& a, const std::vector<float>& b,
                       const std::vector<float>& c, std::int64_t m, std::int64_t n, std::int64_t k, Isa isa) {
  std::vector<float> d(static_cast<std::size_t>(m * n));
  const MatrixView cv = c.empty() ? MatrixView{} : MatrixView::row_major(c.data(), m, n);
  gemm(model, MatrixView::row_major(a.data(), m, k), MatrixView::row_major(b.data(), k, n), cv, d, isa);
  return d;
}

std::vector<Isa> isas() {
  std::vector<Isa> v = {Isa::portable};
  if (isa_supported(Isa::avx512)) v.push_back(Isa::avx512);
  return v;
}

TEST(GemmH100, EveryOracleTileBitExact) {
  const NpzFile npz(mpscope::test::data_dir() / "h100_mma_k16.npz");
  const NpyArray a_bits = npz.read("a"), b_bits = npz.read("b"), c_arr = npz.read("c"), crc_arr = npz.read("d_crc32");
  const std::vector<float> a = fp16_values(a_bits.values<std::uint16_t>()), b = fp16_values(b_bits.values<std::uint16_t>());
  const auto c = c_arr.values<float>();
  const auto crc = crc_arr.values<std::uint32_t>();
  ASSERT_EQ(crc.size(), 2048u);

  for (Isa isa : isas()) {
    for (std::size_t t = 0; t < 2048; ++t) {
      std::vector<float> tile_a(a.begin() + t * 256, a.begin() + (t + 1) * 256);
      std::vector<float> tile_b(b.begin() + t * 256, b.begin() + (t + 1) * 256);
      std::vector<float> tile_c(c.begin() + t * 256, c.begin() + (t + 1) * 256);
      const std::vector<float> d = run(Accumulation::h100, tile_a, tile_b, tile_c, 16, 16, 16, isa);
      const auto got = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(d.data()), 1024));
      ASSERT_EQ(got, crc[t]) << to_string(isa) << ": tile " << t << " differs from the H100's";
    }
  }
}

// K = 256 is 16 blocks chained: the same as feeding each block's result to the next one as C.
TEST(GemmH100, LongKChainsBlocksInOrder) {
  std::mt19937 rng(1);
  const std::int64_t m = 8, n = 24, k = 256;
  const std::vector<float> a = random_fp16(m * k, rng), b = random_fp16(k * n, rng);
  std::vector<float> c = random_fp16(m * n, rng);
  for (Isa isa : isas()) {
    const std::vector<float> whole = run(Accumulation::h100, a, b, c, m, n, k, isa);
    std::vector<float> chained = c;
    for (std::int64_t k0 = 0; k0 < k; k0 += 16) {
      std::vector<float> ab(m * 16), bb(16 * n);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t kk = 0; kk < 16; ++kk) ab[i * 16 + kk] = a[i * k + k0 + kk];
      for (std::int64_t kk = 0; kk < 16; ++kk)
        for (std::int64_t j = 0; j < n; ++j) bb[kk * n + j] = b[(k0 + kk) * n + j];
      chained = run(Accumulation::h100, ab, bb, chained, m, n, 16, isa);
    }
    for (std::size_t i = 0; i < whole.size(); ++i) ASSERT_TRUE(same_value(whole[i], chained[i])) << i;
    // and it is not the exact answer: truncation shows over 16 blocks
    const std::vector<float> exact = run(Accumulation::exact, a, b, c, m, n, k, Isa::portable);
    int differ = 0;
    for (std::size_t i = 0; i < whole.size(); ++i) differ += whole[i] != exact[i];
    EXPECT_GT(differ, 0);
  }
}

// (On a CPU without AVX-512 there is no second kernel to compare: only the portable one runs.)
TEST(Gemm, Avx512KernelsEqualPortableOnAwkwardShapes) {
  std::mt19937 rng(7);
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, std::tuple{5, 17, 33}, std::tuple{16, 16, 16}, std::tuple{7, 40, 100},
                         std::tuple{33, 3, 257}}) {
    const std::vector<float> a = random_fp16(m * k, rng, 14), b = random_fp16(k * n, rng, 14);
    const std::vector<float> c = random_fp16(m * n, rng, 14);
    for (Accumulation model : {Accumulation::h100, Accumulation::fp32}) {
      for (const std::vector<float>* cc : {&c, static_cast<const std::vector<float>*>(nullptr)}) {
        const std::vector<float> empty;
        const auto p = run(model, a, b, cc ? *cc : empty, m, n, k, Isa::portable);
        for (Isa isa : isas()) {
          const auto v = run(model, a, b, cc ? *cc : empty, m, n, k, isa);
          for (std::size_t i = 0; i < p.size(); ++i)
            ASSERT_TRUE(same_value(p[i], v[i])) << to_string(model) << " " << to_string(isa) << " " << m << "x" << n
                                                << "x" << k << " at " << i;
        }
      }
    }
  }
}

TEST(Gemm, ExactModelIsTheBoostSumRoundedOnce) {
  std::mt19937 rng(3);
  const std::int64_t m = 6, n = 5, k = 300;
  const std::vector<float> a = random_fp16(m * k, rng, 15), b = random_fp16(k * n, rng, 15);
  std::vector<float> c = random_fp16(m * n, rng, 15);
  c[0] = 1e-40f;  // a float32 subnormal C
  c[1] = 3e38f;
  const std::vector<float> d = run(Accumulation::exact, a, b, c, m, n, k, Isa::portable);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      mpscope::test::Big sum = c[i * n + j];
      for (std::int64_t kk = 0; kk < k; ++kk) sum += mpscope::test::Big(a[i * k + kk]) * mpscope::test::Big(b[kk * n + j]);
      const double want = mpscope::test::reference_round({sum}, fp32(), Rounding::nearest_even);
      ASSERT_TRUE(same_value(static_cast<double>(d[i * n + j]), want)) << i << "," << j;
    }
}

TEST(Gemm, Fp32ModelIsSequentialFma) {
  std::mt19937 rng(4);
  const std::int64_t m = 9, n = 21, k = 70;
  const std::vector<float> a = random_fp16(m * k, rng, 15), b = random_fp16(k * n, rng, 15), c = random_fp16(m * n, rng);
  for (Isa isa : isas()) {
    const std::vector<float> d = run(Accumulation::fp32, a, b, c, m, n, k, isa);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        float acc = c[i * n + j];
        for (std::int64_t kk = 0; kk < k; ++kk) acc = std::fmaf(a[i * k + kk], b[kk * n + j], acc);
        ASSERT_TRUE(same_value(d[i * n + j], acc));
      }
  }
}

// fp32 and exact take any float32 inputs (bf16, fp8 and fp32 lanes use them); only h100 insists on fp16.
TEST(Gemm, Fp32AndExactTakeAnyFloat32Inputs) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t m = 5, n = 19, k = 40;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (auto& x : a) x = normal(rng) * 1e-20f;  // products near float32's subnormal range
  for (auto& x : b) x = normal(rng) * 1e-19f;
  for (auto& x : c) x = normal(rng) * 1e-39f;
  for (Isa isa : isas()) {
    const std::vector<float> d = run(Accumulation::fp32, a, b, c, m, n, k, isa);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        float acc = c[i * n + j];
        for (std::int64_t kk = 0; kk < k; ++kk) acc = std::fmaf(a[i * k + kk], b[kk * n + j], acc);
        ASSERT_TRUE(same_value(d[i * n + j], acc)) << to_string(isa);
      }
  }
  const std::vector<float> d = run(Accumulation::exact, a, b, c, m, n, k, Isa::portable);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      mpscope::test::Big sum = c[i * n + j];
      for (std::int64_t kk = 0; kk < k; ++kk) sum += mpscope::test::Big(a[i * k + kk]) * mpscope::test::Big(b[kk * n + j]);
      ASSERT_TRUE(same_value(static_cast<double>(d[i * n + j]),
                             mpscope::test::reference_round({sum}, fp32(), Rounding::nearest_even)));
    }
  EXPECT_THROW(run(Accumulation::h100, a, b, c, m, n, k, Isa::portable), std::invalid_argument);
}

TEST(Gemm, NonFiniteInputsFollowIeee) {
  const std::vector<float> a = {INFINITY, 1.0f, 0.0f, 2.0f}, b = {1.0f, 0.0f};  // (2,2) x (2,1)
  for (Accumulation model : {Accumulation::h100, Accumulation::exact, Accumulation::fp32}) {
    for (Isa isa : isas()) {
      const auto d = run(model, a, b, {}, 2, 1, 2, isa);
      EXPECT_EQ(d[0], INFINITY) << to_string(model);
      EXPECT_EQ(d[1], 0.0f) << to_string(model);
      const std::vector<float> a2 = {INFINITY, 1.0f, 0.0f, 2.0f};
      const std::vector<float> b2 = {0.0f, 1.0f};  // inf * 0 = NaN
      EXPECT_TRUE(std::isnan(run(model, a2, b2, {}, 2, 1, 2, isa)[0])) << to_string(model);
      const std::vector<float> c = {NAN, 1.0f};
      EXPECT_TRUE(std::isnan(run(model, a, b, c, 2, 1, 2, isa)[0])) << to_string(model);
    }
  }
}

TEST(Gemm, ViewsTransposeWithoutCopies) {
  std::mt19937 rng(5);
  const std::vector<float> a = random_fp16(4 * 6, rng), w = random_fp16(3 * 6, rng);  // x (4,6), W (3,6)
  std::vector<float> y(4 * 3), wt(6 * 3);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 6; ++c) wt[c * 3 + r] = w[r * 6 + c];
  gemm(Accumulation::h100, MatrixView::row_major(a.data(), 4, 6), MatrixView::row_major(w.data(), 3, 6).transposed(),
       MatrixView{}, y);
  EXPECT_EQ(y, run(Accumulation::h100, a, wt, {}, 4, 3, 6, Isa::portable));
}

TEST(Gemm, RefusesInputsThatAreNotFp16) {
  const std::vector<float> a = {1.0f, 0.1f, 2.0f, 3.0f}, b = {1.0f, 1.0f};
  std::vector<float> d(2);
  try {
    gemm(Accumulation::h100, MatrixView::row_major(a.data(), 2, 2), MatrixView::row_major(b.data(), 2, 1), {}, d);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("A[0, 1]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gemm(Accumulation::fp32, MatrixView::row_major(b.data(), 1, 2), MatrixView::row_major(b.data(), 1, 2),
                    {}, d),
               std::invalid_argument);  // inner dimensions differ
  EXPECT_EQ(first_non_representable(MatrixView::row_major(a.data(), 2, 2), fp16()), 1);
  EXPECT_EQ(parse_accumulation("h100"), Accumulation::h100);
  EXPECT_THROW(parse_accumulation("tf32"), std::invalid_argument);
}

}  // namespace
