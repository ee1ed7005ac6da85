// Internal: the MLP lane, written once for every storage type. Ops (sim/lane_ops.hpp) decides what each rounding
// point, GEMM and cast does; this file is the readable spec of the model's forward and backward pass:
//
//   a0 = cast(x)                                                    input      (batch, in)
//   per layer k:  zk = round(a_{k-1} · Wkᵀ + bk)                    GEMM in the lane's accumulation model, the bias
//                                                                   added to its float32 result, rounded once
//                 hk = round(act(zk)), then round(LayerNorm(hk))    hidden layers only
//   loss = mean cross-entropy over lp = round(log_softmax(z)) (the logits' format, or float32), or MSE
//   backward:     dz = round(g·onehot − exp(lp)·g), g = round(−S/B) (cross-entropy; MSE: round(S · dloss/dz))
//                 dWk = round(dzᵀ · a_{k-1}), dbk = round(Σ dz), da = round(dz · Wk), dz_{k-1} = round(da · act')
//   master gradients, unscaled by 1/S, checked for inf/NaN; the optimizer updates the master weights.
#pragma once

#include <algorithm>
#include <boost/math/constants/constants.hpp>
#include <cmath>

#include "sim/lane.hpp"
#include "sim/lane_ops.hpp"

namespace mpscope::sim {

template <class Ops>
class MlpLane final : public Lane {
 public:
  using T = typename Ops::T;     // storage
  using W = typename Ops::Wide;  // elementwise math (double for float32 storage)

  MlpLane(const LaneConfig& c, const ModelConfig& m, const InitialWeights& init)
      : config_(c), model_(m), ops_(c, m.layers()) {
    const int layers = m.layers();
    tensors_.push_back({"input", "input", 0, ops_.format_name(Role::activations), 0});
    for (int k = 0; k < layers; ++k) {
      const std::int64_t in = m.widths[static_cast<std::size_t>(k)], out = m.widths[static_cast<std::size_t>(k) + 1];
      const std::string p = "layer" + std::to_string(k + 1) + ".";
      tensors_.push_back({p + "weight", "weight", k + 1, ops_.format_name(Role::master), in * out});
      tensors_.push_back({p + "bias", "bias", k + 1, ops_.format_name(Role::master), out});
      tensors_.push_back({p + "weight_grad", "weight_grad", k + 1, ops_.format_name(Role::gradients), in * out});
      tensors_.push_back({p + "bias_grad", "bias_grad", k + 1, ops_.format_name(Role::gradients), out});
      tensors_.push_back({p + "activation", "activation", k + 1, ops_.format_name(Role::activations), 0});
      tensors_.push_back({p + "activation_grad", "activation_grad", k + 1, ops_.format_name(Role::gradients), 0});

      Layer L(c.optimizer, in, out, norm_after(k));
      StepLog setup;
      setup.reset(tensors_.size() + 6, false);
      setup.catalogue = &tensors_;
      std::vector<W> wide(init.weight[static_cast<std::size_t>(k)].data.begin(), init.weight[static_cast<std::size_t>(k)].data.end());
      ops_.store(Role::master, tensor(k, weight), wide, L.weight.values(), setup);
      wide.assign(init.bias[static_cast<std::size_t>(k)].begin(), init.bias[static_cast<std::size_t>(k)].end());
      ops_.store(Role::master, tensor(k, bias), wide, L.bias, setup);
      if (norm_after(k) && static_cast<std::size_t>(k) < init.norm_gamma.size()) {
        wide.assign(init.norm_gamma[static_cast<std::size_t>(k)].begin(), init.norm_gamma[static_cast<std::size_t>(k)].end());
        ops_.store(Role::master, tensor(k, weight), wide, L.gamma, setup);
        wide.assign(init.norm_beta[static_cast<std::size_t>(k)].begin(), init.norm_beta[static_cast<std::size_t>(k)].end());
        ops_.store(Role::master, tensor(k, bias), wide, L.beta, setup);
      }
      layers_.push_back(std::move(L));
    }
    log_.catalogue = &tensors_;
  }

  const LaneConfig& config() const override { return config_; }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }

