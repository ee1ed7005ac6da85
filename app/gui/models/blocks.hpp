// Navigation and per-block figures for models with many named tensors (a transformer's catalogue has a dozen
// tensors per block): which block and kind each tensor belongs to, the largest values of each block's residual
// stream and attention scores over the steps, and each head's scores at a step. Qt-free, tested apart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/gui/models/run_data.hpp"
#include "app/gui/models/series.hpp"

namespace mpscope::gui {

// The block of a tensor: "transformer.h.<i>" for a GPT block's tensors, else the module before the tensor's own
// suffix ("transformer.wte", "lm_head", "layer1", "0"); "input" for the network's input.
std::string block_of(const analysis::TensorRow& t);
// The lane's blocks and tensor kinds, each once, in catalogue order.
std::vector<std::string> tensor_blocks(const LaneData& lane);
std::vector<std::string> tensor_kinds(const LaneData& lane);
// The lane's tensors in `block` and of `kind` ("" matches any), in catalogue order.
std::vector<const analysis::TensorRow*> filter_tensors(const LaneData& lane, const std::string& block, const std::string& kind);

// What the ranges view follows per block.
enum class BlockQuantity { residual_stream, attention_scores };
std::string to_string(BlockQuantity q);
// One line per block: at each recorded step, log2 of the bound on the largest finite |value| (the top histogram
// bin's upper edge: the values lie below 2^y) of the block's residual stream (the sums after its attention and MLP,
// `attn.c_proj` / `mlp.c_proj` activations) or of its attention scores (all heads). Empty for a run without blocks.
struct BlockRange {
  std::string block;
  std::vector<Point> points;
  std::vector<Point> overflows;  // the points of the steps where some of those values overflowed when rounded
};
std::vector<BlockRange> block_ranges(const LaneData& lane, BlockQuantity q);

// Each head's scores at the recorded step at or before `step`, and their overflows up to it.
struct HeadFigures {
  std::string tensor;               // "transformer.h.0.attn.head2.scores"
  std::string format;
  std::optional<int> top_exponent;  // the finite |scores| lie below 2^top_exponent (none: no finite nonzero value)
  std::int64_t infs = 0;            // scores that are inf at that step
  std::int64_t overflow = 0;        // rounded to inf at that step
  std::int64_t overflow_so_far = 0; // summed over the recorded steps up to it
  std::int64_t underflow = 0;       // flushed to zero at that step
};
std::vector<HeadFigures> head_figures(const LaneData& lane, std::int64_t step);
std::string head_csv(const std::vector<HeadFigures>& rows);

}  // namespace mpscope::gui
