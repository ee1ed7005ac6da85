// Add (a residual edge, x + r as in `x = x + block(x)`): the node's input plus an earlier activation r of the same
// shape, which the lane hands over (OpContext::residual; Node::residual says which).
//
//   forward   y = round(x + r)          the sum of two values, rounded once to the output's format: promoted (fp32
//                                       under autocast) when either operand is, by type promotion — a transformer's
//                                       residual stream; PyTorch adds in float32 and rounds once
//   backward  dx = round(dy)            the input gradient's format (a narrow input: the promotion's cast backward);
//                                       r's gradient gets dy too, which the lane adds to what r's other consumer
//                                       sends back: round(d_r + dy), one rounding to r's gradient format (PyTorch
//                                       rounds dy to a narrow r's format first: not modelled, no shipped model has
//                                       a narrow r under a promoted sum)
#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class Add final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;

  Add(const Node& n, const OptimizerConfig&) : Op<Ops>(n) {}

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    const Matrix<T>& r = *cx.residual;
    std::vector<W> wide(x.data.size());
    for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = W(x.data[i]) + W(r.data[i]);
    y = Matrix<T>(x.rows, x.cols);
    cx.ops.store(cx.out_role, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    if (dx) pass_gradient(cx, dy, *dx);
  }
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_add(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Add<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_add)

}  // namespace mpscope::sim
