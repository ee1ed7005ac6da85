// mpscope_hopper_probe: does this GPU's tensor-core arithmetic follow mpscope's Hopper models (sim/tensor_core.hpp)?
// It runs the measurements the models were fitted to — chains of mma.sync tiles (WMMA fp16 and bf16 m16n16k16,
// tf32 m16n16k8, the accumulator C taking part) and cuBLASLt GEMMs (fp16 and bf16 with float32 output, FP8 E4M3 x
// E4M3 and E5M2 x E4M3 with the default and the fast accumulation, K in one pass) — on random inputs that mix
// normal, subnormal and zero values over a wide exponent range, computes the same with the model on the CPU, and
// prints the share of outputs that agree bit for bit per path. A mismatch is a finding about the GPU (or the
// library version), not an error: the first differing output is shown with both values. Paths the GPU has no
// instruction or kernel for are reported as such.
//
//   mpscope_hopper_probe [--tiles 256] [--tile-k 16,256] [--gemm 64x64] [--gemm-k 32,256,1024,4096] [--seed 1]
//                        [--strict]
//
// --strict exits with 1 when any path that ran disagrees with its model (for scripts); otherwise the exit status is
// 0 unless the probe itself fails (no device, a CUDA error). The program holds device code for the architectures it
// was built for (CMAKE_CUDA_ARCHITECTURES, 90 by default): for another GPU rebuild with its number, e.g. 80 (A100),
// 89 (L40), 100 (B200), or "native".
#include <CLI/CLI.hpp>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu/blas.cuh"
#include "gpu/buffer.cuh"
#include "sim/rounding.hpp"
#include "sim/tensor_core.hpp"

using namespace mpscope;
namespace wmma = nvcuda::wmma;

