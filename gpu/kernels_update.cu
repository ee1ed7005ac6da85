// The end of a GPU lane's step: loss scaler (sim/loss_scaler.cpp) and optimizers (sim/optimizer.hpp) on the device,
// with the compute copy of the weights written by the update itself (kernels.cuh).
#include <cmath>

#include "gpu/check.cuh"
#include "gpu/kernels.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/stats.cuh"
#include "sim/optimizer.hpp"

namespace mpscope::gpu::kernels {

OptimizerConstants optimizer_constants(const sim::OptimizerConfig& c, double lr, std::int64_t t) {
  // ParamOptimizer::step's constants for step t (1-based), rounded to float32 as it rounds them.
  OptimizerConstants k{};
  k.type = c.type == sim::OptimizerConfig::Type::sgd ? 0 : c.type == sim::OptimizerConfig::Type::adam ? 1 : 2;
  k.first_step = t == 1;
  k.neg_lr = static_cast<float>(-lr);
  k.wd = static_cast<float>(c.weight_decay);
  k.mom = static_cast<float>(c.momentum);
  k.damp = static_cast<float>(1.0 - c.dampening);
  k.momentum = c.momentum != 0;
  k.nesterov = c.nesterov;
  k.weight_decay = c.weight_decay != 0;
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(t));
  const double bias2 = 1.0 - std::pow(c.beta2, static_cast<double>(t));
  k.one_minus_b1 = static_cast<float>(1.0 - c.beta1);
  k.b2 = static_cast<float>(c.beta2);
  k.one_minus_b2 = static_cast<float>(1.0 - c.beta2);
  k.eps = static_cast<float>(c.eps);
  k.neg_step_size = static_cast<float>(-(lr / bias1));
  k.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  k.decay = static_cast<float>(1.0 - lr * c.weight_decay);
  return k;
}

namespace {

// LossScaler::update, on the device.
__device__ void update_scaler(DeviceScaler* s) {
  s->inv_scale_used = s->inv_scale;  // what this step's gradients are unscaled with, also after the update
  s->skipped = s->found_inf && s->type != 0;
  s->backed_off = s->grew = 0;
  if (s->type == 2) {
    if (s->found_inf) {
      s->growth_tracker = 0;
      if (--s->hysteresis_tracker <= 0) {
        const float backed = fmaxf(static_cast<float>(s->scale * s->backoff_factor), static_cast<float>(s->min_scale));
        s->backed_off = backed < s->scale;
        s->scale = backed;
      }
    } else if (++s->growth_tracker == s->growth_interval) {
      s->growth_tracker = 0;
      s->hysteresis_tracker = s->hysteresis;
      const float grown = static_cast<float>(s->scale * s->growth_factor);
      if (isfinite(grown)) {  // GradScaler keeps the scale when growing would overflow float32
        const float clamped = isfinite(s->max_scale) ? fminf(grown, static_cast<float>(s->max_scale)) : grown;
        s->grew = clamped > s->scale;
        s->scale = clamped;
      }
    }
  }
  s->inv_scale = __double2float_rn(1.0 / static_cast<double>(s->scale));
}

__global__ void begin_step_kernel(DeviceScaler* scaler, DeviceEffects* now, DeviceEffects* next, int tensors,
                                  int* flags_next, StepBlock block) {
  const int t = static_cast<int>(threadIdx.x), step = static_cast<int>(blockDim.x);
  if (t == 0) {
    scaler->found_inf = 0;
    block.out->scale_used = scaler->scale;
  }
  for (int i = t; i < tensors; i += step) {
    now[i] = next[i];
    next[i] = DeviceEffects{};
  }
  for (int i = t; i < block.parameters; i += step) {
    block.cast_flags[i] = flags_next[i];
    flags_next[i] = 0;
  }
  for (int i = t; i < block.layers; i += step) block.lost[i] = 0;
  for (int i = t; i < block.flag_count; i += step) block.flags[i] = 0;
}

// The partials in a fixed order (each thread a fixed strided share, then the block's fixed tree).
__global__ void finish_backward_kernel(double* partials, int count, DeviceScaler* scaler, DeviceStepOut* out) {
  double t = 0;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) {
    t += partials[i];
    partials[i] = 0;  // (for the next step)
  }
  t = block_sum<double>(t);
  if (threadIdx.x == 0) {
    out->grad_sq = t;
    update_scaler(scaler);
    out->scaler = *scaler;
  }
}

__global__ void scaler_trace_kernel(DeviceScaler* scaler, const int* found_inf, int steps, float* scale_after) {
  for (int i = 0; i < steps; ++i) {
    scaler->found_inf = found_inf[i];
    update_scaler(scaler);
    scale_after[i] = scaler->scale;
  }
}

