// The teaching scenarios of samples/ show their lessons in the recorded numbers (samples/README.md says what each
// one teaches; these are the checks behind those sentences).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "analysis/run_store.hpp"
#include "sim/trainer.hpp"

using namespace mpscope;
namespace fs = std::filesystem;

namespace {

// What a lane's run file holds, reduced to what the lessons name.
struct LaneRecord {
  std::vector<analysis::StepRow> steps;
  std::map<std::string, double> lost_updates_by_layer;  // mean over recorded steps, by module ("transformer.h.0.ln_1")
  std::int64_t score_overflows = 0;                      // attention scores rounded to inf, all heads and steps
  std::optional<std::int64_t> first_score_overflow;     // the step of the first
  int score_top_binade = -1000;                          // the largest finite |score| is below 2^(this + 1)
};

struct Outcome {
  sim::TrainResult result;
  std::map<std::string, double> lost_updates;  // mean lost-update share per lane over recorded steps
  std::map<std::string, LaneRecord> record;    // per lane

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
    LaneRecord& rec = o.record[lane.name];
    rec.steps = r.steps(lane.id);
    std::map<int, std::string> module;  // layer -> its weight's name without ".weight"
    std::set<std::int64_t> scores;
    for (const auto& t : r.tensors(lane.id)) {
      if (t.kind == "weight") module[t.layer] = t.name.substr(0, t.name.rfind('.'));
      if (t.kind == "attention_scores") scores.insert(t.id);
    }
    double sum = 0;
    int n = 0;
    std::map<int, std::pair<double, int>> per_layer;
    for (const auto& l : r.layer_stats(lane.id))
      if (l.lost_updates) {
        sum += *l.lost_updates;
        ++n;
        per_layer[l.layer].first += *l.lost_updates;
        ++per_layer[l.layer].second;
      }
    o.lost_updates[lane.name] = n ? sum / n : 0.0;
    for (const auto& [layer, acc] : per_layer) rec.lost_updates_by_layer[module[layer]] = acc.first / acc.second;
    for (const auto& stat : r.lane_tensor_stats(lane.id)) {
      if (!scores.count(stat.tensor_id)) continue;
      if (!stat.histogram.counts.empty()) rec.score_top_binade = std::max(rec.score_top_binade, stat.histogram.hi());
      if (stat.overflow.value_or(0) > 0) {
        rec.score_overflows += *stat.overflow;
        if (!rec.first_score_overflow || stat.step < *rec.first_score_overflow) rec.first_score_overflow = stat.step;
      }
    }
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

// Same quantization, different accumulators: the 14-bit fast chain ends far further from the float32 sum than the
// chain promoted every 128 products.
TEST(Scenarios, Fp8FastAccumulationLosesBitsOverALongK) {
  const Outcome o = run("fp8-accumulation");
  const auto &promoted = o.lane("fp8-promoted"), &fast = o.lane("fp8-fast");
  ASSERT_TRUE(promoted.final_weight_distance && fast.final_weight_distance && promoted.max_loss_delta && fast.max_loss_delta);
  EXPECT_GT(*fast.final_weight_distance, 5 * *promoted.final_weight_distance);
  EXPECT_GT(*fast.max_loss_delta, 3 * *promoted.max_loss_delta);
  EXPECT_LT(*promoted.final_weight_distance, 0.002);  // promoted stays near the float32 sum
  std::cout << "fp8-accumulation: weight distance fast " << *fast.final_weight_distance << ", promoted "
            << *promoted.final_weight_distance << "; max |dloss| fast " << *fast.max_loss_delta << ", promoted "
            << *promoted.max_loss_delta << "\n";
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

// Mean lost-update share of the layers whose module name contains `part` ("ln_", "mlp.c_fc", "" for all).
double lost_updates_of(const LaneRecord& r, const std::string& part) {
  double sum = 0;
  int n = 0;
  for (const auto& [module, share] : r.lost_updates_by_layer)
    if (module.find(part) != std::string::npos) {
      sum += share;
      ++n;
    }
  EXPECT_GT(n, 0) << "no layer named *" << part << "*";
  return n ? sum / n : 0.0;
}

// Steps skipped among the last n.
int skipped_in_last(const LaneRecord& r, std::size_t n) {
  int skipped = 0;
  for (std::size_t i = r.steps.size() > n ? r.steps.size() - n : 0; i < r.steps.size(); ++i) skipped += r.steps[i].skipped;
  return skipped;
}

TEST(Scenarios, AttentionLogitsOverflowFp16) {
  const Outcome o = run("attention-overflow");
  const LaneRecord &fp16 = o.record.at("fp16-amp"), &upcast = o.record.at("fp16-amp-fp32-scores"),
                   &bf16 = o.record.at("bf16-amp");
  for (const auto& [name, rec] : o.record)
    std::cout << name << ": score overflows " << rec.score_overflows << " first at "
              << rec.first_score_overflow.value_or(-1) << ", largest |score| below 2^" << rec.score_top_binade + 1 << "\n";
  // The logits grow as the lane learns: q·kᵀ, rounded to fp16 before the 1/√d scaling, overflows late in training.
  EXPECT_GT(fp16.score_overflows, 0);
  ASSERT_TRUE(fp16.first_score_overflow.has_value());
  EXPECT_GT(*fp16.first_score_overflow, 100);
  EXPECT_NE(o.lane("fp16-amp").first_nonfinite.find("attn.head0.scores"), std::string::npos) << o.lane("fp16-amp").first_nonfinite;
  EXPECT_GT(o.lane("fp16-amp").skipped_steps, 20);  // inf logits make the loss NaN: GradScaler skips the step
  EXPECT_TRUE(std::isnan(fp16.steps.back().loss));
  // Computed in float32 the scaled scores reach 2^13: before the scaling by 1/√64 = 1/8 that is 2^16, beyond
  // fp16's 65504. In float32 (or bf16) the product fits, and the scores are harmless.
  EXPECT_GE(upcast.score_top_binade, 13);
  for (const char* name : {"fp16-amp-fp32-scores", "bf16-amp"}) {
    const LaneRecord& rec = o.record.at(name);
    EXPECT_EQ(rec.score_overflows, 0) << name;
    EXPECT_EQ(o.lane(name).skipped_steps, 0) << name;
    EXPECT_EQ(o.lane(name).verdict, "ok") << name;
    EXPECT_LT(o.lane(name).final_loss, 1.1 * o.lane("fp32").final_loss) << name;
  }
  EXPECT_EQ(upcast.steps.size(), bf16.steps.size());
}

TEST(Scenarios, LossScaleCollapse) {
  const Outcome o = run("loss-scale-collapse");
  for (const char* name : {"gradscaler", "growth-20", "min-scale-1"}) {
    const LaneRecord& rec = o.record.at(name);
    std::cout << name << ": final scale " << rec.steps.back().loss_scale << ", skipped in the last 50 steps "
              << skipped_in_last(rec, 50) << "\n";
    // Once the forward pass overflows on every batch, every step is skipped: no scale can fix a forward overflow,
    // and the skipped steps leave the weights where they overflow.
    EXPECT_EQ(skipped_in_last(rec, 50), 50) << name;
    EXPECT_GT(rec.score_overflows, 0) << name;
  }
  EXPECT_NE(o.lane("gradscaler").first_nonfinite.find("attn.head0.scores"), std::string::npos);
  EXPECT_LT(o.record.at("gradscaler").steps.back().loss_scale, 1e-20);  // halved at every step: the collapse
  EXPECT_LT(o.record.at("growth-20").steps.back().loss_scale, 1e-6);    // faster growth does not bring it back
  EXPECT_EQ(o.record.at("min-scale-1").steps.back().loss_scale, 1.0);   // a floor hides the collapse, not the cause
  EXPECT_EQ(o.lane("bf16-amp").skipped_steps, 0);
  EXPECT_EQ(o.lane("bf16-amp").verdict, "ok");
}

TEST(Scenarios, Fp16PureGptLosesLayerNormUpdates) {
  const Outcome o = run("fp16-pure-gpt");
  const LaneRecord &pure = o.record.at("fp16-pure"), &amp = o.record.at("fp16-amp");
  for (const auto& [module, share] : pure.lost_updates_by_layer) std::cout << "fp16-pure " << module << ": lost " << share << "\n";
  // LayerNorm's gains sit near 1, where fp16's spacing is 2^-10: an update below 2^-11 rounds back to the weight.
  EXPECT_GT(lost_updates_of(pure, "ln_"), 0.3);
  EXPECT_LT(lost_updates_of(pure, "mlp.c_fc"), 0.15);  // weights near 0.02 have 32 times finer spacing
  EXPECT_LT(lost_updates_of(amp, "ln_"), 0.01);        // fp32 master weights keep them
  EXPECT_GT(*o.lane("fp16-pure").final_weight_distance, 10 * *o.lane("fp16-amp").final_weight_distance);
}

TEST(Scenarios, Bf16PureGptNeedsStochasticRounding) {
  const Outcome o = run("bf16-pure-gpt");
  const auto &fp32 = o.lane("fp32"), &pure = o.lane("bf16-pure"), &sr = o.lane("bf16-pure-sr");
  // bf16's 8 significant bits: at lr 2e-4 about half of all updates round back to the weight, in every layer.
  EXPECT_GT(lost_updates_of(o.record.at("bf16-pure"), ""), 0.4);
  EXPECT_LT(lost_updates_of(o.record.at("bf16-amp"), ""), 0.01);
  EXPECT_GT(pure.final_loss, 1.03 * fp32.final_loss);  // the lost updates slow the training down
  EXPECT_LT(sr.final_loss, 1.01 * fp32.final_loss);    // rounded stochastically they add up in expectation
  EXPECT_LT(*sr.final_weight_distance, 0.6 * *pure.final_weight_distance);
  EXPECT_LT(o.lane("bf16-amp").final_loss, 1.01 * fp32.final_loss);
}

}  // namespace
