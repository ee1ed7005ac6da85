// GPU kernels one by one against their CPU twins and the oracles: casts against PyTorch's on every oracle input
// (with their rounding counts and histograms against sim's and analysis' code), histograms of arbitrary bit
// patterns, the mma.sync GEMM against the H100's tiles and the CPU h100 model, the FMA GEMM against the CPU fp32
// model, the device loss scaler against GradScaler's traces, the optimizer kernel against sim::ParamOptimizer,
// bias-gradient sums against the CPU's order, FP8 quantization and delayed scaling against RoundedOps and
// sim::DelayedScaling.
#include <zlib.h>

#include <bit>
#include <cstring>
#include <fstream>
#include <random>

#include "gpu/blas.cuh"
#include "gpu/buffer.cuh"
#include "gpu/fp8.cuh"
#include "gpu/kernels.cuh"
#include "gpu/stats_host.hpp"
#include "gpu_support.hpp"
#include "sim/gemm.hpp"
#include "sim/loss_scaler.hpp"
#include "sim/npy.hpp"
#include "sim/optimizer.hpp"
#include "sim/round_array.hpp"
#include "sim/rounding.hpp"

using namespace mpscope;
using gpu::DeviceBuffer;
using gpu::DeviceEffects;
using gpu::DeviceHistogram;
using gpu::PointStats;

namespace {

template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& v) {
  DeviceBuffer<T> d(v.size());
  d.upload(v, nullptr);
  return d;
}

// Values of T from float values that T holds exactly (a cast on the device, exact for them).
template <typename T>
DeviceBuffer<T> device_values(const std::vector<float>& values) {
  const DeviceBuffer<float> staging = to_device(values);
  DeviceBuffer<T> out(values.size());
  gpu::kernels::cast<float, T>(staging.get(), out.get(), values.size(), PointStats{}, nullptr);
  return out;
}
template <typename T>
std::vector<float> host_values(const DeviceBuffer<T>& d) {
  DeviceBuffer<float> wide(d.size());
  gpu::kernels::cast<T, float>(d.get(), wide.get(), d.size(), PointStats{}, nullptr);
  return wide.download(nullptr);
}

// Statistics buffers of one point, zeroed.
struct PointBuffers {
  DeviceBuffer<DeviceEffects> fx{1};
  DeviceBuffer<DeviceHistogram> hist{1};
  DeviceBuffer<int> flag{1};
  PointBuffers() {
    fx.zero(nullptr);
    hist.zero(nullptr);
    flag.zero(nullptr);
  }
  PointStats stats() const { return {fx.get(), hist.get(), flag.get()}; }
  sim::RoundingEffects effects() const { return gpu::to_effects(fx.download(nullptr)[0]); }
  analysis::Log2Histogram histogram() const { return gpu::to_histogram(hist.download(nullptr)[0]); }
  bool raised() const { return flag.download(nullptr)[0] != 0; }
};

std::string text(const sim::RoundingEffects& e) {
  return "elements " + std::to_string(e.elements) + " underflow " + std::to_string(e.underflow) + " subnormal " +
         std::to_string(e.subnormal) + " overflow " + std::to_string(e.overflow) + " saturated " + std::to_string(e.saturated);
}

// Random fp16 values over a wide exponent range (zeros and subnormals included), as float.
std::vector<float> random_fp16(std::size_t n, std::mt19937& rng, int lo = -20, int hi = 6) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(normal(rng), exponent(rng));
  for (std::size_t i = 0; i < n; i += 17) v[i] = 0.0f;
  sim::round_array(std::span<const float>(v), std::span<float>(v), sim::fp16(), sim::Rounding::nearest_even);
  return v;
}

