// A lane's losses in a run file against a PyTorch trajectory file's (tests/test_torch_*.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <unistd.h>

#include <filesystem>

#include "analysis/run_store.hpp"
#include "pytorch_agreement.hpp"
#include "sim/trainer.hpp"

namespace mpscope::test {

// Trains experiment `e` into a fresh temporary run file (named after `tag` and the process) and returns its path;
// a run that stops early is a test failure.
inline std::filesystem::path train_to_run_file(const sim::Experiment& e, const std::string& tag) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("mpscope_" + tag + "_" + std::to_string(::getpid()) + ".mpscope");
  std::filesystem::remove(file);
  analysis::RunWriter w(file, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
  EXPECT_EQ(sim::train(e, sim::prepare(e), &w, {}).steps_done, e.steps) << tag;
  return file;
}

struct TrajectoryAgreement {
  std::vector<analysis::StepRow> steps;  // the lane's
  std::vector<double> torch;             // PyTorch's losses of the same recipe
  double worst = 0;                      // the largest relative loss difference over the compared steps
  double near = 0, effect = 0;           // over the first 20 steps: mean |lane − PyTorch|, mean |PyTorch − PyTorch fp32|
};

// Lane `lane` against PyTorch's run `mode` ("fp32", "amp_fp16", ...): every one of the first `compared` steps within
// `tolerance` (relative; a failure names the step), the run `total` steps long.
inline TrajectoryAgreement compare_trajectory(const analysis::RunReader& run, const sim::NpzFile& torch, const std::string& lane,
                                              const std::string& mode, std::size_t total, std::size_t compared, double tolerance) {
  TrajectoryAgreement a;
  const auto lanes = run.lanes();
  const auto it = std::find_if(lanes.begin(), lanes.end(), [&](const auto& l) { return l.name == lane; });
  if (it == lanes.end()) {
    ADD_FAILURE() << "no lane " << lane;
    return a;
  }
  a.steps = run.steps(it->id);
  a.torch = torch_losses(torch, mode);
  const std::vector<double> fp32 = torch_losses(torch, "fp32");
  EXPECT_EQ(a.steps.size(), total) << lane;
  if (a.steps.size() < compared || a.torch.size() < compared) {
    ADD_FAILURE() << lane << ": fewer than " << compared << " steps";
    return a;
  }
  for (std::size_t i = 0; i < compared; ++i) {
    const double rel = std::fabs(a.steps[i].loss - a.torch[i]) / std::fabs(a.torch[i]);
    a.worst = std::max(a.worst, rel);
    if (rel > tolerance) {
      ADD_FAILURE() << lane << " step " << i << ": " << a.steps[i].loss << " vs PyTorch " << a.torch[i] << " (relative "
                    << rel << " > " << tolerance << ")";
      return a;
    }
    if (i < 20) {
      a.near += std::fabs(a.steps[i].loss - a.torch[i]) / 20;
      a.effect += std::fabs(a.torch[i] - fp32[i]) / 20;
    }
  }
  return a;
}

}  // namespace mpscope::test
