// Conv2d (nn.Conv2d(C, F, k, stride, padding)) on (C, H, W) samples, lowered to GEMMs (im2col), so that the lane's
// accumulation model (fp32, h100) applies to every sum exactly as to a Linear layer's.
//
//   forward   Wc = cast(W)                                (F, C·k·k)     the weights role
//             bc = cast(b)                                (F)            the activations role
//             cols = im2col(cast(x))                      (B·Ho·Wo, C·k·k)
//             s = round(cols·Wcᵀ)                         (B·Ho·Wo, F)   then laid out (B, F, Ho, Wo)
//             y = round(s + bc)                           the bias is a separate addition in the activation
//                                                         format (PyTorch adds it after cuDNN's convolution:
//                                                         two rounding points, unlike Linear's epilogue)
//   backward  dW = round(dyᵀ·cols)                        (F, C·k·k)     the gradients role (float32 .grad after)
//             db = round(Σ_{B,Ho,Wo} dy)                  (F)
//             dx = round(dcols·Wc')                       (B·H·W, C)     one GEMM per input position over the
//                                                         F·k·k outputs it fed (the transposed convolution),
//                                                         rounded once
#include "sim/ops/op.hpp"

namespace mpscope::sim {

namespace {

template <class Ops>
class Conv2d final : public Op<Ops> {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  using Op<Ops>::params_;

  Conv2d(const Node& n, const OptimizerConfig& c)
      : Op<Ops>(n), c_(n.in_shape[0]), h_(n.in_shape[1]), w_(n.in_shape[2]), f_(n.out_shape[0]), ho_(n.out_shape[1]),
        wo_(n.out_shape[2]), k_(n.spec.kernel), stride_(n.spec.stride), pad_(n.spec.padding) {
    for (const ParamInfo& p : n.params) params_.emplace_back(p, c);
  }

  void forward(OpContext<Ops>& cx, const Matrix<T>& x, Matrix<T>& y, bool) override {
    const std::int64_t batch = x.rows, patch = c_ * k_ * k_, positions = ho_ * wo_;
    const int slot = 3 * this->node().gemm;
    Param<Ops>& w = params_[0];
    w.compute.resize(w.master.size());
    w.descale = cx.ops.quantize(Role::weights, slot + 1, w.tensor, w.master, w.compute, cx.log);
    std::vector<T> bias_c(has_bias() ? static_cast<std::size_t>(f_) : 0);
    if (has_bias()) cx.ops.cast(Role::activations, params_[1].tensor, params_[1].master, bias_c, cx.log);
    Matrix<T> xq(x.rows, x.cols), cast_input;
    xq_descale_ = cx.ops.quantize(Role::gemm_input, slot, cx.in_tensor, gemm_operand(cx, x, cast_input).values(), xq.values(), cx.log);
    cols_ = Matrix<T>(batch * positions, patch);  // zero where the patch reaches into the padding
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t oh = 0; oh < ho_; ++oh)
        for (std::int64_t ow = 0; ow < wo_; ++ow) {
          T* row = cols_.row((b * ho_ + oh) * wo_ + ow);
          for (std::int64_t ci = 0; ci < c_; ++ci)
            for (std::int64_t kh = 0; kh < k_; ++kh)
              for (std::int64_t kw = 0; kw < k_; ++kw) {
                const std::int64_t ih = oh * stride_ - pad_ + kh, iw = ow * stride_ - pad_ + kw;
                if (ih >= 0 && ih < h_ && iw >= 0 && iw < w_) row[(ci * k_ + kh) * k_ + kw] = xq(b, (ci * h_ + ih) * w_ + iw);
              }
        }
    std::vector<T> sum(static_cast<std::size_t>(batch * positions * f_));
    cx.ops.gemm(View<T>::of(cols_), View<T>{w.compute.data(), f_, patch, patch, 1}.transposed(), sum, xq_descale_ * w.descale);
    std::vector<W> wide(sum.size());
    for (std::int64_t b = 0; b < batch; ++b)  // (B·Ho·Wo, F) -> (B, F, Ho, Wo)
      for (std::int64_t p = 0; p < positions; ++p)
        for (std::int64_t f = 0; f < f_; ++f) wide[static_cast<std::size_t>((b * f_ + f) * positions + p)] = W(sum[static_cast<std::size_t>((b * positions + p) * f_ + f)]);
    y = Matrix<T>(batch, f_ * positions);
    cx.ops.store(Role::activations, cx.out_tensor, wide, y.values(), cx.log);
    if (!has_bias()) return;
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t f = 0; f < f_; ++f)
        for (std::int64_t p = 0; p < positions; ++p) {
          const std::size_t i = static_cast<std::size_t>((b * f_ + f) * positions + p);
          wide[i] = W(y.data[i]) + W(bias_c[static_cast<std::size_t>(f)]);
        }
    cx.ops.store(Role::activations, cx.out_tensor, wide, y.values(), cx.log);
  }

