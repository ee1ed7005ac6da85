// Loss scaling: PyTorch GradScaler's traces (tests/data/rounding_public.npz) reproduced exactly; hysteresis,
// clamps, static and none; TransformerEngine's delayed scaling.
#include <gtest/gtest.h>

#include "sim/loss_scaler.hpp"
#include "sim/npy.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;

namespace {

void check_trace(const char* prefix, std::int64_t growth_interval, bool expect_growth) {
  const NpzFile npz(mpscope::test::data_dir() / "rounding_public.npz");
  const NpyArray overflow = npz.read(std::string(prefix) + "_overflow");
  const NpyArray scale_after = npz.read(std::string(prefix) + "_scale_after");
  const auto found = overflow.values<std::uint8_t>();
  const auto want = scale_after.values<double>();
  ASSERT_EQ(found.size(), 4000u);
  LossScaleConfig c;
  c.type = LossScaleConfig::Type::dynamic;
  c.growth_interval = growth_interval;  // every other setting: GradScaler's defaults
  LossScaler scaler(c);
  int backoffs = 0, growths = 0;
  for (std::size_t i = 0; i < found.size(); ++i) {
    const LossScaler::Update u = scaler.update(found[i] != 0);
    ASSERT_EQ(static_cast<double>(u.scale_after), want[i]) << prefix << " step " << i;
    ASSERT_EQ(u.skipped, found[i] != 0);
    backoffs += u.backed_off;
    growths += u.grew;
  }
  EXPECT_GT(backoffs, 0);
  if (expect_growth) {
    EXPECT_GT(growths, 0);
  }
}

TEST(LossScaler, ReproducesGradScalerTraceInterval2000) { check_trace("scaler_gi2000", 2000, false); }
TEST(LossScaler, ReproducesGradScalerTraceInterval7) { check_trace("scaler_gi7", 7, true); }

TEST(LossScaler, InverseScaleIsComputedInDouble) {
  LossScaleConfig c;
  c.type = LossScaleConfig::Type::fixed;
  c.value = 3.0;
  const LossScaler s(c);
  EXPECT_EQ(s.inv_scale(), static_cast<float>(1.0 / 3.0));
}

TEST(LossScaler, HysteresisBacksOffOnlyAfterRepeatedOverflows) {
  LossScaleConfig c;
  c.type = LossScaleConfig::Type::dynamic;
  c.init_scale = 1024;
  c.hysteresis = 3;
  c.growth_interval = 4;
  LossScaler s(c);
  EXPECT_FALSE(s.update(true).backed_off);  // 1st overflow: tolerated, step skipped
  EXPECT_TRUE(s.update(true).skipped);
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_TRUE(s.update(true).backed_off);  // 3rd: back off
  EXPECT_EQ(s.scale(), 512.0f);
  EXPECT_TRUE(s.update(true).backed_off);  // hysteresis stays spent until the next growth
  EXPECT_EQ(s.scale(), 256.0f);
  for (int i = 0; i < 4; ++i) s.update(false);  // growth resets the hysteresis
  EXPECT_EQ(s.scale(), 512.0f);
  EXPECT_FALSE(s.update(true).backed_off);
}

TEST(LossScaler, MinAndMaxScaleClamp) {
  LossScaleConfig c;
  c.type = LossScaleConfig::Type::dynamic;
  c.init_scale = 4;
  c.min_scale = 1;
  c.max_scale = 8;
  c.growth_interval = 1;
  LossScaler s(c);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 8.0f);
  for (int i = 0; i < 10; ++i) s.update(true);
  EXPECT_EQ(s.scale(), 1.0f);
}

TEST(LossScaler, NoneNeverSkipsStaticSkipsWithoutChangingTheScale) {
  LossScaler none(LossScaleConfig{});
  EXPECT_FALSE(none.update(true).skipped);
  EXPECT_EQ(none.scale(), 1.0f);
  LossScaleConfig c;
  c.type = LossScaleConfig::Type::fixed;
  c.value = 128;
  LossScaler fixed(c);
  EXPECT_TRUE(fixed.update(true).skipped);
  EXPECT_EQ(fixed.scale(), 128.0f);
}

TEST(DelayedScaling, ScaleFromTheAmaxHistory) {
  DelayedScaling d(448.0, 3, 1);
  EXPECT_EQ(d.scale(), 1.0f);  // before any history
  d.record(7.0);
  EXPECT_EQ(d.scale(), static_cast<float>(448.0 / 7.0 / 2.0));
  d.record(14.0);
  EXPECT_EQ(d.scale(), static_cast<float>(448.0 / 14.0 / 2.0));
  d.record(0.0);  // the window's max is still 14
  EXPECT_EQ(d.scale(), static_cast<float>(448.0 / 14.0 / 2.0));
  d.record(1.0);
  d.record(2.0);  // 14 has left the window of 3: max(0, 1, 2)
  EXPECT_EQ(d.scale(), static_cast<float>(448.0 / 2.0 / 2.0));
  DelayedScaling z(448.0, 4, 0);
  z.record(0.0);  // amax 0 (or inf/NaN): keep the old scale
  EXPECT_EQ(z.scale(), 1.0f);
  z.record(INFINITY);
  EXPECT_EQ(z.scale(), 1.0f);
}

}  // namespace