template <typename T>
void check_oracle_cast(const sim::Format& format, const char* key) {
  const sim::NpzFile npz(gputest::data_dir() / "rounding_public.npz");
  const sim::NpyArray in = npz.read("input_f32"), want = npz.read(key);
  const std::vector<float> input(in.values<float>().begin(), in.values<float>().end());
  const std::vector<float> expected(want.values<float>().begin(), want.values<float>().end());
  const DeviceBuffer<float> d_in = to_device(input);
  DeviceBuffer<T> out(input.size());
  PointBuffers p;
  gpu::kernels::cast<float, T>(d_in.get(), out.get(), input.size(), p.stats(), nullptr);
  const std::vector<float> got = host_values(out);
  for (std::size_t i = 0; i < input.size(); ++i)
    ASSERT_TRUE(gputest::same_bits(got[i], expected[i])) << key << " input " << std::hexfloat << input[i] << ": " << got[i]
                                                         << " vs PyTorch " << expected[i];
  EXPECT_EQ(text(p.effects()), text(sim::count_rounding_effects(std::span<const float>(input), std::span<const float>(expected), format)));
  EXPECT_TRUE(p.histogram() == analysis::Log2Histogram::of(std::span<const float>(expected)));
  EXPECT_TRUE(p.raised());  // the inputs hold infinities and NaNs
}

TEST(GpuKernels, CastsMatchPyTorchOnEveryOracleInputWithCpuCounts) {
  MPSCOPE_REQUIRE_GPU();
  check_oracle_cast<__half>(sim::fp16(), "f16");
  check_oracle_cast<__nv_bfloat16>(sim::bf16(), "bf16");
}

TEST(GpuKernels, HistogramsMatchTheCpuOnArbitraryBitPatterns) {
  MPSCOPE_REQUIRE_GPU();
  std::mt19937 rng(5);
  std::vector<float> values(1 << 20);
  for (float& v : values) {
    const std::uint32_t bits = rng();
    std::memcpy(&v, &bits, 4);
  }
  values[0] = 0.0f, values[1] = -0.0f, values[2] = std::numeric_limits<float>::infinity();
  values[3] = std::numeric_limits<float>::denorm_min(), values[4] = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t i = 5; i < 5000; ++i) values[i] = std::ldexp(1.0f, -140) * static_cast<float>(i);  // subnormals
  const DeviceBuffer<float> d = to_device(values);
  PointBuffers p;
  gpu::kernels::histogram<float>(d.get(), values.size(), p.hist.get(), nullptr);
  EXPECT_TRUE(p.histogram() == analysis::Log2Histogram::of(std::span<const float>(values)));

  const std::vector<float> halves = random_fp16(100000, rng, -30, 15);
  PointBuffers q;
  const DeviceBuffer<__half> h = device_values<__half>(halves);
  gpu::kernels::histogram<__half>(h.get(), halves.size(), q.hist.get(), nullptr);
  EXPECT_TRUE(q.histogram() == analysis::Log2Histogram::of(std::span<const float>(halves)));
}

// Row-major (rows, cols) stored matrix as op(X) of the given shape.
sim::MatrixView view(const std::vector<float>& x, bool trans, std::int64_t rows, std::int64_t cols) {
  return trans ? sim::MatrixView::row_major(x.data(), cols, rows).transposed() : sim::MatrixView::row_major(x.data(), rows, cols);
}

TEST(GpuKernels, MmaGemmReproducesEveryH100OracleTile) {
  MPSCOPE_REQUIRE_GPU();
  const sim::NpzFile npz(gputest::data_dir() / "h100_mma_k16.npz");
  const auto a_bits = npz.read("a"), b_bits = npz.read("b"), c_arr = npz.read("c"), crc_arr = npz.read("d_crc32");
  const auto abits = a_bits.values<std::uint16_t>(), bbits = b_bits.values<std::uint16_t>();
  const auto c = c_arr.values<float>();
  const auto crc = crc_arr.values<std::uint32_t>();
  std::vector<__half> a(abits.size()), b(bbits.size());
  std::memcpy(a.data(), abits.data(), abits.size() * 2);
  std::memcpy(b.data(), bbits.data(), bbits.size() * 2);
  const DeviceBuffer<__half> da = to_device(a), db = to_device(b);
  const DeviceBuffer<float> dc = to_device(std::vector<float>(c.begin(), c.end()));
  DeviceBuffer<float> dd(dc.size());
  for (std::size_t t = 0; t < 2048; ++t)
    gpu::kernels::gemm_mma_fp16(false, false, 16, 16, 16, da.get() + t * 256, 16, db.get() + t * 256, 16, dc.get() + t * 256,
                                dd.get() + t * 256, nullptr);
  const std::vector<float> d = dd.download(nullptr);
  for (std::size_t t = 0; t < 2048; ++t) {
    const auto got = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(d.data() + t * 256), 1024));
    ASSERT_EQ(got, crc[t]) << "tile " << t << " differs from the H100's";
  }
}

