// Optimizers with PyTorch's update formulas (torch/optim/sgd.py, adam.py, adamw.py, single-tensor paths), so that
// trajectories compare with PyTorch; learning-rate schedules. Element arithmetic goes through an Arith policy:
// FormatArith rounds every operation to the master format (fp32 native, or any other format correctly rounded),
// with the final parameter update in the recipe's update rounding (stochastic included); NativeArith is plain T
// arithmetic for the fp64 and exact lanes.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "sim/arith.hpp"
#include "sim/random.hpp"

namespace mpscope::sim {

struct ScheduleConfig {
  enum class Type { constant, step, cosine };
  Type type = Type::constant;
  std::int64_t warmup_steps = 0;  // linear warm-up from lr/warmup to lr over the first steps
  std::int64_t step_size = 100;   // step: multiply by gamma every step_size steps
  double gamma = 0.1;
  double min_lr = 0.0;            // cosine: the floor
};

struct OptimizerConfig {
  enum class Type { sgd, adam, adamw };
  Type type = Type::sgd;
  double lr = 0.1;
  double momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  ScheduleConfig schedule;
};

// The learning rate at 0-based `step` of `total_steps`.
double learning_rate(const OptimizerConfig& c, std::int64_t step, std::int64_t total_steps);

// Plain arithmetic of T (double, or the exact lane's Boost float).
template <typename T>
struct NativeArith {
  T add(const T& a, const T& b) const { return a + b; }
  T sub(const T& a, const T& b) const { return a - b; }
  T mul(const T& a, const T& b) const { return a * b; }
  T div(const T& a, const T& b) const { return a / b; }
  T sqrt(const T& a) const {
    using std::sqrt;
    return sqrt(a);
  }
  T fma(const T& a, const T& b, const T& c) const { return a * b + c; }
  T update_fma(const T& a, const T& b, const T& c) { return a * b + c; }
};

// Every operation rounded once to `format` (float32 storage). fp32 with nearest rounding runs natively.
struct FormatArith {
  Format format = fp32();
  Rounding update_rounding = Rounding::nearest_even;
  RandomStream* random = nullptr;  // for a stochastic update

  bool native() const { return format == fp32(); }
  float add(float a, float b) const { return native() ? a + b : static_cast<float>(sim::add(a, b, format)); }
  float sub(float a, float b) const { return native() ? a - b : static_cast<float>(sim::sub(a, b, format)); }
  float mul(float a, float b) const { return native() ? a * b : static_cast<float>(sim::mul(a, b, format)); }
  float div(float a, float b) const { return native() ? a / b : static_cast<float>(sim::div(a, b, format)); }
  float sqrt(float a) const { return native() ? std::sqrt(a) : static_cast<float>(sim::sqrt(a, format)); }
  float fma(float a, float b, float c) const {
    return native() ? std::fmaf(a, b, c) : static_cast<float>(sim::fma(a, b, c, format));
  }
  // p + a*b for the parameter update, in the update rounding.
  float update_fma(float a, float b, float c) {
    if (native() && update_rounding == Rounding::nearest_even) return std::fmaf(a, b, c);
    const std::uint64_t r = update_rounding == Rounding::stochastic ? random->next() : 0;
    return static_cast<float>(sim::fma(a, b, c, format, update_rounding, r));
  }
};

// The state of one parameter tensor and its update. `lost` counts elements whose update was nonzero but left the
// stored value unchanged (swamping).
template <typename T>
class ParamOptimizer {
 public:
  ParamOptimizer(const OptimizerConfig& c, std::size_t n) : c_(c), n_(n) {}

  template <typename Arith>
  std::int64_t step(std::span<T> p, std::span<const T> g, double lr, Arith& a) {
    ++t_;
    std::int64_t lost = 0;
    const T zero(0);
    if (c_.type == OptimizerConfig::Type::sgd) {
      const T wd(c_.weight_decay), mom(c_.momentum), damp(1.0 - c_.dampening), neg_lr(-lr);
      if (c_.momentum != 0 && buf1_.empty()) buf1_.assign(n_, zero);
      for (std::size_t i = 0; i < n_; ++i) {
        T d = c_.weight_decay != 0 ? a.fma(wd, p[i], g[i]) : g[i];  // grad.add(param, alpha=wd)
        if (c_.momentum != 0) {
          buf1_[i] = t_ == 1 ? d : a.fma(damp, d, a.mul(buf1_[i], mom));  // buf.mul_(m).add_(grad, alpha=1-damp)
          d = c_.nesterov ? a.fma(mom, buf1_[i], d) : buf1_[i];
        }
        lost += update(p[i], neg_lr, d, a);
      }
      return lost;
    }
    // Adam / AdamW
    if (buf1_.empty()) {
      buf1_.assign(n_, zero);
      buf2_.assign(n_, zero);
    }
    const double bias1 = 1.0 - std::pow(c_.beta1, static_cast<double>(t_));
    const double bias2 = 1.0 - std::pow(c_.beta2, static_cast<double>(t_));
    const T one_minus_b1(1.0 - c_.beta1), b2(c_.beta2), one_minus_b2(1.0 - c_.beta2), eps(c_.eps);
    const T neg_step_size(-(lr / bias1)), bias2_sqrt(std::sqrt(bias2));
    const T wd(c_.weight_decay), decay(1.0 - lr * c_.weight_decay);
    for (std::size_t i = 0; i < n_; ++i) {
      T grad = g[i];
      if (c_.weight_decay != 0) {
        if (c_.type == OptimizerConfig::Type::adamw)
          p[i] = a.mul(p[i], decay);  // param.mul_(1 - lr * wd)
        else
          grad = a.fma(wd, p[i], grad);  // grad.add(param, alpha=wd)
      }
      buf1_[i] = a.fma(one_minus_b1, a.sub(grad, buf1_[i]), buf1_[i]);          // exp_avg.lerp_(grad, 1-beta1)
      buf2_[i] = a.fma(a.mul(one_minus_b2, grad), grad, a.mul(buf2_[i], b2));   // exp_avg_sq.mul_(b2).addcmul_
      const T denom = a.add(a.div(a.sqrt(buf2_[i]), bias2_sqrt), eps);           // sqrt(v)/sqrt(bc2) + eps
      lost += update(p[i], neg_step_size, a.div(buf1_[i], denom), a);            // param.addcdiv_(m, denom, -step)
    }
    return lost;
  }

 private:
  // p += s * d; reports whether a nonzero update was lost.
  template <typename Arith>
  static int update(T& p, const T& s, const T& d, Arith& a) {
    const T before = p;
    p = a.update_fma(s, d, p);
    return (s * d != T(0) && p == before) ? 1 : 0;
  }

  OptimizerConfig c_;
  std::size_t n_;
  std::int64_t t_ = 0;
  std::vector<T> buf1_, buf2_;  // momentum / exp_avg, exp_avg_sq
};

}  // namespace mpscope::sim
