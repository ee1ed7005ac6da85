// Add (a residual edge, x + r as in `x = x + block(x)`): the node's input plus an earlier activation r of the same
// shape, which the lane hands over (OpContext::residual; Node::residual says which).
//
//   forward   y = round(x + r)          the sum of two values of the format, rounded once (PyTorch adds in float32
//                                       and rounds once: exact for fp16 and bf16 operands, so the same)
//   backward  dx = dy                   no rounding; r's gradient gets dy too, which the lane adds to what r's other
//                                       consumer sends back: round(d_r + dy), one rounding (autograd's accumulation)
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
    cx.ops.store(Role::activations, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>&, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    if (dx) *dx = dy;
  }
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_add(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Add<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_add)

}  // namespace mpscope::sim
