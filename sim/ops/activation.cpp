// Activations (nn.ReLU, GELU (erf and tanh forms), Tanh, Sigmoid, SiLU), elementwise on any shape.
//
//   forward   y  = round(act(x))           computed in the wide type, rounded once to the input's format
//                                          (autocast: as PyTorch's kernels compute in fp32; promoted inputs stay so)
//   backward  dx = round(dy · act'(x))     the input gradient's format; ReLU as threshold_backward: dy where x > 0, else +0
#include <boost/math/constants/constants.hpp>

#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class ActivationOp final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;

  ActivationOp(const Node& n, const OptimizerConfig&) : Op<Ops>(n), act_(n.spec.activation) {}

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    std::vector<W> wide(x.data.size());
    for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = activate(W(x.data[i]));
    y = Matrix<T>(x.rows, x.cols);
    cx.ops.store(cx.out_role, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& dy, Matrix<T>* dx) override {
    if (!dx) return;
    std::vector<W> wide(dy.data.size());
    for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = derivative_times(W(dy.data[i]), W(x.data[i]), W(y.data[i]));
    *dx = Matrix<T>(dy.rows, dy.cols);
    cx.ops.store(cx.in_grad_role(), cx.in_grad_tensor, wide, dx->values(), cx.log);
  }

 private:
  // Constants computed in W, so that the exact lane gets them to its own precision.
  static W inv_sqrt2() { return lanemath::sqrt(W(0.5)); }
  static W inv_sqrt_2pi() { return lanemath::sqrt(W(0.5) / boost::math::constants::pi<W>()); }
  static W sqrt_2_over_pi() { return lanemath::sqrt(W(2) / boost::math::constants::pi<W>()); }
  static W gelu_cubic() { return W(44715) / W(1000000); }
  static W sigmoid(const W& z) { return W(1) / (W(1) + lanemath::exp(-z)); }

  W activate(const W& z) const {
    switch (act_) {
      case Activation::relu: return z > W(0) ? z : W(0);
      case Activation::gelu: return W(0.5) * z * (W(1) + lanemath::erf(z * inv_sqrt2()));
      case Activation::gelu_tanh: {
        const W u = sqrt_2_over_pi() * (z + gelu_cubic() * z * z * z);
        return W(0.5) * z * (W(1) + lanemath::tanh(u));
      }
      case Activation::tanh: return lanemath::tanh(z);
      case Activation::sigmoid: return sigmoid(z);
      case Activation::silu: return z * sigmoid(z);
    }
    return z;
  }

  // d loss / d x from d loss / d y at x (y = act(x) where that is cheaper). ReLU selects, so that a negative
  // gradient times a zero slope gives +0, not -0 (PyTorch's threshold_backward).
  W derivative_times(const W& dy, const W& z, const W& h) const {
    switch (act_) {
      case Activation::relu: return z > W(0) ? dy : W(0);
      case Activation::gelu: {
        const W cdf = W(0.5) * (W(1) + lanemath::erf(z * inv_sqrt2()));
        const W pdf = lanemath::exp(W(-0.5) * z * z) * inv_sqrt_2pi();
        return dy * (cdf + z * pdf);
      }
      case Activation::gelu_tanh: {
        const W k0 = sqrt_2_over_pi(), k1 = gelu_cubic();
        const W t = lanemath::tanh(k0 * (z + k1 * z * z * z));
        return dy * (W(0.5) * (W(1) + t) + W(0.5) * z * (W(1) - t * t) * k0 * (W(1) + W(3) * k1 * z * z));
      }
      case Activation::tanh: return dy * (W(1) - h * h);
      case Activation::sigmoid: return dy * (h * (W(1) - h));
      case Activation::silu: {
        const W s = sigmoid(z);
        return dy * (s * (W(1) + z * (W(1) - s)));
      }
    }
    return dy;
  }

  Activation act_;
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_activation(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<ActivationOp<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_activation)

}  // namespace mpscope::sim
