// Run files: what is written reads back; a run killed with SIGKILL leaves a file that opens with every committed
// step; another process can read a run while it is being written; bad files are refused clearly.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <thread>

#include "analysis/histogram.hpp"
#include "analysis/histogram_kernels.hpp"
#include "analysis/run_store.hpp"
#include "analysis/run_store_sql.hpp"

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

// Against a plain reference (std::ilogb per value) on random tensors of every length the fast paths treat
// differently (one count table, eight tables, a tail, several blocks), with normals over the whole range or within
// a few binades, subnormals, and (in half the tensors) zeros, inf and NaN; every variant this CPU runs.
// The kernel's histogram of v against std::ilogb, value by value.
template <typename T>
void expect_matches_ilogb(const detail::HistogramKernel& kernel, const std::vector<T>& v, const std::string& at) {
  std::map<int, std::int64_t> want;
  std::int64_t zeros = 0, infs = 0, nans = 0;
  for (T x : v) {
    if (std::isnan(x)) ++nans;
    else if (std::isinf(x)) ++infs;
    else if (x == 0) ++zeros;
    else ++want[std::ilogb(x)];
  }
  Log2Histogram h;
  if constexpr (std::is_same_v<T, float>) h = kernel.of_float(v);
  else h = kernel.of_double(v);
  ASSERT_EQ(h.zeros, zeros) << at;
  ASSERT_EQ(h.infs, infs) << at;
  ASSERT_EQ(h.nans, nans) << at;
  std::map<int, std::int64_t> got;
  for (std::size_t i = 0; i < h.counts.size(); ++i)
    if (h.counts[i] != 0) got[h.lo + static_cast<int>(i)] = h.counts[i];
  ASSERT_EQ(got, want) << at;
  if (!want.empty()) {
    EXPECT_EQ(h.lo, want.begin()->first) << at;  // the occupied range exactly
    EXPECT_EQ(h.hi(), want.rbegin()->first) << at;
  } else {
    EXPECT_TRUE(h.counts.empty()) << at;
  }
}

template <typename T>
void check_histograms_against_ilogb(const detail::HistogramKernel& kernel, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int min_exp = std::numeric_limits<T>::min_exponent - std::numeric_limits<T>::digits;  // the smallest subnormal
  const int max_exp = std::numeric_limits<T>::max_exponent - 1;
  for (std::size_t n : {0, 1, 3, 7, 64, 255, 256, 257, 320, 383, 511, 512, 513, 1000, 1023, 1024, 1025, 4096, 8191, 8200, 20000}) {
    std::vector<T> v(n);
    // The binades spanned: a few (as real tensors), up to 30 (the widest that the AVX-512 count compares), or all.
    const unsigned spread = static_cast<unsigned>(rng() % 3);
    const bool narrow = spread < 2;
    const int width = spread == 0 ? 6 : 30;
    // no specials, zeros only (ReLU outputs: the range stays narrow), or zeros, infinities and NaNs
    const unsigned specials = static_cast<unsigned>(rng() % 3);
    // Where a narrow range lies: mid-range, over the subnormals (the zeros' field), or at the top (next to inf/NaN).
    const unsigned place = static_cast<unsigned>(rng() % 4);
    const int normal_min_exp = std::numeric_limits<T>::min_exponent - 1;
    const int centre = place == 2 ? normal_min_exp - width / 2 : place == 3 ? max_exp - width + 1 : static_cast<int>(rng() % 40) - 20;
    for (auto& x : v) {
      unsigned kind = 100;  // an ordinary value
      if (specials == 1) kind = rng() % 20 == 0 ? 0 : 100;
      if (specials == 2) kind = static_cast<unsigned>(rng() % 100);
      if (kind == 0) x = 0;
      else if (kind == 1) x = std::numeric_limits<T>::infinity();
      else if (kind == 2) x = std::numeric_limits<T>::quiet_NaN();
      else {
        const int e = narrow ? std::max(min_exp, centre + static_cast<int>(rng() % static_cast<unsigned>(width)))
                             : min_exp + static_cast<int>(rng() % static_cast<unsigned>(max_exp - min_exp + 1));
        x = std::ldexp(static_cast<T>(1) + static_cast<T>(rng() % 1000) / 1000, e);
      }
      if (rng() % 2 == 0) x = -x;
    }
    expect_matches_ilogb(kernel, v, std::string(kernel.isa) + " n=" + std::to_string(n));
  }
}

