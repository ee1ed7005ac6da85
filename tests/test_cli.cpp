// The mpscope command line end to end: each command's output and its errors (message, exit status 2, and no
// output file left behind or overwritten).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "sim/block_scaling.hpp"
#include "sim/gemm.hpp"
#include "sim/npy.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
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

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mpscope_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::string& args) const {
    const std::string cmd = std::string(MPSCOPE_CLI) + " " + args + " >" + (dir_ / "stdout").string() + " 2>" +
                            (dir_ / "stderr").string();
    const int raw = std::system(cmd.c_str());
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(dir_ / "stdout"), slurp(dir_ / "stderr")};
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

TEST_F(Cli, FormatsListsEveryBuiltInFormat) {
  const Result r = run("formats");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* name : {"fp64", "fp32", "tf32", "fp16", "bf16", "e5m2", "e4m3fn"}) EXPECT_TRUE(contains(r.out, name));
  EXPECT_TRUE(contains(r.out, "65504"));
  EXPECT_TRUE(contains(r.out, "448"));
  EXPECT_TRUE(contains(r.out, "(2^-24)"));
}

TEST_F(Cli, InspectShowsBitsValueErrorAndNeighbours) {
  const Result r = run("inspect 0.1 --format fp16");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "0 01011 1001100110"));
  EXPECT_TRUE(contains(r.out, "0x2E66"));
  EXPECT_TRUE(contains(r.out, "0.0999755859375"));
  EXPECT_TRUE(contains(r.out, "rounded down"));
  EXPECT_TRUE(contains(r.out, "0.09991455078125  <  x  <  0.10003662109375"));
  EXPECT_TRUE(contains(r.out, "ulp         6.103515625e-05"));

  const Result all = run("inspect -2.5");
  ASSERT_EQ(all.status, 0) << all.err;
  for (const char* name : {"fp64", "fp32", "tf32", "fp16", "bf16", "e5m2", "e4m3fn"}) EXPECT_TRUE(contains(all.out, name));
  EXPECT_TRUE(contains(all.out, "(exact)") || contains(all.out, "exact"));

  const Result over = run("inspect 500 -f e4m3fn");
  EXPECT_TRUE(contains(over.out, "overflow")) << over.out;
  const Result bits = run("inspect --bits 0x3C01 -f fp16");
  ASSERT_EQ(bits.status, 0) << bits.err;
  EXPECT_TRUE(contains(bits.out, "1.0009765625"));

  // the FP8 accumulator chain: 14 significant bits, cut toward zero unless told otherwise
  const Result acc = run("inspect 1234.567 -f fp8acc");
  ASSERT_EQ(acc.status, 0) << acc.err;
  EXPECT_TRUE(contains(acc.out, "rounding toward-zero")) << acc.out;
  EXPECT_TRUE(contains(acc.out, "value       1234.5\n")) << acc.out;
  EXPECT_TRUE(contains(acc.out, "1234.375  <  x  <  1234.625")) << acc.out;
  EXPECT_TRUE(contains(run("inspect 1234.567 -f fp8acc -r nearest").out, "value       1234.625\n"));
  // MX element formats: saturating, no NaN
  EXPECT_TRUE(contains(run("inspect 100 -f fp4_e2m1").out, "value       6\n"));
  EXPECT_TRUE(contains(run("inspect nan -f fp6_e3m2").out, "has no NaN"));
}

TEST_F(Cli, InspectErrors) {
  Result r = run("inspect abc");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "cannot read 'abc' as a number"));
  r = run("inspect 1 -f fp17");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown format 'fp17'"));
  r = run("inspect --bits 0x3C00");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--bits needs exactly one --format"));
  r = run("inspect --bits 0x13C00 -f fp16");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "more than the 16 bits"));
  r = run("inspect");
  EXPECT_EQ(r.status, 2);
  r = run("nosuchcommand");
  EXPECT_EQ(r.status, 2);
}

