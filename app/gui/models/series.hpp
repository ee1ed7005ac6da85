// The numbers each view draws, computed from RunData: plain values, so that they are tested without widgets, and
// the same values the views export as CSV.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/histogram.hpp"
#include "app/gui/models/run_data.hpp"

namespace mpscope::gui {

struct Point {
  double x = 0, y = 0;
};

// Loss and accuracy view. Non-finite losses are left out (the lane's verdict says it diverged).
std::vector<Point> loss_points(const LaneData& lane);
std::vector<Point> accuracy_points(const LaneData& lane);  // recorded steps only
std::vector<Point> skipped_points(const LaneData& lane);   // (step, loss) of each skipped step

// Loss-scale view: log2 of the scale each step's backward pass used, and the events on it.
std::vector<Point> log2_scale_points(const LaneData& lane);
// (step, log2 scale) of the lane's events of one kind: "overflow" and "skip" at the scale that step used,
// "scale_backoff" and "scale_growth" at the scale they set.
std::vector<Point> scale_event_points(const LaneData& lane, const std::string& kind);

// Divergence view: distance from the reference lane over steps.
enum class DivergenceMetric { loss_delta, weight_distance, grad_cosine };
std::string to_string(DivergenceMetric metric);
// grad_cosine: the lowest cosine over the layers at each recorded step (the layer that drifts most).
std::vector<Point> divergence_points(const LaneData& lane, DivergenceMetric metric);

// The smallest subnormal, the smallest normal and the largest finite value of a format, as log2 bin exponents.
struct FormatLimits {
  std::string format;
  int min_subnormal = 0, min_normal = 0, max_finite = 0;
};
std::optional<FormatLimits> format_limits(const std::string& format_name);  // none for "exact" and unknown names

// Underflow view. Gradients are recorded as the backward pass made them, multiplied by the loss scale; `unscaled`
// shifts them by -log2(scale) to show where they would lie without loss scaling (exact for the power-of-two
// scales of GradScaler; a static scale that is not a power of two is rounded to the nearest power).
enum class GradientScale { scaled, unscaled };
struct Heatmap {
  std::vector<std::int64_t> steps;               // recorded steps: the columns
  std::vector<analysis::Log2Histogram> columns;  // the histogram at each of them (summed over the tensors chosen)
  int lo = 0, hi = -1;                           // bin exponents present in any column
  std::int64_t max_count = 0;                    // largest bin count (colour scale)
  std::optional<FormatLimits> limits;            // of the chosen tensor's format (for "all gradients": theirs)
  std::string title;

  std::int64_t count(std::size_t column, int exponent) const { return columns[column].count_at(exponent); }
  std::optional<std::size_t> column_at(std::int64_t step) const;  // the last column at or before step
};
// tensor_id: one tensor, or none for every gradient tensor of the lane (weight, bias and activation gradients).
Heatmap make_heatmap(const LaneData& lane, std::optional<std::int64_t> tensor_id, GradientScale view);
bool is_gradient_kind(const std::string& kind);

enum class Zone { underflow, subnormal, normal, overflow, zero, infinite, nan };
std::string to_string(Zone zone);
struct Bar {
  std::string label;  // the bin's exponent, or "0", "inf", "NaN"
  int exponent = 0;   // bins only
  std::int64_t count = 0;
  Zone zone = Zone::normal;
};
// One selected step: a bar per log2 bin (from the lowest bin or the smallest subnormal, whichever is lower, to the
// highest bin), coloured by zone, then zero, inf and NaN.
std::vector<Bar> step_bars(const analysis::Log2Histogram& h, const std::optional<FormatLimits>& limits);
Zone zone_of(int exponent, const FormatLimits& limits);

// Divergence view's table: one row per layer at a recorded step.
struct LayerFigures {
  int layer = 0;
  std::string name;  // the layer's module: "layer1" of an mlp, "0" of a sequential model (its weight's prefix)
  std::optional<double> gradient_underflow;  // underflowed / rounded over the layer's gradient tensors
  std::int64_t overflow = 0;                 // values that overflowed where the lane rounds the layer's tensors
  std::optional<double> lost_updates, weight_distance, grad_cosine;
  std::string first_nonfinite;  // the lane's first inf/NaN tensor, when it is in this layer and at or before the step
};
std::vector<LayerFigures> layer_figures(const LaneData& lane, std::int64_t step);

// CSV of what each view shows (header line first).
std::string loss_csv(const RunData& run);        // lane,step,loss,accuracy,skipped
std::string scale_csv(const RunData& run);       // lane,step,loss_scale,found_inf,skipped
std::string divergence_csv(const RunData& run);  // lane,step,loss_delta,weight_distance,grad_cosine_min
std::string heatmap_csv(const Heatmap& h);       // step,bin,count (bin: exponent, or zero/inf/nan)
std::string layer_csv(const std::vector<LayerFigures>& rows);

}  // namespace mpscope::gui
