// samples/torch_gpt.json (nanoGPT: V 16, T 32, D 64, 4 heads, 2 layers) against PyTorch 2.11 on an H200.
// GptStepZero: step 0 of the first 4 sequences under autocast (tests/data/autocast_gpt.npz, made by
// scripts/make-test-data): every module's output and output gradient and every parameter's .grad, which covers
// each rounding point of the transformer ops (docs/recipes.md "Transformer ops"): each op alone on PyTorch's inputs
// (the contract is stated at EveryOpAloneAsPyTorchRoundsIt), and the whole step normwise.
// TorchGpt.Trajectories: 200 steps of the three recipes against PyTorch's losses (issue 16: fp32 within 1e-3
// relative at every step, AMP within 1%).
#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <iostream>

#include "analysis/run_store.hpp"
#include "sim/npy.hpp"
#include "sim/ops/graph.hpp"
#include "sim/ops/op.hpp"
#include "sim/rounding.hpp"
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
  sim::Accumulation mma = sim::Accumulation::fp32;
};

// One op of the GPT run alone on PyTorch's own input (and output gradient), as the lane runs it: RoundedOps of
// the recipe, the node's roles (promoted output, folded casts).
struct IsolatedOp {
  IsolatedOp(const sim::Graph& g, const std::string& module, const sim::LaneConfig& config, const sim::InitialWeights& init)
      : ops(config, g.gemms) {
    const auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const sim::Node& n) { return n.module == module; });
    EXPECT_NE(it, g.nodes.end()) << module;
    node = &*it;
    op = sim::make_op<sim::RoundedOps>(*node, config.optimizer);
    for (auto& p : op->params()) {
      const auto& v = init.at(p.info->name).values;
      p.master.assign(v.begin(), v.end());
      p.tensor = p.grad_tensor = 0;
    }
    log.reset(g.tensors.size(), true);
    log.catalogue = &g.tensors;
  }
  sim::OpContext<sim::RoundedOps> context() {
    return {ops, log, 0, 0, 0, 0, nullptr, node->promoted ? sim::Role::promoted : sim::Role::activations, node->promoted_input};
  }
  sim::Matrix<float> forward(const std::vector<float>& x, std::int64_t batch) {
    input = sim::Matrix<float>(batch, static_cast<std::int64_t>(x.size()) / batch);
    input.data = x;
    auto cx = context();
    op->forward(cx, input, output, true);
    return output;
  }
  sim::Matrix<float> backward(const std::vector<float>& dy) {
    sim::Matrix<float> d(output.rows, output.cols), dx;
    d.data = dy;
    auto cx = context();
    op->backward(cx, input, output, d, &dx);
    return dx;
  }
  std::vector<double> param_grads() const {
    std::vector<double> v;
    for (const auto& p : op->params()) v.insert(v.end(), p.grad.begin(), p.grad.end());
    return v;
  }

  sim::RoundedOps ops;
  sim::StepLog log;
  const sim::Node* node = nullptr;
  std::unique_ptr<sim::Op<sim::RoundedOps>> op;
  sim::Matrix<float> input, output;
};

std::vector<double> wide(const sim::Matrix<float>& m) { return {m.data.begin(), m.data.end()}; }

class GptStepZero : public ::testing::TestWithParam<Case> {};