// Element arithmetic of the optimizer: float32 masters natively (sim::FormatArith's fp32 path); fp16 masters each
// operation correctly rounded to fp16. The float32 result of an operation rounds correctly to fp16 unless it lies
// exactly halfway between two fp16 values (a 24-bit rounding cannot carry the exact value across such a point):
// then, rarely, the exact value decides, through round-to-odd in double (exact for the final rounding: 53 >= 11 + 2).
template <typename M>
struct DeviceArith;

template <>
struct DeviceArith<float> {
  __device__ static float add(float a, float b) { return __fadd_rn(a, b); }
  __device__ static float sub(float a, float b) { return __fsub_rn(a, b); }
  __device__ static float mul(float a, float b) { return __fmul_rn(a, b); }
  __device__ static float div(float a, float b) { return __fdiv_rn(a, b); }
  __device__ static float sqrt(float a) { return __fsqrt_rn(a); }
  __device__ static float fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
  __device__ static float load(float x) { return x; }
  __device__ static float store(float x) { return x; }
};

// s rounded to odd, given the sign of the exact value minus s
__device__ inline double to_odd(double s, int residual_sign) {
  if (residual_sign == 0) return s;
  unsigned long long bits = static_cast<unsigned long long>(__double_as_longlong(s));
  if ((residual_sign < 0) != (s < 0)) bits -= 1;  // s was rounded away from zero: step back
  return __longlong_as_double(static_cast<long long>(bits | 1ull));
}
__device__ inline int sign_of(double x) { return (x > 0) - (x < 0); }
__device__ inline float half_round(double x) { return __half2float(__double2half(x)); }
__device__ inline float half_round(float x) { return __half2float(__float2half_rn(x)); }

// r lies exactly halfway between two neighbouring fp16 values (65520, between 65504 and the overflow, included).
__device__ inline bool fp16_tie(float r) {
  const unsigned a = __float_as_uint(r) & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return false;                  // inf, NaN
  if (a >= 0x38800000u) return (a & 0x1FFFu) == 0x1000u;  // |r| >= 2^-14: the 13 bits below fp16's last are 1000...0
  const float q = fabsf(r) * 33554432.0f;              // fp16 subnormals: ties are odd multiples of 2^-25 (q exact)
  const int whole = __float2int_rz(q);                 // (q < 2^11)
  return q == static_cast<float>(whole) && (whole & 1) != 0;
}

// Correctly rounded fp16 results through round-to-odd in double: the slow path, for ties.
struct ExactHalf {
  __device__ static float add(float a, float b) {
    const double x = a, y = b;
    if (!isfinite(x) || !isfinite(y)) return half_round(x + y);
    if (x == -y) return (signbit(x) && signbit(y)) ? -0.0f : 0.0f;  // an exact zero sum: -0 only for -0 + -0
    const double s = x + y, bb = s - x, e = (x - (s - bb)) + (y - bb);  // TwoSum: e is exact
    return half_round(to_odd(s, sign_of(e)));
  }
  __device__ static float mul(float a, float b) {  // a float32 times an fp16 value: exact in double
    return half_round(static_cast<double>(a) * static_cast<double>(b));
  }
  __device__ static float div(float a, float b) {
    const double x = a, y = b;
    if (!isfinite(x) || !isfinite(y) || y == 0 || x == 0) return half_round(x / y);
    const double q = x / y, r = __fma_rn(-q, y, x);  // x - q y, exact
    return half_round(to_odd(q, sign_of(r) * sign_of(y)));
  }
  __device__ static float sqrt(float a) {
    const double x = a;
    if (!isfinite(x) || x <= 0) return half_round(__dsqrt_rn(x));
    const double s = __dsqrt_rn(x), r = __fma_rn(-s, s, x);
    return half_round(to_odd(s, sign_of(r)));
  }
  __device__ static float fma(float a, float b, float c) {
    const double x = a, y = b, z = c;
    if (!isfinite(x) || !isfinite(y) || !isfinite(z)) return half_round(__fma_rn(x, y, z));
    if (x == 0 || y == 0) return half_round(x * y + z);  // a signed zero product plus c: exact
    const double p = x * y, s = p + z;                   // p exact (at most 24 x 11 bits)
    if (p == -z) return 0.0f;                            // an exact zero sum of nonzero terms: +0
    const double pp = s - z, e = (z - (s - pp)) + (p - pp);
    return half_round(to_odd(s, sign_of(e)));
  }
};

