// Run files: what is written reads back; a run killed with SIGKILL leaves a file that opens with every committed
// step; another process can read a run while it is being written; bad files are refused clearly.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include "analysis/histogram.hpp"
#include "analysis/run_store.hpp"

using namespace mpscope::analysis;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("mpscope_runs_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

TEST(Histogram, BinsByBinaryExponentAndEncodesCompactly) {
  const std::vector<float> v = {1.0f, 1.5f, 2.0f, 0.25f, 0.0f, -0.0f, INFINITY, NAN, -3.0f, 1e-40f, 1e-45f};
  const Log2Histogram h = Log2Histogram::of(v);
  EXPECT_EQ(h.zeros, 2);
  EXPECT_EQ(h.infs, 1);
  EXPECT_EQ(h.nans, 1);
  EXPECT_EQ(h.count_at(0), 2);   // 1, 1.5
  EXPECT_EQ(h.count_at(1), 2);   // 2, -3
  EXPECT_EQ(h.count_at(-2), 1);  // 0.25
  EXPECT_EQ(h.count_at(-133), 1);  // 1e-40 (a float32 subnormal): 2^-133 <= x < 2^-132
  EXPECT_EQ(h.count_at(-149), 1);  // the smallest float32 subnormal
  EXPECT_EQ(h.lo, -149);
  EXPECT_EQ(h.total(), static_cast<std::int64_t>(v.size()));
  EXPECT_EQ(Log2Histogram::decode(h.encode()), h);
  const std::vector<double> d = {1e-300, 1e300, 5e-324};
  const Log2Histogram hd = Log2Histogram::of(d);
  EXPECT_EQ(hd.count_at(-997), 1);
  EXPECT_EQ(hd.count_at(996), 1);
  EXPECT_EQ(hd.count_at(-1074), 1);
  Log2Histogram sum = h;
  sum += hd;
  EXPECT_EQ(sum.total(), h.total() + hd.total());
  EXPECT_THROW(Log2Histogram::decode(std::vector<std::uint8_t>{1, 2}), std::runtime_error);
}

TEST(RunStore, WritesAndReadsBack) {
  const fs::path file = scratch("a.mpscope");
  fs::remove(file);
  {
    RunWriter w(file, RunHeader{R"({"name":"x"})", R"({"name":"x","steps":3})", "/x.json", "0.1.0", 3});
    LaneRow lane;
    lane.name = "fp16";
    lane.recipe = "fp16-amp";
    lane.backend = "cpu";
    lane.mma = "h100";
    lane.config_json = "{}";
    const std::int64_t id = w.add_lane(lane);
    const std::int64_t t = w.add_tensor({0, id, 1, "layer1.weight", "weight", "fp32", 16});
    for (int s = 0; s < 3; ++s) {
      StepRow row;
      row.lane_id = id;
      row.step = s;
      row.loss = 1.0 / (s + 1);
      row.loss_scale = 65536;
      row.accuracy = s == 2 ? std::optional<double>(0.5) : std::nullopt;
      w.add_step(row);
      TensorStatRow ts;
      ts.tensor_id = t;
      ts.histogram = Log2Histogram::of(std::vector<float>{1.0f, 2.0f * static_cast<float>(s + 1)});
      ts.rounded = 16;
      ts.underflow = s;
      w.add_tensor_stats(id, s, {ts});
      w.add_layer_stats({id, s, 1, 0.1, 0.99, 0.25});
    }
    w.add_event({id, 2, "skip", "", 32768.0, "optimizer step skipped"});
    lane.id = id;
    lane.verdict = "ok";
    lane.first_nonfinite = "layer1.weight";
    lane.first_nonfinite_step = 1;
    w.update_lane(lane);
    w.finish("finished");
  }
  EXPECT_FALSE(fs::exists(file.string() + "-wal"));  // folded into the file
  const RunReader r(file);
  const RunSummary s = r.summary();
  EXPECT_EQ(s.status, "finished");
  EXPECT_EQ(s.schema_version, run_schema_version);
  EXPECT_EQ(s.steps_planned, 3);
  EXPECT_EQ(s.resolved_json, R"({"name":"x","steps":3})");
  const auto lanes = r.lanes();
  ASSERT_EQ(lanes.size(), 1u);
  EXPECT_EQ(lanes[0].verdict, "ok");
  EXPECT_EQ(lanes[0].first_nonfinite_step, 1);
  const auto steps = r.steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1].loss, 0.5);
  EXPECT_FALSE(steps[0].accuracy.has_value());
  EXPECT_EQ(steps[2].accuracy, 0.5);
  const auto stats = r.tensor_stats(r.tensors()[0].id);
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[2].underflow, 2);
  EXPECT_EQ(stats[2].histogram.count_at(2), 1);  // 6.0
  EXPECT_EQ(r.tensor_stats_at(lanes[0].id, 1).size(), 1u);
  EXPECT_EQ(r.layer_stats(lanes[0].id).size(), 3u);
  EXPECT_EQ(r.events().at(0).kind, "skip");
  EXPECT_EQ(r.last_step(lanes[0].id), 2);
  EXPECT_THROW(RunWriter(file, RunHeader{}), RunStoreError);  // never over an existing file
  fs::remove(file);
}

