// Block-scaled quantization on the device (gpu/block_scaling.cuh) against the CPU's sim::quantize_blocks, bit for
// bit: every block format, both MX scale rules, both tie rules, on the six input families of the mx_blocks oracle
// and on rows with partial blocks, zeros, NaN and infinity.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "gpu/block_scaling.cuh"
#include "gpu/buffer.cuh"
#include "gpu/error.hpp"
#include "gpu_support.hpp"
#include "sim/npy.hpp"

using namespace mpscope;
using gpu::DeviceBuffer;

namespace {

std::string first_difference(const std::vector<float>& got, const std::vector<float>& want) {
  for (std::size_t i = 0; i < want.size(); ++i)
    if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i]))
      return "value " + std::to_string(i) + ": GPU " + std::to_string(got[i]) + ", CPU " + std::to_string(want[i]);
  return "";
}

void expect_twins(const std::vector<float>& x, std::int64_t rows, std::int64_t length, const std::string& what) {
  DeviceBuffer<float> dx(x.size()), out(x.size()), scratch(1);
  dx.upload(x, nullptr);
  MPSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
  for (const sim::BlockFormat& f : sim::block_formats()) {
    if (f.scale == sim::ScaleKind::fp32) continue;  // (CPU only: StochasticAndFloat32ScalesAreRefused)
    for (const sim::ScaleRule rule : {sim::ScaleRule::ocp, sim::ScaleRule::round_up}) {
      if (rule == sim::ScaleRule::round_up && f.scale != sim::ScaleKind::e8m0) continue;
      for (const sim::ElementRounding rounding : {sim::ElementRounding::nearest_even, sim::ElementRounding::nearest_away}) {
        sim::BlockOptions o;
        o.rule = rule;
        o.rounding = rounding;
        SCOPED_TRACE(what + ", " + f.name + ", " + std::string(sim::to_string(rule)) + ", " +
                     std::string(sim::to_string(rounding)));
        const sim::BlockQuantized want = sim::quantize_blocks(x, rows, length, f, o);
        DeviceBuffer<std::uint8_t> bits(want.scale_bits.size());
        gpu::kernels::quantize_blocks(dx.get(), rows, length, f, o, out.get(), bits.get(), scratch.get(), nullptr);
        EXPECT_EQ(first_difference(out.download(nullptr), want.values), "");
        EXPECT_EQ(bits.download(nullptr), want.scale_bits);
      }
    }
  }
}

TEST(GpuBlocks, QuantizationMatchesTheCpuOnTheOracleInputs) {
  MPSCOPE_REQUIRE_GPU();
  const sim::NpzFile npz(gputest::data_dir() / "mx_blocks.npz");
  for (const char* c : {"normal", "wide", "blockwide", "heavy", "tiny", "edges"}) {
    const sim::NpyArray x = npz.read(std::string("x_") + c);
    const auto v = x.values<float>();
    expect_twins(std::vector<float>(v.begin(), v.end()), 64, 256, c);
  }
}

TEST(GpuBlocks, QuantizationMatchesTheCpuOnPartialAndNonFiniteBlocks) {
  MPSCOPE_REQUIRE_GPU();
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-40, 40);
  const std::int64_t rows = 9, length = 77;  // blocks of 32: 32 + 32 + 13; of 16: 4 x 16 + 13
  std::vector<float> x(static_cast<std::size_t>(rows * length));
  for (float& v : x) v = normal(rng) * std::ldexp(1.0f, exponent(rng));
  for (std::int64_t i = 0; i < length; ++i) x[static_cast<std::size_t>(length + i)] = 0.0f;  // a zero row
  x[2 * length + 5] = NAN;
  x[3 * length + 40] = INFINITY;
  x[4 * length + 70] = -INFINITY;
  x[5 * length + 3] = 0x1p-149f;  // float32's smallest subnormal
  expect_twins(x, rows, length, "random rows");
  // NVFP4's tensor scale follows the tensor amax: once without the non-finite values
  x[2 * length + 5] = 1.0f;
  x[3 * length + 40] = 2.0f;
  x[4 * length + 70] = -3.0f;
  expect_twins(x, rows, length, "finite rows");
}

TEST(GpuBlocks, StochasticAndFloat32ScalesAreRefused) {
  MPSCOPE_REQUIRE_GPU();
  sim::BlockOptions o;
  EXPECT_THROW(gpu::kernels::quantize_blocks(nullptr, 1, 32, sim::block_format("fp8_block_e4m3"), o, nullptr, nullptr,
                                             nullptr, nullptr),
               gpu::GpuError);
  o.rounding = sim::ElementRounding::stochastic;
  EXPECT_THROW(gpu::kernels::quantize_blocks(nullptr, 1, 32, sim::block_format("nvfp4"), o, nullptr, nullptr, nullptr,
                                             nullptr),
               gpu::GpuError);
}

}  // namespace
