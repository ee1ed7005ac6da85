// Block-scaled formats (sim/block_scaling.hpp): bit for bit against tests/data/mx_blocks.npz — Microsoft's
// microxcaling reference (OCP's rule, ties to even and ties away) and TransformerEngine's MXFP8 rule on an H200 —
// for six input families; plus the rules' edges, NVFP4's construction, partial blocks and errors.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <limits>
#include <random>

#include "sim/block_scaling.hpp"
#include "sim/npy.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;

namespace {

const char* const cases[] = {"normal", "wide", "blockwide", "heavy", "tiny", "edges"};

std::uint32_t row_crc(const float* row, std::size_t n) {
  return static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(row), static_cast<uInt>(n * sizeof(float))));
}

// Every row of the oracle key's dequantized output against ours (CRC-32 of the row's bytes); the first differing
// row named with its first values.
void expect_rows(const NpzFile& npz, const std::string& key, const BlockQuantized& q, std::int64_t rows, std::int64_t length) {
  const NpyArray crc_array = npz.read(key + "_crc32");  // (values() views the array: keep it alive)
  const auto crc = crc_array.values<std::uint32_t>();
  ASSERT_EQ(static_cast<std::int64_t>(crc.size()), rows) << key;
  int differing = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = q.values.data() + r * length;
    if (row_crc(row, static_cast<std::size_t>(length)) == crc[static_cast<std::size_t>(r)]) continue;
    if (differing++ == 0) ADD_FAILURE() << key << ": row " << r << " differs (first values " << row[0] << ", " << row[1] << ")";
  }
  EXPECT_EQ(differing, 0) << key << ": rows that differ";
}

TEST(BlockScaling, OcpRuleMatchesMicroxcalingOnEveryOracleKey) {
  const NpzFile npz(mpscope::test::data_dir() / "mx_blocks.npz");
  const std::pair<const char*, const char*> formats[] = {{"fp8_e4m3", "mxfp8_e4m3"}, {"fp8_e5m2", "mxfp8_e5m2"},
                                                         {"fp6_e3m2", "mxfp6_e3m2"}, {"fp6_e2m3", "mxfp6_e2m3"},
                                                         {"fp4_e2m1", "mxfp4_e2m1"}};
  for (const char* c : cases) {
    const NpyArray x = npz.read(std::string("x_") + c);
    ASSERT_EQ(x.shape, (std::vector<std::int64_t>{64, 256}));
    const auto values = x.values<float>();
    for (const auto& [oracle, name] : formats) {
      for (const auto& [suffix, rounding] : {std::pair{"even", ElementRounding::nearest_even},
                                             std::pair{"nearest", ElementRounding::nearest_away}}) {
        BlockOptions o;
        o.rounding = rounding;
        const BlockQuantized q = quantize_blocks(values, 64, 256, block_format(name), o);
        expect_rows(npz, std::string("ocp_") + oracle + "_" + suffix + "_" + c, q, 64, 256);
      }
    }
  }
}

TEST(BlockScaling, RoundUpRuleMatchesTransformerEngineOnEveryOracleKey) {
  const NpzFile npz(mpscope::test::data_dir() / "mx_blocks.npz");
  for (const char* c : cases) {
    const NpyArray x = npz.read(std::string("x_") + c);
    const auto values = x.values<float>();
    for (const auto& [oracle, name] : {std::pair{"fp8_e4m3", "mxfp8_e4m3"}, std::pair{"fp8_e5m2", "mxfp8_e5m2"}}) {
      BlockOptions o;
      o.rule = ScaleRule::round_up;
      const BlockQuantized q = quantize_blocks(values, 64, 256, block_format(name), o);
      expect_rows(npz, std::string("te_") + oracle + "_" + c, q, 64, 256);
      const NpyArray scale_array = npz.read(std::string("te_scale_") + oracle + "_" + c);
      const auto scales = scale_array.values<std::uint8_t>();
      ASSERT_EQ(scales.size(), q.scale_bits.size());
      for (std::size_t i = 0; i < scales.size(); ++i) ASSERT_EQ(q.scale_bits[i], scales[i]) << oracle << " " << c << " block " << i;
      EXPECT_EQ(q.saturated, 0) << "the round-up rule never saturates";
    }
  }
}

