// The teaching scenarios of samples/ show their lessons in the recorded numbers (samples/README.md says what each
// one teaches; these are the checks behind those sentences).
#include <gtest/gtest.h>

#include "analysis/run_store.hpp"
#include "sim/trainer.hpp"

using namespace mpscope;
namespace fs = std::filesystem;

namespace {

struct Outcome {
  sim::TrainResult result;
  std::map<std::string, double> lost_updates;  // mean lost-update share per lane over recorded steps

  const sim::LaneSummary& lane(const std::string& name) const {
    for (const auto& l : result.lanes)
      if (l.name == name) return l;
    throw std::runtime_error("no lane " + name);
  }
};

Outcome run(const std::string& sample) {
  const sim::Experiment e = sim::load_experiment(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / (sample + ".json"));
  const fs::path file = fs::temp_directory_path() / ("mpscope_scenario_" + sample + std::to_string(::getpid()) + ".mpscope");
  fs::remove(file);
  Outcome o;
  {
    analysis::RunWriter w(file, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
    o.result = sim::train(e, sim::prepare(e), &w, {});
  }
  const analysis::RunReader r(file);
  for (const auto& lane : r.lanes()) {
    double sum = 0;
    int n = 0;
    for (const auto& l : r.layer_stats(lane.id))
      if (l.lost_updates) {
        sum += *l.lost_updates;
        ++n;
      }
    o.lost_updates[lane.name] = n ? sum / n : 0.0;
  }
  fs::remove(file);
  for (const auto& l : o.result.lanes)
    std::cout << sample << " " << l.name << ": loss " << l.final_loss << " accuracy " << l.accuracy.value_or(-1)
              << " underflow " << l.gradient_underflow_share.value_or(-1) << " skipped " << l.skipped_steps
              << " weight distance " << l.final_weight_distance.value_or(-1) << " lost updates "
              << o.lost_updates[l.name] << " verdict " << l.verdict << "\n";
  return o;
}

TEST(Scenarios, Underflow) {
  const Outcome o = run("underflow");
  const auto &fp32 = o.lane("fp32"), &fp16 = o.lane("fp16"), &scaled = o.lane("fp16-scaled"), &bf16 = o.lane("bf16");
  EXPECT_GT(*fp16.gradient_underflow_share, 0.05);          // a large share of gradient values flushed to zero
  EXPECT_LT(*scaled.gradient_underflow_share, 0.001);       // loss scaling brings them back
  EXPECT_GT(fp16.final_loss, 0.9);                          // the unscaled lane does not learn (ln 3 = 1.0986)
  EXPECT_LT(*fp16.accuracy, 0.4);
  EXPECT_LT(scaled.final_loss, 1.2 * fp32.final_loss);      // the scaled lane trains like fp32
  EXPECT_GT(*scaled.accuracy, 0.85);
  EXPECT_EQ(fp16.verdict, "degraded");
  EXPECT_EQ(scaled.verdict, "ok");
  EXPECT_EQ(*bf16.gradient_underflow_share, 0.0);           // bf16's range needs no scaling
  EXPECT_GT(*bf16.accuracy, 0.85);
}

TEST(Scenarios, Overflow) {
  const Outcome o = run("overflow");
  const auto &fp16 = o.lane("fp16"), &scaled = o.lane("fp16-scaled"), &bf16 = o.lane("bf16"), &fp32 = o.lane("fp32");
  EXPECT_EQ(fp16.verdict, "diverged");                      // inf, then NaN in the weights
  EXPECT_FALSE(fp16.first_nonfinite.empty());
  EXPECT_GT(scaled.skipped_steps, 100);                     // survives only by skipping overflowing steps
  EXPECT_NE(bf16.verdict, "diverged");
  EXPECT_EQ(bf16.skipped_steps, 0);
  EXPECT_GT(*bf16.accuracy, 0.95);
  EXPECT_GT(*fp32.accuracy, 0.95);
}

TEST(Scenarios, Swamping) {
  const Outcome o = run("swamping");
  const double pure = o.lost_updates.at("fp16-pure"), amp = o.lost_updates.at("fp16-amp");
  EXPECT_GT(pure, 0.3);   // a third or more of all nonzero updates vanish every step
  EXPECT_LT(amp, 0.01);   // fp32 master weights keep them
  const auto &p = o.lane("fp16-pure"), &a = o.lane("fp16-amp"), &sr = o.lane("fp16-pure-sr");
  EXPECT_GT(*p.final_weight_distance, 5 * *a.final_weight_distance);
  EXPECT_GT(p.final_loss, a.final_loss);
  EXPECT_LT(*sr.final_weight_distance, 0.5 * *p.final_weight_distance);  // stochastic rounding keeps them on average
  EXPECT_LT(sr.final_loss, p.final_loss);
}

TEST(Scenarios, Bf16VersusFp16) {
  const Outcome o = run("bf16-vs-fp16");
  const auto &fp16 = o.lane("fp16"), &scaled = o.lane("fp16-scaled"), &bf16 = o.lane("bf16");
  EXPECT_GT(*fp16.gradient_underflow_share, 0.1);    // range: fp16 underflows without scaling
  EXPECT_EQ(*bf16.gradient_underflow_share, 0.0);    // bf16 does not
  EXPECT_GT(bf16.final_loss, 3 * scaled.final_loss);  // precision: bf16 fits the curve worse
  EXPECT_EQ(bf16.verdict, "degraded");
  EXPECT_EQ(scaled.verdict, "ok");
}

TEST(Scenarios, Fp8NeedsScaling) {
  const Outcome o = run("fp8");
  const auto &scaled = o.lane("fp8"), &unscaled = o.lane("fp8-unscaled");
  EXPECT_GT(*unscaled.gradient_underflow_share, 0.05);
  EXPECT_LT(*scaled.gradient_underflow_share, 0.01);
  EXPECT_LT(*unscaled.accuracy, 0.4);  // does not learn
  EXPECT_GT(*scaled.accuracy, 0.7);    // learns
  EXPECT_LT(scaled.final_loss, 0.6 * unscaled.final_loss);
}

TEST(Scenarios, AdamEpsVanishesInPureFp16) {
  const Outcome o = run("adam-eps");
  const auto &fp32 = o.lane("fp32"), &amp = o.lane("fp16-amp"), &bf16 = o.lane("bf16-pure");
  for (const char* name : {"fp16-pure", "fp16-pure-scaled"}) {
    const auto& pure = o.lane(name);
    EXPECT_EQ(pure.verdict, "diverged") << name;                 // Adam's first update turns weights into inf/NaN
    EXPECT_EQ(pure.diverged_step, 0) << name;
    EXPECT_EQ(pure.first_nonfinite, "0.weight") << name;          // a weight, not an activation or a gradient:
    EXPECT_EQ(pure.first_nonfinite_step, 0) << name;              // forward and backward were finite
    EXPECT_LT(*pure.gradient_underflow_share, 0.001) << name;     // the gradients fit fp16; their squares do not
  }
  for (const auto* lane : {&fp32, &amp, &bf16}) {
    EXPECT_EQ(lane->verdict, "ok") << lane->name;
    EXPECT_TRUE(lane->first_nonfinite.empty()) << lane->name << " " << lane->first_nonfinite;
    EXPECT_GT(*lane->accuracy, 0.85) << lane->name;  // fp32 Adam state (amp), or bf16's range (bf16-pure), trains
  }

  // The cause is eps: with one fp16 can hold (1e-4 instead of 1e-8, which rounds to 0), the same pure fp16 lane
  // trains.
  const sim::Experiment e = sim::load_experiment(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "adam-eps.json");
  nlohmann::json j = e.given;
  j["optimizer"]["eps"] = 1e-4;
  const sim::Experiment fixed = sim::select_lanes(sim::parse_experiment(j, e.base_dir), {"fp32", "fp16-pure"});
  const sim::TrainResult r = sim::train(fixed, sim::prepare(fixed), nullptr, {});
  ASSERT_EQ(r.lanes.size(), 2u);
  const auto& pure = r.lanes[1];
  std::cout << "adam-eps with eps 1e-4: fp16-pure loss " << pure.final_loss << " accuracy "
            << pure.accuracy.value_or(-1) << " weight distance " << pure.final_weight_distance.value_or(-1)
            << " verdict " << pure.verdict << "\n";
  EXPECT_NE(pure.verdict, "diverged");
  EXPECT_TRUE(pure.first_nonfinite.empty()) << pure.first_nonfinite;
  ASSERT_TRUE(pure.accuracy.has_value());
  EXPECT_GT(*pure.accuracy, 0.85);
}

}  // namespace