  StepResult step(const Batch& batch, double lr, bool record) override {
    StepResult r;
    log_.reset(tensors_.size(), record);
    const float scale = scaler_.scale();
    r.loss_scale = scale;
    forward(batch.x);
    std::int64_t correct = 0;
    r.loss = to_double(loss(batch, scale, true, correct));
    if (!std::isfinite(r.loss) && log_.first_nonfinite.empty()) log_.first_nonfinite = "loss";
    backward();
    ops_.end_step();

    // Master gradients: unscaled, checked for inf/NaN.
    const T inv_scale(scaler_.inv_scale());
    double sum_squares = 0;
    bool finite = true;
    for (int k = 0; k < model_.layers(); ++k) {
      Layer& L = layers_[static_cast<std::size_t>(k)];
      unscale(L.grad_weight.values(), L.master_grad_weight, inv_scale, tensor(k, weight_grad));
      unscale(L.grad_bias, L.master_grad_bias, inv_scale, tensor(k, bias_grad));
      unscale(L.grad_gamma, L.master_grad_gamma, inv_scale, tensor(k, weight_grad));
      unscale(L.grad_beta, L.master_grad_beta, inv_scale, tensor(k, bias_grad));
      for (const auto* g : {&L.master_grad_weight, &L.master_grad_bias, &L.master_grad_gamma, &L.master_grad_beta})
        for (const T& v : *g) {
          const double d = to_double(v);
          finite = finite && std::isfinite(d);
          sum_squares += d * d;
        }
    }
    r.found_inf = !finite;
    r.grad_norm = std::sqrt(sum_squares);
    const LossScaler::Update u = scaler_.update(r.found_inf);
    r.skipped = u.skipped;
    r.scale_backed_off = u.backed_off;
    r.scale_grew = u.grew;
    r.scale_after = u.scale_after;

    r.lost_updates.assign(static_cast<std::size_t>(model_.layers()), 0.0);
    if (!r.skipped) {
      for (int k = 0; k < model_.layers(); ++k) {
        Layer& L = layers_[static_cast<std::size_t>(k)];
        auto arith = make_arith();
        std::int64_t lost = L.opt_weight.step(L.weight.values(), std::span<const T>(L.master_grad_weight), lr, arith);
        lost += L.opt_bias.step(std::span<T>(L.bias), std::span<const T>(L.master_grad_bias), lr, arith);
        if (!L.gamma.empty()) {
          lost += L.opt_gamma.step(std::span<T>(L.gamma), std::span<const T>(L.master_grad_gamma), lr, arith);
          lost += L.opt_beta.step(std::span<T>(L.beta), std::span<const T>(L.master_grad_beta), lr, arith);
        }
        const auto params = static_cast<double>(L.weight.size() + static_cast<std::int64_t>(L.bias.size() + 2 * L.gamma.size()));
        r.lost_updates[static_cast<std::size_t>(k)] = static_cast<double>(lost) / params;
      }
    }
    for (int k = 0; k < model_.layers() && !r.weights_nonfinite; ++k) {
      const Layer& L = layers_[static_cast<std::size_t>(k)];
      for (const auto* p : {&L.weight.data, &L.bias, &L.gamma, &L.beta})
        for (const T& v : *p)
          if (!std::isfinite(to_double(v))) {
            r.weights_nonfinite = true;
            if (log_.first_nonfinite.empty()) log_.first_nonfinite = tensors_[tensor(k, weight)].name;
            break;
          }
    }
    r.first_nonfinite = log_.first_nonfinite;
    if (record) r.tensors = records();
    return r;
  }

  Evaluation evaluate(const Batch& data) override {
    // No state may change: the stochastic-rounding stream is restored, FP8 amaxes are dropped.
    log_.reset(tensors_.size(), false);
    const auto saved_stream = ops_.random_state();
    forward(data.x);
    ops_.discard_amax();
    ops_.restore_random_state(saved_stream);
    std::int64_t correct = 0;
    Evaluation e;
    e.loss = to_double(loss(data, 1.0f, false, correct));
    if (model_.loss == LossType::cross_entropy || !data.labels.empty())
      e.accuracy = static_cast<double>(correct) / static_cast<double>(data.x.rows);
    return e;
  }

