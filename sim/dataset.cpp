#include "sim/dataset.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

#include "sim/npy.hpp"
#include "sim/random.hpp"
#include "sim/rounding.hpp"

namespace mpscope::sim {

namespace {

double uniform01(RandomStream& r) { return static_cast<double>(r.next() >> 11) * 0x1p-53; }

double normal(RandomStream& r) {  // Box-Muller, one value per call
  const double u1 = 1.0 - uniform01(r), u2 = uniform01(r);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::int64_t uniform_below(RandomStream& r, std::int64_t n) {
  __extension__ using u128 = unsigned __int128;
  return static_cast<std::int64_t>((static_cast<u128>(r.next()) * static_cast<std::uint64_t>(n)) >> 64);
}

Dataset classification(std::int64_t n, std::int64_t features) {
  Dataset d;
  d.x = Matrix<float>(n, features);
  d.sample_shape = {features};
  d.labels.assign(static_cast<std::size_t>(n), 0);
  return d;
}

std::string where(const std::filesystem::path& p) { return p.string(); }

}  // namespace

Batch Dataset::all() const {
  Batch b;
  b.rows.resize(static_cast<std::size_t>(size()));
  for (std::size_t i = 0; i < b.rows.size(); ++i) b.rows[i] = static_cast<std::int64_t>(i);
  b.x = x;
  b.labels = labels;
  b.targets = targets;
  return b;
}

// The CS231n spiral: class j's points at radius 0..1 along an arm of angle 4j..4(j+1) plus noise.
Dataset make_spiral(std::int64_t classes, std::int64_t points_per_class, double noise, std::uint64_t seed) {
  RandomStream r(seed, 1);
  Dataset d = classification(classes * points_per_class, 2);
  d.classes = classes;
  for (std::int64_t j = 0; j < classes; ++j)
    for (std::int64_t i = 0; i < points_per_class; ++i) {
      const double f = points_per_class > 1 ? static_cast<double>(i) / static_cast<double>(points_per_class - 1) : 0.0;
      const double t = 4.0 * static_cast<double>(j) + 4.0 * f + normal(r) * noise;
      const std::int64_t row = j * points_per_class + i;
      d.x(row, 0) = static_cast<float>(f * std::sin(t));
      d.x(row, 1) = static_cast<float>(f * std::cos(t));
      d.labels[static_cast<std::size_t>(row)] = j;
    }
  return d;
}

// Two concentric circles (radius 1 and `factor`), as scikit-learn's make_circles.
Dataset make_circles(std::int64_t points, double noise, double factor, std::uint64_t seed) {
  RandomStream r(seed, 2);
  Dataset d = classification(points, 2);
  d.classes = 2;
  for (std::int64_t i = 0; i < points; ++i) {
    const std::int64_t label = i % 2;
    const double angle = 2.0 * std::numbers::pi * uniform01(r), radius = label == 0 ? 1.0 : factor;
    d.x(i, 0) = static_cast<float>(radius * std::cos(angle) + noise * normal(r));
    d.x(i, 1) = static_cast<float>(radius * std::sin(angle) + noise * normal(r));
    d.labels[static_cast<std::size_t>(i)] = label;
  }
  return d;
}

// Points uniform in [-1, 1]^2, class 1 where x and y have the same sign; noise jitters the points.
Dataset make_xor(std::int64_t points, double noise, std::uint64_t seed) {
  RandomStream r(seed, 3);
  Dataset d = classification(points, 2);
  d.classes = 2;
  for (std::int64_t i = 0; i < points; ++i) {
    const double x = 2 * uniform01(r) - 1, y = 2 * uniform01(r) - 1;
    d.labels[static_cast<std::size_t>(i)] = (x > 0) == (y > 0) ? 1 : 0;
    d.x(i, 0) = static_cast<float>(x + noise * normal(r));
    d.x(i, 1) = static_cast<float>(y + noise * normal(r));
  }
  return d;
}

// Gaussian blobs around centres drawn uniformly in [-5, 5]^features.
Dataset make_blobs(std::int64_t classes, std::int64_t points_per_class, std::int64_t features, double spread,
                   std::uint64_t seed) {
  RandomStream r(seed, 4);
  Dataset d = classification(classes * points_per_class, features);
  d.classes = classes;
  for (std::int64_t j = 0; j < classes; ++j) {
    std::vector<double> centre(static_cast<std::size_t>(features));
    for (auto& c : centre) c = 10 * uniform01(r) - 5;
    for (std::int64_t i = 0; i < points_per_class; ++i) {
      const std::int64_t row = j * points_per_class + i;
      for (std::int64_t f = 0; f < features; ++f)
        d.x(row, f) = static_cast<float>(centre[static_cast<std::size_t>(f)] + spread * normal(r));
      d.labels[static_cast<std::size_t>(row)] = j;
    }
  }
  return d;
}

// y = amplitude (sin(x) + noise) for x uniform in [-pi, pi]: regression (MSE).
Dataset make_sine(std::int64_t points, double noise, double amplitude, std::uint64_t seed) {
  RandomStream r(seed, 5);
  Dataset d;
  d.x = Matrix<float>(points, 1);
  d.sample_shape = {1};
  d.targets = Matrix<float>(points, 1);
  for (std::int64_t i = 0; i < points; ++i) {
    const double x = (2 * uniform01(r) - 1) * std::numbers::pi;
    d.x(i, 0) = static_cast<float>(x);
    d.targets(i, 0) = static_cast<float>(amplitude * (std::sin(x) + noise * normal(r)));
  }
  return d;
}

namespace {

// One image's pattern, values in [0, 1] at (row y, column x), drawn from the stream: family 0..7 (make_images), or
// -1: none (0 everywhere, draws nothing).
class Pattern {
 public:
  Pattern(int family, RandomStream& r, double height, double width) : family_(family), h_(height), w_(width) {
    const double m = std::min(h_, w_);
    const auto between = [&](double lo, double hi) { return lo + (std::max(hi, lo) - lo) * uniform01(r); };
    switch (family) {
      case -1: break;
      case 0:
      case 1:
      case 2:  // stripes: a period of 3 .. m/2 pixels, any phase
        a_ = between(3.0, m / 2);
        b_ = a_ * uniform01(r);
        break;
      case 3:  // a filled square of side m/4 .. m/2 anywhere inside
        a_ = std::floor(between(std::max(2.0, m / 4), m / 2));
        cy_ = std::floor((h_ - a_ + 1) * uniform01(r));
        cx_ = std::floor((w_ - a_ + 1) * uniform01(r));
        break;
      case 4:  // a ring of radius m/5 .. m/3, about 1 + m/10 wide, centred in the middle half
        a_ = between(m / 5, m / 3);
        b_ = 1.0 + m / 10;
        cy_ = between(h_ / 4, 3 * h_ / 4);
        cx_ = between(w_ / 4, 3 * w_ / 4);
        break;
      case 5:  // a checkerboard of cells 2 .. m/4 pixels, any offset
        a_ = std::floor(between(2.0, std::max(2.0, m / 4) + 1));
        cy_ = std::floor(2 * a_ * uniform01(r));
        cx_ = std::floor(2 * a_ * uniform01(r));
        break;
      case 6:  // a cross (+): bars m/3 .. 3m/4 long, 1 .. 1 + m/8 wide, centred in the middle half
        a_ = between(m / 3, 3 * m / 4);
        b_ = between(1.0, 1.0 + m / 8);
        cy_ = between(h_ / 4, 3 * h_ / 4);
        cx_ = between(w_ / 4, 3 * w_ / 4);
        break;
      default: {  // a linear ramp 0 .. 1 across the image in any direction
        const double angle = 2.0 * std::numbers::pi * uniform01(r);
        a_ = std::cos(angle);
        b_ = std::sin(angle);
        break;
      }
    }
  }

