// Comparing a lane's tensor with PyTorch's, as docs/recipes.md states the contract: at least 99.9% of the values
// bit-identical (a zero's sign included) and every other value within 1 ulp of the tensor's format (cuBLAS
// accumulates in another order than a lane may); and the step-0 oracle's lane set-up and arrays. Shared by the CPU
// and GPU suites.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "sim/format.hpp"
#include "sim/lane.hpp"
#include "sim/npy.hpp"
#include "sim/rounding.hpp"

namespace mpscope::test {

struct Agreement {
  std::size_t values = 0, identical = 0, within_one_ulp = 0;
  double worst_ulps = 0;
};

inline Agreement compare_with_torch(const std::vector<double>& got, std::span<const float> want, const sim::Format& f,
                                    double max_ulps = 1.0) {
  Agreement a;
  a.values = want.size();
  // (within_one_ulp: the values that differ by at most max_ulps, 1 unless a caller states a known gap)
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
    const double w = want[i];
    if (got[i] == w && std::signbit(got[i]) == std::signbit(w)) {
      ++a.identical;
      continue;
    }
    const double ulps = std::fabs(got[i] - w) / sim::ulp(std::max(std::fabs(got[i]), std::fabs(w)), f);
    a.worst_ulps = std::max(a.worst_ulps, ulps);
    if (ulps <= max_ulps) ++a.within_one_ulp;
  }
  return a;
}

inline void expect_torch_agreement(const std::string& what, const std::vector<double>& got, std::span<const float> want,
                                   const sim::Format& f, double identical_share = 0.999, double max_ulps = 1.0) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Agreement a = compare_with_torch(got, want, f, max_ulps);
  EXPECT_GE(static_cast<double>(a.identical), identical_share * static_cast<double>(a.values))
      << what << ": " << a.identical << " of " << a.values << " values bit-identical to PyTorch's";
  EXPECT_EQ(a.identical + a.within_one_ulp, a.values)
      << what << ": a value " << a.worst_ulps << " ulps (" << f.name << ") from PyTorch's";
  std::cout << "  " << what << ": " << a.identical << "/" << a.values << " identical";
  if (a.identical < a.values) std::cout << ", the others at most " << a.worst_ulps << " ulps off";
  std::cout << "\n";
}

// A lane of `recipe` as the step-0 oracle (tests/data/autocast_mlp.npz) ran it: no loss scaling (a plain
// loss.backward()), the experiment's optimizer.
inline sim::LaneConfig step_zero_lane(const std::string& recipe, sim::Accumulation mma, const sim::OptimizerConfig& o) {
  sim::LaneConfig config;
  config.name = recipe;
  config.recipe = sim::recipe_preset(recipe);
  config.recipe.mma = mma;
  config.optimizer = o;
  return config;
}

// One array of an oracle file, as float32 values.
inline std::vector<float> torch_values(const sim::NpzFile& torch, const std::string& key) {
  const sim::NpyArray a = torch.read(key);
  return std::vector<float>(a.values<float>().begin(), a.values<float>().end());
}

// PyTorch's .grad of Linear module `module` ("0", "2", ...) in the layout of Lane::gradients(): weight, then bias.
inline std::vector<float> torch_linear_grads(const sim::NpzFile& torch, const std::string& prefix, const std::string& module) {
  std::vector<float> both = torch_values(torch, prefix + "grad." + module + ".weight");
  const std::vector<float> bias = torch_values(torch, prefix + "grad." + module + ".bias");
  both.insert(both.end(), bias.begin(), bias.end());
  return both;
}

// PyTorch's per-step losses of run `mode` ("fp32", "amp_fp16", ...) in a trajectory file.
inline std::vector<double> torch_losses(const sim::NpzFile& torch, const std::string& mode) {
  const sim::NpyArray a = torch.read(mode + ".loss");
  return std::vector<double>(a.values<double>().begin(), a.values<double>().end());
}

// The last step's values of the lane's catalogue tensor `name` (e.g. "layer1.activation", "0.activation_grad").
inline std::vector<double> lane_tensor(const sim::Lane& lane, const std::string& name) {
  const auto& t = lane.tensors();
  const auto it = std::find_if(t.begin(), t.end(), [&](const sim::TensorInfo& i) { return i.name == name; });
  std::vector<double> v;
  EXPECT_NE(it, t.end()) << name;
  if (it != t.end()) {
    EXPECT_TRUE(lane.read_tensor(static_cast<std::size_t>(it - t.begin()), v)) << name;
  }
  return v;
}

}  // namespace mpscope::test
