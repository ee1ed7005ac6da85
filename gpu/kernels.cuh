// Internal: the kernels of a GPU lane, each the CUDA twin of the CPU operation named beside it (sim/ops/*.cpp,
// sim/optimizer.hpp, sim/loss_scaler.cpp). Elementwise results are computed in double and rounded once, as the CPU
// lane does; reductions that must match the CPU run in its order (one thread per row or column, sequentially).
// Statistics are gathered where the values are made: `fx` (may be null) collects the rounding effects of the
// point, `hist` (may be null) the log2 histogram of the tensor written. Shapes beside every pointer, row-major.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "gpu/types.cuh"

namespace mpscope::sim {
struct OptimizerConfig;
}

namespace mpscope::gpu::kernels {

enum ActivationKind { relu = 0, gelu = 1, gelu_tanh = 2, tanh_act = 3, sigmoid = 4, silu = 5 };  // sim::Activation's order

// GradScaler's state on the device (sim::LossScaler), updated there after every backward pass.
struct DeviceScaler {
  int type;  // 0 none, 1 static, 2 dynamic
  float scale, inv_scale;  // inv_scale = (float)(1 / (double)scale)
  float inv_scale_used;    // the step's inv_scale, kept by the update for the optimizer
  double growth_factor, backoff_factor, min_scale, max_scale;
  long long growth_interval, growth_tracker;
  int hysteresis, hysteresis_tracker;
  int found_inf, skipped, backed_off, grew;
};

// What the host reads back after every step (one small copy).
struct DeviceStepOut {
  double loss;          // before the update, in double (the host rounds it to float32 as the CPU lane does)
  double grad_sq;       // sum of squares of the unscaled gradients
  float scale_used;     // the scale of this step's backward pass
  DeviceScaler scaler;  // after the update
};

// Per-step constants of the optimizer, computed on the host exactly as sim::ParamOptimizer does for step t.
struct OptimizerConstants {
  int type;  // 0 sgd, 1 adam, 2 adamw
  int first_step;
  float neg_lr, wd, mom, damp;
  int momentum, nesterov, weight_decay;
  float one_minus_b1, b2, one_minus_b2, eps, neg_step_size, bias2_sqrt, decay;
};
OptimizerConstants optimizer_constants(const sim::OptimizerConfig& c, double lr, std::int64_t t);

// How a produced gradient is unscaled and checked (sim::GraphLane::unscale and its inf/NaN check).
struct GradCheck {
  DeviceScaler* scaler;  // reads inv_scale, raises found_inf on inf/NaN; null: no check (nothing else read)
  double* partials;      // per block: the sum of squares of the unscaled values (grad_partial_slots of them)
  int master_gradients;  // 1: float32 master = float(g) * inv_scale; 0: rounded to g's format, a rounding point:
  PointStats unscale;    // (its effects and inf/NaN flag; no histogram)
};
constexpr int grad_partial_slots = 1024;  // the most blocks a checking kernel runs with

// ---- forward ----------------------------------------------------------------------------------------------
// sim: GraphLane::forward's input store: the batch's rows gathered from the device copy of the dataset, and their
// labels (dataset) and targets (dataset, outputs) where given.
struct BatchGather {
  const std::int64_t* rows;  // (batch) dataset rows
  std::int64_t batch, features, outputs;
  const std::int64_t* labels;  // (dataset) or null
  const float* targets;        // (dataset, outputs) or null
  std::int64_t* batch_labels;  // (batch)
  float* batch_targets;        // (batch, outputs)
};
template <typename T>
void gather_input(const float* x /* (dataset, features) */, const BatchGather& b, T* out /* (batch, features) */,
                  PointStats st, cudaStream_t s);
// RoundedOps::cast: out = round(in) (n)
template <typename In, typename Out>
void cast(const In* in, Out* out, std::size_t n, PointStats st, cudaStream_t s);
// z = round(y + b), the GEMM epilogue: y (rows, cols) the float32 accumulator, b (cols), z (rows, cols); y + b is
// one float32 addition, rounded once to T
template <typename T>
void bias_add(const float* y, const T* b, T* z, std::int64_t rows, std::int64_t cols, PointStats st, cudaStream_t s);
// h = round(act(z)) (n)
template <typename T>
void activate(const T* z, T* h, std::size_t n, int activation, PointStats st, cudaStream_t s);
// sim/ops/layer_norm.cpp forward, one thread per row: h, out (rows, cols); gamma, beta (cols) in the promoted
// format P (the master's; beta may be null); mean, rstd (rows). out = round_T(round_P(result)).
template <typename T, typename P>
void layer_norm_forward(const T* h, const P* gamma, const P* beta, T* out, double* mean, double* rstd, std::int64_t rows,
                        std::int64_t cols, double eps, PointStats st, cudaStream_t s);
// log2 histogram of a tensor the lane did not write itself (cuBLAS outputs)
template <typename T>
void histogram(const T* v, std::size_t n, DeviceHistogram* hist, cudaStream_t s);

// ---- loss ---------------------------------------------------------------------------------------------------
// sim/ops/loss.cpp, one thread per row of logits (rows, cols): terms (cross-entropy: (rows) the rows' losses; MSE:
// (rows, cols) the elements' shares), correct (rows) argmax hits (when labels). With `grad` (rows, cols):
// d(S loss)/d logits, S = *scale. Cross-entropy's log-probabilities are rounded to T and its gradient once to T
// (fp32_logits 0: F.cross_entropy under autocast), or both go through float32 (1: the logits cast first; MSE).
// Cross-entropy needs labels; MSE takes targets, or one-hot labels when targets is null.
template <typename T>
void loss_rows(const T* logits, const std::int64_t* labels, const float* targets, std::int64_t rows, std::int64_t cols,
               int mse, int fp32_logits, const float* scale, double* terms, T* grad, int* correct, PointStats st,
               cudaStream_t s);
// *total = (sum of terms) * multiplier: in order, as the CPU adds (sequential), or as a tree (fast mode)
void sum_terms(const double* terms, std::int64_t count, double multiplier, bool sequential, double* total, cudaStream_t s);

// ---- backward -----------------------------------------------------------------------------------------------
// dz = round(da * act'(z)) (n); z may be h for ReLU (h > 0 exactly where z > 0)
template <typename T>
void activation_backward(const T* da, const T* z, const T* h, T* dz, std::size_t n, int activation, PointStats st,
                         cudaStream_t s);
// sim/ops/layer_norm.cpp backward: dy, h, dh (rows, cols); gamma (cols); mean, rstd (rows); dgamma, dbeta (cols,
// rounded to P; dbeta may be null); dh = round_T(round_P(result)).
template <typename T, typename P>
void layer_norm_backward(const T* dy, const T* h, const P* gamma, const double* mean, const double* rstd, T* dh,
                         P* dgamma, P* dbeta, std::int64_t rows, std::int64_t cols, PointStats dh_st,
                         PointStats dgamma_st, PointStats dbeta_st, cudaStream_t s);
// The bias gradient db[j] = round(sum_i dz(i, j)) (dz (rows, cols)), the rows added in order in double (as the CPU
// does), then unscaled and checked. (Fast mode's long batches may sum with cuBLAS and round with round_gradient.)
template <typename T>
void column_sums(const T* dz, T* db, std::int64_t rows, std::int64_t cols, PointStats st, GradCheck check, cudaStream_t s);
// A GEMM's float32 weight gradient rounded to T (T float: `out` may be `in`; nothing rounds), then unscaled and
// checked.
template <typename T>
void round_gradient(const float* in, T* out, std::size_t n, PointStats st, GradCheck check, cudaStream_t s);
// A gradient already in T, unscaled and checked.
template <typename T>
void check_gradient(const T* g, std::size_t n, GradCheck check, cudaStream_t s);

// ---- update -------------------------------------------------------------------------------------------------
// The per-step block the host reads back (mlp_lane.cuh).
struct StepBlock {
  DeviceStepOut* out;
  unsigned long long* lost;  // (layers)
  int layers;
  int* cast_flags;  // (parameters) this step's weight casts
  int parameters;
  int* flags;  // (flag_count) the rounding points'
  int flag_count;
};
// At the start of a step: found_inf cleared, the weight casts' effects (per tensor) and inf/NaN flags (per
// parameter) made by the last update become this step's (now <- next, next <- 0), out->scale_used set, the
// lost-update counts and inf/NaN flags cleared.
void begin_step(DeviceScaler* scaler, DeviceEffects* cast_fx_now, DeviceEffects* cast_fx_next, int tensors,
                int* cast_flags_next, const StepBlock& block, cudaStream_t s);
// After the backward pass: grad_sq from the partials (in a fixed order; they are left zero for the next step),
// LossScaler::update, out->scaler.
void finish_backward(double* partials, int partial_count, DeviceScaler* scaler, DeviceStepOut* out, cudaStream_t s);
// LossScaler::update for a whole trace of found_inf flags (tests): scale_after (steps)
void scaler_trace(DeviceScaler* scaler, const int* found_inf, int steps, float* scale_after, cudaStream_t s);
// ParamOptimizer::step on the unscaled gradients of up to 4 parameter tensors in one launch (the mlp lane: a layer's
// weight and bias; the graph lane: a group's parameters of one gradient type), skipped when scaler->skipped. Per tensor: p (n) the parameters, g (n) their
// gradients as produced (unscaled here as the checking kernels unscale them), buf1 / buf2 (n or null) the
// optimizer state, copy (n, or null when C is M) the compute copy, written with the updated values; st.fx counts
// that rounding (the next forward pass's cast), st.hist is the histogram of the parameters after the step,
// st.nonfinite is raised by inf/NaN parameters, *copy_nonfinite by inf/NaN in their cast.
template <typename G, typename M, typename C>
struct OptimizerTensor {
  M* p = nullptr;
  const G* g = nullptr;
  M *buf1 = nullptr, *buf2 = nullptr;
  C* copy = nullptr;
  std::size_t n = 0;
  PointStats st;
  int* copy_nonfinite = nullptr;
};
template <typename G, typename M, typename C>
struct OptimizerTensors {
  OptimizerTensor<G, M, C> t[4];
  int count = 0;
  int first_block[5] = {};  // (filled by the launcher)
};
// Adds the layer's lost updates (GraphLane's definition) to *lost.
template <typename G, typename M, typename C>
void optimizer_step(OptimizerTensors<G, M, C> tensors, const OptimizerConstants* constants, const DeviceScaler* scaler,
                    int master_gradients, unsigned long long* lost, cudaStream_t s);

// ---- exact-mode GEMMs ---------------------------------------------------------------------------------------
// Row-major D (m, n) = op(A) (m, k) · op(B) (k, n) [+ C], op = transpose when the flag says so (then A is stored
// (k, m), B (n, k)); lda/ldb the stored row lengths. Results in float32.
// sim::gemm(Accumulation::h100) on fp16 inputs: mma.sync tiles, K in blocks of 16 in order, C (m, n) or null.
void gemm_mma_fp16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const __half* a,
                   std::int64_t lda, const __half* b, std::int64_t ldb, const float* c, float* d, cudaStream_t s);
// sim::gemm(Accumulation::fp32): d = fma(a_k, b_k, d) in k order from 0.
template <typename T>
void gemm_fma(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
              const T* b, std::int64_t ldb, float* d, cudaStream_t s);

}  // namespace mpscope::gpu::kernels
