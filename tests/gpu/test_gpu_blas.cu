// cuBLASLt as the fast GPU lanes use it (gpu/blas.cuh): with each output's K in one pass, its fp16, bf16 and FP8
// GEMMs compute the CPU's Hopper tensor-core models (sim/tensor_core.hpp) bit for bit.
#include <gtest/gtest.h>

#include <cuda_fp8.h>

#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <tuple>

#include "gpu/blas.cuh"
#include "gpu/buffer.cuh"
#include "gpu_support.hpp"
#include "sim/gemm.hpp"
#include "sim/rounding.hpp"
#include "sim/tensor_core.hpp"

using namespace mpscope;
using gpu::DeviceBuffer;

namespace {

// "" when got and want hold the same bits, else how many values differ and the first, with the chosen algorithms
std::string differences(const std::vector<float>& got, const std::vector<float>& want, const gpu::Blas& blas) {
  std::size_t differ = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i]) && differ++ == 0) first = i;
  if (differ == 0) return "";
  return std::to_string(differ) + " values differ, the first at " + std::to_string(first) + ": cuBLASLt " +
         std::to_string(got[first]) + ", model " + std::to_string(want[first]) + "\n" + blas.describe_plans();
}

// cuBLASLt's fp16 and bf16 GEMMs with K in one pass (fast lanes under "mma": "h100") compute the CPU's h100 model
// bit for bit, in every transpose form the lanes use, including the weight-gradient shapes (few outputs, long K)
// where the heuristic would otherwise split K.
TEST(GpuBlas, HalfGemmsAreTheH100Model) {
  MPSCOPE_REQUIRE_GPU();
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> spread(-6.0f, 6.0f);
  gpu::Stream stream;
  gpu::BlasOptions options;
  options.one_pass_k = true;
  gpu::Blas blas(stream.get(), std::size_t{32} << 20, options);
  for (const bool bf16 : {false, true}) {
    const sim::Format f = bf16 ? sim::bf16() : sim::fp16();
    for (const auto& [ta, tb, m, n, k] :
         {std::tuple<bool, bool, std::int64_t, std::int64_t, std::int64_t>{false, true, 64, 64, 2},
          {false, true, 256, 64, 64}, {true, false, 64, 64, 256}, {false, false, 256, 64, 64}, {true, false, 3, 64, 4096},
          {true, false, 10, 1024, 4096}, {false, true, 512, 784, 1024}, {false, false, 1, 10, 4096}}) {
      SCOPED_TRACE(f.name + " " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                   (ta ? " Aᵀ" : "") + (tb ? " Bᵀ" : ""));
      // A stored (m, k), or (k, m) when transposed; B (k, n), or (n, k)
      std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
      for (float& v : a) v = static_cast<float>(sim::round(normal(rng) * std::exp2(std::round(spread(rng))), f));
      for (float& v : b) v = static_cast<float>(sim::round(normal(rng) * std::exp2(std::round(spread(rng))), f));
      const auto device_half = [&](const std::vector<float>& v) {
        DeviceBuffer<std::uint16_t> d(v.size());
        std::vector<std::uint16_t> bits(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) bits[i] = static_cast<std::uint16_t>(sim::encode(v[i], f));
        d.upload(bits, nullptr);
        return d;
      };
      const DeviceBuffer<std::uint16_t> da = device_half(a), db = device_half(b);
      DeviceBuffer<float> dd(static_cast<std::size_t>(m * n));
      MPSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
      blas.gemm(ta, tb, m, n, k, da.get(), ta ? m : k, db.get(), tb ? k : n, dd.get(), bf16 ? CUDA_R_16BF : CUDA_R_16F,
                CUDA_R_32F);
      const std::vector<float> got = dd.download(stream.get());
      const sim::MatrixView av = ta ? sim::MatrixView::row_major(a.data(), k, m).transposed() : sim::MatrixView::row_major(a.data(), m, k);
      const sim::MatrixView bv = tb ? sim::MatrixView::row_major(b.data(), n, k).transposed() : sim::MatrixView::row_major(b.data(), k, n);
      std::vector<float> want(got.size());
      sim::tensor_core_gemm(sim::hopper_model(f, f), av, bv, sim::MatrixView{}, want);
      EXPECT_EQ(differences(got, want, blas), "");
    }
  }
}

