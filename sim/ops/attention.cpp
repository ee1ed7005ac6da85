// Causal multi-head self-attention (nanoGPT's CausalSelfAttention between c_attn and c_proj, without flash
// attention): the input holds q | k | v (T, 3·D) per sample, H heads of width d = D/H, the output (T, D) the heads
// side by side. Under autocast (PyTorch's fp32 list has softmax, its lower-precision list matmul):
//
//   forward   s  = round_A(acc(q·kᵀ))                  (T, T) per head: bmm in the lane's accumulation model
//             a  = round_A(s · c)                      c = float32(1/√d) (PyTorch multiplies in float32);
//                                                      a of the causal positions is the head's "scores" tensor
//             p  = round_P(softmax(a, masked j > t))   the promoted format (fp32 under AMP): float storage computes
//                                                      it as PyTorch's warp softmax does (below), wide lanes exactly
//             pA = round_A(p)                          autocast's cast for the next bmm ("probs" tensor)
//             y  = round_A(acc(pA·v))                  (T, d) per head, into the head's columns of (T, D)
//   backward  dpA = round_G(acc(dy·vᵀ)),  dv = round_G(acc(pAᵀ·dy))
//             da = round_G(round_P(dpA·p − p·Σ_j dpA·p))   softmax's backward in P, then the cast's backward
//             ds = round_G(da · c)
//             dq = round_G(acc(ds·k)),  dk = round_G(acc(dsᵀ·q))
// The masked positions hold 0 in p (exp(−inf)); their gradients are 0. Roundings of a, s count to the head's
// scores tensor, of p and pA to the probs tensor, the backward's to the input's gradient.
//
// A lane with "attention_scores": "float32" (Hugging Face GPT-2's reorder_and_upcast_attn: baddbmm of q.float()
// and k.float() with autocast off) forms s and a by an fp32 GEMM and rounds them to P instead of A; backward, da
// and ds stay in P and dq, dk are fp32 GEMMs of ds, rounded to G once (the .float() casts' backward).
//
// PyTorch's softmax of rows up to 1024 long (softmax_warp_forward / _backward, float32 math for fp16, bf16 and
// fp32 inputs) sums across a warp: W = min(next power of two ≥ T, 32) lanes, lane l holding elements l, l + W, ...
// (summed in that order), then a butterfly (offsets W/2 .. 1) adds the lanes' sums; p = e / sum with
// e = float32(exp(a − max)); the backward's Σ dp·p likewise, da = p·(dp − Σ). On float storage the lane follows
// that order (its expf is correctly rounded; CUDA's may differ by an ulp): the step-0 oracle's attention output
// matches 8190 of 8192 values this way, against 8170 for an exactly rounded softmax. (Rows longer than 1024 use
// PyTorch's block softmax, whose order this does not follow: there the float32 sums are approximate.)
#include <cmath>

