// Internal: the cuBLASLt GEMMs of a GPU lane in fast mode (tensor cores, what production training runs). Each
// call site's descriptors and chosen algorithm are made once and kept, so that a step replayed from a CUDA graph
// and the same step launched directly compute identical bits.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "gpu/buffer.cuh"

namespace mpscope::gpu {

// The cuBLAS type of a GPU lane's element type.
template <typename T>
constexpr cudaDataType cuda_type = std::is_same_v<T, float> ? CUDA_R_32F : std::is_same_v<T, __half> ? CUDA_R_16F : CUDA_R_16BF;

enum class Epilogue { none, bias, relu_bias };

// How a lane's GEMMs may be computed. A lane whose recipe has "mma": "h100" claims the bits of the CPU lane's
// tensor-core model, so its GEMMs keep every output's K in one pass (cuBLAS's chain of 16- or 32-product blocks,
// in order, as the model has it), never split-K with a reduction afterwards; FP8 GEMMs accumulate as the recipe
// says (cuBLASLt's fast accumulation or its default, promoted every 128 products).
struct BlasOptions {
  bool one_pass_k = false;
  bool fp8_fast_accumulation = false;
};

class Blas {
 public:
  Blas(cudaStream_t stream, std::size_t workspace_bytes, BlasOptions options = {});
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // Row-major D (m, n) = op(A) (m, k) · op(B) (k, n) [+ bias (n) per column] [then ReLU], accumulated in float32
  // (fp32 inputs: true float32, no TF32). op = transpose when the flag says so (A then stored (k, m), B (n, k));
  // lda / ldb the stored row lengths. A and B of type `in`, D and the bias of type `out`.
  void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const void* a, std::int64_t lda,
            const void* b, std::int64_t ldb, void* d, cudaDataType in, cudaDataType out, Epilogue epilogue = Epilogue::none,
            const void* bias = nullptr);

  // FP8 tensor cores (cuBLASLt's "TN" form): row-major D (m, n) float32 = X (m, k) · Y (n, k)ᵀ, X and Y FP8
  // (E4M3 or E5M2, not both E5M2) with rows of length k. m, n and k multiples of 16, pointers 16-byte aligned.
  // Unscaled: the caller multiplies by delayed scaling's inverse scales in its own kernel, as the CPU lane does
  // (one float32 product of the two, then one multiplication), which cuBLASLt's scale pointers need not match.
  void gemm_fp8(std::int64_t m, std::int64_t n, std::int64_t k, const void* x, cudaDataType x_type, const void* y,
                cudaDataType y_type, float* d);

  // One line per plan made so far: the shape and the algorithm cuBLASLt's heuristic chose (id, tile, split-K,
  // reduction scheme), for reports and for finding the GEMM behind a difference.
  std::string describe_plans() const;

 private:
  using Fp8Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, int, int>;
  using Key = std::tuple<bool, bool, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, int, int, int>;
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan(const Key& key);
  static void destroy(const Plan& p);
  Plan& fp8_plan(const Fp8Key& key);
  // the heuristic's first algorithm (one-pass K where the options say so), or an error naming `what`
  Plan choose(Plan p, const std::string& what);

  cudaStream_t stream_;
  BlasOptions options_;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<char> workspace_;
  std::map<Key, Plan> plans_;
  std::map<Fp8Key, Plan> fp8_plans_;
  std::vector<std::string> descriptions_;
};

}  // namespace mpscope::gpu
