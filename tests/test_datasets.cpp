// Data: synthetic sets (images and token tasks too) are seeded and shaped as documented; text, NPZ (inputs of any
// rank) and CSV files load (and their errors name the file, key, line and column); batching is fixed by batch_index
// or by a seeded shuffle.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

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
                                  {"I", NpyArray::from<std::int64_t>(y, {4, 1, 1})}, {"T", NpyArray::from<std::int64_t>(y, {4, 1})},
                                  {"F", NpyArray::from<float>(flat, {4})}});
  const std::string rank1 = error_of([&] { load_npz_dataset(scratch("rank.npz"), "X", "Y", ""); });
  EXPECT_NE(rank1.find("rank.npz:X: expected an array of rank 2 or more"), std::string::npos) << rank1;
  EXPECT_NE(rank1.find("found shape (4,)"), std::string::npos) << rank1;
  const std::string empty = error_of([&] { load_npz_dataset(scratch("rank.npz"), "E", "Y", ""); });
  EXPECT_NE(empty.find("rank.npz:E: shape (4, 0, 3) has a zero-sized dimension"), std::string::npos) << empty;
  const std::string ints = error_of([&] { load_npz_dataset(scratch("rank.npz"), "I", "Y", ""); });
  EXPECT_NE(ints.find("rank.npz:I: integer inputs are token ids, expected a non-empty (n, T) array, found shape (4, 1, 1)"),
            std::string::npos) << ints;
  // integer (n, T) inputs are token sequences: one label per sequence, or one per position; float targets do not fit
  const Dataset tokens = load_npz_dataset(scratch("rank.npz"), "T", "Y", "");
  EXPECT_EQ(tokens.vocab, 2);
  EXPECT_EQ(tokens.label_positions, 1);
  const std::string floats = error_of([&] { load_npz_dataset(scratch("rank.npz"), "T", "F", ""); });
  EXPECT_NE(floats.find("rank.npz:F: with token ids (4, 1) in T, expected integer targets of shape (4, 1) (one per position) or (4,)"),
            std::string::npos) << floats;
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


// Token data: sample i's whole sequence s (length + 1 tokens): its x row, then its last target.
std::vector<std::int64_t> sequence_of(const Dataset& d, std::int64_t i) {
  const std::int64_t T = d.features();
  std::vector<std::int64_t> s;
  for (std::int64_t t = 0; t < T; ++t) s.push_back(static_cast<std::int64_t>(d.x(i, t)));
  s.push_back(d.labels[static_cast<std::size_t>(i * T + T - 1)]);
  return s;
}

// The layout every token dataset shares: x (n, T) of ids in [0, vocab), labels the next tokens (x shifted by one).
void expect_token_layout(const Dataset& d, std::int64_t n, std::int64_t T, std::int64_t vocab) {
  EXPECT_EQ(d.size(), n);
  EXPECT_EQ(d.features(), T);
  EXPECT_EQ(d.sample_shape, (std::vector<std::int64_t>{T}));
  EXPECT_EQ(d.label_positions, T);
  EXPECT_EQ(d.vocab, vocab);
  EXPECT_EQ(d.classes, vocab);
  EXPECT_EQ(d.outputs(), vocab);
  ASSERT_EQ(d.labels.size(), static_cast<std::size_t>(n * T));
  EXPECT_TRUE(d.classification());
  for (const float v : d.x.data) {
    ASSERT_EQ(v, std::floor(v));
    ASSERT_GE(v, 0.0f);
    ASSERT_LT(v, static_cast<float>(vocab));
  }
  for (const std::int64_t y : d.labels) {
    ASSERT_GE(y, 0);
    ASSERT_LT(y, vocab);
  }
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t t = 0; t + 1 < T; ++t)
      ASSERT_EQ(d.labels[static_cast<std::size_t>(i * T + t)], static_cast<std::int64_t>(d.x(i, t + 1)))
          << "sample " << i << ", position " << t << ": the target is the next input token";
}