// The rules at their edges: amax at and just below powers of two, zero blocks, the clamp at 2^-127.
TEST(BlockScaling, ScaleRulesAtTheirEdges) {
  const Format& e4m3 = block_format("mxfp8_e4m3").element;
  EXPECT_EQ(ocp_shared_exponent(1.0f, e4m3), -8);
  EXPECT_EQ(ocp_shared_exponent(448.0f, e4m3), 0);  // floor(log2 448) = 8
  EXPECT_EQ(ocp_shared_exponent(std::nextafter(2.0f, 0.0f), e4m3), -8);
  // float32's log2 of 8(1 - 2^-24) rounds to 3: the floor says 3, not 2 (microxcaling's result)
  EXPECT_EQ(ocp_shared_exponent(std::nextafter(8.0f, 0.0f), e4m3), 3 - 8);
  EXPECT_EQ(ocp_shared_exponent(0.0f, e4m3), -127);     // floor(log2 2^-126) - 8, clamped
  EXPECT_EQ(ocp_shared_exponent(1e-38f, e4m3), -127);
  EXPECT_EQ(ocp_shared_exponent(3e38f, e4m3), 127 - 8);
  EXPECT_EQ(round_up_scale_bits(448.0f, e4m3), 127);    // 448/448 = 1: 2^0
  EXPECT_EQ(round_up_scale_bits(449.0f, e4m3), 128);    // just above: up to 2^1
  EXPECT_EQ(round_up_scale_bits(0.0f, e4m3), 0);
  EXPECT_EQ(round_up_scale_bits(NAN, e4m3), 0xFF);
  EXPECT_EQ(round_up_scale_bits(INFINITY, e4m3), 0xFE);
  // 448 in a block whose amax is 480: OCP's shared exponent 0 saturates it to 448; the round-up rule scales by 2
  const std::vector<float> block = {480.0f, 448.0f, 1.0f / 512, 0.0f};
  BlockOptions ocp, round_up;
  round_up.rule = ScaleRule::round_up;
  const BlockQuantized a = quantize_blocks(block, 1, 4, block_format("mxfp8_e4m3"), ocp);
  const BlockQuantized b = quantize_blocks(block, 1, 4, block_format("mxfp8_e4m3"), round_up);
  EXPECT_EQ(a.values[0], 448.0f);
  EXPECT_EQ(a.saturated, 1);
  EXPECT_EQ(a.scale_bits[0], 127);
  EXPECT_EQ(b.values[0], 480.0f);
  EXPECT_EQ(b.scale_bits[0], 128);
  EXPECT_EQ(a.values[2], 1.0f / 512);  // 2^-9, E4M3's smallest subnormal, at scale 1
  EXPECT_EQ(b.values[2], 0.0f);        // at scale 2 it is 2^-10, half of it: a tie, to the even zero
  EXPECT_EQ(b.underflows, 1);
}

TEST(BlockScaling, ElementRoundings) {
  // MXFP4 of a block with amax 6 (shared exponent 0): 5 is a tie between 4 and 6, 0.75 between 0.5 and 1
  const std::vector<float> block = {6.0f, 5.0f, 0.75f, -5.0f, 0.25f};
  BlockOptions even, away;
  away.rounding = ElementRounding::nearest_away;
  const BlockQuantized e = quantize_blocks(block, 1, 5, block_format("mxfp4_e2m1"), even);
  const BlockQuantized a = quantize_blocks(block, 1, 5, block_format("mxfp4_e2m1"), away);
  EXPECT_EQ(e.values, (std::vector<float>{6, 4, 1, -4, 0}));
  EXPECT_EQ(a.values, (std::vector<float>{6, 6, 1, -6, 0.5f}));
  EXPECT_EQ(e.underflows, 1);
  // stochastic: every result is one of the two neighbours, the same seed the same result, the mean unbiased
  std::vector<float> many(32 * 1000, 5.0f);
  for (std::size_t i = 0; i < many.size(); i += 32) many[i] = 6.0f;
  BlockOptions s;
  s.rounding = ElementRounding::stochastic;
  s.seed = 3;
  const BlockQuantized r1 = quantize_blocks(many, 1000, 32, block_format("mxfp4_e2m1"), s);
  const BlockQuantized r2 = quantize_blocks(many, 1000, 32, block_format("mxfp4_e2m1"), s);
  EXPECT_EQ(r1.values, r2.values);
  double sum = 0;
  for (std::size_t i = 0; i < many.size(); ++i) {
    if (i % 32 == 0) continue;
    EXPECT_TRUE(r1.values[i] == 4.0f || r1.values[i] == 6.0f) << r1.values[i];
    sum += r1.values[i];
  }
  EXPECT_NEAR(sum / (31.0 * 1000), 5.0, 0.05);  // 31000 draws of 4 or 6: standard error 0.006
}