  void read_weights(LayerValues& out) const override {
    out.resize(layers_.size());
    for (std::size_t k = 0; k < layers_.size(); ++k) {
      const Layer& L = layers_[k];
      flatten({&L.weight.data, &L.bias, &L.gamma, &L.beta}, out[k]);
    }
  }
  bool read_tensor(std::size_t index, std::vector<double>& out) const override {
    if (index == input_tensor) {
      flatten({&input_.data}, out);
      return true;
    }
    if (index >= tensors_.size()) return false;
    const Layer& L = layers_[(index - 1) / kinds];
    const std::vector<T>* const values[kinds] = {&L.weight.data, &L.bias,      &L.grad_weight.data,  // in Kind's order
                                                 &L.grad_bias,   &L.out.data, &L.grad_z.data};
    flatten({values[(index - 1) % kinds]}, out);
    return true;
  }
  void read_gradients(LayerValues& out) const override {
    out.resize(layers_.size());
    for (std::size_t k = 0; k < layers_.size(); ++k) {
      const Layer& L = layers_[k];
      flatten({&L.master_grad_weight, &L.master_grad_bias, &L.master_grad_gamma, &L.master_grad_beta}, out[k]);
    }
  }

 private:
  enum Kind { weight = 0, bias, weight_grad, bias_grad, activation, activation_grad };
  static constexpr std::size_t kinds = 6;  // tensors per layer, in Kind's order after the input
  static std::size_t tensor(int layer, Kind kind) { return 1 + kinds * static_cast<std::size_t>(layer) + kind; }
  static constexpr std::size_t input_tensor = 0;
  // The tensor a layer's input belongs to: the network input, or the previous layer's output.
  static std::size_t input_of(int layer) { return layer == 0 ? input_tensor : tensor(layer - 1, activation); }
  bool norm_after(int k) const { return model_.layer_norm && k + 1 < model_.layers(); }

  struct Layer {
    Layer(const OptimizerConfig& c, std::int64_t in, std::int64_t out, bool norm)
        : weight(out, in), bias(static_cast<std::size_t>(out), T(0)), gamma(norm ? static_cast<std::size_t>(out) : 0, T(1)),
          beta(norm ? static_cast<std::size_t>(out) : 0, T(0)), opt_weight(c, static_cast<std::size_t>(in * out)),
          opt_bias(c, static_cast<std::size_t>(out)), opt_gamma(c, gamma.size()), opt_beta(c, beta.size()) {}
    Matrix<T> weight;                      // (out, in) master
    std::vector<T> bias, gamma, beta;      // (out)
    ParamOptimizer<T> opt_weight, opt_bias, opt_gamma, opt_beta;
    // compute copies (weights role)
    Matrix<T> weight_c;                    // (out, in)
    std::vector<T> bias_c, gamma_c, beta_c;  // (out)
    float weight_descale = 1.0f;           // FP8: 1 / the weight's scale
    // forward cache
    Matrix<T> input;                       // (batch, in) as the GEMM took it (after an FP8 cast)
    float input_descale = 1.0f;
    Matrix<T> z, h, out;                   // (batch, out): pre-activation, activation, output (after LayerNorm)
    std::vector<W> mean, rstd;             // (batch) LayerNorm statistics
    // backward: gradients as produced (gradients role, scaled), and master gradients (unscaled)
    Matrix<T> grad_weight;                 // (out, in)
    std::vector<T> grad_bias, grad_gamma, grad_beta;
    std::vector<T> master_grad_weight, master_grad_bias, master_grad_gamma, master_grad_beta;
    Matrix<T> grad_z;                      // (batch, out) d loss / d z
  };