TEST(Datasets, TokenTasksAreShapedShiftedAndSeeded) {
  for (const std::string& task : token_tasks)
    for (const std::int64_t T : {8, 9, 32}) {
      SCOPED_TRACE(task + ", length " + std::to_string(T));
      const Dataset a = make_token_task(task, 16, T, 50, 3);
      expect_token_layout(a, 50, T, 16);
      EXPECT_TRUE(a.token_text.empty());
      const Dataset b = make_token_task(task, 16, T, 50, 3), c = make_token_task(task, 16, T, 50, 4);
      EXPECT_EQ(a.x.data, b.x.data);
      EXPECT_EQ(a.labels, b.labels);
      EXPECT_NE(a.x.data, c.x.data);
      // A batch carries each of its rows' T targets, in row order.
      Batcher batcher(a, 5, 1);
      const Batch batch = batcher.batch(0);
      ASSERT_EQ(batch.labels.size(), static_cast<std::size_t>(5 * T));
      for (std::int64_t r = 0; r < 5; ++r)
        for (std::int64_t t = 0; t < T; ++t)
          EXPECT_EQ(batch.labels[static_cast<std::size_t>(r * T + t)],
                    a.labels[static_cast<std::size_t>(batch.rows[static_cast<std::size_t>(r)] * T + t)]);
    }
}

TEST(Datasets, TokenMarkovIsOneStreamOfASparseChain) {
  const std::int64_t V = 16, T = 32, n = 200;
  const Dataset d = make_token_task("markov", V, T, n, 1);
  // Consecutive samples continue one stream: each one starts with the previous one's last target.
  for (std::int64_t i = 0; i + 1 < n; ++i)
    EXPECT_EQ(d.labels[static_cast<std::size_t>(i * T + T - 1)], static_cast<std::int64_t>(d.x(i + 1, 0)));
  // Every transition in the stream goes to one of at most 4 successors of its token; every token is visited.
  std::vector<std::set<std::int64_t>> successors(static_cast<std::size_t>(V));
  std::vector<std::int64_t> visits(static_cast<std::size_t>(V), 0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t t = 0; t < T; ++t) {
      const auto from = static_cast<std::int64_t>(d.x(i, t));
      successors[static_cast<std::size_t>(from)].insert(d.labels[static_cast<std::size_t>(i * T + t)]);
      ++visits[static_cast<std::size_t>(from)];
    }
  for (std::int64_t v = 0; v < V; ++v) {
    EXPECT_GT(visits[static_cast<std::size_t>(v)], 0) << "token " << v;
    EXPECT_LE(successors[static_cast<std::size_t>(v)].size(), 4u) << "token " << v;
    EXPECT_GE(successors[static_cast<std::size_t>(v)].size(), 1u) << "token " << v;
  }
  // Two tokens: both successors of each; the chain still works.
  expect_token_layout(make_token_task("markov", 2, 5, 10, 1), 10, 5, 2);
}

TEST(Datasets, TokenCopyAndReverseRepeatTheFirstHalf) {
  for (const std::string task : {"copy", "reverse"})
    for (const std::int64_t T : {2, 7, 10}) {
      SCOPED_TRACE(task + ", length " + std::to_string(T));
      const std::int64_t V = 5, k = T / 2;
      const Dataset d = make_token_task(task, V, T, 100, 2);
      std::set<std::int64_t> content;
      for (std::int64_t i = 0; i < d.size(); ++i) {
        const std::vector<std::int64_t> s = sequence_of(d, i);
        ASSERT_EQ(s.size(), static_cast<std::size_t>(T + 1));
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t c = s[static_cast<std::size_t>(j)];
          EXPECT_GE(c, 1);  // content tokens: 1..V-1
          EXPECT_LT(c, V);
          content.insert(c);
          EXPECT_EQ(s[static_cast<std::size_t>(k + 1 + j)], s[static_cast<std::size_t>(task == "copy" ? j : k - 1 - j)]);
        }
        EXPECT_EQ(s[static_cast<std::size_t>(k)], 0);  // the separator
        if (T % 2 == 1) {
          EXPECT_EQ(s.back(), 0);  // the padding of an odd length
        }
      }
      EXPECT_EQ(content.size(), static_cast<std::size_t>(V - 1));  // the whole content alphabet is drawn
    }
}

