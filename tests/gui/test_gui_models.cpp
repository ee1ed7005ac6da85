// The GUI's models library, without widgets: run data followed from a run file, the numbers each view draws,
// the item models (checked by QAbstractItemModelTester), the bit inspector, the scenarios and the training
// session with pause, step and stop.
#include <gtest/gtest.h>

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QThread>
#include <cmath>
#include <fstream>

#include "app/gui/models/bit_inspector.hpp"
#include "app/gui/models/lane_list_model.hpp"
#include "app/gui/models/layer_table_model.hpp"
#include "app/gui/models/run_feed.hpp"
#include "app/gui/models/scenarios.hpp"
#include "app/gui/models/series.hpp"
#include "app/gui/models/training_session.hpp"
#include "gui_test_support.hpp"
#include "sim/rounding.hpp"

using namespace mpscope;
using namespace mpscope::gui;
using namespace mpscope::gui::testing;
using json = nlohmann::json;

namespace {

// QAbstractItemModelTester reports through qWarning in category qt.modeltest: each report fails the test.
class ModelTesterFailures {
 public:
  ModelTesterFailures() { previous_ = qInstallMessageHandler(&ModelTesterFailures::handle); }
  ~ModelTesterFailures() { qInstallMessageHandler(previous_); }

 private:
  static void handle(QtMsgType type, const QMessageLogContext& context, const QString& message) {
    if (type != QtDebugMsg && type != QtInfoMsg && QByteArray(context.category ? context.category : "") == "qt.modeltest")
      ADD_FAILURE() << "QAbstractItemModelTester: " << message.toStdString();
  }
  QtMessageHandler previous_;
};

// A lane by hand: layer 1's weight gradient (fp16) and activation (fp16), two recorded steps, scale 2^10 then 2^9.
LaneData hand_lane() {
  LaneData l;
  l.info.id = 1;
  l.info.name = "fp16";
  l.tensors = {{10, 1, 1, "layer1.weight_grad", "weight_grad", "fp16", 8},
               {11, 1, 1, "layer1.activation", "activation", "fp16", 8},
               {12, 1, 2, "layer2.activation_grad", "activation_grad", "fp16", 4}};
  for (std::int64_t s = 0; s < 4; ++s) {
    analysis::StepRow r;
    r.lane_id = 1;
    r.step = s;
    r.loss = s == 2 ? NAN : 1.0 / (s + 1);
    r.loss_scale = s < 3 ? 1024 : 512;
    r.skipped = s == 3;
    r.loss_delta = 0.1 * s;
    if (s % 2 == 0) r.accuracy = 0.5;
    l.steps.push_back(r);
  }
  l.tensor_stats[0] = {{10, 0, histogram(-20, {1, 2, 3}), 8, 1, 2, 0},
                       {11, 0, histogram(0, {5}), std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                       {12, 0, histogram(-30, {4}), 4, 3, 1, 2}};
  l.tensor_stats[3] = {{10, 3, histogram(-10, {7}, 1), 8, 0, 0, 0}};
  l.layer_stats[3] = {{1, 3, 1, 0.2, 0.9, 0.25}, {1, 3, 2, 0.3, 0.5, 0.0}};
  l.events = {{1, 3, "overflow", "layer2.activation_grad", std::nullopt, ""},
              {1, 3, "scale_backoff", "", 512.0, ""}};
  l.info.first_nonfinite = "layer2.activation_grad";
  l.info.first_nonfinite_step = 3;
  return l;
}

}  // namespace

TEST(GuiSeries, LossAccuracySkippedAndScalePoints) {
  const LaneData l = hand_lane();
  const auto loss = loss_points(l);
  ASSERT_EQ(loss.size(), 3u);  // the NaN loss of step 2 is left out
  EXPECT_EQ(loss[2].x, 3);
  EXPECT_DOUBLE_EQ(loss[2].y, 0.25);
  EXPECT_EQ(accuracy_points(l).size(), 2u);
  ASSERT_EQ(skipped_points(l).size(), 1u);
  EXPECT_EQ(skipped_points(l)[0].x, 3);
  const auto scale = log2_scale_points(l);
  ASSERT_EQ(scale.size(), 4u);
  EXPECT_EQ(scale[0].y, 10);
  EXPECT_EQ(scale[3].y, 9);
  const auto overflow = scale_event_points(l, "overflow"), backoff = scale_event_points(l, "scale_backoff");
  ASSERT_EQ(overflow.size(), 1u);
  EXPECT_EQ(overflow[0].y, 9);  // the scale step 3 used
  ASSERT_EQ(backoff.size(), 1u);
  EXPECT_EQ(backoff[0].y, 9);  // the scale it set
  const auto delta = divergence_points(l, DivergenceMetric::loss_delta);
  EXPECT_EQ(delta.size(), 4u);
  const auto cosine = divergence_points(l, DivergenceMetric::grad_cosine);
  ASSERT_EQ(cosine.size(), 1u);
  EXPECT_DOUBLE_EQ(cosine[0].y, 0.5);  // the lowest layer
}

TEST(GuiSeries, FormatLimitsAreTheFormatsOwn) {
  const auto fp16 = format_limits("fp16");
  ASSERT_TRUE(fp16);
  EXPECT_EQ(fp16->min_subnormal, -24);
  EXPECT_EQ(fp16->min_normal, -14);
  EXPECT_EQ(fp16->max_finite, 15);
  const auto bf16 = format_limits("bf16");
  EXPECT_EQ(bf16->min_subnormal, -133);
  EXPECT_EQ(bf16->min_normal, -126);
  EXPECT_EQ(bf16->max_finite, 127);
  const auto e4m3 = format_limits("e4m3fn");
  EXPECT_EQ(e4m3->min_subnormal, -9);
  EXPECT_EQ(e4m3->min_normal, -6);
  EXPECT_EQ(e4m3->max_finite, 8);  // 448
  EXPECT_FALSE(format_limits("exact"));
}

TEST(GuiSeries, HeatmapSumsTheGradientsAndUnscalesThem) {
  const LaneData l = hand_lane();
  const Heatmap all = make_heatmap(l, std::nullopt, GradientScale::scaled);
  ASSERT_EQ(all.steps, (std::vector<std::int64_t>{0, 3}));
  EXPECT_EQ(all.lo, -30);
  EXPECT_EQ(all.hi, -10);
  EXPECT_EQ(all.count(0, -30), 4);  // layer2.activation_grad
  EXPECT_EQ(all.count(0, -18), 3);  // layer1.weight_grad
  EXPECT_EQ(all.count(0, 0), 0);    // the activation is not a gradient
  EXPECT_EQ(all.columns[1].zeros, 1);
  EXPECT_EQ(all.max_count, 7);
  ASSERT_TRUE(all.limits);
  EXPECT_EQ(all.limits->format, "fp16");

  const Heatmap unscaled = make_heatmap(l, std::nullopt, GradientScale::unscaled);
  EXPECT_EQ(unscaled.count(0, -40), 4);  // divided by 2^10
  EXPECT_EQ(unscaled.count(1, -19), 7);  // step 3: divided by 2^9
  EXPECT_EQ(unscaled.columns[1].zeros, 1);

  const Heatmap activation = make_heatmap(l, 11, GradientScale::unscaled);
  EXPECT_EQ(activation.count(0, 0), 5);  // activations are not shifted
  EXPECT_EQ(activation.columns[1].total(), 0);
  EXPECT_EQ(activation.column_at(2), std::optional<std::size_t>(0));
  EXPECT_EQ(activation.column_at(3), std::optional<std::size_t>(1));
}

TEST(GuiSeries, StepBarsColourEachBinByTheFormatZone) {
  const auto fp16 = *format_limits("fp16");
  EXPECT_EQ(zone_of(-25, fp16), Zone::underflow);
  EXPECT_EQ(zone_of(-24, fp16), Zone::subnormal);
  EXPECT_EQ(zone_of(-15, fp16), Zone::subnormal);
  EXPECT_EQ(zone_of(-14, fp16), Zone::normal);
  EXPECT_EQ(zone_of(15, fp16), Zone::normal);
  EXPECT_EQ(zone_of(16, fp16), Zone::overflow);
  analysis::Log2Histogram h = histogram(-26, {1, 0, 2});
  h.zeros = 5;
  h.infs = 1;
  h.nans = 2;
  const auto bars = step_bars(h, fp16);
  ASSERT_EQ(bars.size(), 6u);  // bins -26..-24, then 0, inf, NaN
  EXPECT_EQ(bars[0].zone, Zone::underflow);
  EXPECT_EQ(bars[0].count, 1);
  EXPECT_EQ(bars[2].zone, Zone::subnormal);
  EXPECT_EQ(bars[2].label, "-24");
  EXPECT_EQ(bars[3].zone, Zone::zero);
  EXPECT_EQ(bars[3].count, 5);
  EXPECT_EQ(bars[4].count, 1);
  EXPECT_EQ(bars[5].count, 2);
  // Bins start at the smallest subnormal when the values lie above it: the empty underflow zone is shown.
  EXPECT_EQ(step_bars(histogram(-10, {3}), fp16).front().exponent, -24);
}

TEST(GuiSeries, LayerFiguresAtTheLastRecordedStep) {
  const LaneData l = hand_lane();
  const auto at0 = layer_figures(l, 2);  // step 2 was not recorded: step 0's statistics
  ASSERT_EQ(at0.size(), 2u);
  EXPECT_DOUBLE_EQ(*at0[0].gradient_underflow, 1.0 / 8);
  EXPECT_DOUBLE_EQ(*at0[1].gradient_underflow, 3.0 / 4);
  EXPECT_EQ(at0[1].overflow, 2);
  EXPECT_TRUE(at0[1].first_nonfinite.empty());  // not yet at step 2
  const auto at3 = layer_figures(l, 3);
  EXPECT_DOUBLE_EQ(*at3[0].lost_updates, 0.25);
  EXPECT_DOUBLE_EQ(*at3[1].grad_cosine, 0.5);
  EXPECT_EQ(at3[1].first_nonfinite, "layer2.activation_grad");
  EXPECT_TRUE(at3[0].first_nonfinite.empty());
  EXPECT_EQ(layer_csv(at3).substr(0, 6), "layer,");
  EXPECT_EQ(at3[0].name, "layer1");  // an mlp's layers by their catalogue names
}

// A sequential model's layers are named by their module index, from their weights' names ("3.weight" -> "3").
TEST(GuiSeries, LayerFiguresNameSequentialLayers) {
  LaneData l = hand_lane();
  l.tensors = {{10, 1, 1, "0.weight", "weight", "fp32", 72}, {11, 1, 1, "0.weight_grad", "weight_grad", "fp16", 72},
               {12, 1, 2, "3.weight", "weight", "fp32", 1152}, {13, 1, 2, "3.activation_grad", "activation_grad", "fp16", 4}};
  l.info.first_nonfinite = "3.activation_grad";
  const auto rows = layer_figures(l, 3);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "0");
  EXPECT_EQ(rows[1].name, "3");
  EXPECT_EQ(rows[1].first_nonfinite, "3.activation_grad");
  EXPECT_TRUE(rows[0].first_nonfinite.empty());
  LayerTableModel model;
  model.setRows(rows);
  EXPECT_EQ(model.data(model.index(1, LayerTableModel::Layer)).toString(), "3");
}

