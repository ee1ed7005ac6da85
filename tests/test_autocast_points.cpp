// Step 0 of samples/torch_spiral.json's MLP under autocast, tensor by tensor, against PyTorch 2.11 on an H200
// (tests/data/autocast_mlp.npz: every leaf module's forward output and backward gradients, the loss and every
// parameter's .grad, from the init weights on the first batch, loss.backward() without GradScaler). The contract
// (docs/recipes.md): per tensor at least 99.9% of the values bit-identical to PyTorch's and every other value
// within 1 ulp of the tensor's format (cuBLAS accumulates in another order than a lane may); the loss (float32)
// within 1 ulp. The tensors checked cover every rounding point of the recipe: the Linear outputs with their
// bias epilogue (through the ReLU outputs and the logits), the log-probabilities (the loss), the logits' gradient,
// the hidden layers' gradients, and the weight and bias gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "sim/npy.hpp"
#include "sim/rounding.hpp"
#include "sim/trainer.hpp"
#include "pytorch_agreement.hpp"
#include "test_support.hpp"

using namespace mpscope;
namespace fs = std::filesystem;

namespace {

struct Case {
  const char* recipe;
  const char* mode;
  sim::Accumulation mma;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.recipe << " (" << sim::to_string(c.mma) << ")"; }

class AutocastStepZero : public ::testing::TestWithParam<Case> {};

TEST_P(AutocastStepZero, EveryTensorAsPyTorchRoundsIt) {
  const Case c = GetParam();
  const fs::path samples = fs::path(MPSCOPE_SOURCE_DIR) / "samples";
  sim::Experiment e = sim::load_experiment(samples / "torch_spiral.json");
  ASSERT_EQ(e.model.loss_logits, sim::LossLogits::autocast);  // the default: F.cross_entropy on the logits
  const sim::Prepared p = sim::prepare(e);
  const sim::LaneConfig config = test::step_zero_lane(c.recipe, c.mma, e.optimizer);
  auto lane = sim::make_lane(config, e.model, p.init);
  sim::Batcher batches(p.data, e.batch_size, e.seed);
  const sim::Batch batch = batches.batch(0);

  const sim::NpzFile torch(mpscope::test::data_dir() / "autocast_mlp.npz");
  const std::string key = std::string("mlp.") + c.mode + ".";
  const auto want = [&](const std::string& name) { return test::torch_values(torch, key + name); };
  // The batch is PyTorch's first one (its input before autocast's cast).
  const auto x = want("0.in");
  ASSERT_EQ(x.size(), batch.x.data.size());
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], batch.x.data[i]) << "input " << i;

  const sim::StepResult r = lane->step(batch, 0.0, false);
  const double torch_loss = torch.read(key + "loss").values<double>()[0];
  EXPECT_LE(std::fabs(r.loss - torch_loss), sim::ulp(torch_loss, sim::fp32()))
      << std::setprecision(17) << "loss " << r.loss << " vs PyTorch " << torch_loss;
  std::cout << c.recipe << " (" << sim::to_string(c.mma) << "): loss " << std::setprecision(17) << r.loss
            << ", PyTorch " << torch_loss << "\n";

  const sim::Format f = config.recipe.activations.format;  // fp16 or bf16: activations and gradients alike
  const auto values = [&](const std::string& name) { return test::lane_tensor(*lane, name); };
  // Forward: ReLU(Linear) outputs of the hidden layers, the logits. Backward: d loss / d z of every layer.
  const struct {
    const char* ours;
    const char* theirs;
  } pairs[] = {{"layer1.activation", "1.out"},       {"layer2.activation", "3.out"},
               {"layer3.activation", "4.out"},       {"layer3.activation_grad", "4.gout"},
               {"layer2.activation_grad", "2.gout"}, {"layer1.activation_grad", "0.gout"}};
  for (const auto& pair : pairs) test::expect_torch_agreement(pair.ours, values(pair.ours), want(pair.theirs), f);
  // Parameter gradients: the fp32 .grad (the fp16/bf16 GEMM or reduction output, converted).
  const sim::LayerValues grads = lane->gradients();
  for (int k = 0; k < 3; ++k) {
    const std::string module = std::to_string(2 * k);
    test::expect_torch_agreement("grad." + module + ".{weight,bias}", grads[static_cast<std::size_t>(k)],
                                 test::torch_linear_grads(torch, key, module), f);
  }
}

INSTANTIATE_TEST_SUITE_P(Mlp, AutocastStepZero,
                         ::testing::Values(Case{"fp16-amp", "amp_fp16", sim::Accumulation::h100},
                                           Case{"fp16-amp", "amp_fp16", sim::Accumulation::fp32},
                                           Case{"bf16-amp", "amp_bf16", sim::Accumulation::fp32}),
                         [](const auto& info) {
                           return std::string(info.param.mode) + "_" + std::string(sim::to_string(info.param.mma));
                         });

// Both loss options, on the same logits: F.cross_entropy(logits) under autocast rounds the log-probabilities to
// fp16, F.cross_entropy(logits.float()) does not; PyTorch's step-0 loss is the first, and the second differs.
TEST(AutocastLoss, Fp32LogitsOptionIsTheCastFirstLoss) {
  const fs::path samples = fs::path(MPSCOPE_SOURCE_DIR) / "samples";
  sim::Experiment e = sim::load_experiment(samples / "torch_spiral.json");
  const sim::Prepared p = sim::prepare(e);
  const sim::LaneConfig config = test::step_zero_lane("fp16-amp", sim::Accumulation::h100, e.optimizer);
  sim::Batcher batches(p.data, e.batch_size, e.seed);
  const sim::Batch batch = batches.batch(0);
  const double autocast = sim::make_lane(config, e.model, p.init)->step(batch, 0.0, false).loss;
  e.model.loss_logits = sim::LossLogits::fp32;
  const double fp32 = sim::make_lane(config, e.model, p.init)->step(batch, 0.0, false).loss;
  EXPECT_EQ(autocast, 1.1116180419921875);  // PyTorch's, bit for bit
  EXPECT_NE(fp32, autocast);
  EXPECT_NEAR(fp32, 1.1116011, 2e-7);  // the fp32 log-probabilities of the same logits (measured in PyTorch)
}

}  // namespace