TEST(Datasets, TokenModularAddHoldsEveryProblem) {
  for (const std::int64_t T : {4, 14, 32}) {
    SCOPED_TRACE("length " + std::to_string(T));
    const std::int64_t V = 13, p = V - 2;  // numbers 0..10, '+' = 11, '=' = 12
    const Dataset d = make_token_task("modular_add", V, T, 300, 5);
    std::int64_t checked = 0;
    std::set<std::int64_t> sums;
    for (std::int64_t i = 0; i < d.size(); ++i) {
      const std::vector<std::int64_t> s = sequence_of(d, i);
      for (std::size_t j = 0; j < s.size(); ++j) {
        const std::int64_t v = s[j];
        switch (j % 5) {
          case 1: EXPECT_EQ(v, p); break;      // '+'
          case 3: EXPECT_EQ(v, p + 1); break;  // '='
          default: EXPECT_LT(v, p); break;     // a number
        }
        if (j % 5 == 4) {
          EXPECT_EQ(v, (s[j - 4] + s[j - 2]) % p) << "sample " << i << ", problem " << j / 5;
          sums.insert(v);
          ++checked;
        }
      }
    }
    EXPECT_EQ(checked, 300 * ((T + 1) / 5));  // every whole problem
    EXPECT_EQ(sums.size(), static_cast<std::size_t>(p));
  }
}

TEST(Datasets, TokenTaskArgumentsAreChecked) {
  EXPECT_EQ(check_token_task("copy", 16, 32, 1024), "");
  EXPECT_EQ(check_token_task("lm", 16, 32, 10), "task: 'lm' is not one of markov, copy, reverse, modular_add");
  EXPECT_EQ(check_token_task("markov", 0, 32, 10), "vocab_size: must be positive, got 0");
  EXPECT_EQ(check_token_task("markov", 16, -1, 10), "length: must be positive, got -1");
  EXPECT_EQ(check_token_task("markov", 16, 32, 0), "sequences: must be positive, got 0");
  EXPECT_EQ(check_token_task("markov", 1, 32, 10), "vocab_size: the markov task needs at least 2 tokens, got 1");
  EXPECT_EQ(check_token_task("copy", 2, 32, 10),
            "vocab_size: the copy task needs at least 3 tokens (a separator and at least two content tokens), got 2");
  EXPECT_EQ(check_token_task("reverse", 2, 32, 10),
            "vocab_size: the reverse task needs at least 3 tokens (a separator and at least two content tokens), got 2");
  EXPECT_EQ(check_token_task("modular_add", 3, 32, 10),
            "vocab_size: the modular_add task needs at least 4 tokens (numbers 0..p-1, '+' and '=', p >= 2), got 3");
  EXPECT_EQ(check_token_task("markov", 65537, 32, 10), "vocab_size: at most 65536 tokens, got 65537");
  EXPECT_EQ(check_token_task("copy", 16, 1, 10), "length: the copy task needs at least 2 tokens per sample, got 1");
  EXPECT_EQ(check_token_task("modular_add", 16, 3, 10),
            "length: the modular_add task needs at least 4 tokens per sample (one whole problem \"a + b = c\"), got 3");
  EXPECT_EQ(check_token_task("markov", 16, 1024, std::int64_t{1} << 22),
            "sequences: sequences * length = 4194304 * 1024 is more than 2^31 tokens");
  EXPECT_EQ(check_token_task("markov", 2, 1, 1), "");
  EXPECT_EQ(check_token_task("modular_add", 4, 4, 1), "");
  const std::string thrown = error_of([] { make_token_task("copy", 2, 8, 10, 1); });
  EXPECT_EQ(thrown, "make_token_task: vocab_size: the copy task needs at least 3 tokens (a separator and at least two "
                    "content tokens), got 2");
  EXPECT_THROW(make_token_task("markov", 16, 0, 10, 1), std::invalid_argument);
}

