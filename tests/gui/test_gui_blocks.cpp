// The blocks models (app/gui/models/blocks.hpp) without widgets: a transformer's tensors by block and kind, the
// per-block ranges of the residual stream and the attention scores, the per-head figures; on a lane built by hand
// (exact numbers) and on a trained two-block GPT (what a real catalogue gives).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "app/gui/models/blocks.hpp"
#include "gui_test_support.hpp"

using namespace mpscope;
using namespace mpscope::gui;
using namespace mpscope::gui::testing;

namespace {

// One block, two heads; steps 0 and 2 recorded. Head 1 overflows at both, head 0 never.
LaneData gpt_lane() {
  LaneData l;
  l.info.id = 1;
  l.info.name = "fp16-amp";
  l.tensors = {{1, 1, 0, "input", "input", "fp16", 4},
               {2, 1, 1, "transformer.wte.weight", "weight", "fp32", 64},
               {3, 1, 4, "transformer.h.0.attn.c_attn.weight", "weight", "fp32", 192},
               {4, 1, 4, "transformer.h.0.attn.head0.scores", "attention_scores", "fp16", 10},
               {5, 1, 4, "transformer.h.0.attn.head1.scores", "attention_scores", "fp16", 10},
               {6, 1, 5, "transformer.h.0.attn.c_proj.activation", "activation", "fp32", 16},
               {7, 1, 5, "transformer.h.0.attn.c_proj.weight_grad", "weight_grad", "fp16", 64},
               {8, 1, 8, "transformer.h.0.mlp.c_proj.activation", "activation", "fp32", 16},
               {9, 1, 9, "lm_head.weight", "weight", "fp32", 64}};
  for (std::int64_t s = 0; s < 3; ++s) {
    analysis::StepRow r;
    r.lane_id = 1;
    r.step = s;
    l.steps.push_back(r);
  }
  l.tensor_stats[0] = {{4, 0, histogram(-3, {2, 3}), 10, 1, 0, 0},        // head 0: below 2^-1, 1 underflowed
                       {5, 0, histogram(2, {1, 1, 4}, 0, 2), 10, 0, 0, 2},  // head 1: below 2^5, 2 overflowed
                       {6, 0, histogram(-8, {1, 1}), std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                       {8, 0, histogram(-7, {3, 0, 1}), 16, 0, 0, 0}};
  l.tensor_stats[2] = {{4, 2, histogram(0, {5}), 10, 0, 0, 0},
                       {5, 2, histogram(3, {2, 2}, 0, 3), 10, 0, 0, 3},
                       {6, 2, histogram(-2, {4}), std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                       {8, 2, histogram(-1, {2}), 16, 0, 0, 1}};
  return l;
}

}  // namespace

TEST(GuiBlocks, TensorsByBlockAndKind) {
  const LaneData l = gpt_lane();
  EXPECT_EQ(block_of(l.tensors[0]), "input");
  EXPECT_EQ(block_of(l.tensors[1]), "transformer.wte");
  EXPECT_EQ(block_of(l.tensors[3]), "transformer.h.0");
  EXPECT_EQ(block_of(l.tensors[8]), "lm_head");
  EXPECT_EQ(tensor_blocks(l), (std::vector<std::string>{"input", "transformer.wte", "transformer.h.0", "lm_head"}));
  EXPECT_EQ(tensor_kinds(l), (std::vector<std::string>{"input", "weight", "attention_scores", "activation", "weight_grad"}));
  const auto scores = filter_tensors(l, "transformer.h.0", "attention_scores");
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_EQ(scores[1]->name, "transformer.h.0.attn.head1.scores");
  EXPECT_EQ(filter_tensors(l, "transformer.h.0", "").size(), 6u);
  EXPECT_EQ(filter_tensors(l, "", "weight").size(), 3u);
  EXPECT_EQ(filter_tensors(l, "", "").size(), l.tensors.size());
}

TEST(GuiBlocks, RangesPerBlockWithTheOverflowedSteps) {
  const LaneData l = gpt_lane();
  const auto scores = block_ranges(l, BlockQuantity::attention_scores);
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(scores[0].block, "transformer.h.0");
  ASSERT_EQ(scores[0].points.size(), 2u);
  EXPECT_EQ(scores[0].points[0].x, 0);
  EXPECT_EQ(scores[0].points[0].y, 5);  // the higher head's top bin 2^4 -> below 2^5
  EXPECT_EQ(scores[0].points[1].y, 5);  // bins 3, 4 -> below 2^5
  ASSERT_EQ(scores[0].overflows.size(), 2u);
  const auto stream = block_ranges(l, BlockQuantity::residual_stream);
  ASSERT_EQ(stream.size(), 1u);
  ASSERT_EQ(stream[0].points.size(), 2u);
  EXPECT_EQ(stream[0].points[0].y, -4);  // max(attn.c_proj's 2^-7 bin, mlp.c_proj's 2^-5 bin) + 1
  EXPECT_EQ(stream[0].points[1].y, 0);
  ASSERT_EQ(stream[0].overflows.size(), 1u);  // mlp.c_proj's overflow at step 2
  EXPECT_EQ(stream[0].overflows[0].x, 2);
  LaneData mlp;  // no blocks: nothing to draw
  mlp.tensors = {{1, 1, 1, "layer1.activation", "activation", "fp16", 4}};
  EXPECT_TRUE(block_ranges(mlp, BlockQuantity::residual_stream).empty());
}

TEST(GuiBlocks, HeadFiguresAtARecordedStepAndSoFar) {
  const LaneData l = gpt_lane();
  const auto at1 = head_figures(l, 1);  // step 1 was not recorded: step 0's figures
  ASSERT_EQ(at1.size(), 2u);
  EXPECT_EQ(at1[0].tensor, "transformer.h.0.attn.head0.scores");
  EXPECT_EQ(*at1[0].top_exponent, -1);
  EXPECT_EQ(at1[0].underflow, 1);
  EXPECT_EQ(at1[1].overflow, 2);
  EXPECT_EQ(at1[1].infs, 2);
  EXPECT_EQ(at1[1].overflow_so_far, 2);
  const auto at2 = head_figures(l, 2);
  EXPECT_EQ(*at2[1].top_exponent, 5);
  EXPECT_EQ(at2[1].overflow, 3);
  EXPECT_EQ(at2[1].overflow_so_far, 5);
  EXPECT_EQ(at2[0].overflow_so_far, 0);
  EXPECT_EQ(head_csv(at2), "tensor,format,max_abs_below_2_pow,infs,overflow,overflow_so_far,underflow\n"
                           "transformer.h.0.attn.head0.scores,fp16,1,0,0,0,0\n"
                           "transformer.h.0.attn.head1.scores,fp16,5,3,3,5,0\n");
}

// A trained two-block, two-head GPT: every block has its ranges, every head its row, the filters find its tensors.
TEST(GuiBlocks, ATrainedGptHasEveryBlockAndHead) {
  nlohmann::json e = small_gpt_experiment(4);
  e["record"]["every"] = 2;
  RunFollower follower(make_run(e, "gpt.mpscope"));
  follower.poll();
  ASSERT_EQ(follower.data().lanes.size(), 2u);
  const LaneData& l = follower.data().lanes[1];
  for (auto q : {BlockQuantity::attention_scores, BlockQuantity::residual_stream}) {
    const auto ranges = block_ranges(l, q);
    ASSERT_EQ(ranges.size(), 2u) << to_string(q);
    EXPECT_EQ(ranges[1].block, "transformer.h.1");
    for (const auto& r : ranges) {
      EXPECT_EQ(r.points.size(), 3u) << r.block;  // steps 0, 2 and the last one
      for (const Point& p : r.points) EXPECT_TRUE(std::isfinite(p.y) && p.y > -30 && p.y < 16) << r.block << " " << p.y;
    }
  }
  const auto heads = head_figures(l, 3);
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_EQ(heads[3].tensor, "transformer.h.1.attn.head1.scores");
  EXPECT_EQ(heads[3].format, "fp16");
  EXPECT_TRUE(heads[3].top_exponent.has_value());
  EXPECT_EQ(filter_tensors(l, "transformer.h.1", "attention_scores").size(), 2u);
  const auto blocks = tensor_blocks(l);
  EXPECT_NE(std::find(blocks.begin(), blocks.end(), "transformer.ln_f"), blocks.end());
  EXPECT_NE(std::find(blocks.begin(), blocks.end(), "transformer.h.0"), blocks.end());
}