// cuBLASLt's FP8 GEMM (fast mode, unscaled) computes the CPU's h100 model bit for bit, with its default
// accumulation (the block chain promoted into a float32 total every 128 products) and with fast accumulation, for
// E4M3 x E4M3 and E5M2 x E4M3 and K from 16 (one partial block) to 4096; values spread over 2^-8..2^8 so that the
// blocks' alignment cuts bits.
TEST(GpuBlas, Fp8GemmsAreTheH100Model) {
  MPSCOPE_REQUIRE_GPU();
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> spread(-8.0f, 8.0f);
  gpu::Stream stream;
  const sim::Format e4m3 = sim::e4m3fn().with_overflow(sim::Overflow::saturate);
  const sim::Format e5m2 = sim::e5m2().with_overflow(sim::Overflow::saturate);
  for (const sim::Fp8Accumulation accumulation : {sim::Fp8Accumulation::promoted, sim::Fp8Accumulation::fast}) {
    gpu::BlasOptions options;
    options.one_pass_k = true;
    options.fp8_fast_accumulation = accumulation == sim::Fp8Accumulation::fast;
    gpu::Blas blas(stream.get(), std::size_t{32} << 20, options);
    for (const auto& [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{16, 16, 16}, {32, 64, 16},
                                  {64, 16, 32}, {48, 80, 96}, {256, 256, 256}, {64, 64, 1040}, {32, 48, 4096}}) {
      for (const bool x_e5m2 : {false, true}) {
        SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                     (x_e5m2 ? " e5m2 x e4m3" : " e4m3 x e4m3") +
                     (options.fp8_fast_accumulation ? ", fast accumulation" : ", promoted"));
        const sim::Format& xf = x_e5m2 ? e5m2 : e4m3;
        const auto value = [&]() { return normal(rng) * std::exp2(std::round(spread(rng))); };
        std::vector<__nv_fp8_storage_t> x(static_cast<std::size_t>(m * k)), y(static_cast<std::size_t>(n * k));
        std::vector<float> xv(x.size()), yv(y.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
          x[i] = static_cast<__nv_fp8_storage_t>(sim::encode(value(), xf));
          xv[i] = static_cast<float>(sim::decode(x[i], xf));
        }
        for (std::size_t i = 0; i < y.size(); ++i) {
          y[i] = static_cast<__nv_fp8_storage_t>(sim::encode(value(), e4m3));
          yv[i] = static_cast<float>(sim::decode(y[i], e4m3));
        }
        DeviceBuffer<__nv_fp8_storage_t> dx(x.size()), dy(y.size());
        dx.upload(x, nullptr);
        dy.upload(y, nullptr);
        DeviceBuffer<float> dd(static_cast<std::size_t>(m * n));
        MPSCOPE_CUDA_CHECK(cudaDeviceSynchronize());  // (the uploads ran on the legacy stream)
        try {
          blas.gemm_fp8(m, n, k, dx.get(), x_e5m2 ? CUDA_R_8F_E5M2 : CUDA_R_8F_E4M3, dy.get(), CUDA_R_8F_E4M3, dd.get());
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
          continue;
        }
        const std::vector<float> got = dd.download(stream.get());
        std::vector<float> want(got.size());
        sim::tensor_core_gemm(sim::hopper_model(xf, e4m3, accumulation), sim::MatrixView::row_major(xv.data(), m, k),
                              sim::MatrixView::row_major(yv.data(), n, k).transposed(), sim::MatrixView{}, want);
        EXPECT_EQ(differences(got, want, blas), "");
      }
    }
  }
}

}  // namespace
