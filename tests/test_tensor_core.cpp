// Hopper's bf16, tf32 and FP8 GEMM arithmetic (sim/tensor_core.hpp) against what an H200 computed: every tile of
// mma.sync (bf16 m16n16k16, tf32 m16n16k8; K up to 256 as chains) and every cuBLAS / cuBLASLt GEMM (fp16 and bf16
// torch.mm, FP8 torch._scaled_mm with and without fast accumulation, K up to 4096) of tests/data/hopper_*.npz,
// bit for bit; and the model's own properties (the fp16 path equals the vectorized h100 kernel, FP8 promotion
// matters at long K, bad inputs are named).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <iostream>
#include <map>
#include <random>

#include "sim/npy.hpp"
#include "sim/rounding.hpp"
#include "sim/tensor_core.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;

namespace {

// The values of an oracle input stored as its format's codes (uint8 / uint16) or as float32 (tf32).
std::vector<float> values_of(const NpyArray& a, const Format& f) {
  std::vector<float> out;
  if (a.dtype == DType::float32) {
    const auto v = a.values<float>();
    out.assign(v.begin(), v.end());
  } else if (a.dtype == DType::uint16) {
    for (std::uint16_t code : a.values<std::uint16_t>()) out.push_back(static_cast<float>(decode(code, f)));
  } else {
    for (std::uint8_t code : a.values<std::uint8_t>()) out.push_back(static_cast<float>(decode(code, f)));
  }
  return out;
}

bool same_bits(float x, float y) { return std::bit_cast<std::uint32_t>(x) == std::bit_cast<std::uint32_t>(y); }

struct Case {
  std::string key;
  Format a, b;
  Fp8Accumulation fp8 = Fp8Accumulation::promoted;
};

// Runs every tile of `key` (A (T,M,K), B (T,K,N), C (T,M,N) or zero, D) and counts the outputs that match.
void expect_every_tile(const NpzFile& npz, const Case& c, std::int64_t& checked) {
  const NpyArray a = npz.read(c.key + "_a"), b = npz.read(c.key + "_b"), d = npz.read(c.key + "_d");
  const bool has_c = npz.contains(c.key + "_c");
  const bool tiled = a.shape.size() == 3;
  const std::int64_t tiles = tiled ? a.shape[0] : 1, m = a.shape[tiled ? 1 : 0], k = a.shape[tiled ? 2 : 1],
                     n = b.shape[tiled ? 2 : 1];
  const std::vector<float> av = values_of(a, c.a), bv = values_of(b, c.b);
  const auto dv = d.values<float>();
  std::vector<float> cv;
  if (has_c) {
    const NpyArray carr = npz.read(c.key + "_c");
    cv.assign(carr.values<float>().begin(), carr.values<float>().end());
  }
  const TensorCoreModel model = hopper_model(c.a, c.b, c.fp8);
  int mismatches = 0;
  for (std::int64_t t = 0; t < tiles; ++t) {
    std::vector<float> out(static_cast<std::size_t>(m * n));
    const MatrixView cview = has_c ? MatrixView::row_major(cv.data() + t * m * n, m, n) : MatrixView{};
    tensor_core_gemm(model, MatrixView::row_major(av.data() + t * m * k, m, k), MatrixView::row_major(bv.data() + t * k * n, k, n),
                     cview, out);
    for (std::int64_t i = 0; i < m * n; ++i) {
      const float want = dv[static_cast<std::size_t>(t * m * n + i)];
      if (!same_bits(out[static_cast<std::size_t>(i)], want) && mismatches++ < 3)
        ADD_FAILURE() << c.key << " tile " << t << " [" << i / n << ", " << i % n << "]: " << out[static_cast<std::size_t>(i)]
                      << " against the GPU's " << want << " (" << model.describe() << ")";
      ++checked;
    }
  }
  EXPECT_EQ(mismatches, 0) << c.key;
}

Format format_of(const std::string& prefix) {
  if (prefix == "f16") return fp16();
  if (prefix == "bf16") return bf16();
  if (prefix == "tf32") return tf32();
  return e4m3fn();
}

}  // namespace

TEST(TensorCore, EveryMmaTileOfTheH200BitExact) {
  const NpzFile npz(mpscope::test::data_dir() / "hopper_mma.npz");
  std::int64_t checked = 0;
  for (const char* key : {"bf16_k16", "bf16_k256", "tf32_k8", "tf32_k256"}) {
    const Format f = format_of(std::string(key).substr(0, std::string(key).find('_')));
    expect_every_tile(npz, {key, f, f}, checked);
  }
  EXPECT_EQ(checked, (512 + 32 + 512 + 32) * 256);
}

