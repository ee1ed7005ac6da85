#include "sim/optimizer.hpp"

#include <numbers>

namespace mpscope::sim {

double learning_rate(const OptimizerConfig& c, std::int64_t step, std::int64_t total_steps) {
  const ScheduleConfig& s = c.schedule;
  if (step < s.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const std::int64_t t = step - s.warmup_steps;
  switch (s.type) {
    case ScheduleConfig::Type::constant: return c.lr;
    case ScheduleConfig::Type::step: return c.lr * std::pow(s.gamma, static_cast<double>(t / std::max<std::int64_t>(1, s.step_size)));
    case ScheduleConfig::Type::cosine: {
      const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps - s.warmup_steps));
      return s.min_lr + (c.lr - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * static_cast<double>(t) / span));
    }
  }
  return c.lr;
}

}  // namespace mpscope::sim
