// Data: synthetic sets are seeded and shaped as documented; NPZ and CSV files load (and their errors name the
// file, line and column); initial weights come from NPZ and safetensors with PyTorch names; batching is fixed by
// batch_index or by a seeded shuffle.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sim/dataset.hpp"
#include "sim/npy.hpp"

using namespace mpscope::sim;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("mpscope_data_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

TEST(Datasets, SyntheticSetsAreSeededAndShaped) {
  const Dataset a = make_spiral(3, 100, 0.2, 7), b = make_spiral(3, 100, 0.2, 7), c = make_spiral(3, 100, 0.2, 8);
  EXPECT_EQ(a.size(), 300);
  EXPECT_EQ(a.features(), 2);
  EXPECT_EQ(a.classes, 3);
  EXPECT_EQ(a.x.data, b.x.data);
  EXPECT_NE(a.x.data, c.x.data);
  EXPECT_EQ(a.x(0, 0), 0.0f);  // radius 0 at the start of each arm, as in the CS231n spiral
  EXPECT_EQ(std::count(a.labels.begin(), a.labels.end(), 2), 100);
  const Dataset circles = make_circles(200, 0.0, 0.5, 1);
  for (std::int64_t i = 0; i < circles.size(); ++i) {
    const double r = std::hypot(circles.x(i, 0), circles.x(i, 1));
    EXPECT_NEAR(r, circles.labels[static_cast<std::size_t>(i)] == 0 ? 1.0 : 0.5, 1e-6);
  }
  const Dataset x = make_xor(100, 0.0, 1);
  for (std::int64_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(x.labels[static_cast<std::size_t>(i)], (x.x(i, 0) > 0) == (x.x(i, 1) > 0) ? 1 : 0);
  const Dataset blobs = make_blobs(4, 50, 5, 1.0, 1);
  EXPECT_EQ(blobs.features(), 5);
  EXPECT_EQ(blobs.outputs(), 4);
  const Dataset sine = make_sine(100, 0.0, 2.0, 1);
  EXPECT_FALSE(sine.classification());
  for (std::int64_t i = 0; i < sine.size(); ++i) EXPECT_NEAR(sine.targets(i, 0), 2.0 * std::sin(sine.x(i, 0)), 1e-6);
}

TEST(Datasets, NpzWithBatchIndexAndTheTorchSpiral) {
  const fs::path p = fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_spiral_mlp.npz";
  const Dataset d = load_npz_dataset(p, "X", "Y", "batch_index");
  EXPECT_EQ(d.size(), 900);
  EXPECT_EQ(d.classes, 3);
  EXPECT_EQ(d.batch_index.rows, 500);
  Batcher b(d, 64, 1);
  const Batch first = b.batch(0);
  const std::int64_t row = d.batch_index(0, 0);
  EXPECT_EQ(first.x(0, 0), d.x(row, 0));
  EXPECT_EQ(first.labels[0], d.labels[static_cast<std::size_t>(row)]);
  EXPECT_NE(error_of([&] { load_npz_dataset(p, "X", "nope", ""); }).find("no array 'nope'"), std::string::npos);

  // batch_index out of range
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<std::int64_t> y = {0, 1}, bad = {0, 5};
  write_npz(scratch("bad.npz"), {{"X", NpyArray::from<float>(x, {2, 2})}, {"Y", NpyArray::from<std::int64_t>(y, {2})},
                                 {"B", NpyArray::from<std::int64_t>(bad, {1, 2})}});
  EXPECT_NE(error_of([&] { load_npz_dataset(scratch("bad.npz"), "X", "Y", "B"); }).find("entry 1 = 5 is not a row of X"),
            std::string::npos);
}

TEST(Datasets, ShuffledBatchesAreSeededAndCoverEachEpoch) {
  const Dataset d = make_spiral(2, 16, 0.1, 1);  // 32 rows, batches of 8: 4 per epoch
  Batcher a(d, 8, 3), b(d, 8, 3);
  std::multiset<float> seen;
  for (int s = 0; s < 4; ++s) {
    const Batch x = a.batch(s), y = b.batch(s);
    EXPECT_EQ(x.x.data, y.x.data);
    for (std::int64_t i = 0; i < 8; ++i) seen.insert(x.x(i, 1));
  }
  EXPECT_EQ(seen.size(), 32u);  // every row once per epoch
  Batcher c(d, 8, 3);
  EXPECT_EQ(c.batch(6).x.data, a.batch(6).x.data);  // any step can be reached directly
}

TEST(Datasets, Csv) {
  std::ofstream(scratch("d.csv")) << "a, b,label\n1.5,2,0\n-1,0.25,1\n\n3,4,2\n";
  const Dataset d = load_csv_dataset(scratch("d.csv"), "label", {}, {});
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.features(), 2);
  EXPECT_EQ(d.classes, 3);
  EXPECT_EQ(d.x(1, 1), 0.25f);
  const Dataset r = load_csv_dataset(scratch("d.csv"), "", {"b"}, {"a"});
  EXPECT_EQ(r.targets(2, 0), 4.0f);
  std::ofstream(scratch("e.csv")) << "a,label\n1,0\n2,x\n";
  EXPECT_NE(error_of([&] { load_csv_dataset(scratch("e.csv"), "label", {}, {}); }).find("e.csv:3: column 'label' holds 'x', not a number"),
            std::string::npos);
  std::ofstream(scratch("f.csv")) << "a,label\n1,0,3\n";
  EXPECT_NE(error_of([&] { load_csv_dataset(scratch("f.csv"), "label", {}, {}); }).find("f.csv:2: 3 values, the header has 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_csv_dataset(scratch("d.csv"), "class", {}, {}); }).find("no column 'class' (the header has: a, b, label)"),
            std::string::npos);
  std::ofstream(scratch("g.csv")) << "a,label\n1,0.5\n";
  EXPECT_NE(error_of([&] { load_csv_dataset(scratch("g.csv"), "label", {}, {}); }).find("is not an integer class"), std::string::npos);
}

TEST(Datasets, InitialWeightsFromNpzAndSafetensors) {
  ModelConfig m;
  m.widths = {2, 64, 64, 3};
  const InitialWeights w = load_npz_weights(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_spiral_mlp.npz", "init.", m);
  ASSERT_EQ(w.weight.size(), 3u);
  EXPECT_EQ(w.weight[2].rows, 3);
  EXPECT_EQ(w.weight[2].cols, 64);
  ModelConfig wrong = m;
  wrong.widths = {2, 32, 64, 3};
  EXPECT_NE(error_of([&] { load_npz_weights(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_spiral_mlp.npz", "init.", wrong); })
                .find("init.0.weight has shape (64, 2), layer 1 needs (32, 2)"),
            std::string::npos);

  // A safetensors file with the same tensors (F32 and one in BF16), written by hand: 8-byte header size, JSON, data.
  nlohmann::json header;
  std::vector<char> data;
  const auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<std::int64_t> shape, bool bf16) {
    const std::size_t begin = data.size();
    for (float f : v) {
      std::uint32_t bits;
      std::memcpy(&bits, &f, 4);
      if (bf16) {
        const auto h = static_cast<std::uint16_t>(bits >> 16);
        data.insert(data.end(), reinterpret_cast<const char*>(&h), reinterpret_cast<const char*>(&h) + 2);
      } else {
        data.insert(data.end(), reinterpret_cast<const char*>(&f), reinterpret_cast<const char*>(&f) + 4);
      }
    }
    header[name] = {{"dtype", bf16 ? "BF16" : "F32"}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
  };
  ModelConfig small;
  small.widths = {2, 3, 2};
  add("net.0.weight", {1, 2, 3, 4, 5, 6}, {3, 2}, false);
  add("net.0.bias", {0.5f, -0.5f, 1}, {3}, true);
  add("net.2.weight", {1, 0, 0, 1, 1, 1}, {2, 3}, false);
  add("net.2.bias", {0, 0}, {2}, false);
  header["__metadata__"] = {{"format", "pt"}};
  const std::string text = header.dump();
  {
    std::ofstream f(scratch("w.safetensors"), std::ios::binary);
    const std::uint64_t n = text.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << text;
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  const InitialWeights s = load_safetensors_weights(scratch("w.safetensors"), "net.", small);
  EXPECT_EQ(s.weight[0](2, 1), 6.0);
  EXPECT_EQ(s.bias[0][1], -0.5);
  EXPECT_EQ(s.weight[1](1, 2), 1.0);
  EXPECT_NE(error_of([&] { load_safetensors_weights(scratch("w.safetensors"), "other.", small); })
                .find("found 0 weights named other.<k>.weight, the model has 2 Linear layers"),
            std::string::npos);
  fs::remove_all(scratch("").parent_path());
}

}  // namespace
