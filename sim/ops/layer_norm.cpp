// LayerNorm (nn.LayerNorm(D)) over the last dimension of each sample, with weight γ and bias β (D).
//
//   forward   γc, βc = cast(γ, β)                      the activations role
//             y = round((x − mean)·rstd·γc + βc)      statistics and the normalisation in the wide type,
//                                                      rstd = 1/sqrt(var + eps), biased variance; rounded once
//   backward  dγ = round(Σ dy·x̂), dβ = round(Σ dy)     over the rows; the gradients role
//             dx = round(rstd/D·(D·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂))),  dx̂ = dy·γc
// rows = batch × the sample's leading dimensions.
// Under autocast PyTorch runs layer_norm in float32 (its fp32 list): fp32 γ, β and an fp32 output. This op rounds
// γ, β and the output to the activation format, which equals PyTorch where a Linear or Conv follows (they cast their
// input anyway: the mlp's case) but not before an activation, a pool or the loss (to do with the transformer).
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
    Param<Ops>& gamma = params_[0];
    Param<Ops>& beta = params_[1];
    gamma.compute.resize(gamma.master.size());
    beta.compute.resize(beta.master.size());
    cx.ops.cast(Role::activations, gamma.tensor, gamma.master, gamma.compute, cx.log);
    cx.ops.cast(Role::activations, beta.tensor, beta.master, beta.compute, cx.log);
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
        wide[static_cast<std::size_t>(i * n + j)] =
            (W(h[j]) - mean) * rstd * W(gamma.compute[static_cast<std::size_t>(j)]) + W(beta.compute[static_cast<std::size_t>(j)]);
    }
    y = Matrix<T>(x.rows, x.cols);
    cx.ops.store(Role::activations, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    const std::int64_t rows = dy.size() / d_, n = d_;
    const std::vector<T>& gamma = params_[0].compute;
    std::vector<W> dgamma(static_cast<std::size_t>(n), W(0)), dbeta(static_cast<std::size_t>(n), W(0));
    std::vector<W> dh(dx ? dy.data.size() : 0);
    for (std::int64_t i = 0; i < rows; ++i) {
      const T* h = x.data.data() + i * n;
      const T* g = dy.data.data() + i * n;
      const W mean = mean_[static_cast<std::size_t>(i)], rstd = rstd_[static_cast<std::size_t>(i)];
      W sum_dxhat(0), sum_dxhat_xhat(0);
      for (std::int64_t j = 0; j < n; ++j) {
        const W xhat = (W(h[j]) - mean) * rstd;
        const W dxhat = W(g[j]) * W(gamma[static_cast<std::size_t>(j)]);
        dgamma[static_cast<std::size_t>(j)] += W(g[j]) * xhat;
        dbeta[static_cast<std::size_t>(j)] += W(g[j]);
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
      }
      if (!dx) continue;
      for (std::int64_t j = 0; j < n; ++j) {
        const W xhat = (W(h[j]) - mean) * rstd;
        const W dxhat = W(g[j]) * W(gamma[static_cast<std::size_t>(j)]);
        dh[static_cast<std::size_t>(i * n + j)] =
            rstd / W(static_cast<double>(n)) * (W(static_cast<double>(n)) * dxhat - sum_dxhat - xhat * sum_dxhat_xhat);
      }
    }
    params_[0].grad.resize(static_cast<std::size_t>(n));
    params_[1].grad.resize(static_cast<std::size_t>(n));
    cx.ops.store(Role::gradients, params_[0].grad_tensor, dgamma, params_[0].grad, cx.log);
    cx.ops.store(Role::gradients, params_[1].grad_tensor, dbeta, params_[1].grad, cx.log);
    if (!dx) return;
    *dx = Matrix<T>(dy.rows, dy.cols);
    cx.ops.store(Role::gradients, cx.in_grad_tensor, dh, dx->values(), cx.log);
  }

 private:
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