  void forward(const Matrix<float>& x) {
    const std::int64_t batch = x.rows;
    std::vector<W> wide(x.data.begin(), x.data.end());
    input_ = Matrix<T>(batch, x.cols);
    ops_.store(Role::activations, input_tensor, wide, input_.values(), log_);
    const Matrix<T>* a = &input_;
    for (int k = 0; k < model_.layers(); ++k) {
      Layer& L = layers_[static_cast<std::size_t>(k)];
      const std::int64_t out = L.weight.rows;
      // The compute copy of the parameters (AMP: master -> fp16; FP8: scaled -> E4M3).
      L.weight_c = Matrix<T>(L.weight.rows, L.weight.cols);
      L.weight_descale = ops_.quantize(Role::weights, 3 * k + 1, tensor(k, weight), L.weight.values(), L.weight_c.values(), log_);
      // Bias (and LayerNorm) parameters join values of the activation format (AMP: fp16, FP8: fp32).
      L.bias_c.resize(L.bias.size());
      ops_.cast(Role::activations, tensor(k, bias), L.bias, L.bias_c, log_);
      // GEMM input (FP8: its own scaled cast) and the GEMM. The bias joins in the GEMM's epilogue, as cuBLASLt
      // does for PyTorch's Linear: the float32 result plus the bias in one float32 addition, rounded once to the
      // activation format (docs/recipes.md).
      L.input = Matrix<T>(batch, a->cols);
      L.input_descale = ops_.quantize(Role::gemm_input, 3 * k, input_of(k), a->values(), L.input.values(), log_);
      Matrix<T> y(batch, out);
      ops_.gemm(View<T>::of(L.input), View<T>::of(L.weight_c).transposed(), y.values(), L.input_descale * L.weight_descale);
      wide.resize(static_cast<std::size_t>(batch * out));
      for (std::int64_t i = 0; i < batch; ++i)
        for (std::int64_t j = 0; j < out; ++j) wide[i * out + j] = W(y(i, j) + L.bias_c[static_cast<std::size_t>(j)]);
      L.z = Matrix<T>(batch, out);
      ops_.store(Role::activations, tensor(k, activation), wide, L.z.values(), log_);
      if (k + 1 == model_.layers()) {
        L.out = L.z;
        break;
      }
      for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = activate(W(L.z.data[i]));
      L.h = Matrix<T>(batch, out);
      ops_.store(Role::activations, tensor(k, activation), wide, L.h.values(), log_);
      if (norm_after(k)) {
        layer_norm_forward(k, wide);
      } else {
        L.out = L.h;
      }
      a = &L.out;
    }
  }

  void layer_norm_forward(int k, std::vector<W>& wide) {
    Layer& L = layers_[static_cast<std::size_t>(k)];
    const std::int64_t batch = L.h.rows, n = L.h.cols;
    L.gamma_c.resize(L.gamma.size());
    L.beta_c.resize(L.beta.size());
    ops_.cast(Role::activations, tensor(k, weight), L.gamma, L.gamma_c, log_);
    ops_.cast(Role::activations, tensor(k, bias), L.beta, L.beta_c, log_);
    L.mean.assign(static_cast<std::size_t>(batch), W(0));
    L.rstd.assign(static_cast<std::size_t>(batch), W(0));
    for (std::int64_t i = 0; i < batch; ++i) {
      W mean(0), var(0);
      for (std::int64_t j = 0; j < n; ++j) mean += W(L.h(i, j));
      mean /= W(static_cast<double>(n));
      for (std::int64_t j = 0; j < n; ++j) var += (W(L.h(i, j)) - mean) * (W(L.h(i, j)) - mean);
      var /= W(static_cast<double>(n));
      const W rstd = W(1) / lanemath::sqrt(var + W(model_.layer_norm_eps));
      L.mean[static_cast<std::size_t>(i)] = mean;
      L.rstd[static_cast<std::size_t>(i)] = rstd;
      for (std::int64_t j = 0; j < n; ++j)
        wide[i * n + j] = (W(L.h(i, j)) - mean) * rstd * W(L.gamma_c[static_cast<std::size_t>(j)]) +
                          W(L.beta_c[static_cast<std::size_t>(j)]);
    }
    L.out = Matrix<T>(batch, n);
    ops_.store(Role::activations, tensor(k, activation), wide, L.out.values(), log_);
  }

  // Constants computed in W, so that the exact lane gets them to its own precision.
  static W inv_sqrt2() { return lanemath::sqrt(W(0.5)); }
  static W inv_sqrt_2pi() { return lanemath::sqrt(W(0.5) / boost::math::constants::pi<W>()); }
  static W sqrt_2_over_pi() { return lanemath::sqrt(W(2) / boost::math::constants::pi<W>()); }
  static W gelu_cubic() { return W(44715) / W(1000000); }

