#include "gpu/blas.cuh"

#include <string>

#include "gpu/check.cuh"

namespace mpscope::gpu {

namespace {
std::string type_name(cudaDataType t) {
  switch (t) {
    case CUDA_R_32F: return "fp32";
    case CUDA_R_16F: return "fp16";
    case CUDA_R_16BF: return "bf16";
    default: return "type " + std::to_string(static_cast<int>(t));
  }
}
}  // namespace

Blas::Blas(cudaStream_t stream, std::size_t workspace_bytes) : stream_(stream), workspace_(workspace_bytes) {
  MPSCOPE_CUBLAS_CHECK(cublasLtCreate(&handle_));
}

Blas::~Blas() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.desc);
  }
  if (handle_) cublasLtDestroy(handle_);
}

// Row-major D = op(A) op(B) is column-major Dᵀ = op(B)ᵀ op(A)ᵀ: cuBLASLt's "A" is our B and its "B" our A, each
// described as stored (a row-major (r, c) matrix is a column-major (c, r) one).
Blas::Plan& Blas::plan(const Key& key) {
  const auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [ta, tb, m, n, k, lda, ldb, in_type, out_type, epilogue_kind] = key;
  const auto in = static_cast<cudaDataType>(in_type), out = static_cast<cudaDataType>(out_type);
  Plan p;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  const auto epilogue = static_cast<Epilogue>(epilogue_kind);
  if (epilogue != Epilogue::none) {
    const cublasLtEpilogue_t e = epilogue == Epilogue::bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_RELU_BIAS;
    MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    const cudaDataType bias_type = out;
    MPSCOPE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  MPSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, in, u(tb ? k : n), u(tb ? n : k), ldb));
  MPSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, in, u(ta ? m : k), u(ta ? k : m), lda));
  MPSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, out, u(n), u(m), n));

  cublasLtMatmulPreference_t pref = nullptr;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const std::size_t workspace = workspace_.size();
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                            sizeof workspace));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.desc);
    throw GpuError("cuBLASLt has no kernel for a " + std::to_string(m) + "x" + std::to_string(n) + "x" +
                   std::to_string(k) + " GEMM of " + type_name(in) + " inputs to " + type_name(out) +
                   (epilogue == Epilogue::none ? "" : " with a bias epilogue") + " (" + cublasLtGetStatusString(st) + ")");
  }
  p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

void Blas::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const void* a, std::int64_t lda,
                const void* b, std::int64_t ldb, void* d, cudaDataType in, cudaDataType out, Epilogue epilogue,
                const void* bias) {
  if (m == 0 || n == 0) return;
  Plan& p = plan(Key{ta, tb, m, n, k, lda, ldb, static_cast<int>(in), static_cast<int>(out), static_cast<int>(epilogue)});
  if (epilogue != Epilogue::none)
    MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  const float alpha = 1.0f, beta = 0.0f;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, b, p.a, a, p.b, &beta, d, p.d, d, p.d, &p.algo,
                                      workspace_.get(), workspace_.size(), stream_));
}

}  // namespace mpscope::gpu