TEST_F(Cli, QuantizeRoundsAndCounts) {
  const std::vector<float> in = {0.1f, 1e-8f, 70000.0f, -3e-6f, 1.0f, NAN};
  write_npy(path("in.npy"), NpyArray::from<float>(in, {2, 3}));
  const Result r = run("quantize --format fp16 " + path("in.npy") + " " + path("out.npy"));
  ASSERT_EQ(r.status, 0) << r.err;
  const NpyArray out = read_npy(path("out.npy"));
  EXPECT_EQ(out.shape, (std::vector<std::int64_t>{2, 3}));
  const auto v = out.values<float>();
  EXPECT_EQ(v[0], static_cast<float>(round(0.1f, fp16())));
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_TRUE(std::isinf(v[2]));
  EXPECT_EQ(v[3], static_cast<float>(round(-3e-6f, fp16())));
  EXPECT_TRUE(std::isnan(v[5]));
  EXPECT_TRUE(contains(r.err, "underflow (nonzero -> 0)      1 ")) << r.err;
  EXPECT_TRUE(contains(r.err, "subnormal results             1 ")) << r.err;
  EXPECT_TRUE(contains(r.err, "overflow (finite -> inf/NaN)  1 ")) << r.err;

  // float64 input, directed rounding, switches
  const std::vector<double> wide = {0.1, 1e6};
  write_npy(path("wide.npy"), NpyArray::from<double>(wide, {2}));
  const Result w = run("quantize -f fp16 -r toward-zero --saturate " + path("wide.npy") + " " + path("w.npy"));
  ASSERT_EQ(w.status, 0) << w.err;
  EXPECT_EQ(read_npy(path("w.npy")).values<float>()[1], 65504.0f);
  EXPECT_TRUE(contains(w.err, "saturated (clamped to max)    1"));
}

TEST_F(Cli, QuantizeStochasticIsReproducibleWithASeed) {
  std::vector<float> in(1000, 1.0f + 1.0f / 4096);
  write_npy(path("in.npy"), NpyArray::from<float>(in, {1000}));
  ASSERT_EQ(run("quantize -f fp16 -r stochastic --seed 3 " + path("in.npy") + " " + path("a.npy")).status, 0);
  ASSERT_EQ(run("quantize -f fp16 -r stochastic --seed 3 " + path("in.npy") + " " + path("b.npy")).status, 0);
  ASSERT_EQ(run("quantize -f fp16 -r stochastic --seed 4 " + path("in.npy") + " " + path("c.npy")).status, 0);
  const auto a = read_npy(path("a.npy")), b = read_npy(path("b.npy")), c = read_npy(path("c.npy"));
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_NE(a.bytes, c.bytes);
  int ups = 0;
  for (float x : a.values<float>()) ups += x != 1.0f;
  EXPECT_GT(ups, 150);  // p = 1/4 of 1000: 250 expected
  EXPECT_LT(ups, 350);
}