TEST(GuiRunData, FollowsARunFileAsItIsWritten) {
  const auto file = scratch("follow.mpscope");
  analysis::RunWriter w(file, analysis::RunHeader{"{}", "{}", "", "test", 10});
  const std::int64_t lane = w.add_lane({0, "fp16", "fp16-amp", "cpu", "fp32", false, "{}", "", {}, {}, "", {}});
  const std::int64_t tensor = w.add_tensor({0, lane, 1, "layer1.weight_grad", "weight_grad", "fp16", 4});
  const auto write_steps = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t s = from; s < to; ++s) {
      analysis::StepRow r;
      r.lane_id = lane;
      r.step = s;
      r.loss = 1.0 / (s + 1);
      w.add_step(r);
      std::vector<analysis::TensorStatRow> stats(1);
      stats[0].tensor_id = tensor;
      stats[0].histogram = histogram(-5, {static_cast<std::int64_t>(s + 1)});
      w.add_tensor_stats(lane, s, stats);
    }
    w.commit_and_wait();
  };
  write_steps(0, 4);
  RunFollower f(file);
  EXPECT_TRUE(f.poll());
  ASSERT_EQ(f.data().lanes.size(), 1u);
  EXPECT_EQ(f.data().lanes[0].steps.size(), 4u);
  EXPECT_EQ(f.data().lanes[0].tensor_stats.size(), 4u);
  EXPECT_TRUE(f.data().running());
  EXPECT_FALSE(f.poll());  // nothing new
  write_steps(4, 10);
  EXPECT_TRUE(f.poll());
  EXPECT_EQ(f.data().lanes[0].steps.size(), 10u);
  EXPECT_EQ(f.data().lanes[0].steps.back().step, 9);
  EXPECT_EQ(f.data().lanes[0].tensor_stats.at(9).front().histogram.counts.front(), 10);
  w.finish("finished");
  EXPECT_TRUE(f.poll());  // the status changed
  EXPECT_FALSE(f.data().running());
}

