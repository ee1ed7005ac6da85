// BatchNorm2d (nn.BatchNorm2d(C)) on (C, H, W) samples, in training mode: each channel normalised by its batch
// statistics over (B, H, W); running statistics kept (momentum, unbiased variance) for evaluation.
// Under autocast PyTorch runs it in float32 with float32 γ, β (cuDNN takes them as they are): the statistics and
// the normalisation are wide, γ and β and their gradients keep the master format, the output and the input
// gradient round to the activation and gradient formats.
//
//   forward   y = round((x − mean_c)·rstd_c·γ_c + β_c),   rstd = 1/sqrt(var + eps), biased var
//   backward  dγ = Σ dy·x̂, dβ = Σ dy (master format); dx = round(rstd/N·(N·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂))), dx̂ = dy·γ
#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class BatchNorm2d final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  using Op<Ops>::params_;

  BatchNorm2d(const Node& n, const OptimizerConfig& c)
      : Op<Ops>(n), c_(n.in_shape[0]), area_(n.in_shape[1] * n.in_shape[2]), eps_(n.spec.eps), momentum_(n.spec.momentum),
        running_mean_(static_cast<std::size_t>(c_), W(0)), running_var_(static_cast<std::size_t>(c_), W(1)) {
    for (const ParamInfo& p : n.params) params_.emplace_back(p, c);
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool training) override {
    Param<Ops>& gamma = params_[0];
    Param<Ops>& beta = params_[1];
    gamma.compute = gamma.master;
    beta.compute = beta.master;
    const std::int64_t batch = x.rows;
    const W count(static_cast<double>(batch * area_));
    mean_.assign(static_cast<std::size_t>(c_), W(0));
    rstd_.assign(static_cast<std::size_t>(c_), W(0));
    std::vector<W> wide(x.data.size());
    for (std::int64_t c = 0; c < c_; ++c) {
      W mean(0), var(0);
      if (training) {
        for (std::int64_t b = 0; b < batch; ++b)
          for (std::int64_t p = 0; p < area_; ++p) mean += W(x(b, c * area_ + p));
        mean /= count;
        for (std::int64_t b = 0; b < batch; ++b)
          for (std::int64_t p = 0; p < area_; ++p) var += (W(x(b, c * area_ + p)) - mean) * (W(x(b, c * area_ + p)) - mean);
        const W unbiased = batch * area_ > 1 ? var / (count - W(1)) : var;
        var /= count;
        const auto k = static_cast<std::size_t>(c);
        // float32 buffers, as PyTorch's (float32 storage rounds them; the wide lanes keep them wide)
        running_mean_[k] = cx.ops.to_float32((W(1) - W(momentum_)) * running_mean_[k] + W(momentum_) * mean);
        running_var_[k] = cx.ops.to_float32((W(1) - W(momentum_)) * running_var_[k] + W(momentum_) * unbiased);
      } else {
        mean = running_mean_[static_cast<std::size_t>(c)];
        var = running_var_[static_cast<std::size_t>(c)];
      }
      const W rstd = W(1) / lanemath::sqrt(var + W(eps_));
      mean_[static_cast<std::size_t>(c)] = mean;
      rstd_[static_cast<std::size_t>(c)] = rstd;
      const W g(gamma.compute[static_cast<std::size_t>(c)]), sh(beta.compute[static_cast<std::size_t>(c)]);
      for (std::int64_t b = 0; b < batch; ++b)
        for (std::int64_t p = 0; p < area_; ++p) {
          const auto i = static_cast<std::size_t>(b * x.cols + c * area_ + p);
          wide[i] = (W(x.data[i]) - mean) * rstd * g + sh;
        }
    }
    y = Matrix<T>(x.rows, x.cols);
    cx.ops.store(cx.out_role, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    const std::int64_t batch = dy.rows;
    const W count(static_cast<double>(batch * area_));
    std::vector<W> dgamma(static_cast<std::size_t>(c_), W(0)), dbeta(static_cast<std::size_t>(c_), W(0));
    std::vector<W> dh(dx ? x.data.size() : 0);
    for (std::int64_t c = 0; c < c_; ++c) {
      const auto k = static_cast<std::size_t>(c);
      const W g(params_[0].compute[k]);
      W sum_dxhat(0), sum_dxhat_xhat(0);
      for (std::int64_t b = 0; b < batch; ++b)
        for (std::int64_t p = 0; p < area_; ++p) {
          const auto i = static_cast<std::size_t>(b * x.cols + c * area_ + p);
          const W xhat = (W(x.data[i]) - mean_[k]) * rstd_[k];
          dgamma[k] += W(dy.data[i]) * xhat;
          dbeta[k] += W(dy.data[i]);
          sum_dxhat += W(dy.data[i]) * g;
          sum_dxhat_xhat += W(dy.data[i]) * g * xhat;
        }
      if (!dx) continue;
      for (std::int64_t b = 0; b < batch; ++b)
        for (std::int64_t p = 0; p < area_; ++p) {
          const auto i = static_cast<std::size_t>(b * x.cols + c * area_ + p);
          const W xhat = (W(x.data[i]) - mean_[k]) * rstd_[k];
          dh[i] = rstd_[k] / count * (count * W(dy.data[i]) * g - sum_dxhat - xhat * sum_dxhat_xhat);
        }
    }
    params_[0].grad.resize(static_cast<std::size_t>(c_));
    params_[1].grad.resize(static_cast<std::size_t>(c_));
    cx.ops.store(Role::promoted, params_[0].grad_tensor, dgamma, params_[0].grad, cx.log);
    cx.ops.store(Role::promoted, params_[1].grad_tensor, dbeta, params_[1].grad, cx.log);
    if (!dx) return;
    *dx = Matrix<T>(x.rows, x.cols);
    cx.ops.store(cx.in_grad_role(), cx.in_grad_tensor, dh, dx->values(), cx.log);
  }

 private:
  std::int64_t c_, area_;
  double eps_, momentum_;
  std::vector<W> running_mean_, running_var_;  // (C)
  std::vector<W> mean_, rstd_;                 // (C) the forward pass's statistics
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_batch_norm2d(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<BatchNorm2d<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_batch_norm2d)

}  // namespace mpscope::sim
