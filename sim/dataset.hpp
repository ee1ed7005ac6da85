// Training data: seeded synthetic sets (spiral, circles, xor, blobs, sine, images), NPZ and CSV files, and the batch
// of every step (fixed by a batch_index array, or seeded shuffling per epoch).
// Every lane sees exactly the same batches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/model.hpp"

namespace mpscope::sim {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Dataset {
  Matrix<float> x;                   // (n, features): each row one sample, flattened row-major (images: C, H, W)
  std::vector<std::int64_t> sample_shape;  // the shape of one sample: {features} (tabular) or {C, H, W} (images)
  std::vector<std::int64_t> labels;  // (n) class indices: classification
  Matrix<float> targets;             // (n, outputs): regression
  std::int64_t classes = 0;          // classification: 1 + the largest label
  Matrix<std::int64_t> batch_index;  // (steps, batch) rows of every step's batch; empty: shuffle per epoch

  bool classification() const { return !labels.empty(); }
  std::int64_t size() const { return x.rows; }
  std::int64_t features() const { return x.cols; }  // the product of sample_shape
  std::int64_t outputs() const { return classification() ? classes : targets.cols; }
  Batch all() const;  // the whole set as one batch (for evaluation)
};

Dataset make_spiral(std::int64_t classes, std::int64_t points_per_class, double noise, std::uint64_t seed);
Dataset make_circles(std::int64_t points, double noise, double factor, std::uint64_t seed);
Dataset make_xor(std::int64_t points, double noise, std::uint64_t seed);
Dataset make_blobs(std::int64_t classes, std::int64_t points_per_class, std::int64_t features, double spread,
                   std::uint64_t seed);
Dataset make_sine(std::int64_t points, double noise, double amplitude, std::uint64_t seed);
// Images (channels, height, width) with values in [0, 1], points_per_class of each class in class order. Class k
// draws one pattern family (k < 8: horizontal, vertical or diagonal stripes, a filled square, a ring, a
// checkerboard, a cross, a linear gradient; k >= 8: the brighter of two of them, pairs in order (0,1), (0,2), ...)
// with a random position, phase, size and intensity per image and a random tint per channel, plus Gaussian noise
// of standard deviation `noise`, clipped to [0, 1]. Throws std::invalid_argument naming the argument: classes
// 2..max_image_classes, points_per_class >= 1, channels >= 1, height and width >= 4, noise finite and >= 0, and
// at most 2^31 values in all.
inline constexpr std::int64_t max_image_classes = 36;
Dataset make_images(std::int64_t classes, std::int64_t points_per_class, std::int64_t channels, std::int64_t height,
                    std::int64_t width, double noise, std::uint64_t seed);

// x_key: float32/float64 (n, d1, d2, ...), any rank >= 2: each sample flattened row-major, sample_shape {d1, d2, ...}
// (images: (n, C, H, W)); y_key: integer labels (n) -> classification, or float targets (n) or
// (n, outputs) -> regression; batch_index_key ("" for none): integer (steps, batch).
Dataset load_npz_dataset(const std::filesystem::path& path, const std::string& x_key, const std::string& y_key,
                         const std::string& batch_index_key);
// A header row, comma-separated numbers. `label`: an integer class column (classification); or `targets`: one or
// more numeric columns (regression). The other columns (or `features`, when given) are the inputs.
Dataset load_csv_dataset(const std::filesystem::path& path, const std::string& label,
                         const std::vector<std::string>& targets, const std::vector<std::string>& features);

// The batch of each step: the dataset's batch_index when it has one, else a seeded shuffle per epoch (batches of
// batch_size consecutive rows of the permutation; a last partial batch is dropped).
class Batcher {
 public:
  Batcher(const Dataset& data, std::int64_t batch_size, std::uint64_t seed);
  Batch batch(std::int64_t step);

 private:
  const Dataset& data_;
  std::int64_t batch_size_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> order_;
};

}  // namespace mpscope::sim
