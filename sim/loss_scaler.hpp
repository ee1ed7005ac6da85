// Loss scaling (docs/design.md "Loss scaling"): PyTorch GradScaler's dynamic algorithm with its defaults, plus
// Megatron-style hysteresis and min/max clamps; static and none; and TransformerEngine's delayed scaling of FP8
// tensors.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <string>

namespace mpscope::sim {

struct LossScaleConfig {
  enum class Type { none, fixed, dynamic };  // config names: "none", "static", "dynamic"
  Type type = Type::none;
  double value = 1.0;                 // static
  double init_scale = 65536.0;        // dynamic (GradScaler defaults)
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
  int hysteresis = 1;                 // back off only after this many overflows since the last growth (1: GradScaler)
  double min_scale = 0.0;
  double max_scale = std::numeric_limits<double>::infinity();
};

// The scale is a float32, as GradScaler's is. With a scaler (static or dynamic) a step whose unscaled gradients
// hold inf/NaN is skipped; with none it is not.
class LossScaler {
 public:
  explicit LossScaler(const LossScaleConfig& config);

  float scale() const { return scale_; }
  // 1/scale as GradScaler computes it: in double, then rounded to float32.
  float inv_scale() const { return static_cast<float>(1.0 / static_cast<double>(scale_)); }

  struct Update {
    bool skipped = false;     // the optimizer step must not happen
    bool backed_off = false;  // the scale went down
    bool grew = false;        // the scale went up
    float scale_after = 1;
  };
  // After each backward pass: found_inf says whether the unscaled gradients held inf or NaN.
  Update update(bool found_inf);

 private:
  LossScaleConfig config_;
  float scale_ = 1;
  std::int64_t growth_tracker_ = 0;
  int hysteresis_tracker_ = 1;
};

// TransformerEngine delayed scaling of one tensor: the scale used at step t comes from the amax history of the
// steps before t: scale = (format max / max(history)) / 2^margin; kept when that amax is 0 or not finite.
class DelayedScaling {
 public:
  DelayedScaling(double format_max, int history_length = 1024, int margin = 0)
      : format_max_(format_max), history_length_(history_length), margin_(margin) {}
  float scale() const { return scale_; }
  float inv_scale() const { return static_cast<float>(1.0 / static_cast<double>(scale_)); }
  void record(double amax);  // after step t: push this step's amax, compute the scale for step t+1

 private:
  double format_max_;
  int history_length_, margin_;
  std::deque<double> history_;
  float scale_ = 1.0f;
};

}  // namespace mpscope::sim