TEST(Histogram, MatchesIlogbOnRandomTensors) {
  const auto kernels = detail::runnable_histograms();
  ASSERT_FALSE(kernels.empty());
  for (const auto& kernel : kernels)
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      check_histograms_against_ilogb<float>(kernel, seed);
      check_histograms_against_ilogb<double>(kernel, seed);
    }
}

// Long tensors are counted a chunk of 4096 values at a time by some variants: chunks of different kinds in one
// tensor (only zeros; a narrow range with zeros; subnormals with zeros; more than 32 binades) and a ragged tail.
TEST(Histogram, ChunksOfDifferentKindsInOneTensor) {
  std::mt19937_64 rng(3);
  const auto value = [&](int lowest, int width) {
    const float x = std::ldexp(1.0f + static_cast<float>(rng() % 1000) / 1000, lowest + static_cast<int>(rng() % static_cast<unsigned>(width)));
    return rng() % 2 == 0 ? -x : x;
  };
  std::vector<float> v;
  for (int i = 0; i < 4096; ++i) v.push_back(0.0f);
  for (int i = 0; i < 4096; ++i) v.push_back(rng() % 3 == 0 ? 0.0f : value(-8, 5));
  for (int i = 0; i < 4096; ++i) v.push_back(rng() % 3 == 0 ? 0.0f : value(-149, 30));  // subnormals and a few normals
  for (int i = 0; i < 4096; ++i) v.push_back(value(-60, 90));
  for (int i = 0; i < 77; ++i) v.push_back(rng() % 2 == 0 ? 0.0f : value(-20, 3));
  for (const auto& kernel : detail::runnable_histograms())
    for (int rotation = 0; rotation < 4; ++rotation) {  // each kind of chunk first, and last
      std::vector<float> w(v.begin(), v.end() - 77);
      std::rotate(w.begin(), w.begin() + rotation * 4096, w.end());
      w.insert(w.end(), v.end() - 77, v.end());
      expect_matches_ilogb(kernel, w, std::string(kernel.isa) + " rotation " + std::to_string(rotation));
    }
}

TEST(Histogram, OnlyZerosInfsOrNans) {
  for (const auto& kernel : detail::runnable_histograms()) {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> zeros(300, -0.0f), specials{inf, -inf, nan, 0.0f, inf};
    const Log2Histogram z = kernel.of_float(zeros), s = kernel.of_float(specials);
    EXPECT_EQ(z.zeros, 300) << kernel.isa;
    EXPECT_TRUE(z.counts.empty()) << kernel.isa;
    EXPECT_EQ(s.infs, 3) << kernel.isa;
    EXPECT_EQ(s.nans, 1) << kernel.isa;
    EXPECT_EQ(s.zeros, 1) << kernel.isa;
    EXPECT_TRUE(s.counts.empty()) << kernel.isa;
  }
}

// Damaged blobs are errors that say which blob and what is wrong, never a wrong histogram.
TEST(RunStore, DamagedBlobsAreNamedErrors) {
  const auto message = [](auto&& decode) {
    try {
      decode();
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { Log2Histogram::decode(std::vector<std::uint8_t>{1, 2}); }), "histogram blob is truncated");
  std::vector<std::uint8_t> overlong{1};
  overlong.insert(overlong.end(), 10, 0x80);
  EXPECT_EQ(message([&] { Log2Histogram::decode(overlong); }), "histogram blob has an overlong number");

  TensorStatRow row;
  row.tensor_id = 300;  // two varint bytes
  row.histogram = Log2Histogram::of(std::vector<float>{1.0f, 0.5f});
  std::vector<std::uint8_t> blob;
  detail::encode_stats({row}, blob);
  ASSERT_EQ(detail::decode_stats(blob, 7).at(0).tensor_id, 300);
  blob.resize(3);  // version, count, the first byte of the tensor id
  EXPECT_THROW(detail::decode_stats(blob, 7), RunStoreError);
  EXPECT_EQ(message([&] { detail::decode_stats(blob, 7); }), "tensor statistics blob is truncated");
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
