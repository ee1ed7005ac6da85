// samples/torch_cnn.json (a Conv-ReLU-MaxPool x2, Flatten, Linear network on the 8x8 digits) against PyTorch 2.11 on
// an H200 (samples/torch_digits_cnn.npz): step 0 under autocast tensor by tensor (tests/data/autocast_cnn.npz, the
// contract of docs/recipes.md), and the 300-step trajectories: fp32 within 1e-3 at each of the first 100 steps
// (measured 6.8e-7) and 2% on the mean of the last 20, the AMP lanes within 3% for 50 steps (measured 3e-4) and
// over the first 20 steps at most 0.3x the recipe's own effect from PyTorch's run of their recipe.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "analysis/run_store.hpp"
#include "sim/npy.hpp"
#include "sim/trainer.hpp"
#include "pytorch_agreement.hpp"
#include "torch_trajectory.hpp"
#include "test_support.hpp"

using namespace mpscope;
namespace fs = std::filesystem;

namespace {

const fs::path samples = fs::path(MPSCOPE_SOURCE_DIR) / "samples";

struct Case {
  const char* recipe;
  const char* mode;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.recipe; }

class CnnStepZero : public ::testing::TestWithParam<Case> {};

// The oracle ran the first 16 images of the first batch.
TEST_P(CnnStepZero, EveryTensorAsPyTorchRoundsIt) {
  const Case c = GetParam();
  const sim::Experiment e = sim::load_experiment(samples / "torch_cnn.json");
  const sim::Prepared p = sim::prepare(e);
  const sim::LaneConfig config = test::step_zero_lane(c.recipe, sim::Accumulation::fp32, e.optimizer);
  auto lane = sim::make_lane(config, e.model, p.init);
  sim::Batcher batches(p.data, e.batch_size, e.seed);
  sim::Batch batch = batches.batch(0);
  batch.x.rows = 16;
  batch.x.data.resize(16 * 64);
  batch.labels.resize(16);

  const sim::NpzFile torch(test::data_dir() / "autocast_cnn.npz");
  const std::string key = std::string("cnn.") + c.mode + ".";
  const auto want = [&](const std::string& name) { return test::torch_values(torch, key + name); };
  const auto x = want("0.in");
  ASSERT_EQ(x.size(), batch.x.data.size());
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], batch.x.data[i]) << "input " << i;

  const sim::StepResult r = lane->step(batch, 0.0, false);
  const double torch_loss = torch.read(key + "loss").values<double>()[0];
  EXPECT_LE(std::fabs(r.loss - torch_loss), sim::ulp(torch_loss, sim::fp32()))
      << std::setprecision(17) << "loss " << r.loss << " vs PyTorch " << torch_loss;
  std::cout << c.recipe << ": loss " << std::setprecision(17) << r.loss << ", PyTorch " << torch_loss << "\n";

  const sim::Format f = config.recipe.activations.format;
  const auto values = [&](const std::string& name) { return test::lane_tensor(*lane, name); };
  // Forward: each group's output (conv + bias + ReLU + max pool; the logits). Backward: the gradient at each
  // layer's output (through cross-entropy, the Linear's input gradient, max pool's and ReLU's backward).
  const bool bf16 = std::string(c.mode) == "amp_bf16";
  const struct {
    const char* ours;
    const char* theirs;
    bool after_linear_dgrad;  // downstream of the Linear's input gradient
  } pairs[] = {{"0.activation", "2.out", false},      {"3.activation", "5.out", false},
               {"7.activation", "7.out", false},      {"7.activation_grad", "7.gout", false},
               {"3.activation_grad", "3.gout", true}, {"0.activation_grad", "0.gout", true}};
  for (const auto& pair : pairs) {
    if (bf16 && pair.after_linear_dgrad) {
      // Known gap (docs/recipes.md): for this bf16 GEMM (K = 10) cuBLAS splits the sum after 8 terms and rounds
      // both parts to bf16 (PyTorch allows bf16 reduced-precision reductions), which the lane's single rounding
      // does not model. Measured: 68% of the Linear's input gradient identical, 94% and 91% of the gradients it
      // feeds (values of a few ulps where they differ).
      const test::Agreement a = test::compare_with_torch(values(pair.ours), want(pair.theirs), f, 64.0);
      std::cout << "  " << pair.ours << " (bf16 split-K gap): " << a.identical << "/" << a.values << " identical\n";
      EXPECT_GE(static_cast<double>(a.identical), 0.9 * static_cast<double>(a.values)) << pair.ours;
      continue;
    }
    test::expect_torch_agreement(pair.ours, values(pair.ours), want(pair.theirs), f);
  }
  const sim::LayerValues grads = lane->gradients();
  ASSERT_EQ(grads.size(), 3u);
  const char* modules[] = {"0", "3", "7"};
  for (std::size_t k = 0; k < 3; ++k) {
    if (bf16 && k < 2) continue;  // fed by the split-K gap above
    test::expect_torch_agreement(std::string("grad.") + modules[k] + ".{weight,bias}", grads[k],
                                 test::torch_linear_grads(torch, key, modules[k]), f);
  }
}

INSTANTIATE_TEST_SUITE_P(Cnn, CnnStepZero,
                         ::testing::Values(Case{"fp16-amp", "amp_fp16"}, Case{"bf16-amp", "amp_bf16"}),
                         [](const auto& info) { return std::string(info.param.mode); });

TEST(TorchCnn, Trajectories) {
  const sim::Experiment e = sim::load_experiment(samples / "torch_cnn.json");
  const fs::path file = test::train_to_run_file(e, "torch_cnn");
  const analysis::RunReader run(file);
  const sim::NpzFile torch(samples / "torch_digits_cnn.npz");
  const struct {
    const char* lane;
    const char* mode;
    std::size_t steps;
    double tolerance;
  } cases[] = {{"fp32", "fp32", 100, 1e-3}, {"fp16-amp", "amp_fp16", 50, 0.03}, {"bf16-amp", "amp_bf16", 50, 0.03}};
  for (const auto& c : cases) {
    const test::TrajectoryAgreement a = test::compare_trajectory(run, torch, c.lane, c.mode, 300, c.steps, c.tolerance);
    if (a.steps.size() < 300) continue;
    const auto& steps = a.steps;
    const auto& loss = a.torch;
    const double worst = a.worst, near = a.near, effect = a.effect;
    double ours = 0, theirs = 0;
    for (std::size_t i = 280; i < 300; ++i) {
      ours += steps[i].loss / 20;
      theirs += loss[i] / 20;
    }
    std::cout << c.lane << ": largest relative loss difference over " << c.steps << " steps " << worst
              << "; mean loss of the last 20 steps " << ours << " vs PyTorch " << theirs;
    if (std::string(c.mode) != "fp32") std::cout << "; first 20 steps: |lane - PyTorch| / |PyTorch recipe - fp32| " << near / effect;
    std::cout << "\n";
    if (std::string(c.mode) == "fp32") {
      EXPECT_LE(std::fabs(ours - theirs), 0.02 * theirs) << "mean of the last 20 steps";
    } else {
      // The AMP lanes round where PyTorch's autocast rounds: far closer to its run of their recipe than the
      // recipe's own effect (measured: fp16-amp 0.15x, bf16-amp 0: its first 20 losses are PyTorch's).
      EXPECT_LE(near, 0.3 * effect) << c.lane;
    }
  }
  fs::remove(file);
}

}  // namespace