TEST(RunStore, RefusesFilesThatAreNotRuns) {
  std::ofstream(scratch("junk.mpscope")) << "not a database at all, just some words to fill a page";
  EXPECT_THROW(RunReader(scratch("junk.mpscope")), RunStoreError);
  EXPECT_THROW(RunReader(scratch("missing.mpscope")), RunStoreError);
}

// A child process writes steps and commits every few; the parent reads the run while it grows, then kills the
// child with SIGKILL: the file must open, with every committed step, and with consistent rows.
TEST(RunStore, SurvivesSigkillAndCanBeReadWhileWritten) {
  const fs::path file = scratch("killed.mpscope");
  fs::remove(file);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RunWriter w(file, RunHeader{"{}", "{}", "", "test", 1000000});
    LaneRow lane;
    lane.name = "l";
    lane.recipe = "fp32";
    lane.backend = "cpu";
    lane.mma = "fp32";
    lane.is_reference = true;
    lane.config_json = "{}";
    const std::int64_t id = w.add_lane(lane);
    for (std::int64_t s = 0;; ++s) {
      StepRow row;
      row.lane_id = id;
      row.step = s;
      row.loss = static_cast<double>(s);
      w.add_step(row);
      w.add_layer_stats({id, s, 1, 0.0, 1.0, 0.0});
      if (s % 10 == 9) {
        w.set_meta("steps_done", std::to_string(s + 1));
        w.commit();
      }
    }
  }
  // Follow the run from this process while the child writes it.
  std::int64_t seen = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (seen < 200 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    try {
      const RunReader r(file);
      if (!r.lanes().empty()) {
        const std::int64_t last = r.last_step(r.lanes()[0].id);
        EXPECT_GE(last, seen);  // a reader only ever sees the run grow
        seen = last;
      }
    } catch (const RunStoreError&) {  // not created yet
    }
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(seen, 200) << "the reader never saw the run grow";

  const RunReader r(file);
  const RunSummary s = r.summary();
  EXPECT_EQ(s.status, "running");  // nobody finished it
  const auto lanes = r.lanes();
  ASSERT_EQ(lanes.size(), 1u);
  const auto steps = r.steps(lanes[0].id);
  ASSERT_GE(static_cast<std::int64_t>(steps.size()), seen + 1);
  // every committed batch is whole: steps 0..n-1 without gaps, a multiple of the commit size, and its layer rows
  EXPECT_EQ(steps.size() % 10, 0u);
  for (std::size_t i = 0; i < steps.size(); ++i) ASSERT_EQ(steps[i].step, static_cast<std::int64_t>(i));
  EXPECT_EQ(r.layer_stats(lanes[0].id).size(), steps.size());
  EXPECT_EQ(s.steps_done, static_cast<std::int64_t>(steps.size()));
  fs::remove_all(file.parent_path());
}

}  // namespace