template <>
struct DeviceArith<__half> {
  __device__ static float add(float a, float b) {
    const float r = __fadd_rn(a, b);
    return fp16_tie(r) ? ExactHalf::add(a, b) : half_round(r);
  }
  __device__ static float sub(float a, float b) { return add(a, -b); }
  __device__ static float mul(float a, float b) {
    const float r = __fmul_rn(a, b);
    return fp16_tie(r) ? ExactHalf::mul(a, b) : half_round(r);
  }
  __device__ static float div(float a, float b) {
    const float r = __fdiv_rn(a, b);
    return fp16_tie(r) ? ExactHalf::div(a, b) : half_round(r);
  }
  __device__ static float sqrt(float a) {
    const float r = __fsqrt_rn(a);
    return fp16_tie(r) ? ExactHalf::sqrt(a) : half_round(r);
  }
  __device__ static float fma(float a, float b, float c) {
    const float r = __fmaf_rn(a, b, c);
    return fp16_tie(r) ? ExactHalf::fma(a, b, c) : half_round(r);
  }
  __device__ static float load(__half x) { return __half2float(x); }
  __device__ static __half store(float x) { return __float2half_rn(x); }  // x holds an fp16 value: exact
};

template <typename C>
__device__ inline C round_to(float x) {
  return from_double<C>(static_cast<double>(x));
}

// One parameter's update (ParamOptimizer::step's loop body); returns the new value, counts a lost update.
template <typename G, typename M>
__device__ inline float update_parameter(float pi, G g, M& b1, M& b2, const OptimizerConstants& c, float inv,
                                         int master_gradients, unsigned long long& lost) {
  using A = DeviceArith<M>;
  // the unscaled gradient, as the checking kernels made it (GraphLane::unscale)
  float d = master_gradients ? __fmul_rn(to_float(g), inv) : to_float(from_double<G>(to_double(g) * static_cast<double>(inv)));
  float s = 0, upd = 0;
  if (c.type == 0) {
    if (c.weight_decay) d = A::fma(c.wd, pi, d);  // grad.add(param, alpha=wd)
    if (c.momentum) {
      const float b = c.first_step ? d : A::fma(c.damp, d, A::mul(A::load(b1), c.mom));  // buf.mul_(m).add_(g, 1-damp)
      b1 = A::store(b);
      d = c.nesterov ? A::fma(c.mom, b, d) : b;
    }
    s = c.neg_lr;
    upd = d;
  } else {
    float grad = d;
    if (c.weight_decay) {
      if (c.type == 2) pi = A::mul(pi, c.decay);  // AdamW: param.mul_(1 - lr wd)
      else grad = A::fma(c.wd, pi, grad);
    }
    const float m = A::fma(c.one_minus_b1, A::sub(grad, A::load(b1)), A::load(b1));       // exp_avg.lerp_
    const float v = A::fma(A::mul(c.one_minus_b2, grad), grad, A::mul(A::load(b2), c.b2));  // exp_avg_sq
    b1 = A::store(m);
    b2 = A::store(v);
    const float denom = A::add(A::div(A::sqrt(v), c.bias2_sqrt), c.eps);
    s = c.neg_step_size;
    upd = A::div(m, denom);
  }
  const float after = A::fma(s, upd, pi);
  // lost: a nonzero update that left the value it started from (after AdamW's decay) unchanged
  lost += (__fmul_rn(s, upd) != 0.0f && after == pi) ? 1 : 0;
  return after;
}

