// mpscope run / info / export end to end: the run file, the table, exit codes, no overwrites, no file from a bad
// experiment or a GPU lane without a GPU.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "analysis/run_store.hpp"

namespace fs = std::filesystem;

namespace {

struct Result {
  int status = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

class CliRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mpscope_clirun_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write("exp.json", R"({
      "name": "cli", "seed": 1, "steps": 12, "batch_size": 16,
      "data": {"source": "spiral", "classes": 3, "points_per_class": 30},
      "model": {"type": "mlp", "layers": [2, 8, 3]},
      "lanes": [{"name": "fp32", "recipe": "fp32", "reference": true},
                {"name": "fp16", "recipe": "fp16-amp", "loss_scale": {"type": "dynamic"}}],
      "record": {"every": 4}})");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(dir_ / name) << text; }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  Result run(const std::string& args) const {
    const std::string cmd = std::string(MPSCOPE_CLI) + " " + args + " >" + path("stdout") + " 2>" + path("stderr");
    const int raw = std::system(cmd.c_str());
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(path("stdout")), slurp(path("stderr"))};
  }
  fs::path dir_;
};

TEST_F(CliRun, RunWritesTheRunFileBesideTheExperimentAndPrintsATable) {
  const Result r = run("run " + path("exp.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("exp.mpscope")));
  for (const char* column : {"lane", "final loss", "accuracy", "skipped", "grad underflow", "max |dloss|", "verdict"})
    EXPECT_TRUE(contains(r.out, column)) << column;
  EXPECT_TRUE(contains(r.out, "ok (reference)"));
  EXPECT_TRUE(contains(r.err, "step 12/12"));  // progress as plain lines when stderr is not a terminal
  const mpscope::analysis::RunReader run_file(path("exp.mpscope"));
  EXPECT_EQ(run_file.summary().status, "finished");
  EXPECT_EQ(run_file.steps().size(), 24u);

  // never over an existing run without --force; the old file is untouched
  const auto before = fs::last_write_time(path("exp.mpscope"));
  const Result again = run("run " + path("exp.json"));
  EXPECT_EQ(again.status, 2);
  EXPECT_TRUE(contains(again.err, "already exists (use --force"));
  EXPECT_EQ(fs::last_write_time(path("exp.mpscope")), before);
  EXPECT_EQ(run("run --force -q " + path("exp.json")).status, 0);

  // --out, --steps, --lanes
  const Result some = run("run -q --steps 5 --lanes fp16 --out " + path("one.mpscope") + " " + path("exp.json"));
  ASSERT_EQ(some.status, 0) << some.err;
  const mpscope::analysis::RunReader one(path("one.mpscope"));
  EXPECT_EQ(one.lanes().size(), 1u);
  EXPECT_EQ(one.steps().size(), 5u);
}

TEST_F(CliRun, BadExperimentsExitTwoAndLeaveNoRunFile) {
  write("bad.json", R"({"name": "x", "data": {"source": "spiral"}, "model": {"layers": [2, 8, 3]},
                        "lanes": [{"name": "a", "recipe": "fp16-amp", "loss_scale": {"type": "dynamc"}}]})");
  Result r = run("run " + path("bad.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "lanes[0].loss_scale.type: 'dynamc' is not one of none, static, dynamic (did you mean 'dynamic'?)"))
      << r.err;
  EXPECT_FALSE(fs::exists(path("bad.mpscope")));
  write("shape.json", R"({"data": {"source": "spiral"}, "model": {"layers": [3, 8, 3]}, "lanes": [{"name": "a", "recipe": "fp32"}]})");
  r = run("run " + path("shape.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "model.layers[0]: the data has 2 input features")) << r.err;
  EXPECT_FALSE(fs::exists(path("shape.mpscope")));
  r = run("run " + path("missing.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "missing.json: no such file"));
  r = run("run --lanes fp99 " + path("exp.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--lanes: no lane 'fp99'"));
  EXPECT_FALSE(fs::exists(path("exp.mpscope")));
  // --force replaces a regular file that is no input of the command, nothing else (issue 17: it deleted the
  // experiment itself, and replaced empty directories)
  const std::string experiment = slurp(path("exp.json"));
  r = run("run --force --out " + path("exp.json") + " " + path("exp.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "the output would overwrite the input")) << r.err;
  EXPECT_EQ(slurp(path("exp.json")), experiment);
  fs::create_directory(path("empty.mpscope"));
  r = run("run --force --out " + path("empty.mpscope") + " " + path("exp.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "exists and is not a regular file")) << r.err;
  EXPECT_TRUE(fs::is_directory(path("empty.mpscope")));
  r = run("run --steps 99999999999999999999 " + path("exp.json"));  // (issue 17: was clamped to 2^63 - 1 and run)
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--steps")) << r.err;
  r = run("run --threads -3 " + path("exp.json"));  // (issue 17: a thread count is bounded and checked)
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--threads: Value -3 not in range 0 to 4096")) << r.err;
  EXPECT_FALSE(fs::exists(path("exp.mpscope")));
}

TEST_F(CliRun, GpuLanesWithoutAGpuStopBeforeTrainingOrFallBack) {
  write("gpu.json", R"({"steps": 3, "batch_size": 16, "data": {"source": "spiral", "points_per_class": 20},
                        "model": {"layers": [2, 8, 3]},
                        "lanes": [{"name": "cpu", "recipe": "fp32"}, {"name": "gpu", "recipe": "fp16-amp", "backend": "gpu"}]})");
  Result r = run("doctor");
  ASSERT_EQ(r.status, 0) << r.err;  // no GPU is a finding, not a failure
  EXPECT_TRUE(contains(r.out, "CPU kernels"));
  EXPECT_TRUE(contains(r.out, "CUDA build"));
  if (contains(r.out, "GPU 0")) {  // a machine with a CUDA device runs the lane for real
    r = run("run -q " + path("gpu.json"));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains(r.err, "warning:"));
    return;
  }
  EXPECT_TRUE(contains(r.out, "GPU          none") || contains(r.out, "CUDA build   no")) << r.out;
  r = run("run " + path("gpu.json"));
  EXPECT_EQ(r.status, 3);
  EXPECT_TRUE(contains(r.err, "lanes gpu need a GPU")) << r.err;
  EXPECT_TRUE(contains(r.err, "--fallback cpu"));
  EXPECT_FALSE(fs::exists(path("gpu.mpscope")));
  r = run("run --fallback cpu " + path("gpu.json"));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "warning:"));
  EXPECT_TRUE(contains(r.err, "run emulated on the CPU"));
}

TEST_F(CliRun, InfoAndExport) {
  ASSERT_EQ(run("run -q " + path("exp.json")).status, 0);
  Result r = run("info " + path("exp.mpscope"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "status       finished"));
  EXPECT_TRUE(contains(r.out, "steps        12 of 12 recorded"));
  EXPECT_TRUE(contains(r.out, "fp32 (reference)"));
  EXPECT_TRUE(contains(r.out, "fp16-amp"));

  r = run("export " + path("exp.mpscope") + " --table steps");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("lane,step,loss,loss_scale,skipped"));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 25);
  r = run("export " + path("exp.mpscope") + " --table steps --lane fp16 --format json");
  ASSERT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.out, "\"loss_scale\": 65536"));
  EXPECT_FALSE(contains(r.out, "\"lane\": \"fp32\""));
  r = run("export " + path("exp.mpscope") + " --table tensors --lane fp16");
  EXPECT_TRUE(contains(r.out, "layer1.weight_grad,weight_grad,1,fp16"));
  r = run("export " + path("exp.mpscope") + " --table layers --out " + path("layers.csv"));
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(slurp(path("layers.csv")).starts_with("lane,step,layer,name,weight_distance,grad_cosine,lost_updates\nfp32,0,1,layer1,"));
  r = run("export " + path("exp.mpscope") + " --table events");
  EXPECT_EQ(r.status, 0);
  // the temporary file is a fresh name (issue 17: an existing OUT.tmp was overwritten); a device is no output
  std::ofstream(path("steps.csv.tmp")) << "precious";
  r = run("export " + path("exp.mpscope") + " --out " + path("steps.csv"));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(slurp(path("steps.csv.tmp")), "precious");
  EXPECT_TRUE(slurp(path("steps.csv")).starts_with("lane,step,"));
  r = run("export " + path("exp.mpscope") + " --force --out /dev/full");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "/dev/full exists and is not a regular file")) << r.err;

  r = run("export " + path("exp.mpscope") + " --lane nope");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--lane: no lane 'nope'"));
  r = run("export " + path("exp.mpscope") + " --table rows");
  EXPECT_EQ(r.status, 2);
  r = run("info " + path("exp.json"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "not an mpscope run file")) << r.err;
}

}  // namespace