  double operator()(double y, double x) const {
    const auto wave = [&](double t) { return 0.5 + 0.5 * std::cos(2.0 * std::numbers::pi * (t + b_) / a_); };
    switch (family_) {
      case -1: return 0.0;
      case 0: return wave(y);                          // horizontal stripes
      case 1: return wave(x);                          // vertical stripes
      case 2: return wave((x + y) / std::numbers::sqrt2);  // diagonal stripes
      case 3: return y >= cy_ && y < cy_ + a_ && x >= cx_ && x < cx_ + a_ ? 1.0 : 0.0;
      case 4: {  // a ring with anti-aliased edges
        const double d = std::abs(std::hypot(y + 0.5 - cy_, x + 0.5 - cx_) - a_);
        return std::clamp(b_ / 2 + 0.5 - d, 0.0, 1.0);
      }
      case 5: {
        const auto cell = static_cast<std::int64_t>(std::floor((y + cy_) / a_) + std::floor((x + cx_) / a_));
        return cell % 2 == 0 ? 1.0 : 0.0;
      }
      case 6: {
        const double dy = std::abs(y + 0.5 - cy_), dx = std::abs(x + 0.5 - cx_);
        return (dy <= b_ / 2 && dx <= a_ / 2) || (dx <= b_ / 2 && dy <= a_ / 2) ? 1.0 : 0.0;
      }
      default: {
        const double reach = (w_ * std::abs(a_) + h_ * std::abs(b_)) / 2;
        return std::clamp(0.5 + 0.5 * ((x + 0.5 - w_ / 2) * a_ + (y + 0.5 - h_ / 2) * b_) / reach, 0.0, 1.0);
      }
    }
  }