  W activate(const W& z) const {
    switch (model_.activation) {
      case Activation::relu: return z > W(0) ? z : W(0);
      case Activation::gelu: return W(0.5) * z * (W(1) + lanemath::erf(z * inv_sqrt2()));
      case Activation::gelu_tanh: {
        const W u = sqrt_2_over_pi() * (z + gelu_cubic() * z * z * z);
        return W(0.5) * z * (W(1) + lanemath::tanh(u));
      }
      case Activation::tanh: return lanemath::tanh(z);
      case Activation::sigmoid: return W(1) / (W(1) + lanemath::exp(-z));
    }
    return z;
  }

  // d loss / d z from d loss / d h. ReLU as PyTorch's threshold_backward: the gradient where z > 0, else +0 (a
  // product with a zero slope would give -0 for negative gradients).
  W activation_backward(const W& da, const W& z, const W& h) const {
    if (model_.activation == Activation::relu) return z > W(0) ? da : W(0);
    return da * activation_slope(z, h);
  }
  // d act / d z at z (h = act(z) where that is cheaper).
  W activation_slope(const W& z, const W& h) const {
    switch (model_.activation) {
      case Activation::relu: return z > W(0) ? W(1) : W(0);
      case Activation::gelu: {
        const W cdf = W(0.5) * (W(1) + lanemath::erf(z * inv_sqrt2()));
        const W pdf = lanemath::exp(W(-0.5) * z * z) * inv_sqrt_2pi();
        return cdf + z * pdf;
      }
      case Activation::gelu_tanh: {
        const W k0 = sqrt_2_over_pi(), k1 = gelu_cubic();
        const W t = lanemath::tanh(k0 * (z + k1 * z * z * z));
        return W(0.5) * (W(1) + t) + W(0.5) * z * (W(1) - t * t) * k0 * (W(1) + W(3) * k1 * z * z);
      }
      case Activation::tanh: return W(1) - h * h;
      case Activation::sigmoid: return h * (W(1) - h);
    }
    return W(1);
  }