// Every op alone: PyTorch's input in, the lane's rounding points, PyTorch's output out (the contract below).
TEST_P(GptStepZero, EveryOpAloneAsPyTorchRoundsIt) {
  const Case c = GetParam();
  const sim::Experiment e = sim::load_experiment(samples / "torch_gpt.json");
  const sim::Prepared p = sim::prepare(e);
  const sim::LaneConfig config = test::step_zero_lane(c.recipe, c.mma, e.optimizer);
  const sim::Graph g = sim::build_graph(e.model);
  const sim::NpzFile torch(test::data_dir() / "autocast_gpt.npz");
  const std::string key = std::string("gpt.") + c.mode + ".";
  const auto want = [&](const std::string& name) { return test::torch_values(torch, key + name); };
  const sim::Format narrow = config.recipe.activations.format;
  // Narrow tensors: at least 99.8% bit-identical and the rest within 4 ulps. Measured: with the h100 accumulation
  // model every Linear is 100% identical; the fp32 model is not cuBLAS's accumulation, so a GEMM result at an fp16
  // or bf16 rounding boundary may fall on the other side (up to 0.2% of values, 1 ulp; 4 ulps in 4 of 24,576 bf16
  // values where the output is small next to its terms). The attention's output moves by several ulps where one
  // probability lands 1 ulp from PyTorch's (its float32 softmax's expf; p ≈ 0.5 times v ≈ 1 against an output
  // near 0.03): 4-5 of 8192 values, up to 3 ulps (fp16) and 16 ulps (bf16): at least 99.9% identical, 16 ulps.
  const auto close = [&](const std::string& what, const std::vector<double>& ours, const std::vector<float>& theirs) {
    const bool attention = what.find("attn forward") != std::string::npos;
    test::expect_torch_agreement(what, ours, theirs, narrow, attention ? 0.999 : 0.998, attention ? 16.0 : 4.0);
  };
  const auto rounded = [&](std::vector<float> v) {  // an fp32 output as the next Linear's cast takes it
    for (float& x : v) x = static_cast<float>(sim::round(x, narrow));
    return v;
  };
  // float32 results (LayerNorm's backward, the norms' and embeddings' gradients): PyTorch forms these sums in
  // float32 in its kernels' order, the lane in double and rounds once; both are float32 rounding away from the exact
  // value, and LayerNorm's input gradient cancels (D·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂)): compared normwise.
  const auto fp32_close = [&](const std::string& what, const std::vector<double>& ours, const std::vector<float>& theirs) {
    ASSERT_EQ(ours.size(), theirs.size()) << what;
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
      diff += (ours[i] - theirs[i]) * (ours[i] - theirs[i]);
      norm += static_cast<double>(theirs[i]) * theirs[i];
    }
    const double relative = std::sqrt(diff / norm);
    EXPECT_LE(relative, 1e-6) << what;
    std::cout << "  " << what << ": normwise relative difference " << relative << "\n";
  };
  const auto grads = [&](const IsolatedOp& op) {
    std::vector<float> v;
    for (const auto& param : op.node->params) {
      const auto t = want("grad." + param.name);
      v.insert(v.end(), t.begin(), t.end());
    }
    return v;
  };
  const std::int64_t batch = 4;
  std::vector<std::string> linears{"lm_head"}, norms{"transformer.ln_f"};
  for (int b = 0; b < 2; ++b) {
    const std::string h = "transformer.h." + std::to_string(b) + ".";
    for (const char* l : {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}) linears.push_back(h + l);
    for (const char* l : {"ln_1", "ln_2"}) norms.push_back(h + l);
    // attention: c_attn's output in, c_proj's input out; backward from c_proj's input gradient
    IsolatedOp attn(g, h + "attn", config, p.init);
    close(h + "attn forward", wide(attn.forward(want(h + "attn.c_attn.out"), batch)),
                                 want(h + "attn.c_proj.in"));
    close(h + "attn backward", wide(attn.backward(want(h + "attn.c_proj.gin"))),
                                 want(h + "attn.c_attn.gout"));
    IsolatedOp gelu(g, h + "mlp.gelu", config, p.init);
    close(h + "mlp.gelu forward", wide(gelu.forward(want(h + "mlp.c_fc.out"), batch)),
                                 want(h + "mlp.c_proj.in"));
    close(h + "mlp.gelu backward", wide(gelu.backward(want(h + "mlp.c_proj.gin"))),
                                 want(h + "mlp.c_fc.gout"));
  }
  for (const std::string& m : linears) {
    IsolatedOp op(g, m, config, p.init);
    close(m + " forward", wide(op.forward(rounded(want(m + ".in")), batch)), want(m + ".out"));
    close(m + " backward", wide(op.backward(want(m + ".gout"))), rounded(want(m + ".gin")));
    close(m + " .grad", op.param_grads(), grads(op));
  }
  for (const std::string& m : norms) {
    IsolatedOp op(g, m, config, p.init);
    ASSERT_FALSE(op.node->promoted) << m << ": a Linear reads it";
    close(m + " forward", wide(op.forward(want(m + ".in"), batch)), rounded(want(m + ".out")));
    fp32_close(m + " backward", wide(op.backward(want(m + ".gout"))), want(m + ".gin"));
    fp32_close(m + " .grad", op.param_grads(), grads(op));
  }
  // the embeddings' gradients (fp32 sums of the residual stream's gradient)
  IsolatedOp wte(g, "transformer.wte", config, p.init);
  sim::Batcher batches(p.data, e.batch_size, e.seed);
  const sim::Batch batch0 = sim::slice(batches.batch(0), 0, batch);
  wte.forward(batch0.x.data, batch);
  wte.backward(want("transformer.wte.gout"));
  fp32_close("transformer.wte .grad", wte.param_grads(), want("grad.transformer.wte.weight"));
}