// NVFP4: blocks of 16, E4M3 block scales s_b = E4M3(amax_b / 6 * s_enc) with s_enc = 448 * 6 / amax of the tensor;
// values q * s_b / s_enc. The tensor's largest value is represented exactly (its block's scale is 448).
TEST(BlockScaling, Nvfp4TwoLevelScales) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(4 * 48);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * std::ldexp(1.0f, static_cast<int>(i / 16) - 6);
  x[37] = 200.0f;  // the tensor amax
  const BlockQuantized q = quantize_blocks(x, 4, 48, block_format("nvfp4"));
  ASSERT_EQ(q.block_scales.size(), 12u);
  EXPECT_EQ(q.values[37], 200.0f);
  EXPECT_EQ(q.block_scales[2], 448.0f);  // row 0, block 2 holds x[37]
  const float s_enc = 448.0f * 6.0f / 200.0f;
  EXPECT_FLOAT_EQ(q.tensor_scale, 1.0f / s_enc);
  for (std::size_t b = 0; b < q.block_scales.size(); ++b) {
    EXPECT_TRUE(is_representable(q.block_scales[b], e4m3fn())) << b;
    EXPECT_EQ(q.scale_bits[b], encode(q.block_scales[b], e4m3fn()));
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double s = q.block_scales[(i / 48) * 3 + (i % 48) / 16];
    const double element = static_cast<double>(q.values[i]) * s_enc / s;  // back to the FP4 element
    EXPECT_TRUE(s == 0 || is_representable(std::round(element * 2) / 2, fp4_e2m1())) << i;
    EXPECT_LE(std::fabs(element), 6.0 * (1 + 1e-6)) << i;
  }
}

TEST(BlockScaling, PartialBlocksNonFiniteAndErrors) {
  // 40 values: a block of 32 and one of 8, each with its own scale
  std::vector<float> x(40, 1.0f);
  x[35] = 1000.0f;
  const BlockQuantized q = quantize_blocks(x, 1, 40, block_format("mxfp8_e4m3"));
  ASSERT_EQ(q.scale_bits.size(), 2u);
  EXPECT_EQ(q.scale_bits[0], 127 - 8);
  EXPECT_EQ(q.scale_bits[1], 127 + 9 - 8);
  EXPECT_EQ(q.values[0], 1.0f);
  EXPECT_EQ(q.values[35], 896.0f);  // 1000 / 2^1 = 500 saturates to 448
  EXPECT_EQ(q.saturated, 1);
  x[3] = NAN;
  const BlockQuantized n = quantize_blocks(x, 1, 40, block_format("mxfp8_e4m3"));
  EXPECT_TRUE(std::isnan(n.values[0]) && std::isnan(n.values[31]));  // the whole block
  EXPECT_EQ(n.scale_bits[0], 0xFF);
  EXPECT_EQ(n.values[32], 1.0f);
  EXPECT_THROW(quantize_blocks(x, 2, 40, block_format("mxfp8_e4m3")), std::invalid_argument);
  EXPECT_THROW(block_format("mxfp5"), std::invalid_argument);
  EXPECT_THROW(parse_scale_rule("floor"), std::invalid_argument);
  EXPECT_THROW(parse_element_rounding("up"), std::invalid_argument);
  EXPECT_EQ(block_formats().size(), 10u);
}