TEST(GuiRunData, HoldsWhatTheRunFileHolds) {
  const auto file = make_run(small_experiment(), "whole.mpscope");
  RunFollower f(file);
  f.poll();
  const analysis::RunReader reader(file);
  const RunData& d = f.data();
  ASSERT_EQ(d.lanes.size(), 3u);
  EXPECT_EQ(d.reference_lane(), 0);
  EXPECT_EQ(d.last_step(), 29);
  for (const LaneData& l : d.lanes) {
    const auto steps = reader.steps(l.info.id);
    ASSERT_EQ(l.steps.size(), steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(l.steps[i].loss, steps[i].loss);
    // recorded every 5 steps and at the last
    std::vector<std::int64_t> recorded;
    for (const auto& [step, rows] : l.tensor_stats) recorded.push_back(step);
    EXPECT_EQ(recorded, (std::vector<std::int64_t>{0, 5, 10, 15, 20, 25, 29}));
    EXPECT_EQ(l.tensor_stats.at(5).size(), reader.tensor_stats_at(l.info.id, 5).size());
  }
  // The unscaled fp16 lane underflows; its heatmap has cells below fp16's smallest subnormal only when unscaled.
  const Heatmap h = make_heatmap(d.lanes[1], std::nullopt, GradientScale::scaled);
  EXPECT_GE(h.lo, -24);
  const auto csv = loss_csv(d);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "lane,step,loss,accuracy,skipped");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 30);
}