template <typename G, typename M, typename C>
__global__ void optimizer_kernel(OptimizerTensors<G, M, C> tensors, const OptimizerConstants* cp, const DeviceScaler* sc,
                                 int master_gradients, unsigned long long* lost) {
  using A = DeviceArith<M>;
  // this block's tensor, and its place among the tensor's blocks
  int which = 0;
  while (which + 1 < tensors.count && static_cast<int>(blockIdx.x) >= tensors.first_block[which + 1]) ++which;
  const OptimizerTensor<G, M, C> t = tensors.t[which];
  const auto block = static_cast<unsigned>(static_cast<int>(blockIdx.x) - tensors.first_block[which]);
  const auto blocks = static_cast<unsigned>(tensors.first_block[which + 1] - tensors.first_block[which]);
  __shared__ unsigned bins[BlockHistogram::shared_size];
  // the cast's effects in C, the histogram of the parameters (M values), the inf/NaN flag of the parameters
  EffectTally cast_tally = EffectTally::of<C>(t.st.fx);
  BlockHistogram histo(t.st.hist, bins, BlockHistogram::lowest_exponent<M>());
  const OptimizerConstants c = *cp;
  const bool update = sc->skipped == 0;
  const bool first_buffer = update && (c.type != 0 || c.momentum), second_buffer = update && c.type != 0;
  const float inv = sc->inv_scale_used;
  const std::size_t n = t.n;
  unsigned long long lost_here = 0;
  bool bad = false, bad_copy = false;
  for_each_pack(n, [&](std::size_t first, bool active) {
    Pack<M> pp = active ? load_pack(t.p, first, n) : Pack<M>{};
    const Pack<G> gg = active && update ? load_pack(t.g, first, n) : Pack<G>{};
    Pack<M> b1 = active && first_buffer ? load_pack(t.buf1, first, n) : Pack<M>{};
    Pack<M> b2 = active && second_buffer ? load_pack(t.buf2, first, n) : Pack<M>{};
    Pack<C> cc;
#pragma unroll
    for (int k = 0; k < pack_size; ++k) {
      const bool here = active && first + k < n;
      float after = A::load(pp.v[k]);
      if (here && update) {
        after = update_parameter(after, gg.v[k], b1.v[k], b2.v[k], c, inv, master_gradients, lost_here);
        pp.v[k] = A::store(after);
      }
      bad = bad || (here && !isfinite(after));
      // the next forward pass's cast of the weights to the compute format, made here
      cc.v[k] = round_to<C>(after);
      const double r = to_double(cc.v[k]);
      bad_copy = bad_copy || (here && !isfinite(r));
      cast_tally.add(here, after, r);
      histo.add(here, after);
    }
    if (active && update) {
      store_pack(t.p, first, n, pp);
      if (first_buffer) store_pack(t.buf1, first, n, b1);
      if (second_buffer) store_pack(t.buf2, first, n, b2);
      if (t.copy != nullptr) store_pack(t.copy, first, n, cc);
    }
  }, block, blocks);
  cast_tally.flush();
  histo.flush();
  const unsigned long long block_lost = block_sum<unsigned long long>(lost_here);
  if (first_thread() && block_lost != 0) atomicAdd(lost, block_lost);
  if (bad && t.st.nonfinite != nullptr) *t.st.nonfinite = 1;
  if (bad_copy && t.copy_nonfinite != nullptr) *t.copy_nonfinite = 1;
}

}  // namespace

void begin_step(DeviceScaler* scaler, DeviceEffects* cast_fx_now, DeviceEffects* cast_fx_next, int tensors,
                int* cast_flags_next, const StepBlock& block, cudaStream_t s) {
  begin_step_kernel<<<1, 256, 0, s>>>(scaler, cast_fx_now, cast_fx_next, tensors, cast_flags_next, block);
  MPSCOPE_LAUNCH_CHECK();
}

void finish_backward(double* partials, int partial_count, DeviceScaler* scaler, DeviceStepOut* out, cudaStream_t s) {
  finish_backward_kernel<<<1, 1024, 0, s>>>(partials, partial_count, scaler, out);
  MPSCOPE_LAUNCH_CHECK();
}

void scaler_trace(DeviceScaler* scaler, const int* found_inf, int steps, float* scale_after, cudaStream_t s) {
  scaler_trace_kernel<<<1, 1, 0, s>>>(scaler, found_inf, steps, scale_after);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename G, typename M, typename C>
void optimizer_step(OptimizerTensors<G, M, C> tensors, const OptimizerConstants* constants, const DeviceScaler* scaler,
                    int master_gradients, unsigned long long* lost, cudaStream_t s) {
  int blocks = 0, count = 0;
  for (int i = 0; i < tensors.count; ++i) {  // (empty tensors dropped)
    if (tensors.t[i].n == 0) continue;
    tensors.t[count] = tensors.t[i];
    tensors.first_block[count++] = blocks;
    blocks += pack_blocks(tensors.t[i].n);
  }
  tensors.count = count;
  tensors.first_block[count] = blocks;
  if (count == 0) return;
  optimizer_kernel<<<blocks, block_threads, 0, s>>>(tensors, constants, scaler, master_gradients, lost);
  MPSCOPE_LAUNCH_CHECK();
}

#define MPSCOPE_OPTIMIZER(G, M, C)                                                                                    \
  template void optimizer_step<G, M, C>(OptimizerTensors<G, M, C>, const OptimizerConstants*, const DeviceScaler*, int, \
                                        unsigned long long*, cudaStream_t);
MPSCOPE_OPTIMIZER(float, float, float)
MPSCOPE_OPTIMIZER(__half, float, __half)
MPSCOPE_OPTIMIZER(__nv_bfloat16, float, __nv_bfloat16)
MPSCOPE_OPTIMIZER(__half, __half, __half)
#undef MPSCOPE_OPTIMIZER

}  // namespace mpscope::gpu::kernels