TEST(GpuKernels, MmaGemmMatchesTheCpuH100ModelForAnyShape) {
  MPSCOPE_REQUIRE_GPU();
  std::mt19937 rng(9);
  for (const auto [m, n, k] : {std::tuple{37, 29, 100}, std::tuple{16, 8, 16}, std::tuple{64, 48, 256}, std::tuple{5, 3, 7}}) {
    for (int flags = 0; flags < 4; ++flags) {
      const bool ta = flags & 1, tb = flags & 2;
      const std::vector<float> a = random_fp16(static_cast<std::size_t>(m * k), rng), b = random_fp16(static_cast<std::size_t>(k * n), rng);
      std::vector<float> want(static_cast<std::size_t>(m * n));
      sim::gemm(sim::Accumulation::h100, view(a, ta, m, k), view(b, tb, k, n), sim::MatrixView{}, want);
      const DeviceBuffer<__half> da = device_values<__half>(a), db = device_values<__half>(b);
      DeviceBuffer<float> dd(want.size());
      gpu::kernels::gemm_mma_fp16(ta, tb, m, n, k, da.get(), ta ? m : k, db.get(), tb ? k : n, nullptr, dd.get(), nullptr);
      const std::vector<float> got = dd.download(nullptr);
      for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_TRUE(gputest::same_bits(got[i], want[i])) << m << "x" << n << "x" << k << " ta " << ta << " tb " << tb
                                                         << " element " << i << std::hexfloat << ": " << got[i] << " vs " << want[i];
    }
  }
}

template <typename T>
void check_fma_gemm(const sim::Format& format) {
  std::mt19937 rng(13);
  for (const auto [m, n, k] : {std::tuple{37, 29, 100}, std::tuple{3, 70, 5}}) {
    for (int flags = 0; flags < 4; ++flags) {
      const bool ta = flags & 1, tb = flags & 2;
      std::vector<float> a = random_fp16(static_cast<std::size_t>(m * k), rng), b = random_fp16(static_cast<std::size_t>(k * n), rng);
      for (float& x : a) x *= 1.3f;  // (not fp16 values for the float and bf16 cases)
      sim::round_array(std::span<const float>(a), std::span<float>(a), format, sim::Rounding::nearest_even);
      sim::round_array(std::span<const float>(b), std::span<float>(b), format, sim::Rounding::nearest_even);
      std::vector<float> want(static_cast<std::size_t>(m * n));
      sim::gemm(sim::Accumulation::fp32, view(a, ta, m, k), view(b, tb, k, n), sim::MatrixView{}, want);
      const DeviceBuffer<T> da = device_values<T>(a), db = device_values<T>(b);
      DeviceBuffer<float> dd(want.size());
      gpu::kernels::gemm_fma<T>(ta, tb, m, n, k, da.get(), ta ? m : k, db.get(), tb ? k : n, dd.get(), nullptr);
      const std::vector<float> got = dd.download(nullptr);
      for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_TRUE(gputest::same_bits(got[i], want[i])) << format.name << " " << m << "x" << n << "x" << k << " element " << i;
    }
  }
}

TEST(GpuKernels, FmaGemmMatchesTheCpuFp32Model) {
  MPSCOPE_REQUIRE_GPU();
  check_fma_gemm<float>(sim::fp32());
  check_fma_gemm<__half>(sim::fp16());
  check_fma_gemm<__nv_bfloat16>(sim::bf16());
}

TEST(GpuKernels, DeviceLossScalerReproducesGradScalerTraces) {
  MPSCOPE_REQUIRE_GPU();
  const sim::NpzFile npz(gputest::data_dir() / "rounding_public.npz");
  for (const auto& [prefix, interval] : {std::pair{"scaler_gi2000", 2000}, std::pair{"scaler_gi7", 7}}) {
    const auto found = npz.read(std::string(prefix) + "_overflow");
    const auto want = npz.read(std::string(prefix) + "_scale_after");
    std::vector<int> flags(found.values<std::uint8_t>().begin(), found.values<std::uint8_t>().end());
    gpu::kernels::DeviceScaler s{};
    s.type = 2;
    s.scale = 65536.0f;
    s.inv_scale = 1.0f / 65536.0f;
    s.growth_factor = 2.0, s.backoff_factor = 0.5, s.min_scale = 0.0, s.max_scale = std::numeric_limits<double>::infinity();
    s.growth_interval = interval;
    s.hysteresis = s.hysteresis_tracker = 1;
    DeviceBuffer<gpu::kernels::DeviceScaler> ds(1);
    ds.upload(&s, 1, nullptr);
    const DeviceBuffer<int> df = to_device(flags);
    DeviceBuffer<float> after(flags.size());
    gpu::kernels::scaler_trace(ds.get(), df.get(), static_cast<int>(flags.size()), after.get(), nullptr);
    const std::vector<float> got = after.download(nullptr);
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(static_cast<double>(got[i]), want.values<double>()[i]) << prefix << " step " << i;
  }
}

