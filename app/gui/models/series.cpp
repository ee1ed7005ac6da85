#include "app/gui/models/series.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "app/common/table_writer.hpp"
#include "sim/format.hpp"

namespace mpscope::gui {

namespace {

const analysis::StepRow* step_row(const LaneData& lane, std::int64_t step) {
  auto it = std::lower_bound(lane.steps.begin(), lane.steps.end(), step,
                             [](const analysis::StepRow& r, std::int64_t s) { return r.step < s; });
  return it != lane.steps.end() && it->step == step ? &*it : nullptr;
}

std::optional<double> lowest_cosine(const std::vector<analysis::LayerStatRow>& rows) {
  std::optional<double> lowest;
  for (const auto& r : rows)
    if (r.grad_cosine && (!lowest || *r.grad_cosine < *lowest)) lowest = r.grad_cosine;
  return lowest;
}

}  // namespace

std::vector<Point> loss_points(const LaneData& lane) {
  std::vector<Point> out;
  out.reserve(lane.steps.size());
  for (const auto& r : lane.steps)
    if (std::isfinite(r.loss)) out.push_back({static_cast<double>(r.step), r.loss});
  return out;
}

std::vector<Point> accuracy_points(const LaneData& lane) {
  std::vector<Point> out;
  for (const auto& r : lane.steps)
    if (r.accuracy) out.push_back({static_cast<double>(r.step), *r.accuracy});
  return out;
}

std::vector<Point> skipped_points(const LaneData& lane) {
  std::vector<Point> out;
  for (const auto& r : lane.steps)
    if (r.skipped && std::isfinite(r.loss)) out.push_back({static_cast<double>(r.step), r.loss});
  return out;
}

std::vector<Point> log2_scale_points(const LaneData& lane) {
  std::vector<Point> out;
  out.reserve(lane.steps.size());
  for (const auto& r : lane.steps)
    if (r.loss_scale > 0 && std::isfinite(r.loss_scale)) out.push_back({static_cast<double>(r.step), std::log2(r.loss_scale)});
  return out;
}

std::vector<Point> scale_event_points(const LaneData& lane, const std::string& kind) {
  std::vector<Point> out;
  const bool sets_scale = kind == "scale_backoff" || kind == "scale_growth";
  for (const auto& e : lane.events) {
    if (e.kind != kind) continue;
    double scale = 0;
    if (sets_scale && e.value) {
      scale = *e.value;
    } else if (const analysis::StepRow* r = step_row(lane, e.step)) {
      scale = r->loss_scale;
    }
    if (scale > 0 && std::isfinite(scale)) out.push_back({static_cast<double>(e.step), std::log2(scale)});
  }
  return out;
}

std::string to_string(DivergenceMetric metric) {
  switch (metric) {
    case DivergenceMetric::loss_delta: return "|loss - reference loss|";
    case DivergenceMetric::weight_distance: return "||W - W_ref|| / ||W_ref||";
    case DivergenceMetric::grad_cosine: return "gradient cosine (lowest layer)";
  }
  return "";
}

std::vector<Point> divergence_points(const LaneData& lane, DivergenceMetric metric) {
  std::vector<Point> out;
  if (metric == DivergenceMetric::grad_cosine) {
    for (const auto& [step, rows] : lane.layer_stats)
      if (auto c = lowest_cosine(rows)) out.push_back({static_cast<double>(step), *c});
    return out;
  }
  for (const auto& r : lane.steps) {
    const auto& v = metric == DivergenceMetric::loss_delta ? r.loss_delta : r.weight_distance;
    if (v && std::isfinite(*v)) out.push_back({static_cast<double>(r.step), *v});
  }
  return out;
}

std::optional<FormatLimits> format_limits(const std::string& format_name) {
  try {
    const sim::Format f = sim::parse_format(format_name);
    return FormatLimits{f.name, static_cast<int>(std::floor(std::log2(f.min_subnormal()))),
                        static_cast<int>(std::floor(std::log2(f.min_normal()))),
                        static_cast<int>(std::floor(std::log2(f.max_finite())))};
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
}

bool is_gradient_kind(const std::string& kind) {
  return kind == "weight_grad" || kind == "bias_grad" || kind == "activation_grad";
}

std::optional<std::size_t> Heatmap::column_at(std::int64_t step) const {
  auto it = std::upper_bound(steps.begin(), steps.end(), step);
  if (it == steps.begin()) return std::nullopt;
  return static_cast<std::size_t>(it - steps.begin() - 1);
}

Heatmap make_heatmap(const LaneData& lane, std::optional<std::int64_t> tensor_id, GradientScale view) {
  Heatmap h;
  const analysis::TensorRow* chosen = tensor_id ? lane.tensor(*tensor_id) : nullptr;
  h.title = lane.info.name + ": " + (chosen ? chosen->name : std::string("all gradients")) +
            (view == GradientScale::unscaled ? " (unscaled)" : "");
  for (const auto& t : lane.tensors)
    if (chosen ? &t == chosen : is_gradient_kind(t.kind)) {
      h.limits = format_limits(t.format);
      break;
    }
  bool first = true;
  for (const auto& [step, stats] : lane.tensor_stats) {
    analysis::Log2Histogram sum;
    int shift = 0;
    if (view == GradientScale::unscaled)
      if (const analysis::StepRow* r = step_row(lane, step); r && r->loss_scale > 0 && std::isfinite(r->loss_scale))
        shift = static_cast<int>(std::lround(std::log2(r->loss_scale)));
    for (const auto& s : stats) {
      const analysis::TensorRow* t = lane.tensor(s.tensor_id);
      if (t == nullptr || (chosen ? t != chosen : !is_gradient_kind(t->kind))) continue;
      analysis::Log2Histogram part = s.histogram;
      if (is_gradient_kind(t->kind)) part.lo -= shift;
      sum += part;
    }
    if (!sum.counts.empty()) {
      h.lo = first ? sum.lo : std::min(h.lo, sum.lo);
      h.hi = first ? sum.hi() : std::max(h.hi, sum.hi());
      first = false;
      for (auto c : sum.counts) h.max_count = std::max(h.max_count, c);
    }
    h.steps.push_back(step);
    h.columns.push_back(std::move(sum));
  }
  return h;
}

std::string to_string(Zone zone) {
  switch (zone) {
    case Zone::underflow: return "lost to underflow";
    case Zone::subnormal: return "subnormal";
    case Zone::normal: return "normal";
    case Zone::overflow: return "overflow";
    case Zone::zero: return "zero";
    case Zone::infinite: return "inf";
    case Zone::nan: return "NaN";
  }
  return "";
}

Zone zone_of(int exponent, const FormatLimits& limits) {
  if (exponent < limits.min_subnormal) return Zone::underflow;
  if (exponent < limits.min_normal) return Zone::subnormal;
  if (exponent <= limits.max_finite) return Zone::normal;
  return Zone::overflow;
}

std::vector<Bar> step_bars(const analysis::Log2Histogram& h, const std::optional<FormatLimits>& limits) {
  std::vector<Bar> bars;
  if (!h.counts.empty()) {
    const int lo = limits ? std::min(h.lo, limits->min_subnormal) : h.lo;
    for (int e = lo; e <= h.hi(); ++e)
      bars.push_back({std::to_string(e), e, h.count_at(e), limits ? zone_of(e, *limits) : Zone::normal});
  }
  bars.push_back({"0", 0, h.zeros, Zone::zero});
  bars.push_back({"inf", 0, h.infs, Zone::infinite});
  bars.push_back({"NaN", 0, h.nans, Zone::nan});
  return bars;
}

std::vector<LayerFigures> layer_figures(const LaneData& lane, std::int64_t step) {
  std::vector<LayerFigures> rows;
  const auto recorded = lane.recorded_step_at(step);
  for (int k = 1; k <= lane.layers(); ++k) {
    LayerFigures f;
    f.layer = k;
    f.name = "layer" + std::to_string(k);
    rows.push_back(f);
  }
  for (const analysis::TensorRow& t : lane.tensors)  // the module's name from its weight's ("0.weight" -> "0")
    if (t.kind == "weight" && t.layer >= 1 && t.layer <= static_cast<int>(rows.size()) && t.name.ends_with(".weight"))
      rows[static_cast<std::size_t>(t.layer - 1)].name = t.name.substr(0, t.name.size() - 7);
  if (!recorded) return rows;
  std::vector<std::int64_t> underflow(rows.size()), rounded(rows.size());
  for (const auto& s : lane.tensor_stats.at(*recorded)) {
    const analysis::TensorRow* t = lane.tensor(s.tensor_id);
    if (t == nullptr || t->layer < 1 || t->layer > static_cast<int>(rows.size())) continue;
    const auto i = static_cast<std::size_t>(t->layer - 1);
    rows[i].overflow += s.overflow.value_or(0);
    if (is_gradient_kind(t->kind) && s.rounded) {
      underflow[i] += s.underflow.value_or(0);
      rounded[i] += *s.rounded;
    }
  }
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (rounded[i] > 0) rows[i].gradient_underflow = static_cast<double>(underflow[i]) / static_cast<double>(rounded[i]);
  if (auto it = lane.layer_stats.find(*recorded); it != lane.layer_stats.end())
    for (const auto& l : it->second)
      if (l.layer >= 1 && l.layer <= static_cast<int>(rows.size())) {
        auto& r = rows[static_cast<std::size_t>(l.layer - 1)];
        r.lost_updates = l.lost_updates;
        r.weight_distance = l.weight_distance;
        r.grad_cosine = l.grad_cosine;
      }
  const std::string& bad = lane.info.first_nonfinite;
  if (!bad.empty() && lane.info.first_nonfinite_step && *lane.info.first_nonfinite_step <= step)
    for (auto& r : rows)
      if (bad.starts_with(r.name + ".")) r.first_nonfinite = bad;
  return rows;
}

namespace {
std::string csv(const std::vector<std::string>& columns, const std::vector<app::json>& rows) {
  std::ostringstream out;
  app::write_table(out, columns, rows, "csv");
  return out.str();
}
}  // namespace

std::string loss_csv(const RunData& run) {
  std::vector<app::json> rows;
  for (const auto& l : run.lanes)
    for (const auto& r : l.steps)
      rows.push_back({l.info.name, r.step, app::number(r.loss), app::cell(r.accuracy), r.skipped ? 1 : 0});
  return csv({"lane", "step", "loss", "accuracy", "skipped"}, rows);
}

std::string scale_csv(const RunData& run) {
  std::vector<app::json> rows;
  for (const auto& l : run.lanes)
    for (const auto& r : l.steps)
      rows.push_back({l.info.name, r.step, app::number(r.loss_scale), r.found_inf ? 1 : 0, r.skipped ? 1 : 0});
  return csv({"lane", "step", "loss_scale", "found_inf", "skipped"}, rows);
}

std::string divergence_csv(const RunData& run) {
  std::vector<app::json> rows;
  for (const auto& l : run.lanes)
    for (const auto& r : l.steps) {
      const auto it = l.layer_stats.find(r.step);
      rows.push_back({l.info.name, r.step, app::cell(r.loss_delta), app::cell(r.weight_distance),
                      app::cell(it != l.layer_stats.end() ? lowest_cosine(it->second) : std::nullopt)});
    }
  return csv({"lane", "step", "loss_delta", "weight_distance", "grad_cosine_min"}, rows);
}

std::string heatmap_csv(const Heatmap& h) {
  std::vector<app::json> rows;
  for (std::size_t c = 0; c < h.columns.size(); ++c) {
    const auto& col = h.columns[c];
    for (int e = col.lo; e <= col.hi(); ++e)
      if (col.count_at(e) != 0) rows.push_back({h.steps[c], e, col.count_at(e)});
    rows.push_back({h.steps[c], "zero", col.zeros});
    rows.push_back({h.steps[c], "inf", col.infs});
    rows.push_back({h.steps[c], "nan", col.nans});
  }
  return csv({"step", "bin", "count"}, rows);
}

std::string layer_csv(const std::vector<LayerFigures>& rows) {
  std::vector<app::json> out;
  for (const auto& r : rows)
    out.push_back({r.layer, app::cell(r.gradient_underflow), r.overflow, app::cell(r.lost_updates),
                   app::cell(r.weight_distance), app::cell(r.grad_cosine), r.first_nonfinite});
  return csv({"layer", "gradient_underflow", "overflow", "lost_updates", "weight_distance", "grad_cosine", "first_nonfinite"}, out);
}

}  // namespace mpscope::gui