#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class CausalAttention final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;

  CausalAttention(const Node& n, const OptimizerConfig&)
      : Op<Ops>(n), t_(n.in_shape[0]), d_(n.out_shape[1]), heads_(n.spec.heads), hd_(d_ / heads_), causal_(t_ * (t_ + 1) / 2) {
    if constexpr (std::is_same_v<T, float>) {
      scale_ = W(static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd_))));
    } else {
      scale_ = W(1) / lanemath::sqrt(W(static_cast<double>(hd_)));
    }
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& input, Matrix<T>& y, bool) override {
    const Matrix<T>& qkv = gemm_operand(cx, input, cast_input_);  // (a promoted input: the bmm's cast)
    const std::int64_t batch = qkv.rows;
    const std::size_t block = static_cast<std::size_t>(batch * causal_);  // one head's causal values
    scores_.assign(static_cast<std::size_t>(heads_) * block, T(0));
    probs_.assign(scores_.size(), T(0));
    probs_a_.assign(scores_.size(), T(0));
    std::vector<T> full(static_cast<std::size_t>(t_ * t_)), out(static_cast<std::size_t>(t_ * hd_));
    std::vector<T> ys(static_cast<std::size_t>(batch * t_ * d_));
    std::vector<W> wide(block);
    for (std::int64_t h = 0; h < heads_; ++h) {
      const std::span<T> s(scores_.data() + h * block, block);
      for (std::int64_t b = 0; b < batch; ++b) {
        scores_gemm(cx, q(qkv, b, h), k(qkv, b, h).transposed(), full, {Role::activations, Role::activations});
        pack(full, s.subspan(static_cast<std::size_t>(b * causal_), static_cast<std::size_t>(causal_)));
      }
      const std::size_t tensor = this->node().scores_tensor + static_cast<std::size_t>(h);
      cx.ops.cast(cx.ops.scores_role(), tensor, s, s, cx.log);
      for (std::size_t i = 0; i < block; ++i) wide[i] = scaled(s[i]);
      cx.ops.store(cx.ops.scores_role(), tensor, wide, s, cx.log);
      for (std::int64_t r = 0; r < batch * t_; ++r) softmax_row(s, r, wide);  // (wide: the values as P rounds them)
      const std::span<T> p(probs_.data() + h * block, block), pa(probs_a_.data() + h * block, block);
      cx.ops.store(Role::promoted, probs_tensor(), wide, p, cx.log);
      if (cx.ops.same_format(Role::promoted, Role::activations)) {
        std::copy(p.begin(), p.end(), pa.begin());
      } else {
        cx.ops.cast(Role::activations, probs_tensor(), p, pa, cx.log);
      }
      for (std::int64_t b = 0; b < batch; ++b) {
        unpack(pa.subspan(static_cast<std::size_t>(b * causal_), static_cast<std::size_t>(causal_)), full);
        cx.ops.gemm(square(full), v(qkv, b, h), out, 1.0f, {Role::activations, Role::activations});
        for (std::int64_t t = 0; t < t_; ++t)
          std::copy_n(out.begin() + t * hd_, hd_, ys.begin() + (b * t_ + t) * d_ + h * hd_);
      }
    }
    y = Matrix<T>(batch, t_ * d_);
    cx.ops.cast(Role::activations, cx.out_tensor, ys, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& input, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dqkv) override {
    const Matrix<T>& qkv = cast_input_.data.empty() ? input : cast_input_;  // (as the forward took it)
    const std::int64_t batch = qkv.rows;
    const std::size_t block = static_cast<std::size_t>(batch * causal_);
    std::vector<T> grads(qkv.data.size());  // dq | dk | dv as the GEMMs give them, rounded at the end
    std::vector<T> full(static_cast<std::size_t>(t_ * t_)), out(static_cast<std::size_t>(t_ * hd_));
    std::vector<T> dp(static_cast<std::size_t>(causal_)), dpa(full.size()), row_p(static_cast<std::size_t>(t_));
    std::vector<W> wide(static_cast<std::size_t>(causal_));
    for (std::int64_t h = 0; h < heads_; ++h)
      for (std::int64_t b = 0; b < batch; ++b) {
        const std::size_t at = static_cast<std::size_t>(h) * block + static_cast<std::size_t>(b * causal_);
        const std::span<const T> p(probs_.data() + at, static_cast<std::size_t>(causal_));
        const std::span<const T> pa(probs_a_.data() + at, static_cast<std::size_t>(causal_));
        const View<T> dyh{dy.data.data() + b * t_ * d_ + h * hd_, t_, hd_, d_, 1};
        // dpA (T, T), the masked positions too: PyTorch rounds them all, and the softmax's backward sums whole rows
        // (an inf there makes the row NaN); then dv
        cx.ops.gemm(dyh, v(qkv, b, h).transposed(), dpa, 1.0f, {Role::gradients, Role::activations});
        cx.ops.cast(Role::gradients, cx.in_grad_tensor, dpa, dpa, cx.log);
        unpack(pa, full);
        cx.ops.gemm(square(full).transposed(), dyh, out, 1.0f, {Role::activations, Role::gradients});
        scatter(out, grads, b, 2 * d_ + h * hd_);
        // softmax backward, the casts' backward, the scale
        for (std::int64_t t = 0, row = 0; t < t_; row += ++t) {
          std::fill(row_p.begin(), row_p.end(), T(0));
          std::copy_n(p.begin() + row, t + 1, row_p.begin());
          softmax_backward_row(row_p, std::span<const T>(dpa).subspan(static_cast<std::size_t>(t * t_), static_cast<std::size_t>(t_)),
                               wide.data() + row, t + 1);
        }
        const Role ds_role = cx.ops.scores_role() == Role::promoted ? Role::promoted : Role::gradients;
        cx.ops.store_promoted_then(ds_role, cx.in_grad_tensor, wide, dp, cx.log);
        for (std::size_t i = 0; i < dp.size(); ++i) wide[i] = scaled(dp[i]);
        cx.ops.store(ds_role, cx.in_grad_tensor, wide, dp, cx.log);
        // dq and dk
        unpack(dp, full);
        scores_gemm(cx, square(full), k(qkv, b, h), out, {Role::gradients, Role::activations});
        scatter(out, grads, b, h * hd_);
        scores_gemm(cx, square(full).transposed(), q(qkv, b, h), out, {Role::gradients, Role::activations});
        scatter(out, grads, b, d_ + h * hd_);
      }
    if (!dqkv) return;
    *dqkv = Matrix<T>(qkv.rows, qkv.cols);
    cx.ops.cast(Role::gradients, cx.in_grad_tensor, grads, dqkv->values(), cx.log);
  }

  std::span<const T> internal_values(std::size_t tensor) const override {
    const std::size_t first = this->node().scores_tensor, block = scores_.size() / static_cast<std::size_t>(heads_);
    if (tensor >= first && tensor < first + static_cast<std::size_t>(heads_))
      return {scores_.data() + (tensor - first) * block, block};
    if (tensor == probs_tensor()) return probs_a_;
    return {};
  }

 private:
  std::size_t probs_tensor() const { return this->node().scores_tensor + static_cast<std::size_t>(heads_); }
  // q·kᵀ and its backward GEMMs: autocast's bmm (the lane's model), or an fp32 GEMM where the lane upcasts them.
  void scores_gemm(OpContext<Ops>& cx, View<T> a, View<T> b, std::vector<T>& out, GemmRoles roles) const {
    if (cx.ops.scores_role() == Role::promoted) {
      cx.ops.float32_gemm(a, b, out);
    } else {
      cx.ops.gemm(a, b, out, 1.0f, roles);
    }
  }
  // Head h's q, k, v of sample b: (T, d) views into q | k | v.
  View<T> part(const Matrix<T>& qkv, std::int64_t b, std::int64_t h, std::int64_t which) const {
    return {qkv.data.data() + b * t_ * 3 * d_ + which * d_ + h * hd_, t_, hd_, 3 * d_, 1};
  }
  View<T> q(const Matrix<T>& m, std::int64_t b, std::int64_t h) const { return part(m, b, h, 0); }
  View<T> k(const Matrix<T>& m, std::int64_t b, std::int64_t h) const { return part(m, b, h, 1); }
  View<T> v(const Matrix<T>& m, std::int64_t b, std::int64_t h) const { return part(m, b, h, 2); }
  View<T> square(const std::vector<T>& m) const { return {m.data(), t_, t_, t_, 1}; }

  // (T, T) <-> the causal positions j <= t, row by row (row t starts at t·(t+1)/2).
  void pack(const std::vector<T>& full, std::span<T> causal) const {
    for (std::int64_t t = 0, row = 0; t < t_; row += ++t)
      std::copy_n(full.begin() + t * t_, t + 1, causal.begin() + row);
  }
  void unpack(std::span<const T> causal, std::vector<T>& full) const {
    std::fill(full.begin(), full.end(), T(0));
    for (std::int64_t t = 0, row = 0; t < t_; row += ++t)
      std::copy_n(causal.begin() + row, t + 1, full.begin() + t * t_);
  }
  // (T, d) GEMM result into sample b's columns [col, col + d) of q | k | v.
  void scatter(const std::vector<T>& out, std::vector<T>& grads, std::int64_t b, std::int64_t col) const {
    for (std::int64_t t = 0; t < t_; ++t)
      std::copy_n(out.begin() + t * hd_, hd_, grads.begin() + (b * t_ + t) * 3 * d_ + col);
  }

  // Softmax of causal row r (sample r / T, position r % T) of the scores into `wide`.
  void softmax_row(std::span<const T> s, std::int64_t r, std::vector<W>& wide) const {
    const std::int64_t t = r % t_, first = (r / t_) * causal_ + t * (t + 1) / 2;
    const std::span<const T> row = s.subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(t + 1));
    W* out = wide.data() + first;
    W max = W(row[0]);
    for (const T& v : row) max = std::max(max, W(v));
    if constexpr (std::is_same_v<T, float>) {
      std::vector<float> e(row.size());
      for (std::size_t j = 0; j < row.size(); ++j) e[j] = static_cast<float>(lanemath::exp(static_cast<double>(row[j] - static_cast<float>(max))));
      const float sum = warp_sum(e);
      for (std::size_t j = 0; j < row.size(); ++j) out[j] = e[j] / sum;
    } else {
      W sum(0);
      for (std::size_t j = 0; j < row.size(); ++j) sum += out[j] = lanemath::exp(W(row[j]) - max);
      for (std::size_t j = 0; j < row.size(); ++j) out[j] /= sum;
    }
  }

  // d a = dp·p − p·Σ(dp·p) of one row (p and dp over all T positions, p 0 where masked) into out[0, causal):
  // on float storage as PyTorch's softmax_warp_backward forms it: g = float32(dp·p), the warp sum, then
  // fma(−p, sum, g) (here in double, one rounding by the caller's store).
  void softmax_backward_row(std::span<const T> p, std::span<const T> dp, W* out, std::int64_t causal) const {
    if constexpr (std::is_same_v<T, float>) {
      std::vector<float> products(p.size());
      for (std::size_t j = 0; j < p.size(); ++j) products[j] = dp[j] * p[j];
      const float sum = warp_sum(products);
      for (std::int64_t j = 0; j < causal; ++j)
        out[j] = static_cast<double>(products[static_cast<std::size_t>(j)]) -
                 static_cast<double>(p[static_cast<std::size_t>(j)]) * static_cast<double>(sum);
    } else {
      W sum(0);
      for (std::size_t j = 0; j < p.size(); ++j) sum += W(dp[j]) * W(p[j]);
      for (std::int64_t j = 0; j < causal; ++j)
        out[j] = W(dp[static_cast<std::size_t>(j)]) * W(p[static_cast<std::size_t>(j)]) - W(p[static_cast<std::size_t>(j)]) * sum;
    }
  }

  // x · c as PyTorch multiplies an fp16/bf16/fp32 tensor by a Python float: in float32, then rounded by the
  // caller's store (float storage); exact on the wide lanes.
  W scaled(const T& x) const {
    if constexpr (std::is_same_v<T, float>) {
      return static_cast<float>(x * static_cast<float>(scale_));
    } else {
      return W(x) * scale_;
    }
  }

  // The float32 sum of a row (the causal part; the masked rest is 0) as PyTorch's warp softmax forms it.
  float warp_sum(const std::vector<float>& v) const {
    std::int64_t width = 1;
    while (width < t_) width *= 2;
    const std::int64_t lanes = std::min<std::int64_t>(width, 32);
    std::vector<float> lane(static_cast<std::size_t>(lanes), 0.0f);
    for (std::int64_t l = 0; l < lanes; ++l)
      for (std::int64_t j = l; j < width; j += lanes)
        if (j < static_cast<std::int64_t>(v.size())) lane[static_cast<std::size_t>(l)] = j == l ? v[static_cast<std::size_t>(j)] : lane[static_cast<std::size_t>(l)] + v[static_cast<std::size_t>(j)];
    for (std::int64_t offset = lanes / 2; offset > 0; offset /= 2) {
      std::vector<float> next(lane.size());
      for (std::size_t l = 0; l < lane.size(); ++l) next[l] = lane[l] + lane[l ^ static_cast<std::size_t>(offset)];
      lane = next;
    }
    return lane[0];
  }

  std::int64_t t_, d_, heads_, hd_, causal_;
  W scale_;
  std::vector<T> scores_, probs_, probs_a_;  // (heads, batch, T·(T+1)/2): a, p (promoted), pA
  Matrix<T> cast_input_;                     // a promoted input cast to the activation format (gemm_operand); else empty
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_causal_attention(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<CausalAttention<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_causal_attention)

}  // namespace mpscope::sim