  void backward(OpContext<Ops>& cx, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>* dx) override {
    const std::int64_t batch = dy.rows, positions = ho_ * wo_;
    Matrix<T> dyq(dy.rows, dy.cols);
    const float dy_descale = cx.ops.quantize(Role::gemm_grad_input, 3 * this->node().gemm + 2, cx.out_grad_tensor,
                                             dy.values(), dyq.values(), cx.log);
    Matrix<T> dy_rows(batch * positions, f_);  // (B·Ho·Wo, F): the output gradient in the forward GEMM's layout
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t f = 0; f < f_; ++f)
        for (std::int64_t p = 0; p < positions; ++p) dy_rows(b * positions + p, f) = dyq(b, f * positions + p);
    Param<Ops>& w = params_[0];
    w.grad.resize(w.master.size());
    cx.ops.gemm(View<T>::of(dy_rows).transposed(), View<T>::of(cols_), w.grad, dy_descale * xq_descale_,
                {Role::gemm_grad_input, Role::gemm_input});
    cx.ops.cast(Role::gradients, w.grad_tensor, w.grad, w.grad, cx.log);
    if (has_bias()) {
      std::vector<W> sum(static_cast<std::size_t>(f_), W(0));
      for (std::int64_t b = 0; b < batch; ++b)
        for (std::int64_t f = 0; f < f_; ++f)
          for (std::int64_t p = 0; p < positions; ++p) sum[static_cast<std::size_t>(f)] += W(dy(b, f * positions + p));
      params_[1].grad.resize(static_cast<std::size_t>(f_));
      cx.ops.store(Role::gradients, params_[1].grad_tensor, sum, params_[1].grad, cx.log);
    }
    if (!dx) return;
    // The transposed convolution as one GEMM: for input position (b, ih, iw), the F·k·k output gradients it fed
    // (zero where it fed none) times the weights rearranged to (F·k·k, C).
    const std::int64_t fan = f_ * k_ * k_;
    Matrix<T> dcols(batch * h_ * w_, fan);
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t ih = 0; ih < h_; ++ih)
        for (std::int64_t iw = 0; iw < w_; ++iw) {
          T* row = dcols.row((b * h_ + ih) * w_ + iw);
          for (std::int64_t kh = 0; kh < k_; ++kh)
            for (std::int64_t kw = 0; kw < k_; ++kw) {
              const std::int64_t th = ih + pad_ - kh, tw = iw + pad_ - kw;
              if (th < 0 || tw < 0 || th % stride_ || tw % stride_) continue;
              const std::int64_t oh = th / stride_, ow = tw / stride_;
              if (oh >= ho_ || ow >= wo_) continue;
              for (std::int64_t f = 0; f < f_; ++f) row[(f * k_ + kh) * k_ + kw] = dyq(b, (f * ho_ + oh) * wo_ + ow);
            }
        }
    std::vector<T> out(static_cast<std::size_t>(batch * h_ * w_ * c_));
    cx.ops.gemm(View<T>::of(dcols), weights_by_output(w.compute), out, dy_descale * w.descale, {Role::gemm_grad_input, Role::weights});
    *dx = Matrix<T>(batch, c_ * h_ * w_);
    for (std::int64_t b = 0; b < batch; ++b)  // (B·H·W, C) -> (B, C, H, W)
      for (std::int64_t p = 0; p < h_ * w_; ++p)
        for (std::int64_t ci = 0; ci < c_; ++ci) (*dx)(b, ci * h_ * w_ + p) = out[static_cast<std::size_t>((b * h_ * w_ + p) * c_ + ci)];
    cx.ops.cast(Role::gradients, cx.in_grad_tensor, dx->values(), dx->values(), cx.log);
  }

 private:
  bool has_bias() const { return params_.size() > 1; }
  // W (F, C, k, k) read as (F·k·k, C): row (f, kh, kw), column c at W[((f·C + c)·k + kh)·k + kw]. Not a plain
  // strided view, so it is copied.
  View<T> weights_by_output(const std::vector<T>& w) {
    const std::int64_t fan = f_ * k_ * k_;
    w_rows_.resize(static_cast<std::size_t>(fan * c_));
    for (std::int64_t f = 0; f < f_; ++f)
      for (std::int64_t ci = 0; ci < c_; ++ci)
        for (std::int64_t kk = 0; kk < k_ * k_; ++kk)
          w_rows_[static_cast<std::size_t>((f * k_ * k_ + kk) * c_ + ci)] = w[static_cast<std::size_t>((f * c_ + ci) * k_ * k_ + kk)];
    return {w_rows_.data(), fan, c_, c_, 1};
  }

  std::int64_t c_, h_, w_, f_, ho_, wo_, k_, stride_, pad_;
  Matrix<T> cols_;  // (B·Ho·Wo, C·k·k) the forward GEMM's input (after an FP8 cast)
  float xq_descale_ = 1.0f;
  std::vector<T> w_rows_;  // (F·k·k, C)
};

}  // namespace

template <class Ops>
std::unique_ptr<Op<Ops>> make_conv2d(const Node& n, const OptimizerConfig& c) {
  return std::make_unique<Conv2d<Ops>>(n, c);
}
MPSCOPE_INSTANTIATE_OP(make_conv2d)

}  // namespace mpscope::sim