namespace {

// The WMMA chain of one tile per block (one warp): D (16, 16) = A (16, K) · B (K, 16) + C, K in steps of the
// instruction's k, in order. In is __half or __nv_bfloat16 (k 16) or float holding tf32 values (k 8).
template <typename In, int KStep>
__global__ void wmma_chain(const In* a, const In* b, const float* c, float* d, int k) {
  using Frag = std::conditional_t<std::is_same_v<In, float>, wmma::precision::tf32, In>;
  const std::size_t t = blockIdx.x;
  wmma::fragment<wmma::accumulator, 16, 16, KStep, float> acc;
  wmma::load_matrix_sync(acc, c + t * 256, 16, wmma::mem_row_major);
  for (int kk = 0; kk < k; kk += KStep) {
    wmma::fragment<wmma::matrix_a, 16, 16, KStep, Frag, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, KStep, Frag, wmma::row_major> fb;
    wmma::load_matrix_sync(fa, a + t * 16 * k + kk, k);
    wmma::load_matrix_sync(fb, b + t * k * 16 + static_cast<std::size_t>(kk) * 16, 16);
    if constexpr (std::is_same_v<In, float>) {  // (exact: the inputs are tf32 values)
      for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
      for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    }
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(d + t * 256, acc, 16, wmma::mem_row_major);
}

// n random values of format f: 10% zeros, 5% subnormals (where f has them), the rest normal with exponents spread
// over [lo, hi], signs random.
std::vector<float> random_values(std::size_t n, const sim::Format& f, int lo, int hi, std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int> exponent(std::max(lo, f.emin()), std::min(hi, f.emax() - 1));
  std::vector<float> v(n);
  for (float& x : v) {
    const double kind = unit(rng), sign = unit(rng) < 0.5 ? -1.0 : 1.0;
    double value = 0;
    if (kind < 0.05 && f.subnormals) value = unit(rng) * f.min_normal();
    else if (kind >= 0.15) value = (1.0 + unit(rng)) * std::ldexp(1.0, exponent(rng));
    x = static_cast<float>(sim::round(sign * value, f));
  }
  return v;
}

// Values as the device type's bits (fp16, bf16, FP8 bytes) or as float (fp32, tf32).
template <typename Bits>
std::vector<Bits> encoded(const std::vector<float>& v, const sim::Format& f) {
  std::vector<Bits> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<Bits>(sim::encode(v[i], f));
  return out;
}

struct Outcome {
  std::string path, note;
  std::size_t outputs = 0, matching = 0;
  bool ran = false;
};

void compare(Outcome& o, const std::vector<float>& got, const std::vector<float>& want) {
  o.ran = true;
  o.outputs += got.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool same = std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(want[i]);
    o.matching += same ? 1 : 0;
    if (!same && o.note.empty()) {
      char text[160];
      std::snprintf(text, sizeof text, "first difference at output %zu: GPU %.9g (0x%08x), model %.9g (0x%08x)", i,
                    got[i], std::bit_cast<std::uint32_t>(got[i]), want[i], std::bit_cast<std::uint32_t>(want[i]));
      o.note = text;
    }
  }
}

// The CPU's answer for T tiles: D[t] = A[t] · B[t] + C[t] under `model`.
std::vector<float> model_tiles(const sim::TensorCoreModel& model, const std::vector<float>& a, const std::vector<float>& b,
                               const std::vector<float>& c, int tiles, int k) {
  std::vector<float> d(static_cast<std::size_t>(tiles) * 256);
  for (int t = 0; t < tiles; ++t) {
    const std::size_t ak = static_cast<std::size_t>(t) * 16 * static_cast<std::size_t>(k);
    sim::tensor_core_gemm(model, sim::MatrixView::row_major(a.data() + ak, 16, k), sim::MatrixView::row_major(b.data() + ak, k, 16),
                          sim::MatrixView::row_major(c.data() + t * 256, 16, 16),
                          std::span<float>(d.data() + t * 256, 256));
  }
  return d;
}

// One WMMA path: T tiles of K, In the device element type, Bits its host bit pattern.
template <typename In, typename Bits, int KStep>
Outcome probe_tiles(const char* name, const sim::Format& f, int tiles, int k, int lo, int hi, std::mt19937& rng) {
  Outcome o;
  o.path = std::string("mma.sync ") + name + " m16n16k" + std::to_string(KStep) + ", K " + std::to_string(k);
  const std::size_t n = static_cast<std::size_t>(tiles) * 16 * static_cast<std::size_t>(k);
  const std::vector<float> a = random_values(n, f, lo, hi, rng), b = random_values(n, f, lo, hi, rng);
  const std::vector<float> c = random_values(static_cast<std::size_t>(tiles) * 256, sim::fp32(), -20, 20, rng);
  gpu::DeviceBuffer<Bits> da(n), db(n);
  if constexpr (std::is_same_v<Bits, float>) {
    da.upload(a, nullptr);
    db.upload(b, nullptr);
  } else {
    da.upload(encoded<Bits>(a, f), nullptr);
    db.upload(encoded<Bits>(b, f), nullptr);
  }
  gpu::DeviceBuffer<float> dc(c.size()), dd(c.size());
  dc.upload(c, nullptr);
  wmma_chain<In, KStep><<<static_cast<unsigned>(tiles), 32>>>(reinterpret_cast<const In*>(da.get()),
                                                             reinterpret_cast<const In*>(db.get()), dc.get(), dd.get(), k);
  cudaError_t err = cudaGetLastError();  // (a launch error: no code for this GPU, or no such instruction)
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  if (err != cudaSuccess) {
    o.note = std::string("not run: ") + cudaGetErrorString(err);
    return o;
  }
  compare(o, dd.download(nullptr), model_tiles(sim::hopper_model(f, f), a, b, c, tiles, k));
  return o;
}

// One cuBLASLt path: D (m, n) = A (m, k) · B (k, n), C = 0, K in one pass. fp8: a of format fa, b E4M3.
Outcome probe_gemm(const sim::Format& fa, const sim::Format& fb, bool fast_accumulation, std::int64_t m, std::int64_t n,
                   std::int64_t k, std::mt19937& rng) {
  const bool fp8 = fa.total_bits() == 8;
  Outcome o;
  o.path = "cuBLASLt " + fa.name + (fa == fb ? "" : " x " + fb.name) + " " + std::to_string(m) + "x" + std::to_string(n) +
           ", K " + std::to_string(k) + (fp8 ? (fast_accumulation ? ", fast accumulation" : ", default accumulation") : "");
  const int lo = fp8 ? -6 : -14, hi = fp8 ? 6 : 8;
  const std::vector<float> a = random_values(static_cast<std::size_t>(m * k), fa, lo, hi, rng);
  const std::vector<float> b = random_values(static_cast<std::size_t>(k * n), fb, lo, hi, rng);
  gpu::Stream stream;
  gpu::BlasOptions options;
  options.one_pass_k = true;
  options.fp8_fast_accumulation = fast_accumulation;
  gpu::DeviceBuffer<float> dd(static_cast<std::size_t>(m * n));
  try {
    gpu::Blas blas(stream.get(), std::size_t{32} << 20, options);
    if (fp8) {  // cuBLASLt's TN form: Bᵀ (n, k) rows of k
      std::vector<float> bt(b.size());
      for (std::int64_t i = 0; i < k; ++i)
        for (std::int64_t j = 0; j < n; ++j) bt[static_cast<std::size_t>(j * k + i)] = b[static_cast<std::size_t>(i * n + j)];
      gpu::DeviceBuffer<std::uint8_t> da(a.size()), db(bt.size());
      da.upload(encoded<std::uint8_t>(a, fa), nullptr);
      db.upload(encoded<std::uint8_t>(bt, fb), nullptr);
      const auto type = [](const sim::Format& f) { return f.exponent_bits == 4 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2; };
      MPSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
      blas.gemm_fp8(m, n, k, da.get(), type(fa), db.get(), type(fb), dd.get());
    } else {
      gpu::DeviceBuffer<std::uint16_t> da(a.size()), db(b.size());
      da.upload(encoded<std::uint16_t>(a, fa), nullptr);
      db.upload(encoded<std::uint16_t>(b, fb), nullptr);
      MPSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
      blas.gemm(false, false, m, n, k, da.get(), k, db.get(), n, dd.get(), fa == sim::bf16() ? CUDA_R_16BF : CUDA_R_16F,
                CUDA_R_32F);
    }
    MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  } catch (const std::exception& e) {  // (no kernel for this GPU, an FP8 GEMM before Hopper, ...)
    o.note = std::string("not run: ") + e.what();
    return o;
  }
  const sim::TensorCoreModel model =
      sim::hopper_model(fa, fb, fast_accumulation ? sim::Fp8Accumulation::fast : sim::Fp8Accumulation::promoted);
  std::vector<float> want(static_cast<std::size_t>(m * n));
  sim::tensor_core_gemm(model, sim::MatrixView::row_major(a.data(), m, k), sim::MatrixView::row_major(b.data(), k, n),
                        sim::MatrixView{}, want);
  compare(o, dd.download(stream.get()), want);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  int tiles = 256;
  std::vector<int> tile_k = {16, 256}, gemm_k = {32, 256, 1024, 4096};
  std::string shape = "64x64";
  unsigned seed = 1;
  bool strict = false;
  CLI::App app{"Compare this GPU's tensor-core arithmetic with mpscope's Hopper models, bit for bit"};
  app.add_option("--tiles", tiles, "mma.sync tiles per path and K")->check(CLI::Range(1, 65536));
  app.add_option("--tile-k", tile_k, "K of the tile chains (multiples of 16)")->delimiter(',');
  app.add_option("--gemm", shape, "M x N of the cuBLASLt GEMMs (multiples of 16)");
  app.add_option("--gemm-k", gemm_k, "K of the cuBLASLt GEMMs (multiples of 16)")->delimiter(',');
  app.add_option("--seed", seed, "random inputs' seed");
  app.add_flag("--strict", strict, "exit with 1 when a path that ran disagrees with its model");
  CLI11_PARSE(app, argc, argv);
  const std::size_t x = shape.find('x');
  std::int64_t m = 0, n = 0;
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    m = std::stoll(shape.substr(0, x));
    n = std::stoll(shape.substr(x + 1));
  } catch (const std::exception&) {
    m = 0;
  }
  const auto multiple_of_16 = [](std::int64_t v) { return v > 0 && v % 16 == 0; };
  if (!multiple_of_16(m) || !multiple_of_16(n)) {
    std::fprintf(stderr, "mpscope_hopper_probe: --gemm %s: expected MxN with positive multiples of 16, e.g. 64x64\n", shape.c_str());
    return 2;
  }
  for (const std::vector<int>* list : {&tile_k, &gemm_k})
    for (int k : *list)
      if (!multiple_of_16(k)) {
        std::fprintf(stderr, "mpscope_hopper_probe: K %d: K must be a positive multiple of 16\n", k);
        return 2;
      }

  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    std::fprintf(stderr, "mpscope_hopper_probe: no CUDA device\n");
    return 3;
  }
  std::printf("GPU: %s (sm_%d%d); models: sim/tensor_core.hpp (docs/formats.md)\n\n", prop.name, prop.major, prop.minor);
  std::mt19937 rng(seed);
  std::vector<Outcome> outcomes;
  for (int k : tile_k) {
    outcomes.push_back(probe_tiles<__half, std::uint16_t, 16>("fp16", sim::fp16(), tiles, k, -14, 8, rng));
    outcomes.push_back(probe_tiles<__nv_bfloat16, std::uint16_t, 16>("bf16", sim::bf16(), tiles, k, -40, 30, rng));
    outcomes.push_back(probe_tiles<float, float, 8>("tf32", sim::tf32(), tiles, k, -40, 30, rng));
  }
  for (int k : gemm_k) {
    outcomes.push_back(probe_gemm(sim::fp16(), sim::fp16(), false, m, n, k, rng));
    outcomes.push_back(probe_gemm(sim::bf16(), sim::bf16(), false, m, n, k, rng));
    for (const bool fast : {false, true}) {
      outcomes.push_back(probe_gemm(sim::e4m3fn(), sim::e4m3fn(), fast, m, n, k, rng));
      outcomes.push_back(probe_gemm(sim::e5m2(), sim::e4m3fn(), fast, m, n, k, rng));
    }
  }
  bool all_match = true;
  std::printf("%-58s %10s %9s\n", "path", "outputs", "match");
  for (const Outcome& o : outcomes) {
    if (!o.ran) {
      std::printf("%-58s %10s %9s  %s\n", o.path.c_str(), "-", "-", o.note.c_str());
      continue;
    }
    const double share = 100.0 * static_cast<double>(o.matching) / static_cast<double>(o.outputs);
    std::printf("%-58s %10zu %8.2f%%%s%s\n", o.path.c_str(), o.outputs, share, o.note.empty() ? "" : "  ", o.note.c_str());
    all_match = all_match && o.matching == o.outputs;
  }
  std::printf("\n%s\n", all_match ? "every path that ran follows mpscope's Hopper model bit for bit"
                                   : "some outputs differ from the Hopper model: this GPU (or library) sums differently there");
  return strict && !all_match ? 1 : 0;
}