std::string read_back(const Dataset& d, std::int64_t i) {
  std::string text;
  for (const std::int64_t id : sequence_of(d, i)) text += d.token_text.at(static_cast<std::size_t>(id));
  return text;
}

TEST(Datasets, TextVocabularyAndRoundTrip) {
  // Multi-byte characters (2, 3 and 4 bytes), a newline and a carriage return; a byte-order mark is skipped.
  const std::string text = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x80\xA6 \xF0\x9F\x99\x82\r\nhello again\n";
  std::ofstream(scratch("t.txt"), std::ios::binary) << "\xEF\xBB\xBF" << text;
  const std::vector<std::string> chars = {"h", "\xC3\xA9", "l", "l", "o", " ", "w", "\xC3\xB6", "r", "l", "d", " ",
                                          "\xE2\x80\xA6", " ", "\xF0\x9F\x99\x82", "\r", "\n", "h", "e", "l", "l", "o",
                                          " ", "a", "g", "a", "i", "n", "\n"};  // 29
  const std::vector<std::string> vocabulary = {"\n", "\r", " ", "a", "d", "e", "g", "h", "i", "l", "n", "o", "r", "w",
                                               "\xC3\xA9", "\xC3\xB6", "\xE2\x80\xA6", "\xF0\x9F\x99\x82"};
  const Dataset d = load_text_dataset(scratch("t.txt"), 4);
  expect_token_layout(d, (29 - 1) / 4, 4, 18);
  EXPECT_EQ(d.token_text, vocabulary);  // sorted by code point
  EXPECT_EQ(static_cast<std::int64_t>(d.x(0, 0)), 7);  // 'h'
  for (std::int64_t i = 0; i < d.size(); ++i) {  // windows of 5 characters, every 4th character on
    std::string expected;
    for (std::size_t c = 0; c < 5; ++c) expected += chars[static_cast<std::size_t>(i * 4) + c];
    EXPECT_EQ(read_back(d, i), expected) << "window " << i;
  }
  // Without a byte-order mark: the same; `sequences` keeps the first windows.
  std::ofstream(scratch("u.txt"), std::ios::binary) << text;
  const Dataset two = load_text_dataset(scratch("u.txt"), 4, 2);
  expect_token_layout(two, 2, 4, 18);
  EXPECT_EQ(two.x.data, std::vector<float>(d.x.data.begin(), d.x.data.begin() + 8));
  EXPECT_EQ(load_text_dataset(scratch("u.txt"), 4, 7).size(), 7);
  // One window of the whole file; the characters of a window are its length + 1 first characters.
  const Dataset whole = load_text_dataset(scratch("u.txt"), 28);
  expect_token_layout(whole, 1, 28, 18);
  EXPECT_EQ(read_back(whole, 0), text);
  // Plain ASCII.
  std::ofstream(scratch("abc.txt"), std::ios::binary) << "abcabcabca";
  const Dataset abc = load_text_dataset(scratch("abc.txt"), 3);
  expect_token_layout(abc, 3, 3, 3);
  EXPECT_EQ(abc.token_text, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(abc.x.data, (std::vector<float>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(abc.labels, (std::vector<std::int64_t>{1, 2, 0, 1, 2, 0, 1, 2, 0}));
}

TEST(Datasets, TextErrorsNameThePath) {
  const auto error = [](const fs::path& p, std::int64_t length, std::int64_t sequences = 0) {
    return error_of([&] { load_text_dataset(p, length, sequences); });
  };
  const std::string p = scratch("").string();
  EXPECT_EQ(error(scratch("missing.txt"), 4), p + "missing.txt: cannot open");
  std::ofstream(scratch("empty.txt"), std::ios::binary) << "";
  EXPECT_EQ(error(scratch("empty.txt"), 4), p + "empty.txt: empty (a text source needs characters)");
  std::ofstream(scratch("bom.txt"), std::ios::binary) << "\xEF\xBB\xBF";
  EXPECT_EQ(error(scratch("bom.txt"), 4), p + "bom.txt: empty (a text source needs characters)");
  std::ofstream(scratch("short.txt"), std::ios::binary) << "h\xC3\xA9llo";
  EXPECT_EQ(error(scratch("short.txt"), 5),
            p + "short.txt: 5 characters, fewer than length + 1 = 6 (one sample of 5 tokens and its next token)");
  EXPECT_EQ(load_text_dataset(scratch("short.txt"), 4).size(), 1);
  EXPECT_EQ(error(scratch("short.txt"), 2, 3),
            p + "short.txt: sequences 3 is more than the file's 2 windows of 3 characters (5 characters)");
  for (const auto& [name, bytes, at] :
       {std::tuple{"latin1.txt", std::string("caf\xE9 au lait"), 3}, std::tuple{"cut.txt", std::string("ab\xE2\x82"), 2},
        std::tuple{"lone.txt", std::string("\x80" "abc"), 0}, std::tuple{"overlong.txt", std::string("ab\xC0\xAF"), 2},
        std::tuple{"surrogate.txt", std::string("abcd\xED\xA0\x80"), 4},
        std::tuple{"range.txt", std::string("a\xF4\x90\x80\x80"), 1}, std::tuple{"ff.txt", std::string("abc\xFF"), 3},
        std::tuple{"f8.txt", std::string("abc\xF8\x90\x80\x80"), 3}}) {
    std::ofstream(scratch(name), std::ios::binary) << bytes;
    const std::string e = error(scratch(name), 1);
    EXPECT_NE(e.find(p + name + ": not valid UTF-8 at byte " + std::to_string(at) + " (0x"), std::string::npos) << e;
    EXPECT_NE(e.find("convert the file to UTF-8 first"), std::string::npos) << e;
  }
  // 65537 distinct characters: U+0100 on, the surrogates skipped.
  {
    std::ofstream out(scratch("wide.txt"), std::ios::binary);
    std::int64_t written = 0;
    for (std::uint32_t c = 0x100; written < 65537; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      if (c < 0x800) {
        out << static_cast<char>(0xC0 | (c >> 6)) << static_cast<char>(0x80 | (c & 0x3F));
      } else if (c < 0x10000) {
        out << static_cast<char>(0xE0 | (c >> 12)) << static_cast<char>(0x80 | ((c >> 6) & 0x3F)) << static_cast<char>(0x80 | (c & 0x3F));
      } else {
        out << static_cast<char>(0xF0 | (c >> 18)) << static_cast<char>(0x80 | ((c >> 12) & 0x3F))
            << static_cast<char>(0x80 | ((c >> 6) & 0x3F)) << static_cast<char>(0x80 | (c & 0x3F));
      }
      ++written;
    }
  }
  EXPECT_EQ(error(scratch("wide.txt"), 32),
            p + "wide.txt: 65537 distinct characters, more than 65536 (a character-level vocabulary)");
  std::ofstream(scratch("abc.txt"), std::ios::binary) << "abcabcabca";
  EXPECT_THROW(load_text_dataset(scratch("abc.txt"), 0), std::invalid_argument);
  EXPECT_THROW(load_text_dataset(scratch("abc.txt"), 4, -1), std::invalid_argument);
}

}  // namespace
