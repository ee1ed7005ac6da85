// MaxPool2d and AvgPool2d (kernel k, stride s, no padding) on (C, H, W) samples.
//
//   max   forward   y = the window's first maximum (row-major; the last NaN wins, as in PyTorch's kernel)
//         backward  dx = Σ dy over the windows whose maximum x was                           exact where windows
//                                                                                            do not overlap
//   avg   forward   y = round(Σ window / k²)       in the wide type, rounded once (PyTorch: float accumulation)
//         backward  dx = round(Σ dy / k²)          over the windows that hold x
#include <cmath>

#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class Pool2d final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;

  Pool2d(const Node& n, const OptimizerConfig&)
      : Op<Ops>(n), max_(n.spec.type == LayerSpec::Type::maxpool2d), c_(n.in_shape[0]), h_(n.in_shape[1]),
        w_(n.in_shape[2]), ho_(n.out_shape[1]), wo_(n.out_shape[2]), k_(n.spec.kernel), stride_(n.spec.stride) {}

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    y = Matrix<T>(x.rows, c_ * ho_ * wo_);
    if (max_) argmax_.assign(y.data.size(), 0);
    std::vector<W> wide(max_ ? 0 : y.data.size());
    for (std::int64_t b = 0; b < x.rows; ++b)
      for (std::int64_t c = 0; c < c_; ++c)
        for (std::int64_t oh = 0; oh < ho_; ++oh)
          for (std::int64_t ow = 0; ow < wo_; ++ow) {
            const std::int64_t o = (c * ho_ + oh) * wo_ + ow;
            if (max_) {
              std::int64_t best = window(c, oh, ow, 0, 0);
              for (std::int64_t kh = 0; kh < k_; ++kh)
                for (std::int64_t kw = 0; kw < k_; ++kw) {
                  const std::int64_t i = window(c, oh, ow, kh, kw);
                  if (x(b, i) > x(b, best) || std::isnan(to_double(x(b, i)))) best = i;  // PyTorch: the last NaN
                }
              argmax_[static_cast<std::size_t>(b * y.cols + o)] = best;
              y(b, o) = x(b, best);
            } else {
              W sum(0);
              for (std::int64_t kh = 0; kh < k_; ++kh)
                for (std::int64_t kw = 0; kw < k_; ++kw) sum += W(x(b, window(c, oh, ow, kh, kw)));
              wide[static_cast<std::size_t>(b * y.cols + o)] = sum / W(static_cast<double>(k_ * k_));
            }
          }
    if (max_) {
      cx.log.template check_finite<T>(cx.out_tensor, y.values());
    } else {
      cx.ops.store(cx.out_role, cx.out_tensor, wide, y.values(), cx.log);
    }
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    if (!dx) return;
    std::vector<W> wide(x.data.size(), W(0));
    const W inv_area = W(1) / W(static_cast<double>(k_ * k_));
    for (std::int64_t b = 0; b < dy.rows; ++b)
      for (std::int64_t c = 0; c < c_; ++c)
        for (std::int64_t oh = 0; oh < ho_; ++oh)
          for (std::int64_t ow = 0; ow < wo_; ++ow) {
            const std::int64_t o = (c * ho_ + oh) * wo_ + ow;
            const W g(dy(b, o));
            if (max_) {
              wide[static_cast<std::size_t>(b * x.cols + argmax_[static_cast<std::size_t>(b * dy.cols + o)])] += g;
              continue;
            }
            for (std::int64_t kh = 0; kh < k_; ++kh)
              for (std::int64_t kw = 0; kw < k_; ++kw) wide[static_cast<std::size_t>(b * x.cols + window(c, oh, ow, kh, kw))] += g * inv_area;
          }
    *dx = Matrix<T>(x.rows, x.cols);
    cx.ops.store(cx.in_grad_role(), cx.in_grad_tensor, wide, dx->values(), cx.log);
  }

 private:
  // Index within a sample of window (oh, ow)'s element (kh, kw) in channel c.
  std::int64_t window(std::int64_t c, std::int64_t oh, std::int64_t ow, std::int64_t kh, std::int64_t kw) const {
    return (c * h_ + oh * stride_ + kh) * w_ + ow * stride_ + kw;
  }

  bool max_;
  std::int64_t c_, h_, w_, ho_, wo_, k_, stride_;
  std::vector<std::int64_t> argmax_;  // (batch, C·Ho·Wo) index within the sample of each window's maximum
};

template <class Ops>
class Flatten final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  Flatten(const Node& n, const OptimizerConfig&) : Op<Ops>(n) {}
  // A view in PyTorch: the rows are already the flattened samples.
  void forward(OpContext<Ops>&, const Matrix<T>& x, Matrix<T>& y, bool) override { y = x; }
  void backward(OpContext<Ops>&, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    if (dx) *dx = dy;
  }
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_pool(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Pool2d<Ops>>(n, c);
}
template <class Ops>
std::unique_ptr<Op<Ops>> make_flatten(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Flatten<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_pool)
MPSCOPE_INSTANTIATE_OP(make_flatten)

}  // namespace mpscope::sim
