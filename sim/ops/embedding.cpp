// Embedding (nn.Embedding(V, D)) of token ids and a learned position embedding (nanoGPT's wpe: x + wpe[0..T)).
// Under autocast both are fp32 (embedding is on no autocast list, so it returns its fp32 weights' rows; the sum
// of two fp32 tensors is fp32): their outputs are promoted (Node::promoted).
//
//   embedding           forward   y[t] = W[id_t]              (T, D) per sample, the master values (promoted role)
//                       backward  dW[v] = round_P(Σ_{id_t = v} dy[t])   (V, D), summed in the wide type
//   position_embedding  forward   y[t] = round(x[t] + Pc[t])  (T, D); the output's format
//                       backward  dP[t] = round_P(Σ_batch dy[t]),  dx = dy (cast to the input's gradient format)
#include <cmath>

#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class Embedding final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  using Op<Ops>::params_;

  Embedding(const Node& n, const OptimizerConfig& c) : Op<Ops>(n), vocab_(n.spec.count), d_(n.spec.out) {
    params_.emplace_back(n.params[0], c);
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& ids, Matrix<T>& y, bool) override {
    Param<Ops>& w = params_[0];
    w.compute = w.master;  // (the promoted format is the master's)
    y = Matrix<T>(ids.rows, ids.cols * d_);
    for (std::int64_t i = 0; i < ids.size(); ++i) {
      const std::int64_t id = token(ids.data[static_cast<std::size_t>(i)]);
      std::copy_n(w.compute.begin() + id * d_, d_, y.data.begin() + i * d_);
    }
    cx.log.template check_finite<T>(cx.out_tensor, y.values());
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& ids, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>*) override {
    std::vector<W> sum(static_cast<std::size_t>(vocab_ * d_), W(0));
    for (std::int64_t i = 0; i < ids.size(); ++i) {
      const std::int64_t id = token(ids.data[static_cast<std::size_t>(i)]);
      for (std::int64_t j = 0; j < d_; ++j) sum[static_cast<std::size_t>(id * d_ + j)] += W(dy.data[static_cast<std::size_t>(i * d_ + j)]);
    }
    Param<Ops>& w = params_[0];
    w.grad.resize(sum.size());
    cx.ops.store(Role::promoted, w.grad_tensor, sum, w.grad, cx.log);
  }

 private:
  std::int64_t token(const T& v) const {
    const double id = to_double(v);
    if (!(id >= 0 && id < static_cast<double>(vocab_)) || id != std::floor(id))
      throw std::invalid_argument(this->node().module + ": token id " + std::to_string(id) + " is outside the vocabulary 0.." +
                                  std::to_string(vocab_ - 1));
    return static_cast<std::int64_t>(id);
  }

  std::int64_t vocab_, d_;
};

template <class Ops>
class PositionEmbedding final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  using Op<Ops>::params_;

  PositionEmbedding(const Node& n, const OptimizerConfig& c) : Op<Ops>(n), t_(n.in_shape[0]), d_(n.in_shape[1]) {
    params_.emplace_back(n.params[0], c);
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    Param<Ops>& p = params_[0];
    p.compute = p.master;
    const std::int64_t sample = t_ * d_;
    std::vector<W> wide(x.data.size());
    for (std::size_t i = 0; i < wide.size(); ++i)
      wide[i] = W(x.data[i]) + W(p.compute[i % static_cast<std::size_t>(sample)]);
    y = Matrix<T>(x.rows, x.cols);
    cx.ops.store(cx.out_role, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    const std::int64_t sample = t_ * d_;
    Param<Ops>& p = params_[0];
    std::vector<W> sum(p.master.size(), W(0));
    for (std::size_t i = 0; i < dy.data.size(); ++i) sum[i % static_cast<std::size_t>(sample)] += W(dy.data[i]);
    p.grad.resize(p.master.size());
    cx.ops.store(Role::promoted, p.grad_tensor, sum, p.grad, cx.log);
    if (dx) pass_gradient(cx, dy, *dx);
  }

 private:
  std::int64_t t_, d_;
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_embedding(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Embedding<Ops>>(n, c);
}
template <class Ops>
std::unique_ptr<Op<Ops>> make_position_embedding(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<PositionEmbedding<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_embedding)
MPSCOPE_INSTANTIATE_OP(make_position_embedding)

}  // namespace mpscope::sim