TEST(GuiRunFeed, OpensFollowsAndSelectsSteps) {
  RunFeed feed;
  EXPECT_NE(feed.open("/nonexistent/run.mpscope").indexOf("no such file"), -1);
  const auto not_a_run = scratch("not_a_run.mpscope");
  std::ofstream(not_a_run) << "hello";
  EXPECT_FALSE(feed.open(QString::fromStdString(not_a_run.string())).isEmpty());
  EXPECT_FALSE(feed.isOpen());

  const auto file = make_run(small_experiment(), "feed.mpscope");
  QSignalSpy ended(&feed, &RunFeed::ended), selected(&feed, &RunFeed::selectedStepChanged);
  ASSERT_EQ(feed.open(QString::fromStdString(file.string())), "");
  EXPECT_EQ(ended.count(), 1);  // a finished run: nothing to follow
  EXPECT_FALSE(feed.following());
  EXPECT_EQ(feed.selectedStep(), 29);  // follows the latest step until one is chosen
  feed.selectStep(7);
  EXPECT_EQ(feed.selectedStep(), 7);
  feed.selectStep(1000);
  EXPECT_EQ(feed.selectedStep(), 29);  // clamped to the steps there are
  feed.selectStep(-1);
  EXPECT_EQ(feed.selectedStep(), 29);
  EXPECT_GE(selected.count(), 3);
}