// The optimizer kernel against sim::ParamOptimizer: every optimizer, float32 masters (fp32 and AMP: fp16
// gradients unscaled into float32) and fp16 masters (fp16-pure, every operation rounded to fp16).
template <typename G, typename M>
void check_optimizer(const sim::OptimizerConfig& config, float scale, const char* what) {
  constexpr bool fp16_master = std::is_same_v<M, __half>;
  constexpr bool master_gradients = !fp16_master;
  const sim::Format master_format = fp16_master ? sim::fp16() : sim::fp32();
  const sim::Format grad_format = std::is_same_v<G, float> ? sim::fp32() : std::is_same_v<G, __half> ? sim::fp16() : sim::bf16();
  std::mt19937 rng(21);
  const std::size_t n = 5000;
  std::vector<float> p = random_fp16(n, rng, -4, 2), g;
  const float inv = static_cast<float>(1.0 / static_cast<double>(scale));
  sim::ParamOptimizer<float> reference(config, n);
  sim::FormatArith arith;
  arith.format = master_format;
  DeviceBuffer<M> dp = device_values<M>(p), b1(n), b2(n);
  b1.zero(nullptr);
  b2.zero(nullptr);
  DeviceBuffer<G> copy(n);
  gpu::kernels::DeviceScaler s{};
  s.inv_scale = s.inv_scale_used = inv;
  DeviceBuffer<gpu::kernels::DeviceScaler> ds(1);
  ds.upload(&s, 1, nullptr);
  DeviceBuffer<gpu::kernels::OptimizerConstants> dc(1);
  DeviceBuffer<unsigned long long> lost(1);
  for (int t = 1; t <= 5; ++t) {
    // gradients: some tiny (their updates are lost in fp16 masters), as produced in G, times the scale
    g = random_fp16(n, rng, t % 2 ? -30 : -8, 0);
    for (float& x : g) x *= scale;
    sim::round_array(std::span<const float>(g), std::span<float>(g), grad_format, sim::Rounding::nearest_even);
    std::vector<float> unscaled(n);
    if (master_gradients) {
      for (std::size_t i = 0; i < n; ++i) unscaled[i] = g[i] * inv;
    } else {
      std::vector<double> wide(n);
      for (std::size_t i = 0; i < n; ++i) wide[i] = static_cast<double>(g[i]) * static_cast<double>(inv);
      sim::round_array(std::span<const double>(wide), std::span<float>(unscaled), grad_format, sim::Rounding::nearest_even);
    }
    const std::int64_t lost_want = reference.step(std::span<float>(p), std::span<const float>(unscaled), config.lr, arith);
    const DeviceBuffer<G> dg = device_values<G>(g);
    const gpu::kernels::OptimizerConstants k = gpu::kernels::optimizer_constants(config, config.lr, t);
    dc.upload(&k, 1, nullptr);
    lost.zero(nullptr);
    PointBuffers cast;
    gpu::kernels::OptimizerTensors<G, M, G> tensors;
    tensors.t[0] = {dp.get(), dg.get(), b1.get(), b2.get(), std::is_same_v<M, G> ? nullptr : copy.get(), n, cast.stats(), nullptr};
    tensors.count = 1;
    gpu::kernels::optimizer_step<G, M, G>(tensors, dc.get(), ds.get(), master_gradients ? 1 : 0, lost.get(), nullptr);
    const std::vector<float> got = host_values(dp);
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_TRUE(gputest::same_bits(got[i], p[i])) << what << " step " << t << " element " << i << ": " << got[i] << " vs " << p[i];
    EXPECT_EQ(static_cast<std::int64_t>(lost.download(nullptr)[0]), lost_want) << what << " step " << t;
    EXPECT_TRUE(cast.histogram() == analysis::Log2Histogram::of(std::span<const float>(p))) << what;
    if constexpr (!std::is_same_v<M, G>) {  // the compute copy: the parameters rounded to G, counted
      std::vector<float> rounded(n);
      sim::round_array(std::span<const float>(p), std::span<float>(rounded), grad_format, sim::Rounding::nearest_even);
      const std::vector<float> c = host_values(copy);
      for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(gputest::same_bits(c[i], rounded[i])) << what << " copy " << i;
      EXPECT_EQ(text(cast.effects()),
                text(sim::count_rounding_effects(std::span<const float>(p), std::span<const float>(rounded), grad_format)));
    }
  }
  // a skipped step changes nothing and loses nothing
  s.skipped = 1;
  ds.upload(&s, 1, nullptr);
  lost.zero(nullptr);
  const std::vector<float> before = host_values(dp);
  const DeviceBuffer<G> dg = device_values<G>(g);
  gpu::kernels::OptimizerTensors<G, M, G> tensors;
  tensors.t[0] = {dp.get(), dg.get(), b1.get(), b2.get(), std::is_same_v<M, G> ? nullptr : copy.get(), n, PointStats{}, nullptr};
  tensors.count = 1;
  gpu::kernels::optimizer_step<G, M, G>(tensors, dc.get(), ds.get(), master_gradients ? 1 : 0, lost.get(), nullptr);
  const std::vector<float> after = host_values(dp);  // (fp16 Adam with eps 1e-8, which fp16 flushes to 0, makes NaNs)
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(gputest::same_bits(after[i], before[i])) << what << " skipped, element " << i;
  EXPECT_EQ(lost.download(nullptr)[0], 0u) << what;
}