// The whole step: the lane's own forward and backward, so each op's input carries the rounding differences of the
// ops before it (a 1-ulp difference early moves later values by more than an ulp): compared normwise, the loss
// within 1e-5 relative.
TEST_P(GptStepZero, WholeStepCloseToPyTorch) {
  const Case c = GetParam();
  const sim::Experiment e = sim::load_experiment(samples / "torch_gpt.json");
  ASSERT_EQ(e.model.loss_logits, sim::LossLogits::fp32);  // the oracle's F.cross_entropy(logits.float(), y)
  const sim::Prepared p = sim::prepare(e);
  auto lane = sim::make_lane(test::step_zero_lane(c.recipe, c.mma, e.optimizer), e.model, p.init);
  sim::Batcher batches(p.data, e.batch_size, e.seed);
  const sim::Batch batch = sim::slice(batches.batch(0), 0, 4);  // the oracle's first 4 sequences
  const sim::NpzFile torch(test::data_dir() / "autocast_gpt.npz");
  const std::string key = std::string("gpt.") + c.mode + ".";
  const auto ids = test::torch_values(torch, key + "transformer.wte.in");
  ASSERT_EQ(ids.size(), batch.x.data.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(ids[i], batch.x.data[i]) << "token " << i;
  const sim::StepResult r = lane->step(batch, 0.0, false);
  const double torch_loss = torch.read(key + "loss").values<double>()[0];
  EXPECT_NEAR(r.loss, torch_loss, 1e-5 * torch_loss);
  std::cout << c.recipe << ": loss " << std::setprecision(17) << r.loss << ", PyTorch " << torch_loss << "\n";
  const sim::Graph g = sim::build_graph(e.model);
  const sim::LayerValues grads = lane->gradients();
  for (std::size_t k = 1; k < g.groups.size(); ++k) {
    double diff = 0, norm = 0;
    std::size_t i = 0;
    for (const sim::ParamInfo& param : g.nodes[static_cast<std::size_t>(g.groups[k].first_node)].params)
      for (const float t : test::torch_values(torch, key + "grad." + param.name)) {
        diff += (grads[k - 1][i] - t) * (grads[k - 1][i] - t);
        norm += static_cast<double>(t) * t;
        ++i;
      }
    ASSERT_EQ(i, grads[k - 1].size()) << g.groups[k].name;
    EXPECT_LE(std::sqrt(diff / norm), 0.01) << "grad." << g.groups[k].name;
  }
}

INSTANTIATE_TEST_SUITE_P(Gpt, GptStepZero,
                         ::testing::Values(Case{"fp16-amp", "amp_fp16"}, Case{"fp16-amp", "amp_fp16", sim::Accumulation::h100},
                                           Case{"bf16-amp", "amp_bf16"}),
                         [](const auto& info) { return std::string(info.param.mode) + "_" + std::string(sim::to_string(info.param.mma)); });

TEST(TorchGpt, Trajectories) {
  const sim::Experiment e = sim::load_experiment(samples / "torch_gpt.json");
  const fs::path file = test::train_to_run_file(e, "torch_gpt");
  const analysis::RunReader run(file);
  const sim::NpzFile torch(samples / "torch_gpt.npz");
  // issue 16's bounds (measured: fp32 1.9e-7, fp16-amp 1.0e-4, bf16-amp 3.9e-4)
  const struct {
    const char* lane;
    const char* mode;
    double tolerance;
  } cases[] = {{"fp32", "fp32", 1e-3}, {"fp16-amp", "amp_fp16", 0.01}, {"bf16-amp", "amp_bf16", 0.01}};
  for (const auto& c : cases) {
    const test::TrajectoryAgreement a = test::compare_trajectory(run, torch, c.lane, c.mode, 200, 200, c.tolerance);
    if (a.steps.empty()) continue;
    std::cout << c.lane << ": largest relative loss difference over 200 steps " << a.worst << "; final loss "
              << a.steps.back().loss << " vs PyTorch " << a.torch.back();
    if (std::string(c.mode) != "fp32") std::cout << "; first 20 steps: |lane - PyTorch| / |PyTorch recipe - fp32| " << a.near / a.effect;
    std::cout << "\n";
  }
  fs::remove(file);
}

}  // namespace