TEST_F(Cli, QuantizeErrorsLeaveNoOutputAndOverwriteNothing) {
  Result r = run("quantize -f fp16 " + path("missing.npy") + " " + path("out.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "missing.npy: no such file"));
  EXPECT_FALSE(fs::exists(path("out.npy")));

  const std::vector<std::int64_t> ints = {1, 2};
  write_npy(path("ints.npy"), NpyArray::from<std::int64_t>(ints, {2}));
  r = run("quantize -f fp16 " + path("ints.npy") + " " + path("out.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "expected float32 or float64 data, found int64"));
  EXPECT_FALSE(fs::exists(path("out.npy")));

  const std::vector<float> x = {1.0f};
  write_npy(path("x.npy"), NpyArray::from<float>(x, {1}));
  std::ofstream(path("keep.npy")) << "precious";
  r = run("quantize -f fp16 " + path("x.npy") + " " + path("keep.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "already exists (use --force"));
  EXPECT_EQ(slurp(path("keep.npy")), "precious");
  EXPECT_EQ(run("quantize -f fp16 --force " + path("x.npy") + " " + path("keep.npy")).status, 0);
  EXPECT_EQ(read_npy(path("keep.npy")).values<float>()[0], 1.0f);

  r = run("quantize -f fp99 " + path("x.npy") + " " + path("o.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown format 'fp99'"));
  r = run("quantize -f fp64 " + path("x.npy") + " " + path("o.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "float32 output"));
  r = run("quantize -f fp16 -r sideways " + path("x.npy") + " " + path("o.npy"));
  EXPECT_EQ(r.status, 2);
  std::ofstream(path("garbage.npy")) << "garbage";
  r = run("quantize -f fp16 " + path("garbage.npy") + " " + path("o.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "not an NPY file"));
  EXPECT_FALSE(fs::exists(path("o.npy")));
  r = run("quantize -f fp16 --force " + path("x.npy") + " " + path("x.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "would overwrite the input"));
}

// Block-scaled formats: blocks along the chosen axis (a (3, 40) array blocked along axis 0 is 40 columns of 3), the
// values sim::quantize_blocks gives, the scale bytes in the array's shape with the axis counting blocks; errors
// name the option and leave nothing behind.
TEST_F(Cli, QuantizeInBlocksAlongAnAxis) {
  std::vector<float> x(3 * 40);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::ldexp(1.0f + 0.1f * static_cast<float>(i % 7), static_cast<int>(i % 11) - 5);
  write_npy(path("x.npy"), NpyArray::from<float>(x, {3, 40}));
  Result r = run("quantize -f mxfp8_e4m3 --scales " + path("s.npy") + " " + path("x.npy") + " " + path("q.npy"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "6 blocks of 32 along axis 1")) << r.err;
  const BlockQuantized want = quantize_blocks(x, 3, 40, block_format("mxfp8_e4m3"));
  const NpyArray q = read_npy(path("q.npy")), s = read_npy(path("s.npy"));
  const auto qv = q.values<float>();
  EXPECT_EQ(std::vector<float>(qv.begin(), qv.end()), want.values);
  EXPECT_EQ(s.shape, (std::vector<std::int64_t>{3, 2}));
  const auto sv = s.values<std::uint8_t>();
  EXPECT_EQ(std::vector<std::uint8_t>(sv.begin(), sv.end()), want.scale_bits);

  // along axis 0: the columns, each one block of 3
  r = run("quantize -f mxfp4_e2m1 -r nearest-away --scale-rule round-up --axis 0 --scales " + path("s0.npy") + " " +
          path("x.npy") + " " + path("q0.npy"));
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<float> columns(x.size());
  for (std::size_t c = 0; c < 40; ++c)
    for (std::size_t row = 0; row < 3; ++row) columns[c * 3 + row] = x[row * 40 + c];
  BlockOptions o;
  o.rule = ScaleRule::round_up;
  o.rounding = ElementRounding::nearest_away;
  const BlockQuantized by_column = quantize_blocks(columns, 40, 3, block_format("mxfp4_e2m1"), o);
  const NpyArray q0 = read_npy(path("q0.npy"));
  for (std::size_t c = 0; c < 40; ++c)
    for (std::size_t row = 0; row < 3; ++row)
      ASSERT_EQ(q0.values<float>()[row * 40 + c], by_column.values[c * 3 + row]) << row << "," << c;
  EXPECT_EQ(read_npy(path("s0.npy")).shape, (std::vector<std::int64_t>{1, 40}));

  // FP8 block scaling: float32 scales (1 / scale), one per 1x128 block; current scaling: one for the tensor
  r = run("quantize -f fp8_block_e4m3 --scales " + path("sb.npy") + " " + path("x.npy") + " " + path("qb.npy"));
  ASSERT_EQ(r.status, 0) << r.err;
  const NpyArray sb = read_npy(path("sb.npy"));
  EXPECT_EQ(sb.shape, (std::vector<std::int64_t>{3, 1}));
  EXPECT_EQ(sb.values<float>()[0], quantize_blocks(x, 3, 40, block_format("fp8_block_e4m3")).block_scales[0]);
  r = run("quantize -f fp8_current_e5m2 --scales " + path("sc.npy") + " " + path("x.npy") + " " + path("qc.npy"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "one scale for the whole tensor")) << r.err;
  EXPECT_EQ(read_npy(path("sc.npy")).shape, (std::vector<std::int64_t>{1, 1}));

  r = run("quantize -f nvfp4 --scale-rule ocp " + path("x.npy") + " " + path("e1.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--scale-rule: nvfp4 has E4M3 block scales")) << r.err;
  r = run("quantize -f mxfp8_e5m2 --axis 2 " + path("x.npy") + " " + path("e2.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--axis 2: ")) << r.err;
  r = run("quantize -f mxfp8_e5m2 -r toward-zero " + path("x.npy") + " " + path("e3.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown element rounding 'toward-zero'")) << r.err;
  r = run("quantize -f fp16 --scales " + path("s9.npy") + " " + path("x.npy") + " " + path("e4.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "apply to block-scaled formats")) << r.err;
  r = run("quantize -f mxfp8_e4m3 --saturate " + path("x.npy") + " " + path("e5.npy"));
  EXPECT_EQ(r.status, 2);
  for (const char* f : {"e1.npy", "e2.npy", "e3.npy", "e4.npy", "e5.npy", "s9.npy"}) EXPECT_FALSE(fs::exists(path(f))) << f;
}

TEST_F(Cli, GemmWritesTheModelsResultAndReports) {
  const std::vector<float> a = {1.0f, 2.0f, 0.5f, -3.0f, 0.25f, 1024.0f};  // (2, 3)
  const std::vector<float> b = {1.0f, 0.0009765625f, -2.0f, 4.0f, 8.0f, 0.5f};  // (3, 2)
  const std::vector<float> c = {0.1f, -0.2f, 1e-3f, 7.0f};
  write_npy(path("a.npy"), NpyArray::from<float>(a, {2, 3}));
  write_npy(path("b.npy"), NpyArray::from<float>(b, {3, 2}));
  write_npy(path("c.npy"), NpyArray::from<float>(c, {2, 2}));
  for (const char* model : {"fp32", "exact", "h100"}) {
    const std::string out = path(std::string(model) + ".npy");
    const Result r = run(std::string("gemm --arith ") + model + " " + path("a.npy") + " " + path("b.npy") + " " +
                         path("c.npy") + " " + out + " --report");
    ASSERT_EQ(r.status, 0) << r.err;
    std::vector<float> want(4);
    gemm(parse_accumulation(model), MatrixView::row_major(a.data(), 2, 3), MatrixView::row_major(b.data(), 3, 2),
         MatrixView::row_major(c.data(), 2, 2), want);
    const NpyArray result = read_npy(out);
    const auto got = result.values<float>();
    EXPECT_EQ(std::vector<float>(got.begin(), got.end()), want) << model;
    EXPECT_TRUE(contains(r.err, "relative error max:")) << r.err;
    EXPECT_TRUE(contains(r.err, "relative error mean:")) << r.err;
  }
  const Result no_c = run("gemm --arith h100 " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  ASSERT_EQ(no_c.status, 0) << no_c.err;
  EXPECT_EQ(read_npy(path("d.npy")).shape, (std::vector<std::int64_t>{2, 2}));
}

TEST_F(Cli, GemmErrors) {
  const std::vector<float> a = {1.0f, 0.1f, 2.0f, 3.0f};  // 0.1 is not an fp16 value
  const std::vector<float> b = {1.0f, 1.0f};
  write_npy(path("a.npy"), NpyArray::from<float>(a, {2, 2}));
  write_npy(path("b.npy"), NpyArray::from<float>(b, {2, 1}));
  Result r = run("gemm --arith h100 " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "element [0, 1] = 0.1 is not an fp16 value")) << r.err;
  EXPECT_FALSE(fs::exists(path("d.npy")));

  const std::vector<float> ok = {1.0f, 2.0f, 3.0f};
  write_npy(path("row.npy"), NpyArray::from<float>(ok, {1, 3}));
  r = run("gemm --arith fp32 " + path("row.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "A's columns must equal B's rows")) << r.err;
  write_npy(path("vec.npy"), NpyArray::from<float>(ok, {3}));
  r = run("gemm --arith fp32 " + path("vec.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "expected a 2-D matrix")) << r.err;
  r = run("gemm --arith tf32 " + path("row.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown accumulation model 'tf32'")) << r.err;
  r = run("gemm --arith fp32 " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "expected A.npy B.npy [C.npy] OUT.npy")) << r.err;
  r = run("gemm --arith h100 --format bf16 " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "element [0, 1] = 0.1 is not a bf16 value (nearest bf16: 0.10009765625)")) << r.err;
  r = run("gemm --arith h100 --format e5m2 " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--format: e5m2 x e5m2: Hopper's FP8 GEMMs take at most one e5m2 operand")) << r.err;
  r = run("gemm --arith h100 --format fp32 " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "fp32: no Hopper tensor-core model")) << r.err;
  r = run("gemm --arith h100 --fp8-accumulation fast " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--fp8-accumulation: applies to --arith h100 with FP8 inputs")) << r.err;
  r = run("gemm --arith h100 --format fp17 " + path("a.npy") + " " + path("b.npy") + " " + path("d.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--format: ")) << r.err;
  EXPECT_FALSE(fs::exists(path("d.npy")));
}

// The Hopper models through the CLI: an FP8 cuBLASLt case of the H200 oracle (A in e5m2, B in e4m3fn, K 1024),
// both accumulations, bit for bit.
TEST_F(Cli, GemmReproducesTheH200sFp8Gemms) {
  const NpzFile npz(mpscope::test::data_dir() / "hopper_cublas.npz");
  for (const char* acc : {"acc", "fast"}) {
    const std::string key = std::string("e5m2e4m3_k1024_") + acc;
    const NpyArray a_codes = npz.read(key + "_a"), b_codes = npz.read(key + "_b"), d = npz.read(key + "_d");
    std::vector<float> a, b;
    for (std::uint8_t code : a_codes.values<std::uint8_t>()) a.push_back(static_cast<float>(decode(code, e5m2())));
    for (std::uint8_t code : b_codes.values<std::uint8_t>()) b.push_back(static_cast<float>(decode(code, e4m3fn())));
    write_npy(path("fa.npy"), NpyArray::from<float>(a, {64, 1024}));
    write_npy(path("fb.npy"), NpyArray::from<float>(b, {1024, 64}));
    const std::string out = path(std::string("fd_") + acc + ".npy");
    const Result r = run("gemm --arith h100 --format e5m2 --format-b e4m3fn --fp8-accumulation " +
                         std::string(std::string(acc) == "acc" ? "promoted" : "fast") + " " + path("fa.npy") + " " +
                         path("fb.npy") + " " + out);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "e5m2 x e4m3fn: blocks of 32, 13 bits kept, 14-bit toward zero")) << r.err;
    const NpyArray result = read_npy(out);
    const auto want = d.values<float>(), got = result.values<float>();
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << acc << " " << i;
  }
}

}  // namespace
