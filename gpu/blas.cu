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
    case CUDA_R_8F_E4M3: return "e4m3";
    case CUDA_R_8F_E5M2: return "e5m2";
    default: return "type " + std::to_string(static_cast<int>(t));
  }
}
}  // namespace

Blas::Blas(cudaStream_t stream, std::size_t workspace_bytes, BlasOptions options)
    : stream_(stream), options_(options), workspace_(workspace_bytes) {
  MPSCOPE_CUBLAS_CHECK(cublasLtCreate(&handle_));
}

void Blas::destroy(const Plan& p) {
  cublasLtMatrixLayoutDestroy(p.a);
  cublasLtMatrixLayoutDestroy(p.b);
  cublasLtMatrixLayoutDestroy(p.d);
  cublasLtMatmulDescDestroy(p.desc);
}

Blas::~Blas() {
  for (auto& [key, p] : plans_) destroy(p);
  for (auto& [key, p] : fp8_plans_) destroy(p);
  if (handle_) cublasLtDestroy(handle_);
}

Blas::Plan Blas::choose(Plan p, const std::string& what) {
  cublasLtMatmulPreference_t pref = nullptr;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const std::size_t workspace = workspace_.size();
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                            sizeof workspace));
  if (options_.one_pass_k) {
    // only algorithms without a reduction (no split-K), on the tensor cores: on an H200 a 1x10x4096 GEMM otherwise
    // got a kernel (algorithm 13) that sums in another order than the mma chain
    const std::uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
    MPSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &none,
                                                              sizeof none));
    const std::uint64_t no_fma = ~std::uint64_t{CUBLASLT_NUMERICAL_IMPL_FLAGS_FMA};
    MPSCOPE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_IMPL_MASK, &no_fma, sizeof no_fma));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    destroy(p);
    throw GpuError("cuBLASLt has no kernel for " + what + (options_.one_pass_k ? " without split-K" : "") + " (" +
                   cublasLtGetStatusString(st) + ")");
  }
  p.algo = result.algo;
  const auto config = [&](cublasLtMatmulAlgoConfigAttributes_t attribute) {
    std::uint32_t v = 0;  // (each of these attributes is a 32-bit integer)
    std::size_t written = 0;
    MPSCOPE_CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&p.algo, attribute, &v, sizeof v, &written));
    return v;
  };
  const std::uint32_t splits = config(CUBLASLT_ALGO_CONFIG_SPLITK_NUM);
  const std::uint32_t reduction = config(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME);
  std::uint64_t impl = 0;
  std::size_t written = 0;
  MPSCOPE_CUBLAS_CHECK(
      cublasLtMatmulAlgoCapGetAttribute(&p.algo, CUBLASLT_ALGO_CAP_NUMERICAL_IMPL_FLAGS, &impl, sizeof impl, &written));
  const bool fma = (impl & CUBLASLT_NUMERICAL_IMPL_FLAGS_OP_TYPE_MASK) == CUBLASLT_NUMERICAL_IMPL_FLAGS_FMA;
  if (options_.one_pass_k && (splits > 1 || reduction != CUBLASLT_REDUCTION_SCHEME_NONE || fma)) {
    destroy(p);
    throw GpuError("cuBLASLt chose " + std::string(fma ? "an FMA (not tensor-core) kernel" : "split-K " + std::to_string(splits)) +
                   " for " + what + ", which the h100 model's one pass over K on the tensor cores does not describe");
  }
  descriptions_.push_back(what + ": algorithm " + std::to_string(config(CUBLASLT_ALGO_CONFIG_ID)) + ", tile " +
                          std::to_string(config(CUBLASLT_ALGO_CONFIG_TILE_ID)) + ", split-K " + std::to_string(splits) +
                          ", reduction " + std::to_string(reduction) + (fma ? ", FMA" : ", tensor cores"));
  return p;
}

std::string Blas::describe_plans() const {
  std::string text;
  for (const std::string& d : descriptions_) text += d + "\n";
  return text;
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

  const std::string what = "a " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " GEMM of " +
                           type_name(in) + " inputs to " + type_name(out) +
                           (epilogue == Epilogue::none ? "" : " with a bias epilogue");
  return plans_.emplace(key, choose(p, what)).first->second;
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

// Row-major D = X Yᵀ is column-major Dᵀ (n, m) = Y X ᵀ: cuBLASLt's A is Y, transposed from its stored (k, n), and
// its B is X, stored (k, m) and not transposed: the TN form FP8 kernels need.
Blas::Plan& Blas::fp8_plan(const Fp8Key& key) {
  const auto it = fp8_plans_.find(key);
  if (it != fp8_plans_.end()) return it->second;
  const auto [m, n, k, x_type, y_type] = key;
  Plan p;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = CUBLAS_OP_T, op_b = CUBLAS_OP_N;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  const std::int8_t fast = options_.fp8_fast_accumulation ? 1 : 0;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  MPSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, static_cast<cudaDataType>(y_type), u(k), u(n), k));
  MPSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, static_cast<cudaDataType>(x_type), u(k), u(m), k));
  MPSCOPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_32F, u(n), u(m), n));
  const std::string what = "a " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " FP8 GEMM of " +
                           type_name(static_cast<cudaDataType>(x_type)) + " x " +
                           type_name(static_cast<cudaDataType>(y_type)) + " inputs" +
                           (options_.fp8_fast_accumulation ? ", fast accumulation" : "");
  return fp8_plans_.emplace(key, choose(p, what)).first->second;
}

void Blas::gemm_fp8(std::int64_t m, std::int64_t n, std::int64_t k, const void* x, cudaDataType x_type, const void* y,
                    cudaDataType y_type, float* d) {
  if (m == 0 || n == 0) return;
  for (const void* ptr : {x, y, static_cast<const void*>(d)})
    if (reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0) throw GpuError("FP8 GEMM: cuBLASLt needs every pointer 16-byte aligned");
  Plan& p = fp8_plan(Fp8Key{m, n, k, static_cast<int>(x_type), static_cast<int>(y_type)});
  const float alpha = 1.0f, beta = 0.0f;
  MPSCOPE_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, y, p.a, x, p.b, &beta, d, p.d, d, p.d, &p.algo,
                                      workspace_.get(), workspace_.size(), stream_));
}

}  // namespace mpscope::gpu
