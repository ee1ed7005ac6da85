// LayerNorm (nn.LayerNorm(D)) over the last dimension of each sample, with weight γ and bias β (D; β optional).
//
//   forward   γc, βc = γ, β                            the master values (autocast's fp32 list: fp32 parameters)
//             y = round_P((x − mean)·rstd·γc + βc)    statistics and the normalisation in the wide type,
//                                                      rstd = 1/sqrt(var + eps), biased variance; rounded to the
//                                                      promoted format P (fp32 under AMP); where only a GEMM reads
//                                                      y (Node::promoted false), also to the activation format:
//                                                      the GEMM's own cast, done here
//   backward  dγ = round_P(Σ dy·x̂), dβ = round_P(Σ dy) over the rows
//             dx = round_P(rstd/D·(D·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂))),  dx̂ = dy·γc, then to the input's gradient format
//                                                      (a narrow input: the backward of autocast's cast to fp32)
// rows = batch × the sample's leading dimensions.
#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class LayerNorm final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  using Op<Ops>::params_;

  LayerNorm(const Node& n, const OptimizerConfig& c) : Op<Ops>(n), d_(n.in_shape.back()), eps_(n.spec.eps) {
    for (const ParamInfo& p : n.params) params_.emplace_back(p, c);
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    for (Param<Ops>& p : params_) p.compute = p.master;  // (the promoted format is the master's)
    const std::int64_t rows = x.size() / d_, n = d_;
    mean_.assign(static_cast<std::size_t>(rows), W(0));
    rstd_.assign(static_cast<std::size_t>(rows), W(0));
    std::vector<W> wide(x.data.size());
    for (std::int64_t i = 0; i < rows; ++i) {
      const T* h = x.data.data() + i * n;
      W mean(0), var(0);
      for (std::int64_t j = 0; j < n; ++j) mean += W(h[j]);
      mean /= W(static_cast<double>(n));
      for (std::int64_t j = 0; j < n; ++j) var += (W(h[j]) - mean) * (W(h[j]) - mean);
      var /= W(static_cast<double>(n));
      const W rstd = W(1) / lanemath::sqrt(var + W(eps_));
      mean_[static_cast<std::size_t>(i)] = mean;
      rstd_[static_cast<std::size_t>(i)] = rstd;
      for (std::int64_t j = 0; j < n; ++j)
        wide[static_cast<std::size_t>(i * n + j)] = (W(h[j]) - mean) * rstd * W(gamma()[static_cast<std::size_t>(j)]) + beta(j);
    }
    y = Matrix<T>(x.rows, x.cols);
    cx.ops.store_promoted_then(cx.out_role, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    const std::int64_t rows = dy.size() / d_, n = d_;
    std::vector<W> dgamma(static_cast<std::size_t>(n), W(0)), dbeta(static_cast<std::size_t>(n), W(0));
    std::vector<W> dh(dx ? dy.data.size() : 0);
    for (std::int64_t i = 0; i < rows; ++i) {
      const T* h = x.data.data() + i * n;
      const T* g = dy.data.data() + i * n;
      const W mean = mean_[static_cast<std::size_t>(i)], rstd = rstd_[static_cast<std::size_t>(i)];
      W sum_dxhat(0), sum_dxhat_xhat(0);
      for (std::int64_t j = 0; j < n; ++j) {
        const W xhat = (W(h[j]) - mean) * rstd;
        const W dxhat = W(g[j]) * W(gamma()[static_cast<std::size_t>(j)]);
        dgamma[static_cast<std::size_t>(j)] += W(g[j]) * xhat;
        dbeta[static_cast<std::size_t>(j)] += W(g[j]);
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
      }
      if (!dx) continue;
      for (std::int64_t j = 0; j < n; ++j) {
        const W xhat = (W(h[j]) - mean) * rstd;
        const W dxhat = W(g[j]) * W(gamma()[static_cast<std::size_t>(j)]);
        dh[static_cast<std::size_t>(i * n + j)] =
            rstd / W(static_cast<double>(n)) * (W(static_cast<double>(n)) * dxhat - sum_dxhat - xhat * sum_dxhat_xhat);
      }
    }
    params_[0].grad.resize(static_cast<std::size_t>(n));
    cx.ops.store(Role::promoted, params_[0].grad_tensor, dgamma, params_[0].grad, cx.log);
    if (params_.size() > 1) {
      params_[1].grad.resize(static_cast<std::size_t>(n));
      cx.ops.store(Role::promoted, params_[1].grad_tensor, dbeta, params_[1].grad, cx.log);
    }
    if (!dx) return;
    *dx = Matrix<T>(dy.rows, dy.cols);
    cx.ops.store_promoted_then(cx.in_grad_role(), cx.in_grad_tensor, dh, dx->values(), cx.log);
  }

 private:
  const std::vector<T>& gamma() const { return params_[0].compute; }
  W beta(std::int64_t j) const { return params_.size() > 1 ? W(params_[1].compute[static_cast<std::size_t>(j)]) : W(0); }

  std::int64_t d_;
  double eps_;
  std::vector<W> mean_, rstd_;  // (rows) the forward pass's statistics
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_layer_norm(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<LayerNorm<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_layer_norm)

}  // namespace mpscope::sim