// FP8 with float32 scales, as TransformerEngine computes them: scale = max / amax (a power of two, rounded down, for
// block scaling), elements x * scale rounded to E4M3/E5M2, values element * (1 / scale).
TEST(BlockScaling, Fp8CurrentAndBlockScales) {
  EXPECT_EQ(fp32_scale(10.0f, 448.0f, false), 44.8f);
  EXPECT_EQ(fp32_scale(10.0f, 448.0f, true), 32.0f);
  EXPECT_EQ(fp32_scale(0.0f, 448.0f, false), 1.0f);
  EXPECT_EQ(fp32_scale(INFINITY, 448.0f, true), 1.0f);
  EXPECT_EQ(fp32_scale(NAN, 448.0f, false), 1.0f);
  EXPECT_EQ(fp32_scale(1e-45f, 448.0f, false), std::numeric_limits<float>::max());  // the quotient overflows
  EXPECT_EQ(fp32_scale(1e-45f, 448.0f, true), 0x1p127f);

  // current scaling: one scale for the whole tensor; its largest value lands on E4M3's largest, 448
  std::vector<float> x(3 * 50);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  x[77] = -10.0f;
  const BlockQuantized current = quantize_blocks(x, 3, 50, block_format("fp8_current_e4m3"));
  ASSERT_EQ(current.block_scales.size(), 1u);
  EXPECT_TRUE(current.scale_bits.empty());
  EXPECT_EQ(current.block_scales[0], 1.0f / 44.8f);
  EXPECT_EQ(current.values[77], static_cast<float>(-448.0 * static_cast<double>(1.0f / 44.8f)));
  EXPECT_EQ(current.saturated, 0);

  // 1x128 blocks: per row, 128 values each (300 = 128 + 128 + 44), power-of-two scales with amax * scale in (224, 448]
  std::vector<float> rows(2 * 300);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = std::cos(static_cast<float>(i)) * std::ldexp(1.0f, static_cast<int>(i / 100) - 3);
  const BlockQuantized blocks = quantize_blocks(rows, 2, 300, block_format("fp8_block_e4m3"));
  ASSERT_EQ(blocks.row_blocks, 2);
  ASSERT_EQ(blocks.blocks_per_row, 3);
  for (std::int64_t r = 0; r < 2; ++r)
    for (std::int64_t b = 0; b < 3; ++b) {
      float amax = 0;
      for (std::int64_t i = b * 128; i < std::min<std::int64_t>(300, (b + 1) * 128); ++i)
        amax = std::max(amax, std::fabs(rows[static_cast<std::size_t>(r * 300 + i)]));
      const float scale = 1.0f / blocks.block_scales[static_cast<std::size_t>(r * 3 + b)];
      EXPECT_EQ(scale, std::exp2(std::floor(std::log2(scale)))) << "a power of two";
      EXPECT_LE(amax * scale, 448.0f);
      EXPECT_GT(amax * scale, 224.0f);
    }

  // 128x128 tiles: a large value raises the scale of its own tile only; a NaN tile keeps scale 1 and its NaN
  std::vector<float> w(200 * 130, 0.5f);
  w[150 * 130 + 3] = 100.0f;  // tile (1, 0)
  w[150 * 130 + 5] = 104.0f;
  w[10 * 130 + 129] = NAN;    // tile (0, 1)
  const BlockQuantized tiles = quantize_blocks(w, 200, 130, block_format("fp8_block2d_e4m3"));
  ASSERT_EQ(tiles.block_scales.size(), 4u);
  EXPECT_EQ(tiles.block_scales[0], 1.0f / 512.0f);  // 448 / 0.5 = 896 -> 512
  EXPECT_EQ(tiles.block_scales[1], 1.0f);           // NaN amax
  EXPECT_EQ(tiles.block_scales[2], 1.0f / 4.0f);    // 448 / 104 = 4.3 -> 4
  EXPECT_EQ(tiles.block_scales[3], 1.0f / 512.0f);
  EXPECT_EQ(tiles.values[150 * 130 + 3], 96.0f);    // 400 lies between E4M3's 384 and 416: a tie, to even
  EXPECT_EQ(tiles.values[150 * 130 + 5], 104.0f);   // 416
  EXPECT_EQ(tiles.values[150 * 130 + 4], 0.5f);
  EXPECT_TRUE(std::isnan(tiles.values[10 * 130 + 129]));
  EXPECT_EQ(tiles.values[10 * 130 + 128], 0.5f);
}

}  // namespace