TEST(GpuKernels, OptimizerMatchesParamOptimizerBitForBit) {
  MPSCOPE_REQUIRE_GPU();
  using Type = sim::OptimizerConfig::Type;
  std::vector<std::pair<std::string, sim::OptimizerConfig>> configs;
  sim::OptimizerConfig c;
  c.lr = 0.05;
  configs.emplace_back("sgd", c);
  c.momentum = 0.9, c.dampening = 0.1, c.weight_decay = 1e-3;
  configs.emplace_back("sgd momentum dampening wd", c);
  c.dampening = 0, c.nesterov = true;
  configs.emplace_back("sgd nesterov", c);
  sim::OptimizerConfig adam;
  adam.type = Type::adam, adam.lr = 1e-3;
  configs.emplace_back("adam", adam);
  adam.weight_decay = 1e-2;
  configs.emplace_back("adam wd", adam);
  adam.type = Type::adamw;
  configs.emplace_back("adamw", adam);
  for (const auto& [name, config] : configs) {
    check_optimizer<float, float>(config, 1.0f, (name + " fp32").c_str());
    check_optimizer<__half, float>(config, 1024.0f, (name + " fp16-amp").c_str());
    check_optimizer<__nv_bfloat16, float>(config, 1.0f, (name + " bf16-amp").c_str());
    check_optimizer<__half, __half>(config, 8.0f, (name + " fp16-pure").c_str());
  }
}