 private:
  int family_;
  double h_, w_;
  double a_ = 1, b_ = 0, cy_ = 0, cx_ = 0;
};

constexpr int pattern_families = 8;

// Class k's families: k itself below 8, then the pairs (0,1), (0,2), ..., (6,7) in order.
std::pair<int, int> families_of(std::int64_t k) {
  if (k < pattern_families) return {static_cast<int>(k), -1};
  std::int64_t m = k - pattern_families;
  for (int a = 0; a < pattern_families; ++a)
    for (int b = a + 1; b < pattern_families; ++b)
      if (m-- == 0) return {a, b};
  throw std::invalid_argument("classes: at most " + std::to_string(max_image_classes));
}

}  // namespace

Dataset make_images(std::int64_t classes, std::int64_t points_per_class, std::int64_t channels, std::int64_t height,
                    std::int64_t width, double noise, std::uint64_t seed) {
  const auto invalid = [](const std::string& what) { throw std::invalid_argument("make_images: " + what); };
  if (classes < 2 || classes > max_image_classes)
    invalid("classes must be 2.." + std::to_string(max_image_classes) + ", got " + std::to_string(classes));
  if (points_per_class < 1) invalid("points_per_class must be positive, got " + std::to_string(points_per_class));
  if (channels < 1) invalid("channels must be positive, got " + std::to_string(channels));
  if (height < 4) invalid("height must be at least 4, got " + std::to_string(height));
  if (width < 4) invalid("width must be at least 4, got " + std::to_string(width));
  if (!(noise >= 0) || !std::isfinite(noise)) invalid("noise must be finite and not negative, got " + std::to_string(noise));
  constexpr std::int64_t limit = std::int64_t{1} << 31;
  std::int64_t values = 1;
  for (const std::int64_t f : {classes, points_per_class, channels, height, width}) {
    if (values > limit / f)
      invalid("classes * points_per_class * channels * height * width = " + std::to_string(classes) + " * " +
              std::to_string(points_per_class) + " * " + std::to_string(channels) + " * " + std::to_string(height) +
              " * " + std::to_string(width) + " is more than 2^31 values");
    values *= f;
  }

  RandomStream r(seed, 6), noise_stream(seed, 7);  // noise apart: the same seed draws the same patterns at any noise
  const std::int64_t plane = height * width;
  Dataset d = classification(classes * points_per_class, channels * plane);
  d.sample_shape = {channels, height, width};
  d.classes = classes;
  std::vector<double> p(static_cast<std::size_t>(plane));
  for (std::int64_t k = 0; k < classes; ++k) {
    const auto [fa, fb] = families_of(k);
    for (std::int64_t i = 0; i < points_per_class; ++i) {
      const std::int64_t row = k * points_per_class + i;
      d.labels[static_cast<std::size_t>(row)] = k;
      const Pattern a(fa, r, static_cast<double>(height), static_cast<double>(width));
      const Pattern b(fb, r, static_cast<double>(height), static_cast<double>(width));
      for (std::int64_t y = 0; y < height; ++y)
        for (std::int64_t x = 0; x < width; ++x) {
          const auto yd = static_cast<double>(y), xd = static_cast<double>(x);
          p[static_cast<std::size_t>(y * width + x)] = std::max(a(yd, xd), b(yd, xd));
        }
      const double background = 0.2 * uniform01(r), intensity = 0.5 + 0.5 * uniform01(r);
      float* out = d.x.row(row);
      for (std::int64_t c = 0; c < channels; ++c) {
        const double tint = 0.4 + 0.6 * uniform01(r);
        for (std::int64_t j = 0; j < plane; ++j) {
          const double v = background + (intensity - background) * tint * p[static_cast<std::size_t>(j)];
          out[c * plane + j] = static_cast<float>(std::clamp(v + noise * normal(noise_stream), 0.0, 1.0));
        }
      }
    }
  }
  return d;
}

namespace {

// The array's values as a (rows, cols) float matrix; rows * cols is its size.
Matrix<float> to_float_matrix(const NpyArray& a, const std::string& what, std::int64_t rows, std::int64_t cols) {
  Matrix<float> m(rows, cols);
  if (a.dtype == DType::float32) {
    const auto v = a.values<float>(what);
    std::copy(v.begin(), v.end(), m.data.begin());
  } else if (a.dtype == DType::float64) {
    const auto v = a.values<double>(what);
    for (std::size_t i = 0; i < v.size(); ++i) m.data[i] = static_cast<float>(v[i]);
  } else {
    throw DataError(what + ": expected float32 or float64 data, found " + std::string(to_string(a.dtype)));
  }
  return m;
}

Matrix<float> float_matrix(const NpyArray& a, const std::string& what) {
  if (a.shape.size() != 2 && a.shape.size() != 1)
    throw DataError(what + ": expected a 1-D or 2-D array, found shape " + a.shape_string());
  return to_float_matrix(a, what, a.shape[0], a.shape.size() == 2 ? a.shape[1] : 1);
}

// Inputs (n, d1, d2, ...): one row per sample, flattened row-major; sample_shape = {d1, d2, ...}.
Matrix<float> input_matrix(const NpyArray& a, const std::string& what, std::vector<std::int64_t>& sample_shape) {
  if (a.shape.size() < 2)
    throw DataError(what + ": expected an array of rank 2 or more ((n, features), or images (n, C, H, W)), found shape " +
                    a.shape_string());
  for (const std::int64_t s : a.shape)
    if (s <= 0) throw DataError(what + ": shape " + a.shape_string() + " has a zero-sized dimension");
  sample_shape.assign(a.shape.begin() + 1, a.shape.end());
  std::int64_t cols = 1;
  for (const std::int64_t s : sample_shape) cols *= s;  // the array is in memory: its size fits
  return to_float_matrix(a, what, a.shape[0], cols);
}

std::vector<std::int64_t> integers(const NpyArray& a, const std::string& what) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(a.size()));
  switch (a.dtype) {
    case DType::int64: {
      const auto v = a.values<std::int64_t>(what);
      std::copy(v.begin(), v.end(), out.begin());
      break;
    }
    case DType::int32: {
      const auto v = a.values<std::int32_t>(what);
      std::copy(v.begin(), v.end(), out.begin());
      break;
    }
    case DType::uint8: {
      const auto v = a.values<std::uint8_t>(what);
      std::copy(v.begin(), v.end(), out.begin());
      break;
    }
    default: throw DataError(what + ": expected integer data, found " + std::string(to_string(a.dtype)));
  }
  return out;
}

void set_labels(Dataset& d, std::vector<std::int64_t> labels, const std::string& what, std::int64_t positions = 1) {
  if (static_cast<std::int64_t>(labels.size()) != d.size() * positions)
    throw DataError(what + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(d.size()) + " rows" +
                    (positions > 1 ? " of " + std::to_string(positions) + " positions" : ""));
  std::int64_t max = -1;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) throw DataError(what + ": label " + std::to_string(labels[i]) + " at row " + std::to_string(i) + " is negative");
    max = std::max(max, labels[i]);
  }
  d.labels = std::move(labels);
  d.label_positions = positions;
  d.classes = max + 1;
}

