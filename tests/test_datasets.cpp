// Data: synthetic sets (images too) are seeded and shaped as documented; NPZ (inputs of any rank) and CSV files
// load (and their errors name the file, key, line and column); batching is fixed by batch_index or by a seeded shuffle.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sim/dataset.hpp"
#include "sim/npy.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) { return mpscope::test::scratch_file("data", name); }
using mpscope::test::error_of;

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

// X of any rank >= 2: (n, C, H, W) images are flattened row by row (C, H, W order) and keep their sample shape.
TEST(Datasets, NpzInputsOfAnyRank) {
  std::vector<float> x(3 * 2 * 2 * 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const std::vector<std::int64_t> y = {0, 2, 1};
  std::vector<double> x3(2 * 3 * 4);
  for (std::size_t i = 0; i < x3.size(); ++i) x3[i] = 0.5 * static_cast<double>(i);
  write_npz(scratch("images.npz"), {{"X", NpyArray::from<float>(x, {3, 2, 2, 3})}, {"Y", NpyArray::from<std::int64_t>(y, {3})},
                                    {"X3", NpyArray::from<double>(x3, {2, 3, 4})},
                                    {"Y3", NpyArray::from<std::int64_t>(std::vector<std::int64_t>{1, 0}, {2})}});
  const Dataset d = load_npz_dataset(scratch("images.npz"), "X", "Y", "");
  EXPECT_EQ(d.sample_shape, (std::vector<std::int64_t>{2, 2, 3}));
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.features(), 12);
  EXPECT_EQ(d.classes, 3);
  EXPECT_EQ(d.x(1, 0), 12.0f);
  EXPECT_EQ(d.x(2, 7), 31.0f);  // sample 2, channel 1, row 0, column 1
  EXPECT_EQ(d.x.data, x);
  const Dataset r3 = load_npz_dataset(scratch("images.npz"), "X3", "Y3", "");
  EXPECT_EQ(r3.sample_shape, (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(r3.x(1, 11), 11.5f);
  // every other loader and generator: one axis of features
  EXPECT_EQ(load_npz_dataset(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_spiral_mlp.npz", "X", "Y", "").sample_shape,
            (std::vector<std::int64_t>{2}));
  EXPECT_EQ(make_spiral(2, 5, 0.1, 1).sample_shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(make_circles(10, 0.1, 0.5, 1).sample_shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(make_xor(10, 0.1, 1).sample_shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(make_blobs(2, 5, 7, 1.0, 1).sample_shape, (std::vector<std::int64_t>{7}));
  EXPECT_EQ(make_sine(10, 0.1, 1.0, 1).sample_shape, (std::vector<std::int64_t>{1}));
  std::ofstream(scratch("s.csv")) << "a,b,c,label\n1,2,3,0\n";
  EXPECT_EQ(load_csv_dataset(scratch("s.csv"), "label", {}, {}).sample_shape, (std::vector<std::int64_t>{3}));
}

TEST(Datasets, NpzInputRankErrorsNameTheFileAndKey) {
  const std::vector<float> flat = {1, 2, 3, 4};
  const std::vector<std::int64_t> y = {0, 1, 0, 1};
  write_npz(scratch("rank.npz"), {{"X", NpyArray::from<float>(flat, {4})}, {"Y", NpyArray::from<std::int64_t>(y, {4})},
                                  {"E", NpyArray::from<float>(std::vector<float>{}, {4, 0, 3})},
                                  {"I", NpyArray::from<std::int64_t>(y, {4, 1})}});
  const std::string rank1 = error_of([&] { load_npz_dataset(scratch("rank.npz"), "X", "Y", ""); });
  EXPECT_NE(rank1.find("rank.npz:X: expected an array of rank 2 or more"), std::string::npos) << rank1;
  EXPECT_NE(rank1.find("found shape (4,)"), std::string::npos) << rank1;
  const std::string empty = error_of([&] { load_npz_dataset(scratch("rank.npz"), "E", "Y", ""); });
  EXPECT_NE(empty.find("rank.npz:E: shape (4, 0, 3) has a zero-sized dimension"), std::string::npos) << empty;
  const std::string ints = error_of([&] { load_npz_dataset(scratch("rank.npz"), "I", "Y", ""); });
  EXPECT_NE(ints.find("rank.npz:I: expected float32 or float64 data, found int64"), std::string::npos) << ints;
}

// Test-set accuracy of a nearest-class-mean and a 1-nearest-neighbour classifier on the flattened pixels.
std::pair<double, double> nearest_mean_and_neighbour(const Dataset& train, const Dataset& test) {
  const std::int64_t k = train.classes, f = train.features();
  std::vector<double> mean(static_cast<std::size_t>(k * f), 0.0);
  std::vector<double> count(static_cast<std::size_t>(k), 0.0);
  for (std::int64_t i = 0; i < train.size(); ++i) {
    const auto c = train.labels[static_cast<std::size_t>(i)];
    count[static_cast<std::size_t>(c)] += 1;
    for (std::int64_t j = 0; j < f; ++j) mean[static_cast<std::size_t>(c * f + j)] += train.x(i, j);
  }
  for (std::int64_t c = 0; c < k; ++c)
    for (std::int64_t j = 0; j < f; ++j) mean[static_cast<std::size_t>(c * f + j)] /= count[static_cast<std::size_t>(c)];
  const auto distance = [&](const float* a, auto b) {
    double s = 0;
    for (std::int64_t j = 0; j < f; ++j) s += (a[j] - b(j)) * (a[j] - b(j));
    return s;
  };
  double by_mean = 0, by_neighbour = 0;
  for (std::int64_t i = 0; i < test.size(); ++i) {
    const float* row = test.x.row(i);
    std::int64_t best_mean = -1, best_neighbour = -1;
    double d_mean = 1e300, d_neighbour = 1e300;
    for (std::int64_t c = 0; c < k; ++c) {
      const double d = distance(row, [&](std::int64_t j) { return mean[static_cast<std::size_t>(c * f + j)]; });
      if (d < d_mean) d_mean = d, best_mean = c;
    }
    for (std::int64_t t = 0; t < train.size(); ++t) {
      const double d = distance(row, [&](std::int64_t j) { return static_cast<double>(train.x(t, j)); });
      if (d < d_neighbour) d_neighbour = d, best_neighbour = train.labels[static_cast<std::size_t>(t)];
    }
    by_mean += best_mean == test.labels[static_cast<std::size_t>(i)];
    by_neighbour += best_neighbour == test.labels[static_cast<std::size_t>(i)];
  }
  return {by_mean / static_cast<double>(test.size()), by_neighbour / static_cast<double>(test.size())};
}

TEST(Datasets, ImagesAreSeededShapedAndInRange) {
  const Dataset a = make_images(4, 30, 3, 8, 10, 0.1, 5), b = make_images(4, 30, 3, 8, 10, 0.1, 5);
  EXPECT_EQ(a.x.data, b.x.data);
  EXPECT_NE(a.x.data, make_images(4, 30, 3, 8, 10, 0.1, 6).x.data);
  EXPECT_EQ(a.sample_shape, (std::vector<std::int64_t>{3, 8, 10}));
  EXPECT_EQ(a.size(), 120);
  EXPECT_EQ(a.features(), 240);
  EXPECT_EQ(a.classes, 4);
  EXPECT_EQ(a.outputs(), 4);
  for (std::int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.labels[static_cast<std::size_t>(i)], i / 30);  // class order
  EXPECT_EQ(*std::min_element(a.x.data.begin(), a.x.data.end()), 0.0f);  // clipped: noise reaches both ends
  EXPECT_EQ(*std::max_element(a.x.data.begin(), a.x.data.end()), 1.0f);
  // Noise apart, the same seed draws the same images: noise 0 is the clean pattern, no value outside [0, 1].
  const Dataset clean = make_images(4, 30, 3, 8, 10, 0.0, 5);
  double diff = 0;
  for (std::size_t i = 0; i < clean.x.data.size(); ++i) {
    EXPECT_GE(clean.x.data[i], 0.0f);
    EXPECT_LE(clean.x.data[i], 1.0f);
    diff += std::abs(clean.x.data[i] - a.x.data[i]);
  }
  EXPECT_LT(diff / static_cast<double>(clean.x.data.size()), 0.1);  // E|N(0, 0.1)| = 0.08, less where clipped
  // Channels carry their own tint: not copies of each other.
  EXPECT_FALSE(std::equal(clean.x.row(0), clean.x.row(0) + 80, clean.x.row(0) + 80));
  // More classes than pattern families mix two families; a single channel of a small image works.
  const Dataset many = make_images(max_image_classes, 2, 1, 4, 4, 0.0, 1);
  EXPECT_EQ(many.classes, max_image_classes);
  EXPECT_EQ(many.features(), 16);
}

TEST(Datasets, ImageClassesAreDistinguishable) {
  // 8 pattern families, chance 1/8; 1-nearest-neighbour on the pixels gets ~0.9. The class means see only where a
  // pattern tends to be (stripes of any phase average to flat grey), so they do less well, but well above chance.
  const Dataset train8 = make_images(8, 100, 1, 16, 16, 0.1, 1), test8 = make_images(8, 25, 1, 16, 16, 0.1, 2);
  const auto [mean8, neighbour8] = nearest_mean_and_neighbour(train8, test8);
  EXPECT_GT(neighbour8, 0.75);
  EXPECT_GT(mean8, 0.25);
  const Dataset train4 = make_images(4, 100, 3, 12, 12, 0.1, 3), test4 = make_images(4, 25, 3, 12, 12, 0.1, 4);
  const auto [mean4, neighbour4] = nearest_mean_and_neighbour(train4, test4);
  EXPECT_GT(neighbour4, 0.85);
  EXPECT_GT(mean4, 0.35);  // chance 0.25
}

TEST(Datasets, ImagesRefuseBadArguments) {
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no std::invalid_argument");
  };
  EXPECT_NE(message([] { make_images(1, 10, 1, 8, 8, 0.1, 1); }).find("classes must be 2..36, got 1"), std::string::npos);
  EXPECT_NE(message([] { make_images(37, 10, 1, 8, 8, 0.1, 1); }).find("classes must be 2..36, got 37"), std::string::npos);
  EXPECT_NE(message([] { make_images(2, 0, 1, 8, 8, 0.1, 1); }).find("points_per_class must be positive"), std::string::npos);
  EXPECT_NE(message([] { make_images(2, 10, 0, 8, 8, 0.1, 1); }).find("channels must be positive"), std::string::npos);
  EXPECT_NE(message([] { make_images(2, 10, 1, 3, 8, 0.1, 1); }).find("height must be at least 4, got 3"), std::string::npos);
  EXPECT_NE(message([] { make_images(2, 10, 1, 8, -1, 0.1, 1); }).find("width must be at least 4, got -1"), std::string::npos);
  EXPECT_NE(message([] { make_images(2, 10, 1, 8, 8, -0.1, 1); }).find("noise must be finite and not negative"), std::string::npos);
  EXPECT_NE(message([] { make_images(2, 10, 1, 8, 8, std::nan(""), 1); }).find("noise"), std::string::npos);
  const std::string big = message([] { make_images(2, std::int64_t{1} << 20, 3, 32, 32, 0.1, 1); });
  EXPECT_NE(big.find("2 * 1048576 * 3 * 32 * 32 is more than 2^31 values"), std::string::npos) << big;
  const std::string huge = message([] { make_images(36, std::int64_t{1} << 62, 1 << 30, 1 << 30, 1 << 30, 0.1, 1); });
  EXPECT_NE(huge.find("more than 2^31 values"), std::string::npos) << huge;  // no overflow on the way
}


}  // namespace