TEST(GpuKernels, BiasGradientSumsFollowTheCpuOrder) {
  MPSCOPE_REQUIRE_GPU();
  std::mt19937 rng(3);
  const std::int64_t rows = 300, cols = 70;
  const std::vector<float> dz = random_fp16(static_cast<std::size_t>(rows * cols), rng, -16, 4);
  std::vector<double> sums(static_cast<std::size_t>(cols), 0.0);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) sums[static_cast<std::size_t>(j)] += dz[static_cast<std::size_t>(i * cols + j)];
  std::vector<float> want(sums.size());
  sim::round_array(std::span<const double>(sums), std::span<float>(want), sim::fp16(), sim::Rounding::nearest_even);
  const DeviceBuffer<__half> d = device_values<__half>(dz);
  gpu::kernels::DeviceScaler s{};
  s.inv_scale = 0.5f;
  DeviceBuffer<gpu::kernels::DeviceScaler> ds(1);
  ds.upload(&s, 1, nullptr);
  DeviceBuffer<double> partials(gpu::kernels::grad_partial_slots);
  partials.zero(nullptr);
  DeviceBuffer<__half> db(static_cast<std::size_t>(cols));
  PointBuffers p;
  gpu::kernels::column_sums<__half>(d.get(), db.get(), rows, cols, p.stats(),
                                    gpu::kernels::GradCheck{ds.get(), partials.get(), 1, PointStats{}}, nullptr);
  const std::vector<float> got = host_values(db);
  double squares = 0;
  for (std::size_t j = 0; j < want.size(); ++j) {
    const float unscaled = want[j] * 0.5f;
    squares += static_cast<double>(unscaled) * unscaled;
    ASSERT_TRUE(gputest::same_bits(got[j], want[j])) << "column " << j << ": " << got[j] << " vs " << want[j];
  }
  const std::vector<double> parts = partials.download(nullptr);
  double total = 0;
  for (double v : parts) total += v;
  EXPECT_NEAR(total, squares, 1e-12 * squares);
  EXPECT_TRUE(p.histogram() == analysis::Log2Histogram::of(std::span<const float>(got)));
  EXPECT_EQ(text(p.effects()),
            text(sim::count_rounding_effects(std::span<const double>(sums), std::span<const float>(want), sim::fp16())));
  EXPECT_EQ(ds.download(nullptr)[0].found_inf, 0);
}

}  // namespace

namespace {

// Oracle inputs (infinities, NaNs, ties, subnormal boundaries) and random values over a wide range of exponents.
std::vector<float> fp8_inputs() {
  const sim::NpzFile npz(gputest::data_dir() / "rounding_public.npz");
  const sim::NpyArray in = npz.read("input_f32");
  std::vector<float> v(in.values<float>().begin(), in.values<float>().end());
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 20);
  for (int i = 0; i < 20000; ++i) v.push_back(std::ldexp(normal(rng), exponent(rng)));
  for (float x : {448.0f, 449.0f, 464.0f, 465.0f, 480.0f, 57344.0f, 61440.0f, 61441.0f, 0x1p-9f, 0x1p-10f, 0x1.8p-10f,
                  0x1p-16f, 0x1p-17f, 0x1.8p-17f, -0.0f})
    v.push_back(x);
  return v;
}

}  // namespace

// RoundedOps::quantize: q = round_sat(x * scale), its effects, inf/NaN flag and amax; float values (exact mode) and
// padded FP8 bytes with their transpose (fast mode).
TEST(GpuKernels, Fp8QuantizeMatchesTheCpuCastWithScaleAndAmax) {
  MPSCOPE_REQUIRE_GPU();
  const std::vector<float> input = fp8_inputs();
  const DeviceBuffer<float> d_in = to_device(input);
  for (const gpu::Fp8Kind kind : {gpu::Fp8Kind::e4m3, gpu::Fp8Kind::e5m2}) {
    const sim::Format format =
        (kind == gpu::Fp8Kind::e4m3 ? sim::e4m3fn() : sim::e5m2()).with_overflow(sim::Overflow::saturate);
    for (const float scale : {1.0f, 0.37f, 1024.0f}) {
      SCOPED_TRACE(format.name + " scale " + std::to_string(scale));
      std::vector<float> scaled(input.size()), want(input.size());
      double amax = 0;
      for (std::size_t i = 0; i < input.size(); ++i) {
        scaled[i] = input[i] * scale;
        if (!std::isnan(input[i])) amax = std::max(amax, static_cast<double>(std::fabs(input[i])));
      }
      sim::round_array(std::span<const float>(scaled), std::span<float>(want), format, sim::Rounding::nearest_even);
      const gpu::Fp8Slot initial{1.0f / scale, scale, 0u, 0u};
      DeviceBuffer<gpu::Fp8Slot> slot(1);
      slot.upload(&initial, 1, nullptr);
      // exact mode's layout: one row, float values
      DeviceBuffer<float> out(input.size());
      PointBuffers p;
      const auto n = static_cast<std::int64_t>(input.size());
      gpu::kernels::fp8_quantize<float>(kind, d_in.get(), 1, n, 1, n, slot.get(), true, out.get(), nullptr, p.stats(), nullptr);
      const std::vector<float> got = out.download(nullptr);
      bool nonfinite = false;
      for (std::size_t i = 0; i < input.size(); ++i) {
        ASSERT_TRUE(gputest::same_bits(got[i], want[i])) << std::hexfloat << input[i] << " * " << scale << ": " << got[i]
                                                         << " vs CPU " << want[i];
        nonfinite = nonfinite || !std::isfinite(want[i]);
      }
      EXPECT_EQ(text(p.effects()), text(sim::count_rounding_effects(std::span<const float>(scaled), std::span<const float>(want), format)));
      EXPECT_EQ(p.raised(), nonfinite);
      EXPECT_EQ(static_cast<double>(std::bit_cast<float>(slot.download(nullptr)[0].amax_bits)), amax);

      // fast mode's layout: (37, 29) padded to (48, 32), bytes, and transposed
      const std::int64_t rows = 37, cols = 29, rows_p = 48, cols_p = 32;
      DeviceBuffer<__nv_fp8_storage_t> bytes(static_cast<std::size_t>(rows_p * cols_p)), bytes_t(bytes.size());
      gpu::kernels::fp8_quantize<__nv_fp8_storage_t>(kind, d_in.get(), rows, cols, rows_p, cols_p, slot.get(), false,
                                                     bytes.get(), bytes_t.get(), PointStats{}, nullptr);
      const std::vector<__nv_fp8_storage_t> b = bytes.download(nullptr), bt = bytes_t.download(nullptr);
      for (std::int64_t r = 0; r < rows_p; ++r)
        for (std::int64_t c = 0; c < cols_p; ++c) {
          const auto q = b[static_cast<std::size_t>(r * cols_p + c)];
          ASSERT_EQ(q, bt[static_cast<std::size_t>(c * rows_p + r)]) << r << "," << c;
          if (r >= rows || c >= cols) {
            ASSERT_EQ(q, 0) << "padding " << r << "," << c;
            continue;
          }
          const double v = sim::decode(q, format), w = want[static_cast<std::size_t>(r * cols + c)];
          ASSERT_TRUE(std::isnan(w) ? std::isnan(v) : v == w && std::signbit(v) == std::signbit(w)) << r << "," << c;
        }
    }
  }
}