// Token ids (n, T) of integer x: stored as floats (exact below 2^24).
Matrix<float> token_matrix(const NpyArray& a, const std::string& what, std::int64_t& vocab) {
  if (a.shape.size() != 2 || a.shape[0] <= 0 || a.shape[1] <= 0)
    throw DataError(what + ": integer inputs are token ids, expected a non-empty (n, T) array, found shape " + a.shape_string() +
                    " (for real-valued inputs such as uint8 images, save them as float32)");
  const std::vector<std::int64_t> ids = integers(a, what);
  Matrix<float> x(a.shape[0], a.shape[1]);
  vocab = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= (std::int64_t{1} << 24))
      throw DataError(what + ": token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                      " is outside 0 .. 2^24-1");
    x.data[i] = static_cast<float>(ids[i]);
    vocab = std::max(vocab, ids[i] + 1);
  }
  return x;
}

}  // namespace

Dataset load_npz_dataset(const std::filesystem::path& path, const std::string& x_key, const std::string& y_key,
                         const std::string& batch_index_key) {
  const NpzFile npz(path);
  Dataset d;
  const std::string p = where(path) + ":";
  const NpyArray x = npz.read(x_key);
  const bool tokens = x.dtype != DType::float32 && x.dtype != DType::float64;
  if (tokens) {
    d.x = token_matrix(x, p + x_key, d.vocab);
    d.sample_shape = {d.x.cols};
  } else {
    d.x = input_matrix(x, p + x_key, d.sample_shape);
  }
  const NpyArray y = npz.read(y_key);
  if (tokens) {
    const bool per_position = y.shape.size() == 2;
    if (y.dtype == DType::float32 || y.dtype == DType::float64 || (y.shape.size() != 1 && !per_position) ||
        (per_position && (y.shape[0] != d.size() || y.shape[1] != d.x.cols)))
      throw DataError(p + y_key + ": with token ids " + x.shape_string() + " in " + x_key +
                      ", expected integer targets of shape (" + std::to_string(d.size()) + ", " + std::to_string(d.x.cols) +
                      ") (one per position) or (" + std::to_string(d.size()) + ",), found " +
                      std::string(to_string(y.dtype)) + " " + y.shape_string());
    set_labels(d, integers(y, p + y_key), p + y_key, per_position ? d.x.cols : 1);
    if (per_position) {  // next tokens: the same vocabulary (one label per sequence is a class, not a token)
      d.vocab = std::max(d.vocab, d.classes);
      d.classes = d.vocab;
    }
  } else if (y.dtype == DType::float32 || y.dtype == DType::float64) {
    d.targets = float_matrix(y, p + y_key);
    if (d.targets.rows != d.size())
      throw DataError(p + y_key + ": " + std::to_string(d.targets.rows) + " targets for " + std::to_string(d.size()) + " rows of " + x_key);
  } else {
    if (y.shape.size() != 1) throw DataError(p + y_key + ": labels must be 1-D, found shape " + y.shape_string());
    set_labels(d, integers(y, p + y_key), p + y_key);
  }
  if (!batch_index_key.empty()) {
    const NpyArray bi = npz.read(batch_index_key);
    if (bi.shape.size() != 2)
      throw DataError(p + batch_index_key + ": expected a (steps, batch) array, found shape " + bi.shape_string());
    d.batch_index = Matrix<std::int64_t>(bi.shape[0], bi.shape[1]);
    d.batch_index.data = integers(bi, p + batch_index_key);
    for (std::size_t i = 0; i < d.batch_index.data.size(); ++i) {
      const std::int64_t row = d.batch_index.data[i];
      if (row < 0 || row >= d.size())
        throw DataError(p + batch_index_key + ": entry " + std::to_string(i) + " = " + std::to_string(row) +
                        " is not a row of " + x_key + " (0.." + std::to_string(d.size() - 1) + ")");
    }
  }
  return d;
}