  // The loss and d(S * loss)/d logits (stored into the last layer's grad_z when `gradients`).
  W loss(const Batch& b, float scale, bool gradients, std::int64_t& correct) {
    Layer& last = layers_.back();
    const Matrix<T>& z = last.out;  // (batch, classes or outputs)
    const std::int64_t batch = z.rows, n = z.cols;
    std::vector<W> grad(static_cast<std::size_t>(batch * n));
    W total(0);
    const W s(scale), inv_batch = W(1) / W(static_cast<double>(batch));
    // Cross-entropy as PyTorch computes it (docs/recipes.md): log_softmax in float32 math, its output rounded to
    // the logits' format (autocast: F.cross_entropy is not promoted) or to float32 (logits cast first); nll and
    // the mean in float32. Backward: the seed g = -S/B (float32; under autocast, the cast's backward rounds it to
    // the gradient format), then log_softmax's backward on its rounded output, dz = g·onehot - exp(lp)·g.
    const bool autocast = model_.loss_logits == LossLogits::autocast;
    const W seed32 = ops_.to_float32(-s / W(static_cast<double>(batch)));
    const W seed = autocast ? ops_.to_format(Role::gradients, seed32) : seed32;
    std::vector<W> log_probs(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < batch; ++i) {
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < n; ++j)
        if (W(z(i, j)) > W(z(i, best))) best = j;
      if (!b.labels.empty() && best == b.labels[static_cast<std::size_t>(i)]) ++correct;
      if (model_.loss == LossType::cross_entropy) {
        const std::int64_t y = b.labels[static_cast<std::size_t>(i)];
        const W m(z(i, best));
        W sum(0);
        for (std::int64_t j = 0; j < n; ++j) sum += lanemath::exp(W(z(i, j)) - m);
        const W lse = m + lanemath::log(sum);
        for (std::int64_t j = 0; j < n; ++j) {
          const W lp = W(z(i, j)) - lse;
          log_probs[static_cast<std::size_t>(j)] = autocast ? ops_.to_format(Role::activations, lp) : ops_.to_float32(lp);
        }
        total -= log_probs[static_cast<std::size_t>(y)];
        for (std::int64_t j = 0; j < n; ++j)
          grad[i * n + j] = (j == y ? seed : W(0)) - lanemath::exp(log_probs[static_cast<std::size_t>(j)]) * seed;
      } else {
        const W inv_count = W(1) / W(static_cast<double>(batch * n));
        for (std::int64_t j = 0; j < n; ++j) {
          const W t = b.targets.rows > 0 ? W(b.targets(i, j)) : W(j == b.labels[static_cast<std::size_t>(i)] ? 1.0 : 0.0);
          const W d = W(z(i, j)) - t;
          total += d * d * inv_count;
          grad[i * n + j] = s * W(2) * d * inv_count;
        }
      }
    }
    if (model_.loss == LossType::cross_entropy) total *= inv_batch;
    if (gradients) {
      last.grad_z = Matrix<T>(batch, n);
      const std::size_t dz = tensor(model_.layers() - 1, activation_grad);
      if (model_.loss == LossType::cross_entropy && autocast) {
        ops_.store(Role::gradients, dz, grad, last.grad_z.values(), log_);  // one rounding, as log_softmax's backward
      } else {
        ops_.store_loss_grad(dz, grad, last.grad_z.values(), log_);  // float32 first, then the cast's backward
      }
    }
    return ops_.loss_value(total);
  }

  void backward() {
    std::vector<W> wide;
    for (int k = model_.layers() - 1; k >= 0; --k) {
      Layer& L = layers_[static_cast<std::size_t>(k)];
      const std::int64_t batch = L.grad_z.rows, out = L.grad_z.cols, in = L.weight.cols;
      // The gradient input of the backward GEMMs (FP8: its own scaled E5M2 cast).
      Matrix<T> dz(batch, out);
      const float dz_descale = ops_.quantize(Role::gemm_grad_input, 3 * k + 2, tensor(k, activation_grad),
                                             L.grad_z.values(), dz.values(), log_);
      L.grad_weight = Matrix<T>(out, in);
      ops_.gemm(View<T>::of(dz).transposed(), View<T>::of(L.input), L.grad_weight.values(), dz_descale * L.input_descale);
      ops_.cast(Role::gradients, tensor(k, weight_grad), L.grad_weight.values(), L.grad_weight.values(), log_);
      wide.assign(static_cast<std::size_t>(out), W(0));
      for (std::int64_t i = 0; i < batch; ++i)
        for (std::int64_t j = 0; j < out; ++j) wide[static_cast<std::size_t>(j)] += W(L.grad_z(i, j));
      L.grad_bias.resize(static_cast<std::size_t>(out));
      ops_.store(Role::gradients, tensor(k, bias_grad), wide, L.grad_bias, log_);
      if (k == 0) break;

      Layer& P = layers_[static_cast<std::size_t>(k) - 1];  // the layer below: its output is our input
      Matrix<T> da(batch, in);
      ops_.gemm(View<T>::of(dz), View<T>::of(L.weight_c), da.values(), dz_descale * L.weight_descale);
      ops_.cast(Role::gradients, tensor(k - 1, activation_grad), da.values(), da.values(), log_);
      const std::int64_t n = in;
      wide.resize(static_cast<std::size_t>(batch * n));
      if (norm_after(k - 1)) {
        layer_norm_backward(P, da, wide);  // wide = d loss / d h
        Matrix<T> dh(batch, n);
        ops_.store(Role::gradients, tensor(k - 1, activation_grad), wide, dh.values(), log_);
        da = std::move(dh);
      }
      for (std::size_t i = 0; i < static_cast<std::size_t>(batch * n); ++i)
        wide[i] = activation_backward(W(da.data[i]), W(P.z.data[i]), W(P.h.data[i]));
      P.grad_z = Matrix<T>(batch, n);
      ops_.store(Role::gradients, tensor(k - 1, activation_grad), wide, P.grad_z.values(), log_);
    }
  }

  // LayerNorm backward for layer P (output = norm(h)): from dy = d loss / d out, fills dh and P's gamma/beta grads.
  void layer_norm_backward(Layer& P, const Matrix<T>& dy, std::vector<W>& dh) {
    const std::int64_t batch = dy.rows, n = dy.cols;
    std::vector<W> dgamma(static_cast<std::size_t>(n), W(0)), dbeta(static_cast<std::size_t>(n), W(0));
    for (std::int64_t i = 0; i < batch; ++i) {
      const W mean = P.mean[static_cast<std::size_t>(i)], rstd = P.rstd[static_cast<std::size_t>(i)];
      W sum_dxhat(0), sum_dxhat_xhat(0);
      for (std::int64_t j = 0; j < n; ++j) {
        const W xhat = (W(P.h(i, j)) - mean) * rstd;
        const W dxhat = W(dy(i, j)) * W(P.gamma_c[static_cast<std::size_t>(j)]);
        dgamma[static_cast<std::size_t>(j)] += W(dy(i, j)) * xhat;
        dbeta[static_cast<std::size_t>(j)] += W(dy(i, j));
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
      }
      for (std::int64_t j = 0; j < n; ++j) {
        const W xhat = (W(P.h(i, j)) - mean) * rstd;
        const W dxhat = W(dy(i, j)) * W(P.gamma_c[static_cast<std::size_t>(j)]);
        dh[static_cast<std::size_t>(i * n + j)] =
            rstd / W(static_cast<double>(n)) * (W(static_cast<double>(n)) * dxhat - sum_dxhat - xhat * sum_dxhat_xhat);
      }
    }
    const int k = static_cast<int>(&P - layers_.data());
    P.grad_gamma.resize(static_cast<std::size_t>(n));
    P.grad_beta.resize(static_cast<std::size_t>(n));
    ops_.store(Role::gradients, tensor(k, weight_grad), dgamma, P.grad_gamma, log_);
    ops_.store(Role::gradients, tensor(k, bias_grad), dbeta, P.grad_beta, log_);
  }

  // master = grad * inv_scale: in the master format (AMP: fp32) or, without master gradients, the gradient format.
  void unscale(std::span<const T> grad, std::vector<T>& master, const T& inv_scale, std::size_t tensor_index) {
    master.resize(grad.size());
    if (ops_.master_gradients()) {
      for (std::size_t i = 0; i < grad.size(); ++i) master[i] = grad[i] * inv_scale;  // exact but for overflow
      return;
    }
    std::vector<W> wide(grad.size());
    for (std::size_t i = 0; i < grad.size(); ++i) wide[i] = W(grad[i]) * W(inv_scale);
    ops_.store(Role::gradients, tensor_index, wide, master, log_);
  }

  auto make_arith() {
    if constexpr (std::is_same_v<T, float>) {
      FormatArith a;
      a.format = config_.recipe.master.format;
      a.update_rounding = config_.recipe.update.rounding;
      a.random = &ops_.random();
      return a;
    } else {
      return NativeArith<T>{};
    }
  }

  // The step's tensors: their histograms, made here from the lane's own buffers (no copies handed on).
  std::vector<TensorRecord> records() {
    std::vector<TensorRecord> out;
    out.reserve(tensors_.size());
    const auto add = [&](std::size_t index, std::span<const T> values) {
      TensorRecord r;
      r.index = index;
      tensors_[index].elements = static_cast<std::int64_t>(values.size());
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        r.histogram = analysis::Log2Histogram::of(values);
      } else {
        std::vector<double> wide(values.size());
        for (std::size_t i = 0; i < values.size(); ++i) wide[i] = to_double(values[i]);
        r.histogram = analysis::Log2Histogram::of(std::span<const double>(wide));
      }
      if (log_.rounded[index]) r.effects = log_.effects[index];
      out.push_back(std::move(r));
    };
    add(input_tensor, input_.data);
    for (int k = 0; k < model_.layers(); ++k) {
      const Layer& L = layers_[static_cast<std::size_t>(k)];
      add(tensor(k, weight), L.weight.data);
      add(tensor(k, bias), L.bias);
      add(tensor(k, weight_grad), L.grad_weight.data);
      add(tensor(k, bias_grad), L.grad_bias);
      add(tensor(k, activation), L.out.data);
      add(tensor(k, activation_grad), L.grad_z.data);
    }
    return out;
  }

  static void flatten(std::initializer_list<const std::vector<T>*> parts, std::vector<double>& out) {
    std::size_t size = 0;
    for (const auto* p : parts) size += p->size();
    out.resize(size);
    std::size_t at = 0;
    for (const auto* p : parts)
      for (const T& x : *p) out[at++] = to_double(x);
  }

  LaneConfig config_;
  ModelConfig model_;
  Ops ops_;
  LossScaler scaler_{config_.loss_scale};
  std::vector<TensorInfo> tensors_;
  std::vector<Layer> layers_;
  Matrix<T> input_;  // (batch, in0) the network input after its cast
  StepLog log_;
};

}  // namespace mpscope::sim