// sim::DelayedScaling: the next scale from the amax history (here 3 long, margin 1), kept when the window's amax
// is 0 or infinite; per slot E4M3's or E5M2's largest value.
TEST(GpuKernels, Fp8DelayedScalingFollowsTheAmaxHistory) {
  MPSCOPE_REQUIRE_GPU();
  const int history = 3, margin = 1;
  std::vector<sim::DelayedScaling> cpu = {sim::DelayedScaling(448.0, history, margin), sim::DelayedScaling(448.0, history, margin),
                                          sim::DelayedScaling(57344.0, history, margin)};
  std::vector<gpu::Fp8Slot> slots(3, gpu::Fp8Slot{1.0f, 1.0f, 0u, 0u});
  DeviceBuffer<gpu::Fp8Slot> d_slots(3);
  DeviceBuffer<double> d_history(3 * history);
  DeviceBuffer<int> filled(3), head(3);
  filled.zero(nullptr);
  head.zero(nullptr);
  const std::vector<std::vector<float>> amaxes = {{0.0f, 3.0f, 1e-3f},  {2.5f, 0.0f, 7e-4f}, {0.1f, INFINITY, 2e-2f},
                                                  {0.2f, 5.0f, 1e-5f},  {0.3f, 6.0f, 3e-5f}, {0.0f, 0.0f, 0.0f},
                                                  {1e30f, 0.5f, 9e-6f}, {0.4f, 0.5f, 1e-6f}};
  for (std::size_t step = 0; step < amaxes.size(); ++step) {
    for (std::size_t i = 0; i < 3; ++i) slots[i].amax_bits = std::bit_cast<unsigned>(amaxes[step][i]);
    d_slots.upload(slots, nullptr);
    gpu::kernels::fp8_end_step(d_slots.get(), 3, d_history.get(), filled.get(), head.get(), history, margin, nullptr);
    slots = d_slots.download(nullptr);
    for (std::size_t i = 0; i < 3; ++i) {
      cpu[i].record(amaxes[step][i]);
      EXPECT_EQ(slots[i].scale, cpu[i].scale()) << "step " << step << " slot " << i;
      EXPECT_EQ(slots[i].inv_scale, cpu[i].inv_scale()) << "step " << step << " slot " << i;
      EXPECT_EQ(slots[i].amax_bits, 0u);
    }
  }
}

