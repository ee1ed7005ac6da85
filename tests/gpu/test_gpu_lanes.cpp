// GPU lanes against CPU lanes: in exact mode bit for bit (weights, gradients, losses, loss scales, recorded
// histograms and rounding counts, the first inf/NaN), for every recipe and every operation of the model; in fast
// mode within stated bounds, reproducible, and the same with or without graphs and recording. Plus the errors a
// GPU lane gives for what it cannot do.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "gpu_support.hpp"
#include "lockstep.hpp"
#include "sim/experiment.hpp"
#include "sim/trainer.hpp"

using namespace mpscope;
using gputest::first_difference;
using gputest::same_bits;
using namespace mpscope::gputest;

namespace {

// The proof the design asks for: samples/torch_spiral.json, the GPU exact fp16-amp lane (mma.sync tiles) and the
// CPU fp16-amp lane with the h100 model end 200 steps with bit-identical weights.
TEST(GpuExactLane, SpiralFp16AmpBitIdenticalToCpuH100For200Steps) {
  MPSCOPE_REQUIRE_GPU();
  sim::Experiment e = sim::select_lanes(sim::load_experiment(gputest::samples_dir() / "torch_spiral.json"), {"fp16-amp"});
  const sim::Prepared p = sim::prepare(e);
  const sim::LaneConfig& c = e.lanes[0].lane;
  ASSERT_EQ(c.recipe.mma, sim::Accumulation::h100);
  auto cpu = sim::make_lane(c, e.model, p.init);
  gpu::GpuLaneOptions o;
  o.mode = gpu::GemmMode::exact;
  o.data = &p.data;
  auto gpu = gpu::make_gpu_lane(c, e.model, p.init, o);
  sim::Batcher batches(p.data, e.batch_size, e.seed);
  for (std::int64_t step = 0; step < 200; ++step) {
    const sim::Batch b = batches.batch(step);
    const double lr = sim::learning_rate(e.optimizer, step, e.steps);
    const sim::StepResult want = cpu->step(b, lr, false), got = gpu->step(b, lr, false);
    ASSERT_TRUE(same_bits(got.loss, want.loss)) << "step " << step << ": " << got.loss << " vs " << want.loss;
    ASSERT_EQ(got.loss_scale, want.loss_scale) << "step " << step;
  }
  const std::string difference = first_difference(gpu->weights(), cpu->weights());
  EXPECT_EQ(difference, "");
  if (difference.empty()) std::cout << "200 steps: GPU exact fp16-amp weights bit-identical to the CPU's h100 model\n";
}

TEST(GpuExactLane, EveryRecipeMatchesTheCpuLane) {
  MPSCOPE_REQUIRE_GPU();
  const Problem s = spiral_problem();
  for (const auto& [recipe, mma] : {std::pair{"fp32", sim::Accumulation::fp32}, std::pair{"fp16-amp", sim::Accumulation::fp32},
                                    std::pair{"fp16-amp", sim::Accumulation::h100}, std::pair{"bf16-amp", sim::Accumulation::fp32},
                                    std::pair{"fp16-pure", sim::Accumulation::h100}, std::pair{"fp16-pure", sim::Accumulation::fp32},
                                    std::pair{"fp8", sim::Accumulation::fp32}}) {
    SCOPED_TRACE(std::string(recipe) + " mma " + std::string(sim::to_string(mma)));
    expect_lockstep_identical(s, lane_config(recipe, mma), 40, 13);
  }
}

// fp8: E4M3/E5M2 quantization with delayed scaling (short histories that roll over, a margin, no scaling), with
// LayerNorm and GELU too (make_gpu_lane runs mlps with LayerNorm on the graph lane); the exact mode's float GEMMs of
// FP8 values are the CPU's fp32 model.
TEST(GpuExactLane, Fp8DelayedScalingMatchesTheCpuLane) {
  MPSCOPE_REQUIRE_GPU();
  Problem s = spiral_problem({2, 24, 40, 3});
  sim::LaneConfig c = lane_config("fp8", sim::Accumulation::fp32);
  {
    SCOPED_TRACE("history 1024");
    expect_lockstep_identical(s, c, 30, 7, true);
  }
  c.fp8_history = 3;
  c.fp8_margin = 1;
  {
    SCOPED_TRACE("history 3, margin 1");
    expect_lockstep_identical(s, c, 30, 7);
  }
  c.recipe.delayed_scaling = false;
  {
    SCOPED_TRACE("no scaling");
    expect_lockstep_identical(s, c, 12, 5);
  }
  s.model.activation = sim::Activation::gelu;
  s.model.layer_norm = true;
  s.init = sim::default_initial_weights(s.model, 7);
  c = lane_config("fp8", sim::Accumulation::fp32);
  SCOPED_TRACE("gelu + LayerNorm");
  expect_lockstep_identical(s, c, 20, 7);
}

// Each operation of the model, forward and backward, through whole steps: activations, LayerNorm, losses,
// optimizers, each against its CPU twin. (The LayerNorm cases run on the graph lane: make_gpu_lane sends mlps with
// LayerNorm there.)
TEST(GpuExactLane, EveryOperationMatchesTheCpuLane) {
  MPSCOPE_REQUIRE_GPU();
  for (sim::Activation a : {sim::Activation::relu, sim::Activation::gelu, sim::Activation::gelu_tanh, sim::Activation::tanh,
                            sim::Activation::sigmoid, sim::Activation::silu}) {
    for (bool norm : {false, true}) {
      Problem s = spiral_problem({2, 24, 40, 3});
      s.model.activation = a;
      s.model.layer_norm = norm;
      s.init = sim::default_initial_weights(s.model, 7);
      SCOPED_TRACE(std::string(sim::to_string(a)) + (norm ? " + LayerNorm" : ""));
      expect_lockstep_identical(s, lane_config("fp16-amp", sim::Accumulation::h100), 12, 5);
      expect_lockstep_identical(s, lane_config("bf16-amp", sim::Accumulation::fp32), 6, 5);
    }
  }
  for (const char* recipe : {"fp16-amp", "bf16-amp"}) {  // cross-entropy of the logits cast to float32 first
    Problem s = spiral_problem();
    s.model.loss_logits = sim::LossLogits::fp32;
    SCOPED_TRACE(std::string(recipe) + ", \"logits\": \"fp32\"");
    expect_lockstep_identical(s, lane_config(recipe, std::string(recipe) == "fp16-amp" ? sim::Accumulation::h100 : sim::Accumulation::fp32), 12, 5);
  }
  {  // MSE on one-hot labels, and regression targets
    Problem s = spiral_problem();
    s.model.loss = sim::LossType::mse;
    SCOPED_TRACE("mse, one-hot labels");
    expect_lockstep_identical(s, lane_config("fp16-amp", sim::Accumulation::h100), 12, 5);
  }
  {
    Problem s;
    s.model.widths = {1, 32, 32, 1};
    s.model.loss = sim::LossType::mse;
    s.model.activation = sim::Activation::tanh;
    s.data = sim::make_sine(256, 0.05, 1.0, 4);
    s.init = sim::default_initial_weights(s.model, 7);
    SCOPED_TRACE("mse regression");
    expect_lockstep_identical(s, lane_config("fp16-amp", sim::Accumulation::h100, 0.05), 12, 5);
  }
  const Problem s = spiral_problem();
  for (const char* which : {"momentum-nesterov-wd", "momentum-dampening", "adam", "adam-wd", "adamw"}) {
    for (const char* recipe : {"fp16-amp", "fp16-pure"}) {
      sim::LaneConfig c = lane_config(recipe, sim::Accumulation::h100, 0.01);
      sim::OptimizerConfig& o = c.optimizer;
      const std::string w = which;
      if (w == "momentum-nesterov-wd") o.momentum = 0.9, o.nesterov = true, o.weight_decay = 1e-3;
      if (w == "momentum-dampening") o.momentum = 0.8, o.dampening = 0.1;
      if (w.rfind("adam", 0) == 0) o.type = w == "adamw" ? sim::OptimizerConfig::Type::adamw : sim::OptimizerConfig::Type::adam;
      if (w == "adam-wd") o.weight_decay = 1e-2;
      if (w == "adamw") o.weight_decay = 0.05;
      SCOPED_TRACE(std::string(recipe) + " " + w);
      expect_lockstep_identical(s, c, 12, 5);
    }
  }
}

// Overflow: a static loss scale far too large makes fp16 gradients overflow; skipped steps, the first inf/NaN
// tensor and the counts agree with the CPU.
TEST(GpuExactLane, OverflowAndSkippedStepsMatchTheCpuLane) {
  MPSCOPE_REQUIRE_GPU();
  Problem s = spiral_problem();
  for (auto& v : s.data.x.data) v *= 200.0f;
  sim::LaneConfig c = lane_config("fp16-amp", sim::Accumulation::h100);
  c.loss_scale.type = sim::LossScaleConfig::Type::dynamic;
  c.loss_scale.init_scale = 134217728.0;  // 2^27: scaled gradients overflow fp16 until the scale has backed off
  c.loss_scale.growth_interval = 3;       // and then it grows into overflow again
  expect_lockstep_identical(s, c, 40, 1, true);
  // No loss scaler, inputs beyond fp16's range: inf/NaN reach the weights, and every later step carries them.
  for (auto& v : s.data.x.data) v *= 1000.0f;
  sim::LaneConfig unscaled = lane_config("fp16-pure", sim::Accumulation::h100);
  unscaled.loss_scale.type = sim::LossScaleConfig::Type::none;
  expect_lockstep_identical(s, unscaled, 6, 1, true);
}

// Fast lanes under "mma": "h100" (cuBLASLt with each output's K in one pass, the recipe's FP8 accumulation, bias
// gradients in the CPU's order) step in lockstep with the CPU lane of the same recipe and model: the same loss at
// every step and bit-identical weights at the end. On failure: the first step and tensor that differ.
void expect_fast_lane_bit_identical(const sim::ModelConfig& model, const sim::Dataset& data, const sim::InitialWeights& init,
                                    const sim::LaneConfig& c, std::int64_t batch, std::uint64_t seed, int steps) {
  auto cpu = sim::make_lane(c, model, init);
  gpu::GpuLaneOptions o;
  o.mode = gpu::GemmMode::fast;
  o.data = &data;
  auto gpu = gpu::make_gpu_lane(c, model, init, o);
  sim::Batcher batches(data, batch, seed);
  for (int step = 0; step < steps; ++step) {
    const sim::Batch b = batches.batch(step);
    const sim::StepResult want = cpu->step(b, c.optimizer.lr, false), got = gpu->step(b, c.optimizer.lr, false);
    const std::string w = first_difference(gpu->weights(), cpu->weights());
    ASSERT_TRUE(w.empty() && same_bits(got.loss, want.loss))
        << "step " << step << ": loss " << got.loss << " vs CPU " << want.loss << "; weights " << w << "; gradients "
        << first_difference(gpu->gradients(), cpu->gradients());
  }
}

TEST(GpuFastLane, H100ModelIsBitIdenticalToTheCpuLaneFor200SpiralSteps) {
  MPSCOPE_REQUIRE_GPU();
  const sim::Experiment e = sim::load_experiment(gputest::samples_dir() / "torch_spiral.json");
  const sim::Prepared p = sim::prepare(e);
  for (const auto& [recipe, accumulation] :
       {std::pair{"fp16-amp", sim::Fp8Accumulation::promoted}, std::pair{"bf16-amp", sim::Fp8Accumulation::promoted},
        std::pair{"fp16-pure", sim::Fp8Accumulation::promoted}, std::pair{"fp8", sim::Fp8Accumulation::promoted},
        std::pair{"fp8", sim::Fp8Accumulation::fast}}) {
    sim::LaneConfig c = lane_config(recipe, sim::Accumulation::h100);
    c.optimizer = e.lanes[0].lane.optimizer;
    c.recipe.fp8_accumulation = accumulation;
    const std::string name = std::string(recipe) + (c.recipe.delayed_scaling ? accumulation == sim::Fp8Accumulation::fast
                                                                                    ? " (fast accumulation)"
                                                                                    : " (promoted accumulation)"
                                                                              : "");
    SCOPED_TRACE(name);
    expect_fast_lane_bit_identical(e.model, p.data, p.init, c, e.batch_size, e.seed, 200);
    if (!::testing::Test::HasFailure()) std::cout << "200 spiral steps: GPU fast " << name << " bit-identical to the CPU's h100 model\n";
  }
}

// The same on a wider mlp with batches of 1024 rows (cuBLASLt's larger tiles, long weight-gradient K, the bias
// gradients' long columns; kept small enough for the CPU's bf16 and FP8 models, about 50M products a second) and on
// the digits CNN (im2col GEMMs on the graph lane).
TEST(GpuFastLane, H100ModelIsBitIdenticalOnAWideMlpAndACnn) {
  MPSCOPE_REQUIRE_GPU();
  {
    sim::ModelConfig wide;
    wide.widths = {256, 256, 10};
    const sim::Dataset data = sim::make_blobs(10, 300, 256, 2.0, 5);
    const sim::InitialWeights init = sim::default_initial_weights(wide, 9);
    for (const auto& [recipe, accumulation] : {std::pair{"fp16-amp", sim::Fp8Accumulation::promoted},
                                               std::pair{"bf16-amp", sim::Fp8Accumulation::promoted},
                                               std::pair{"fp8", sim::Fp8Accumulation::promoted},
                                               std::pair{"fp8", sim::Fp8Accumulation::fast}}) {
      sim::LaneConfig c = lane_config(recipe, sim::Accumulation::h100, 0.05);
      c.recipe.fp8_accumulation = accumulation;
      SCOPED_TRACE(std::string("256-256-10, ") + recipe);
      expect_fast_lane_bit_identical(wide, data, init, c, 1024, 2, 6);
      if (!::testing::Test::HasFailure()) std::cout << "6 steps of 256-256-10, batch 1024: GPU fast " << recipe << " bit-identical\n";
    }
  }
  const sim::Experiment e = sim::load_experiment(gputest::samples_dir() / "torch_cnn.json");
  const sim::Prepared p = sim::prepare(e);
  for (const char* recipe : {"fp16-amp", "bf16-amp"}) {
    SCOPED_TRACE(std::string("torch_cnn.json, ") + recipe);
    sim::LaneConfig c = lane_config(recipe, sim::Accumulation::h100);
    c.optimizer = e.lanes[0].lane.optimizer;
    expect_fast_lane_bit_identical(e.model, p.data, p.init, c, e.batch_size, e.seed, 50);
    if (!::testing::Test::HasFailure()) std::cout << "50 digits-CNN steps: GPU fast " << recipe << " bit-identical\n";
  }
}

// Fast mode: cuBLAS, fused epilogues. Not bit-identical to the CPU; the bounds below are what the formats allow.
TEST(GpuFastLane, StaysCloseToTheCpuLane) {
  MPSCOPE_REQUIRE_GPU();
  const Problem s = spiral_problem({2, 64, 64, 3});
  struct Case {
    const char* recipe;
    double gradient_nmse;  // after one step, from identical weights
    double loss_relative;  // largest relative loss difference over 100 steps
  };
  // fp16: unit roundoff 2^-11, so single roundings differ by ~5e-4 relative; bf16 2^-8; fp32 2^-24. fp8: the same
  // quantization on both sides, so the first step differs only by summation order (float32 vs the FP8 tensor cores'
  // accumulation); later a value that lands on the other side of an E4M3/E5M2 rounding boundary moves by 2^-4..2^-3.
  for (const Case& k : {Case{"fp32", 1e-10, 1e-4}, Case{"fp16-amp", 1e-4, 0.02}, Case{"bf16-amp", 1e-2, 0.1},
                        Case{"fp16-pure", 1e-4, 0.05}, Case{"fp8", 1e-6, 0.05}}) {
    const sim::LaneConfig c = lane_config(k.recipe, sim::Accumulation::fp32);
    auto cpu = sim::make_lane(c, s.model, s.init);
    auto gpu = gpu_lane(c, s, gpu::GemmMode::fast);
    sim::Batcher batches(s.data, s.batch, s.seed);
    double worst = 0, first_nmse = 0;
    for (int step = 0; step < 100; ++step) {
      const sim::Batch b = batches.batch(step);
      const sim::StepResult want = cpu->step(b, c.optimizer.lr, false), got = gpu->step(b, c.optimizer.lr, false);
      if (step == 0) first_nmse = gputest::nmse(gpu->gradients(), cpu->gradients());
      worst = std::max(worst, std::fabs(got.loss - want.loss) / std::fabs(want.loss));
    }
    std::cout << k.recipe << " fast vs CPU: gradient NMSE after step 1 " << first_nmse
              << ", largest relative loss difference over 100 steps " << worst << "\n";
    EXPECT_LE(first_nmse, k.gradient_nmse) << k.recipe;
    EXPECT_LE(worst, k.loss_relative) << k.recipe;
  }
}

// A step's results do not depend on graphs, on recording, or on the run: cuBLASLt's algorithms are chosen once.
TEST(GpuFastLane, GraphsRecordingAndRepeatsGiveTheSameBits) {
  MPSCOPE_REQUIRE_GPU();
  const Problem s = spiral_problem({2, 64, 64, 3});
  for (const char* recipe : {"fp16-amp", "fp32"}) {
    const sim::LaneConfig c = lane_config(recipe, sim::Accumulation::fp32);
    auto recorded = gpu_lane(c, s, gpu::GemmMode::fast);
    auto plain = gpu_lane(c, s, gpu::GemmMode::fast);
    auto again = gpu_lane(c, s, gpu::GemmMode::fast);
    auto direct = gpu_lane(c, s, gpu::GemmMode::fast, /*graphs=*/false);
    sim::Batcher batches(s.data, s.batch, s.seed);
    for (int step = 0; step < 60; ++step) {
      const sim::Batch b = batches.batch(step);
      const double l1 = recorded->step(b, 0.1, step % 3 == 0).loss;
      const double l2 = plain->step(b, 0.1, false).loss;
      const double l3 = again->step(b, 0.1, false).loss;
      const double l4 = direct->step(b, 0.1, step % 2 == 0).loss;
      ASSERT_TRUE(same_bits(l1, l2) && same_bits(l2, l3) && same_bits(l3, l4)) << recipe << " step " << step;
    }
    EXPECT_EQ(first_difference(recorded->weights(), plain->weights()), "") << recipe;
    EXPECT_EQ(first_difference(again->weights(), plain->weights()), "") << recipe;
    EXPECT_EQ(first_difference(direct->weights(), plain->weights()), "") << recipe;
  }
}

// Fast-mode statistics: histograms cover every element; counted rounding points are ours.
TEST(GpuFastLane, RecordedStatisticsCoverTheTensors) {
  MPSCOPE_REQUIRE_GPU();
  const Problem s = spiral_problem({2, 64, 64, 3});
  const sim::LaneConfig c = lane_config("fp16-amp", sim::Accumulation::fp32);
  auto gpu = gpu_lane(c, s, gpu::GemmMode::fast);
  auto cpu = sim::make_lane(c, s.model, s.init);
  sim::Batcher batches(s.data, s.batch, s.seed);
  const sim::Batch b = batches.batch(0);
  const sim::StepResult got = gpu->step(b, 0.1, true), want = cpu->step(b, 0.1, true);
  ASSERT_EQ(got.tensors.size(), gpu->tensors().size());
  for (std::size_t t = 0; t < got.tensors.size(); ++t) {
    const sim::TensorInfo& info = gpu->tensors()[t];
    EXPECT_EQ(got.tensors[t].histogram.total(), info.elements) << info.name;
    ASSERT_TRUE(got.tensors[t].effects.has_value()) << info.name;
    // weights and the input are identical to the CPU's: the same histograms and counts
    if (info.kind == "input") {
      EXPECT_TRUE(got.tensors[t].histogram == want.tensors[t].histogram) << info.name;
    }
    if (info.kind == "input" || info.kind == "weight" || info.kind == "bias") {
      EXPECT_EQ(effects_text(got.tensors[t].effects), effects_text(want.tensors[t].effects)) << info.name;
    }
    if (info.kind == "weight_grad") {  // rounded by mpscope from cuBLAS's float32 result: every element counted
      EXPECT_EQ(got.tensors[t].effects->elements, info.elements) << info.name;
    }
  }
}

TEST(GpuLane, RefusesWhatItCannotRun) {
  MPSCOPE_REQUIRE_GPU();
  const Problem s = spiral_problem();
  const auto message = [&](sim::LaneConfig c, gpu::GemmMode mode) -> std::string {
    try {
      gpu_lane(c, s, mode);
    } catch (const gpu::GpuError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(lane_config("fp8", sim::Accumulation::h100), gpu::GemmMode::exact).find("fp8"), std::string::npos);
  EXPECT_NE(message(lane_config("fp64", sim::Accumulation::fp32), gpu::GemmMode::fast).find("fp64"), std::string::npos);
  EXPECT_NE(message(lane_config("exact", sim::Accumulation::fp32), gpu::GemmMode::exact).find("exact"), std::string::npos);
  EXPECT_NE(message(lane_config("fp32", sim::Accumulation::h100), gpu::GemmMode::fast).find("no tensor-core path"),
            std::string::npos);
  EXPECT_NE(message(lane_config("bf16-amp", sim::Accumulation::h100), gpu::GemmMode::exact).find("fast GPU lanes"),
            std::string::npos);
  sim::LaneConfig stochastic = lane_config("fp16-amp", sim::Accumulation::fp32);
  stochastic.recipe.gradients.rounding = sim::Rounding::stochastic;
  EXPECT_NE(message(stochastic, gpu::GemmMode::fast).find("nearest"), std::string::npos);
}

TEST(GpuLane, OutOfMemoryIsAClearError) {
  MPSCOPE_REQUIRE_GPU();
  Problem s = spiral_problem({2, 1 << 16, 3});
  const sim::LaneConfig c = lane_config("fp32", sim::Accumulation::fp32);
  auto gpu = gpu_lane(c, s, gpu::GemmMode::fast);
  sim::Batch huge;
  huge.rows.assign(std::size_t{1} << 20, 0);  // 2^20 rows x 2^16 wide in float32: 256 GiB per buffer
  try {
    gpu->step(huge, 0.1, false);
    FAIL() << "a 256 GiB batch did not fail";
  } catch (const gpu::GpuError& e) {
    EXPECT_NE(std::string(e.what()).find("out of GPU memory"), std::string::npos) << e.what();
  }
}

// CPU and GPU lanes in one run, through the trainer: the GPU exact lane ends at distance 0 from its CPU twin.
TEST(GpuTrainer, CpuAndGpuLanesInLockstep) {
  MPSCOPE_REQUIRE_GPU();
  sim::Experiment e = sim::load_experiment(gputest::samples_dir() / "torch_spiral.json");
  e.steps = 60;
  e.lanes.clear();
  sim::LaneSpec cpu;
  cpu.lane = lane_config("fp16-amp", sim::Accumulation::h100);
  cpu.lane.name = "cpu-h100";
  cpu.reference = true;
  sim::LaneSpec exact = cpu, fast = cpu;
  exact.lane.name = "gpu-exact";
  exact.backend = "gpu";
  exact.gemm = "exact";
  exact.reference = false;
  fast.lane.name = "gpu-fast";
  fast.lane.recipe.mma = sim::Accumulation::fp32;
  fast.backend = "gpu";
  fast.reference = false;
  e.lanes = {cpu, exact, fast};
  e.reference = 0;
  const sim::Prepared p = sim::prepare(e);
  sim::TrainOptions options;
  options.make_lane = lane_maker(p.data);
  const sim::TrainResult r = sim::train(e, p, nullptr, options);
  ASSERT_EQ(r.steps_done, 60);
  ASSERT_EQ(r.lanes.size(), 3u);
  ASSERT_TRUE(r.lanes[1].final_weight_distance.has_value());
  EXPECT_EQ(*r.lanes[1].final_weight_distance, 0.0);
  EXPECT_EQ(*r.lanes[1].max_loss_delta, 0.0);
  // The cuBLAS lane: close. (On an H200 it is even bit-identical here: cuBLAS's fp16 GEMMs of these shapes chain
  // 16-product blocks as the h100 model does, and its bias epilogue rounds once as the CPU lane now does.)
  ASSERT_TRUE(r.lanes[2].final_weight_distance.has_value());
  EXPECT_LT(*r.lanes[2].final_weight_distance, 0.05);
  EXPECT_EQ(r.lanes[2].verdict, "ok");
  std::cout << "gpu-fast vs CPU h100 after 60 steps: weight distance " << *r.lanes[2].final_weight_distance
            << ", max |dloss| " << *r.lanes[2].max_loss_delta << "\n";
}

}  // namespace
