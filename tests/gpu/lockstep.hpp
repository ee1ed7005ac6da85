// Shared by the GPU lane tests: a training problem, lane configurations, and the lockstep comparison of a GPU exact
// lane with the CPU lane of the same recipe (every step's results, recorded statistics, final weights, gradients
// and evaluation bit for bit).
#pragma once

#include <iostream>
#include <optional>

#include "gpu_support.hpp"
#include "sim/dataset.hpp"
#include "sim/experiment.hpp"
#include "sim/lane.hpp"
#include "sim/model.hpp"
#include "sim/recipe.hpp"

namespace mpscope::gputest {

struct Problem {
  sim::ModelConfig model;
  sim::Dataset data;
  sim::InitialWeights init;
  std::int64_t batch = 32;
  std::uint64_t seed = 3;
};

inline Problem spiral_problem(std::vector<std::int64_t> widths = {2, 32, 32, 3}) {
  Problem s;
  s.model.widths = std::move(widths);
  s.data = sim::make_spiral(3, 100, 0.2, 11);
  s.init = sim::default_initial_weights(s.model, 7);
  return s;
}

inline sim::LaneConfig lane_config(const std::string& recipe, sim::Accumulation mma, double lr = 0.1) {
  sim::LaneConfig c;
  c.name = recipe;
  c.recipe = sim::recipe_preset(recipe);
  c.recipe.mma = mma;
  c.optimizer.lr = lr;
  if (recipe == "fp16-amp" || recipe == "fp16-pure") c.loss_scale.type = sim::LossScaleConfig::Type::dynamic;
  return c;
}

inline std::unique_ptr<sim::Lane> gpu_lane(const sim::LaneConfig& c, const Problem& s, gpu::GemmMode mode, bool graphs = true) {
  gpu::GpuLaneOptions o;
  o.mode = mode;
  o.data = &s.data;
  o.graphs = graphs;
  return gpu::make_gpu_lane(c, s.model, s.init, o);
}

inline std::string effects_text(const std::optional<sim::RoundingEffects>& e) {
  if (!e) return "none";
  return "elements " + std::to_string(e->elements) + " underflow " + std::to_string(e->underflow) + " subnormal " +
         std::to_string(e->subnormal) + " overflow " + std::to_string(e->overflow) + " saturated " +
         std::to_string(e->saturated);
}

// Steps a CPU lane and a GPU exact lane of the same recipe side by side and expects identical results at every
// step, statistics on every `record_every`-th step, and identical weights, gradients and evaluation at the end.
inline void expect_lockstep_identical(const Problem& s, const sim::LaneConfig& c, int steps, int record_every,
                               bool weights_every_step = false) {
  auto cpu = sim::make_lane(c, s.model, s.init);
  auto gpu = gpu_lane(c, s, gpu::GemmMode::exact);
  sim::Batcher batches(s.data, s.batch, s.seed);
  ASSERT_EQ(cpu->tensors().size(), gpu->tensors().size());
  for (int step = 0; step < steps; ++step) {
    const sim::Batch b = batches.batch(step);
    const bool record = step % record_every == 0 || step + 1 == steps;
    const sim::StepResult want = cpu->step(b, c.optimizer.lr, record);
    const sim::StepResult got = gpu->step(b, c.optimizer.lr, record);
    const std::string at = c.name + " step " + std::to_string(step);
    if (weights_every_step) {  // where a difference starts, with what the step did
      const std::string w = first_difference(gpu->weights(), cpu->weights());
      const std::string g = first_difference(gpu->gradients(), cpu->gradients());
      ASSERT_TRUE(w.empty() && g.empty()) << at << ": weights " << w << "; gradients " << g << "; loss " << want.loss
                                          << " scale " << want.loss_scale << " skipped " << want.skipped << " (GPU "
                                          << got.skipped << ") found_inf " << want.found_inf << " first inf/NaN '"
                                          << want.first_nonfinite << "'";
    }
    ASSERT_TRUE(same_bits(got.loss, want.loss)) << at << ": loss " << got.loss << " vs CPU " << want.loss;
    ASSERT_EQ(got.loss_scale, want.loss_scale) << at;
    ASSERT_EQ(got.scale_after, want.scale_after) << at;
    ASSERT_EQ(got.found_inf, want.found_inf) << at;
    ASSERT_EQ(got.skipped, want.skipped) << at;
    ASSERT_EQ(got.scale_backed_off, want.scale_backed_off) << at;
    ASSERT_EQ(got.scale_grew, want.scale_grew) << at;
    ASSERT_EQ(got.weights_nonfinite, want.weights_nonfinite) << at;
    ASSERT_EQ(got.first_nonfinite, want.first_nonfinite) << at;
    ASSERT_EQ(got.lost_updates, want.lost_updates) << at;
    // the norm adds the same squares in another order (blocks of the GPU): 1e-12 relative
    if (std::isfinite(want.grad_norm))
      ASSERT_NEAR(got.grad_norm, want.grad_norm, 1e-12 * want.grad_norm + 1e-300) << at;
    else
      ASSERT_EQ(std::isnan(got.grad_norm), std::isnan(want.grad_norm)) << at << ": " << got.grad_norm << " vs " << want.grad_norm;
    if (!record) continue;
    ASSERT_EQ(got.tensors.size(), want.tensors.size()) << at;
    for (std::size_t t = 0; t < want.tensors.size(); ++t) {
      const sim::TensorInfo& info = cpu->tensors()[want.tensors[t].index];
      ASSERT_EQ(got.tensors[t].index, want.tensors[t].index) << at;
      EXPECT_EQ(gpu->tensors()[t].name, info.name);
      EXPECT_EQ(gpu->tensors()[t].format, info.format) << info.name;
      EXPECT_EQ(gpu->tensors()[t].elements, info.elements) << info.name;
      ASSERT_TRUE(got.tensors[t].histogram == want.tensors[t].histogram) << at << ": histogram of " << info.name;
      ASSERT_EQ(effects_text(got.tensors[t].effects), effects_text(want.tensors[t].effects)) << at << ": " << info.name;
    }
  }
  EXPECT_EQ(first_difference(gpu->weights(), cpu->weights()), "") << c.name << ": weights";
  EXPECT_EQ(first_difference(gpu->gradients(), cpu->gradients()), "") << c.name << ": gradients";
  const sim::Batch all = s.data.all();
  const sim::Evaluation eg = gpu->evaluate(all), ec = cpu->evaluate(all);
  EXPECT_TRUE(same_bits(eg.loss, ec.loss)) << eg.loss << " vs " << ec.loss;
  EXPECT_EQ(eg.accuracy, ec.accuracy);
}

// The trainer's lane maker for experiments with CPU and GPU lanes (the app's, app/common/backends.cpp, in short).
inline auto lane_maker(const sim::Dataset& data) {
  return [&data](const sim::LaneSpec& spec, const sim::ModelConfig& m, const sim::InitialWeights& w) {
    if (spec.backend == "cpu") return sim::make_lane(spec.lane, m, w);
    gpu::GpuLaneOptions o;
    o.mode = spec.gemm == "exact" ? gpu::GemmMode::exact : gpu::GemmMode::fast;
    o.data = &data;
    return gpu::make_gpu_lane(spec.lane, m, w, o);
  };
}

}  // namespace mpscope::gputest