Dataset load_csv_dataset(const std::filesystem::path& path, const std::string& label,
                         const std::vector<std::string>& targets, const std::vector<std::string>& features) {
  std::ifstream in(path);
  if (!in) throw DataError(where(path) + ": cannot open");
  std::string line;
  if (!std::getline(in, line)) throw DataError(where(path) + ": empty file (expected a header row)");
  const auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      while (!cell.empty() && (cell.back() == '\r' || cell.back() == ' ')) cell.pop_back();
      while (!cell.empty() && cell.front() == ' ') cell.erase(cell.begin());
      out.push_back(cell);
    }
    return out;
  };
  const std::vector<std::string> header = split(line);
  const auto column = [&](const std::string& name) -> std::size_t {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      std::string list;
      for (const auto& h : header) list += (list.empty() ? "" : ", ") + h;
      throw DataError(where(path) + ": no column '" + name + "' (the header has: " + list + ")");
    }
    return static_cast<std::size_t>(it - header.begin());
  };
  std::vector<std::size_t> out_cols, in_cols;
  if (!label.empty()) out_cols.push_back(column(label));
  for (const auto& t : targets) out_cols.push_back(column(t));
  if (!features.empty()) {
    for (const auto& f : features) in_cols.push_back(column(f));
  } else {
    for (std::size_t c = 0; c < header.size(); ++c)
      if (std::find(out_cols.begin(), out_cols.end(), c) == out_cols.end()) in_cols.push_back(c);
  }
  std::vector<std::vector<double>> rows;
  std::int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
    const std::vector<std::string> cells = split(line);
    if (cells.size() != header.size())
      throw DataError(where(path) + ":" + std::to_string(line_no) + ": " + std::to_string(cells.size()) +
                      " values, the header has " + std::to_string(header.size()) + " columns");
    std::vector<double> row(cells.size());
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const char* b = cells[c].data();
      const auto [ptr, ec] = std::from_chars(b, b + cells[c].size(), row[c]);
      if (ec != std::errc{} || ptr != b + cells[c].size())
        throw DataError(where(path) + ":" + std::to_string(line_no) + ": column '" + header[c] + "' holds '" +
                        cells[c] + "', not a number");
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) throw DataError(where(path) + ": no data rows");
  Dataset d;
  const auto n = static_cast<std::int64_t>(rows.size());
  d.x = Matrix<float>(n, static_cast<std::int64_t>(in_cols.size()));
  d.sample_shape = {d.x.cols};
  for (std::int64_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < in_cols.size(); ++c)
      d.x(i, static_cast<std::int64_t>(c)) = static_cast<float>(rows[static_cast<std::size_t>(i)][in_cols[c]]);
  if (!label.empty()) {
    std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = rows[static_cast<std::size_t>(i)][out_cols[0]];
      if (v != std::floor(v))
        throw DataError(where(path) + ":" + std::to_string(i + 2) + ": label '" + label + "' = " + std::to_string(v) +
                        " is not an integer class");
      labels[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(v);
    }
    set_labels(d, std::move(labels), where(path) + ": column '" + label + "'");
  } else {
    d.targets = Matrix<float>(n, static_cast<std::int64_t>(targets.size()));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < targets.size(); ++c)
        d.targets(i, static_cast<std::int64_t>(c)) = static_cast<float>(rows[static_cast<std::size_t>(i)][out_cols[c]]);
  }
  return d;
}

