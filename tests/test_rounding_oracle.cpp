// PyTorch's casts (tests/data/rounding_public.npz): every non-NaN entry reproduced
// bit for bit by the scalar reference and by the array kernels of every instruction set this CPU has.
#include <gtest/gtest.h>

#include "sim/npy.hpp"
#include "sim/round_array.hpp"
#include "sim/rounding.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
using mpscope::test::same_value;

namespace {

struct OracleCase {
  const char* key;
  Format format;
};
void PrintTo(const OracleCase& c, std::ostream* os) { *os << c.key; }

class TorchCasts : public ::testing::TestWithParam<OracleCase> {};

TEST_P(TorchCasts, EveryEntryBitExact) {
  const NpzFile npz(mpscope::test::data_dir() / "rounding_public.npz");
  const NpyArray input = npz.read("input_f32"), expected = npz.read(GetParam().key);
  const auto in = input.values<float>(), want = expected.values<float>();
  ASSERT_EQ(in.size(), 321546u);
  ASSERT_EQ(want.size(), in.size());
  const Format& f = GetParam().format;

  std::int64_t nan_entries = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto got = static_cast<float>(round(in[i], f));
    nan_entries += std::isnan(want[i]);
    ASSERT_TRUE(same_value(got, want[i])) << GetParam().key << " entry " << i << ": " << std::hexfloat << in[i]
                                          << " -> " << got << ", torch " << want[i];
  }
  EXPECT_GT(nan_entries, 0);  // the data has NaN inputs (and, for e4m3fn, overflows): they must stay NaN

  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    std::vector<float> out(in.size());
    round_array(in, out, f, Rounding::nearest_even, nullptr, isa);
    for (std::size_t i = 0; i < in.size(); ++i)
      ASSERT_TRUE(same_value(out[i], want[i])) << to_string(isa) << " " << GetParam().key << " entry " << i << ": "
                                               << std::hexfloat << in[i] << " -> " << out[i] << ", torch " << want[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, TorchCasts,
                         ::testing::Values(OracleCase{"f16", fp16()}, OracleCase{"bf16", bf16()},
                                           OracleCase{"e4m3fn", e4m3fn()}, OracleCase{"e5m2", e5m2()}),
                         [](const auto& info) { return std::string(info.param.key); });

}  // namespace
