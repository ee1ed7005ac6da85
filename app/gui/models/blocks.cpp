#include "app/gui/models/blocks.hpp"

#include <algorithm>
#include <map>
#include <sstream>

namespace mpscope::gui {

namespace {

// "transformer.h.12.attn.c_proj.activation" -> "transformer.h.12"; "" when the name is not in a GPT block.
std::string gpt_block(const std::string& name) {
  const std::string prefix = "transformer.h.";
  if (!name.starts_with(prefix)) return "";
  const std::size_t end = name.find('.', prefix.size());
  return end == std::string::npos ? "" : name.substr(0, end);
}

template <class T>
void add_once(std::vector<T>& out, const T& v) {
  if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
}

bool is_residual_stream(const analysis::TensorRow& t) {
  return t.kind == "activation" && (t.name.ends_with(".attn.c_proj.activation") || t.name.ends_with(".mlp.c_proj.activation"));
}

}  // namespace

std::string block_of(const analysis::TensorRow& t) {
  if (t.kind == "input") return "input";
  if (std::string b = gpt_block(t.name); !b.empty()) return b;
  const std::size_t dot = t.name.rfind('.');
  return dot == std::string::npos ? t.name : t.name.substr(0, dot);
}

std::vector<std::string> tensor_blocks(const LaneData& lane) {
  std::vector<std::string> out;
  for (const auto& t : lane.tensors) add_once(out, block_of(t));
  return out;
}

std::vector<std::string> tensor_kinds(const LaneData& lane) {
  std::vector<std::string> out;
  for (const auto& t : lane.tensors) add_once(out, t.kind);
  return out;
}

std::vector<const analysis::TensorRow*> filter_tensors(const LaneData& lane, const std::string& block, const std::string& kind) {
  std::vector<const analysis::TensorRow*> out;
  for (const auto& t : lane.tensors)
    if ((block.empty() || block_of(t) == block) && (kind.empty() || t.kind == kind)) out.push_back(&t);
  return out;
}

std::string to_string(BlockQuantity q) {
  return q == BlockQuantity::residual_stream ? "residual stream" : "attention scores";
}

std::vector<BlockRange> block_ranges(const LaneData& lane, BlockQuantity q) {
  std::map<std::int64_t, std::string> block_of_tensor;  // the tensors followed, by id
  std::vector<std::string> blocks;
  for (const auto& t : lane.tensors) {
    const bool wanted = q == BlockQuantity::residual_stream ? is_residual_stream(t) : t.kind == "attention_scores";
    const std::string b = gpt_block(t.name);
    if (!wanted || b.empty()) continue;
    block_of_tensor[t.id] = b;
    add_once(blocks, b);
  }
  std::vector<BlockRange> out;
  for (const auto& b : blocks) out.push_back({b, {}, {}});
  for (const auto& [step, stats] : lane.tensor_stats) {
    std::map<std::string, int> top;  // block -> highest occupied bin at this step
    std::map<std::string, std::int64_t> overflow;
    for (const auto& s : stats) {
      const auto it = block_of_tensor.find(s.tensor_id);
      if (it == block_of_tensor.end()) continue;
      overflow[it->second] += s.overflow.value_or(0);
      if (s.histogram.counts.empty()) continue;
      const auto [at, fresh] = top.emplace(it->second, s.histogram.hi());
      if (!fresh) at->second = std::max(at->second, s.histogram.hi());
    }
    for (auto& r : out)
      if (const auto it = top.find(r.block); it != top.end()) {
        r.points.push_back({static_cast<double>(step), static_cast<double>(it->second + 1)});
        if (overflow[r.block] > 0) r.overflows.push_back(r.points.back());
      }
  }
  return out;
}

std::vector<HeadFigures> head_figures(const LaneData& lane, std::int64_t step) {
  std::vector<HeadFigures> rows;
  std::map<std::int64_t, std::size_t> row_of;
  for (const auto& t : lane.tensors)
    if (t.kind == "attention_scores") {
      row_of[t.id] = rows.size();
      HeadFigures h;
      h.tensor = t.name;
      h.format = t.format;
      rows.push_back(h);
    }
  const auto recorded = lane.recorded_step_at(step);
  if (!recorded || rows.empty()) return rows;
  for (const auto& [at, stats] : lane.tensor_stats) {
    if (at > *recorded) break;
    for (const auto& s : stats) {
      const auto it = row_of.find(s.tensor_id);
      if (it == row_of.end()) continue;
      HeadFigures& r = rows[it->second];
      r.overflow_so_far += s.overflow.value_or(0);
      if (at != *recorded) continue;
      if (!s.histogram.counts.empty()) r.top_exponent = s.histogram.hi() + 1;
      r.infs = s.histogram.infs;
      r.overflow = s.overflow.value_or(0);
      r.underflow = s.underflow.value_or(0);
    }
  }
  return rows;
}

std::string head_csv(const std::vector<HeadFigures>& rows) {
  std::ostringstream out;
  out << "tensor,format,max_abs_below_2_pow,infs,overflow,overflow_so_far,underflow\n";
  for (const auto& r : rows)
    out << r.tensor << ',' << r.format << ',' << (r.top_exponent ? std::to_string(*r.top_exponent) : "") << ',' << r.infs << ','
        << r.overflow << ',' << r.overflow_so_far << ',' << r.underflow << '\n';
  return out.str();
}

}  // namespace mpscope::gui