Batcher::Batcher(const Dataset& data, std::int64_t batch_size, std::uint64_t seed)
    : data_(data), batch_size_(batch_size), seed_(seed) {}

Batch Batcher::batch(std::int64_t step) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(batch_size_));
  if (data_.batch_index.rows > 0) {
    for (std::int64_t i = 0; i < batch_size_; ++i) rows[static_cast<std::size_t>(i)] = data_.batch_index(step, i);
  } else {
    const std::int64_t per_epoch = data_.size() / batch_size_;
    const std::int64_t epoch = step / per_epoch, offset = (step % per_epoch) * batch_size_;
    if (epoch != epoch_) {  // a Fisher-Yates shuffle from the epoch's own stream: any step can be reached directly
      RandomStream r(seed_, 0x62617463 + static_cast<std::uint64_t>(epoch));
      order_.resize(static_cast<std::size_t>(data_.size()));
      for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int64_t>(i);
      for (std::int64_t i = data_.size() - 1; i > 0; --i)
        std::swap(order_[static_cast<std::size_t>(i)], order_[static_cast<std::size_t>(uniform_below(r, i + 1))]);
      epoch_ = epoch;
    }
    for (std::int64_t i = 0; i < batch_size_; ++i) rows[static_cast<std::size_t>(i)] = order_[static_cast<std::size_t>(offset + i)];
  }
  Batch b;
  b.rows = rows;
  b.x = Matrix<float>(batch_size_, data_.features());
  for (std::int64_t i = 0; i < batch_size_; ++i)
    std::copy(data_.x.row(rows[static_cast<std::size_t>(i)]), data_.x.row(rows[static_cast<std::size_t>(i)]) + data_.features(), b.x.row(i));
  if (data_.classification()) {
    const auto per = static_cast<std::size_t>(data_.label_positions);
    for (auto r : rows)
      b.labels.insert(b.labels.end(), data_.labels.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * per),
                      data_.labels.begin() + static_cast<std::ptrdiff_t>((static_cast<std::size_t>(r) + 1) * per));
  } else {
    b.targets = Matrix<float>(batch_size_, data_.targets.cols);
    for (std::int64_t i = 0; i < batch_size_; ++i)
      std::copy(data_.targets.row(rows[static_cast<std::size_t>(i)]), data_.targets.row(rows[static_cast<std::size_t>(i)]) + data_.targets.cols, b.targets.row(i));
  }
  return b;
}

}  // namespace mpscope::sim
