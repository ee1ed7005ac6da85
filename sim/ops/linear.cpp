// Linear (nn.Linear): y = x·Wᵀ + b over the last dimension of each sample.
//
//   forward   Wc = cast(W)                       (out, in)    the weights role (AMP: fp16; FP8: scaled E4M3)
//             bc = cast(b)                       (out)        the activations role
//             xq = cast(x)                       (rows, in)   FP8 only: the GEMM input's own scaled cast
//             y  = round(xq·Wcᵀ + bc)            (rows, out)  GEMM in the lane's accumulation model; the bias added to
//                                                             its float32 result and the sum rounded once, as
//                                                             cuBLASLt's epilogue does for PyTorch (docs/recipes.md)
//   backward  dyq = cast(dy)                     (rows, out)  FP8 only (E5M2)
//             dW = round(dyqᵀ·xq)                (out, in)    the gradients role
//             db = round(Σ_rows dy)              (out)
//             dx = round(dyq·Wc)                 (rows, in)   only where an op before has parameters
// rows = batch × the sample's leading dimensions (1 for (features) samples).
#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class Linear final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  using Op<Ops>::params_;

  Linear(const Node& n, const OptimizerConfig& c) : Op<Ops>(n) {
    for (const ParamInfo& p : n.params) params_.emplace_back(p, c);
    in_ = n.in_shape.back();
    out_ = n.out_shape.back();
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    const std::int64_t rows = x.size() / in_;
    const int slot = 3 * this->node().gemm;
    Param<Ops>& w = params_[0];
    w.compute.resize(w.master.size());
    w.descale = cx.ops.quantize(Role::weights, slot + 1, w.tensor, w.master, w.compute, cx.log);
    // Bias parameters join values of the activation format (AMP: fp16, FP8: fp32).
    std::vector<T> bias_c(has_bias() ? static_cast<std::size_t>(out_) : 0);
    if (has_bias()) cx.ops.cast(Role::activations, params_[1].tensor, params_[1].master, bias_c, cx.log);
    xq_ = Matrix<T>(x.rows, x.cols);
    Matrix<T> cast_input;
    const Matrix<T>& input = gemm_operand(cx, x, cast_input);
    xq_descale_ = cx.ops.quantize(Role::gemm_input, slot, cx.in_tensor, input.values(), xq_.values(), cx.log);
    std::vector<T> product(static_cast<std::size_t>(rows * out_));
    cx.ops.gemm(flat(xq_, in_), View<T>{w.compute.data(), out_, in_, in_, 1}.transposed(), product, xq_descale_ * w.descale);
    std::vector<W> wide(product.size());
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < out_; ++j) {
        const T p = product[static_cast<std::size_t>(i * out_ + j)];
        wide[static_cast<std::size_t>(i * out_ + j)] = has_bias() ? W(p + bias_c[static_cast<std::size_t>(j)]) : W(p);
      }
    y = Matrix<T>(x.rows, x.size() / x.rows / in_ * out_);
    cx.ops.store(Role::activations, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    const std::int64_t rows = dy.size() / out_;
    Matrix<T> dyq(dy.rows, dy.cols);
    const float dy_descale = cx.ops.quantize(Role::gemm_grad_input, 3 * this->node().gemm + 2, cx.out_grad_tensor,
                                             dy.values(), dyq.values(), cx.log);
    Param<Ops>& w = params_[0];
    w.grad.resize(w.master.size());
    cx.ops.gemm(flat(dyq, out_).transposed(), flat(xq_, in_), w.grad, dy_descale * xq_descale_, {Role::gemm_grad_input, Role::gemm_input});
    cx.ops.cast(Role::gradients, w.grad_tensor, w.grad, w.grad, cx.log);
    if (has_bias()) {
      std::vector<W> sum(static_cast<std::size_t>(out_), W(0));
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < out_; ++j) sum[static_cast<std::size_t>(j)] += W(dy.data[static_cast<std::size_t>(i * out_ + j)]);
      params_[1].grad.resize(static_cast<std::size_t>(out_));
      cx.ops.store(Role::gradients, params_[1].grad_tensor, sum, params_[1].grad, cx.log);
    }
    if (!dx) return;
    *dx = Matrix<T>(dy.rows, dy.size() / dy.rows / out_ * in_);
    cx.ops.gemm(flat(dyq, out_), View<T>{w.compute.data(), out_, in_, in_, 1}, dx->values(), dy_descale * w.descale,
                {Role::gemm_grad_input, Role::weights});
    cx.ops.cast(Role::gradients, cx.in_grad_tensor, dx->values(), dx->values(), cx.log);
  }

 private:
  bool has_bias() const { return params_.size() > 1; }
  // (batch, samples × features) as (rows, features)
  static View<T> flat(const Matrix<T>& m, std::int64_t features) {
    return {m.data.data(), m.size() / features, features, features, 1};
  }

  std::int64_t in_ = 0, out_ = 0;
  Matrix<T> xq_;  // (batch, in_size) the input as the GEMM took it (after an FP8 cast)
  float xq_descale_ = 1.0f;
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_linear(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Linear<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_linear)

}  // namespace mpscope::sim