TEST(TensorCore, EveryCublasGemmOfTheH200BitExact) {
  const NpzFile npz(mpscope::test::data_dir() / "hopper_cublas.npz");
  std::int64_t checked = 0;
  int cases = 0;
  for (const std::string& member : npz.names()) {
    if (!member.ends_with("_d") && !member.ends_with("_d.npy")) continue;
    const std::string key = member.substr(0, member.rfind("_d"));
    const std::string prefix = key.substr(0, key.find('_'));
    Case c{key, format_of(prefix), format_of(prefix)};
    if (prefix == "e5m2e4m3") c.a = e5m2();
    if (key.ends_with("_fast")) c.fp8 = Fp8Accumulation::fast;
    expect_every_tile(npz, c, checked);
    ++cases;
  }
  EXPECT_EQ(cases, 34);  // fp16 and bf16 at 5 K each (32..1024), two FP8 pairs x two accumulations at 6 K (32..4096)
  EXPECT_EQ(checked, cases * 64 * 64);
}

// The generic block loop with fp16 inputs is the vectorized h100 kernel's model: the same bits on random data.
TEST(TensorCore, Fp16ModelEqualsTheH100Kernel) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> mant(-2, 2);
  std::uniform_int_distribution<int> ex(-20, 6);
  const std::int64_t m = 9, n = 7, k = 70;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (auto* v : {&a, &b, &c})
    for (float& x : *v) x = static_cast<float>(round(std::ldexp(mant(rng), ex(rng)), fp16()));
  // (fp16 with saturating overflow is fp16 to the tensor core, but not the exact fp16 the vectorized hand-over
  // checks for: this runs the generic block loop)
  const Format fp16_saturating = fp16().with_overflow(Overflow::saturate);
  const TensorCoreModel generic = hopper_model(fp16_saturating, fp16_saturating);
  std::vector<float> fast(m * n), slow(m * n);
  tensor_core_gemm(generic, MatrixView::row_major(a.data(), m, k), MatrixView::row_major(b.data(), k, n),
                   MatrixView::row_major(c.data(), m, n), fast);
  gemm(Accumulation::h100, MatrixView::row_major(a.data(), m, k), MatrixView::row_major(b.data(), k, n),
       MatrixView::row_major(c.data(), m, n), slow);
  for (std::size_t i = 0; i < fast.size(); ++i) EXPECT_TRUE(same_bits(fast[i], slow[i])) << i;
}

// FP8 fast accumulation keeps 14 bits in its chain: over a long K it drifts from the exact sum; promotion into
// float32 every 128 products bounds that. (The teaching scenario of issue 14 builds on this.)
TEST(TensorCore, Fp8PromotionBoundsTheFastChainsError) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.5, 1.0);
  const std::int64_t m = 4, n = 4, k = 4096;
  std::vector<float> a(m * k), b(k * n);
  for (auto* v : {&a, &b})
    for (float& x : *v) x = static_cast<float>(round(u(rng), e4m3fn()));  // positive: the sum grows large
  std::map<Fp8Accumulation, double> error;
  for (auto acc : {Fp8Accumulation::fast, Fp8Accumulation::promoted}) {
    std::vector<float> d(m * n), exact(m * n);
    tensor_core_gemm(hopper_model(e4m3fn(), e4m3fn(), acc), MatrixView::row_major(a.data(), m, k),
                     MatrixView::row_major(b.data(), k, n), MatrixView{}, d);
    gemm(Accumulation::exact, MatrixView::row_major(a.data(), m, k), MatrixView::row_major(b.data(), k, n), MatrixView{}, exact);
    for (std::size_t i = 0; i < d.size(); ++i) error[acc] = std::max(error[acc], std::fabs(static_cast<double>(d[i]) - exact[i]) / exact[i]);
  }
  std::cout << "K 4096, relative error: fast " << error[Fp8Accumulation::fast] << ", promoted "
            << error[Fp8Accumulation::promoted] << "\n";
  EXPECT_GT(error[Fp8Accumulation::fast], 0.01);     // 14 significant bits cut toward zero, 128 times: ~7% low
  EXPECT_LT(error[Fp8Accumulation::promoted], 1e-4);  // a 14-bit chain over 128 products at a time: ~4e-5
}

TEST(TensorCore, ModelsAndInputErrorsAreNamed) {
  EXPECT_EQ(hopper_model(tf32(), tf32()).block, 4);
  EXPECT_EQ(hopper_model(e5m2(), e4m3fn(), Fp8Accumulation::fast).promote_every, 0);
  EXPECT_EQ(hopper_model(e4m3fn(), e4m3fn()).promote_every, 4);
  const auto message = [](auto f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { hopper_model(e5m2(), e5m2()); }).find("at most one e5m2"), std::string::npos);
  EXPECT_NE(message([] { hopper_model(fp16(), bf16()); }).find("fp16 x bf16"), std::string::npos);
  EXPECT_NE(message([] { hopper_model(fp32(), fp32()); }).find("fp32: no Hopper tensor-core model"), std::string::npos);
  EXPECT_NE(message([] { parse_fp8_accumulation("slow"); }).find("promoted or fast"), std::string::npos);
  std::vector<float> a = {1.0f, 0.1f}, b = {1.0f, 1.0f}, d(1);
  EXPECT_NE(message([&] {
              tensor_core_gemm(hopper_model(bf16(), bf16()), MatrixView::row_major(a.data(), 1, 2),
                               MatrixView::row_major(b.data(), 2, 1), MatrixView{}, d);
            }).find("A[0, 1] = 0.100000 is not a bf16 value"),
            std::string::npos);
}