TEST(GuiItemModels, LayerTableModelPassesTheModelTester) {
  ModelTesterFailures failures;
  LayerTableModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Warning);
  const LaneData l = hand_lane();
  model.setRows(layer_figures(l, 0));
  EXPECT_EQ(model.rowCount(), 2);
  EXPECT_EQ(model.columnCount(), LayerTableModel::ColumnCount);
  EXPECT_EQ(model.data(model.index(0, LayerTableModel::GradientUnderflow)).toString(), "12.50%");
  EXPECT_EQ(model.data(model.index(1, LayerTableModel::Overflow)).toString(), "2");
  EXPECT_FALSE(model.data(model.index(1, 0), Qt::BackgroundRole).isValid());
  model.setRows(layer_figures(l, 3));  // same shape, new values
  EXPECT_TRUE(model.data(model.index(1, 0), Qt::BackgroundRole).isValid());  // the first inf/NaN tensor's layer
  EXPECT_EQ(model.data(model.index(1, LayerTableModel::FirstNonfinite)).toString(), "layer2.activation_grad");
  model.setRows({});
  EXPECT_EQ(model.rowCount(), 0);
}

TEST(GuiItemModels, LaneListModelEditsLanesAndKeepsOtherKeys) {
  ModelTesterFailures failures;
  LaneListModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Warning);
  model.setLanes(json::parse(R"([{"name": "fp32", "recipe": "fp32", "reference": true},
                                 {"name": "c", "recipe": "custom", "formats": {"gradients": "e5m2"}}])"));
  EXPECT_EQ(model.rowCount(), 2);
  EXPECT_EQ(model.data(model.index(0, LaneListModel::Reference), Qt::CheckStateRole).toInt(), Qt::Checked);
  EXPECT_EQ(model.data(model.index(1, LaneListModel::Backend)).toString(), "cpu");  // the default shown
  EXPECT_EQ(model.data(model.index(1, LaneListModel::LossScale)).toString(), "none");

  const int row = model.addLane("fp16-amp");
  EXPECT_EQ(row, 2);
  EXPECT_EQ(model.lanes()[2]["loss_scale"]["type"], "dynamic");
  EXPECT_EQ(model.addLane("fp16-amp"), 3);
  EXPECT_EQ(model.lanes()[3]["name"], "fp16-amp-2");  // names stay unique

  EXPECT_FALSE(model.setData(model.index(1, LaneListModel::Recipe), "fp17"));  // not a recipe
  EXPECT_TRUE(model.setData(model.index(1, LaneListModel::Mma), "h100"));
  EXPECT_TRUE(model.setData(model.index(2, LaneListModel::LossScale), "static"));
  EXPECT_EQ(model.lanes()[2]["loss_scale"], json::parse(R"({"type": "static", "value": 1024})"));
  EXPECT_TRUE(model.setData(model.index(2, LaneListModel::LossScale), "none"));
  EXPECT_FALSE(model.lanes()[2].contains("loss_scale"));
  EXPECT_TRUE(model.setData(model.index(3, LaneListModel::Reference), Qt::Checked, Qt::CheckStateRole));
  EXPECT_FALSE(model.lanes()[0].contains("reference"));  // one reference at most
  EXPECT_TRUE(model.lanes()[3]["reference"]);
  EXPECT_EQ(model.lanes()[1]["formats"]["gradients"], "e5m2");  // keys the table does not show are kept

  EXPECT_TRUE(model.removeRows(0, 2));
  EXPECT_EQ(model.rowCount(), 2);
  EXPECT_FALSE(model.removeRows(1, 5));
  // What the panel makes is an experiment the parser accepts.
  json e = small_experiment();
  e["lanes"] = model.lanes();
  EXPECT_NO_THROW(sim::parse_experiment(e, "."));
}

