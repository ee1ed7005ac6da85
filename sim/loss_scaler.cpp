#include "sim/loss_scaler.hpp"

#include <algorithm>
#include <cmath>

namespace mpscope::sim {

LossScaler::LossScaler(const LossScaleConfig& config) : config_(config) {
  switch (config.type) {
    case LossScaleConfig::Type::none: scale_ = 1.0f; break;
    case LossScaleConfig::Type::fixed: scale_ = static_cast<float>(config.value); break;
    case LossScaleConfig::Type::dynamic: scale_ = static_cast<float>(config.init_scale); break;
  }
  hysteresis_tracker_ = config.hysteresis;
}

// GradScaler's _amp_update_scale_ (growth only when the grown scale is finite), with Megatron's hysteresis and
// the optional clamps layered on top; with hysteresis 1 and no clamps it is GradScaler exactly.
LossScaler::Update LossScaler::update(bool found_inf) {
  Update u;
  // A scaler (static or dynamic) skips a step with non-finite gradients; without one the step happens, as it
  // would in plain PyTorch, and NaN reaches the weights.
  u.skipped = found_inf && config_.type != LossScaleConfig::Type::none;
  if (config_.type == LossScaleConfig::Type::dynamic) {
    if (found_inf) {
      growth_tracker_ = 0;
      if (--hysteresis_tracker_ <= 0) {
        const float backed = std::max(static_cast<float>(scale_ * config_.backoff_factor),
                                      static_cast<float>(config_.min_scale));
        u.backed_off = backed < scale_;
        scale_ = backed;
      }
    } else if (++growth_tracker_ == config_.growth_interval) {
      growth_tracker_ = 0;
      hysteresis_tracker_ = config_.hysteresis;
      const float grown = static_cast<float>(scale_ * config_.growth_factor);
      if (std::isfinite(grown)) {  // GradScaler keeps the scale when growing would overflow float32
        const float clamped = std::isfinite(config_.max_scale) ? std::min(grown, static_cast<float>(config_.max_scale)) : grown;
        u.grew = clamped > scale_;
        scale_ = clamped;
      }
    }
  }
  u.scale_after = scale_;
  return u;
}

void DelayedScaling::record(double amax) {
  history_.push_front(amax);
  if (static_cast<int>(history_.size()) > history_length_) history_.pop_back();
  const double window_amax = *std::max_element(history_.begin(), history_.end());
  if (window_amax > 0 && std::isfinite(window_amax))
    scale_ = static_cast<float>(format_max_ / window_amax / std::ldexp(1.0, margin_));
}

}  // namespace mpscope::sim