TEST(GuiBitInspector, ShowsEveryFormatAndFlipsBits) {
  BitInspector b;
  ASSERT_EQ(b.readings().size(), 7u);
  const auto row_of = [&](const std::string& name) {
    for (std::size_t i = 0; i < b.readings().size(); ++i)
      if (b.readings()[i].format.name == name) return i;
    throw std::runtime_error("no row " + name);
  };
  EXPECT_EQ(b.readings()[row_of("fp16")].bits, 0x2E66u);
  EXPECT_EQ(b.readings()[row_of("fp32")].bits, 0x3DCCCCCDu);
  EXPECT_EQ(b.readings()[row_of("bf16")].bits, 0x3DCDu);
  EXPECT_EQ(b.readings()[row_of("fp16")].exact, "0.0999755859375");
  EXPECT_EQ(b.readings()[row_of("fp16")].direction, "rounded down");

  EXPECT_FALSE(b.set_input("zero point one").empty());
  EXPECT_EQ(b.input(), "0.1");  // unchanged

  b.flip(row_of("fp16"), 15);  // the sign
  EXPECT_EQ(b.input(), "-0.0999755859375");
  EXPECT_EQ(b.readings()[row_of("fp16")].bits, 0xAE66u);
  EXPECT_EQ(b.readings()[row_of("fp16")].direction, "exact");
  EXPECT_EQ(b.readings()[row_of("fp32")].value, -0.0999755859375);  // every fp16 value is an fp32 value

  ASSERT_EQ(b.set_input("65504"), "");
  b.flip(row_of("fp16"), 10);  // lowest exponent bit: 0x7BFF -> 0x7FFF, a NaN pattern
  EXPECT_EQ(b.readings()[row_of("fp16")].bits, 0x7FFFu);  // the flipped pattern itself, payload kept
  EXPECT_EQ(b.readings()[row_of("fp16")].category, sim::Category::nan);
  EXPECT_EQ(b.input(), "nan");
  EXPECT_EQ(field_of(sim::fp16(), 15), BitField::sign);
  EXPECT_EQ(field_of(sim::fp16(), 10), BitField::exponent);
  EXPECT_EQ(field_of(sim::fp16(), 9), BitField::mantissa);
  EXPECT_THROW(b.flip(row_of("fp16"), 16), std::out_of_range);
}

TEST(GuiScenarios, ReadsTheShippedScenariosAndTheirExplanations) {
  const auto scenarios = load_scenarios(std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples");
  const auto find = [&](const std::string& file) -> const Scenario* {
    for (const auto& s : scenarios)
      if (s.path.filename() == file) return &s;
    return nullptr;
  };
  for (const char* f : {"underflow.json", "overflow.json", "swamping.json", "bf16-vs-fp16.json", "fp8.json",
                        "fp8-accumulation.json", "adam-eps.json", "attention-overflow.json", "loss-scale-collapse.json",
                        "fp16-pure-gpt.json", "bf16-pure-gpt.json"}) {
    const Scenario* s = find(f);
    ASSERT_NE(s, nullptr) << f;
    EXPECT_GT(s->explanation.size(), 100u) << f;
    EXPECT_TRUE(s->title.starts_with(f)) << s->title;
  }
  EXPECT_NE(find("underflow.json")->explanation.find("2^-24"), std::string::npos);

  // A folder with a README section and a file the README does not mention.
  const auto dir = scratch("samples_dir");
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "b.json") << "{}";
  std::ofstream(dir / "a.json") << "{}";
  std::ofstream(dir / "README.md") << "# Samples\n\n## b.json — the b lesson\nLine one\nline two.\n\n## c.json — gone\nx\n";
  const auto local = load_scenarios(dir);
  ASSERT_EQ(local.size(), 2u);
  EXPECT_EQ(local[0].path.filename(), "b.json");
  EXPECT_EQ(local[0].explanation, "Line one line two.");
  EXPECT_EQ(local[1].path.filename(), "a.json");
  EXPECT_TRUE(load_scenarios(dir / "missing").empty());
}

TEST(GuiTrainingSession, ABadExperimentNamesTheKeyAndWritesNothing) {
  TrainingSession session;
  json e = small_experiment();
  e["lanes"][1]["loss_scale"]["type"] = "dynamc";
  const auto file = scratch("bad.mpscope");
  const QString error = session.start(e, {}, file);
  EXPECT_NE(error.indexOf("lanes[1].loss_scale.type"), -1) << error.toStdString();
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_EQ(session.state(), TrainingSession::State::idle);
}

TEST(GuiTrainingSession, PauseStepResumeGiveTheSameRunAsTrainingStraight) {
  const json e = small_experiment(40);
  const auto straight = make_run(e, "straight.mpscope");
  const auto stepped = scratch("stepped.mpscope");
  TrainingSession session;
  QSignalSpy ready(&session, &TrainingSession::runFileReady), finished(&session, &TrainingSession::finished);
  ASSERT_EQ(session.start(e, {}, stepped, /*start_paused=*/true), "");
  EXPECT_EQ(session.state(), TrainingSession::State::paused);
  ASSERT_TRUE(spin_until([&] { return ready.count() == 1; }));
  const auto steps_in_file = [&] { return analysis::RunReader(stepped).steps().size(); };
  for (int i = 0; i < 3; ++i) session.stepOnce();
  // three steps of three lanes, committed before the session holds again
  ASSERT_TRUE(spin_until([&] { return steps_in_file() == 9; }, 30000)) << steps_in_file();
  QThread::msleep(200);
  EXPECT_EQ(steps_in_file(), 9u);  // and no more while paused
  session.resume();
  EXPECT_EQ(session.state(), TrainingSession::State::running);
  ASSERT_TRUE(spin_until([&] { return finished.count() == 1; }));
  EXPECT_EQ(session.state(), TrainingSession::State::finished);
  const auto a = analysis::RunReader(straight).steps(), b = analysis::RunReader(stepped).steps();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].loss, b[i].loss) << i;
  EXPECT_EQ(analysis::RunReader(stepped).summary().status, "finished");
}

TEST(GuiTrainingSession, StopEndsTheRunAndMarksItInterrupted) {
  json e = small_experiment(100000);
  const auto file = scratch("stopped.mpscope");
  TrainingSession session;
  QSignalSpy ready(&session, &TrainingSession::runFileReady), finished(&session, &TrainingSession::finished);
  ASSERT_EQ(session.start(e, {}, file), "");
  ASSERT_TRUE(spin_until([&] { return ready.count() == 1; }));
  ASSERT_TRUE(spin_until([&] { return analysis::RunReader(file).steps().size() >= 30; }));
  session.stop();
  ASSERT_TRUE(spin_until([&] { return finished.count() == 1; }));
  const analysis::RunReader r(file);
  EXPECT_EQ(r.summary().status, "interrupted");
  EXPECT_LT(r.summary().steps_done, 100000);
  EXPECT_EQ(static_cast<std::int64_t>(r.steps().size()), 3 * r.summary().steps_done);
  // the same file cannot be written twice
  EXPECT_NE(session.start(e, {}, file).indexOf("already exists"), -1);
}
