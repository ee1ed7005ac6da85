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
  d.targets = Matrix<float>(points, 1);
  for (std::int64_t i = 0; i < points; ++i) {
    const double x = (2 * uniform01(r) - 1) * std::numbers::pi;
    d.x(i, 0) = static_cast<float>(x);
    d.targets(i, 0) = static_cast<float>(amplitude * (std::sin(x) + noise * normal(r)));
  }
  return d;
}

namespace {

Matrix<float> float_matrix(const NpyArray& a, const std::string& what) {
  if (a.shape.size() != 2 && a.shape.size() != 1)
    throw DataError(what + ": expected a 1-D or 2-D array, found shape " + a.shape_string());
  const std::int64_t rows = a.shape[0], cols = a.shape.size() == 2 ? a.shape[1] : 1;
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

void set_labels(Dataset& d, std::vector<std::int64_t> labels, const std::string& what) {
  if (static_cast<std::int64_t>(labels.size()) != d.size())
    throw DataError(what + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(d.size()) + " rows");
  std::int64_t max = -1;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) throw DataError(what + ": label " + std::to_string(labels[i]) + " at row " + std::to_string(i) + " is negative");
    max = std::max(max, labels[i]);
  }
  d.labels = std::move(labels);
  d.classes = max + 1;
}

}  // namespace

Dataset load_npz_dataset(const std::filesystem::path& path, const std::string& x_key, const std::string& y_key,
                         const std::string& batch_index_key) {
  const NpzFile npz(path);
  Dataset d;
  const std::string p = where(path) + ":";
  d.x = float_matrix(npz.read(x_key), p + x_key);
  const NpyArray y = npz.read(y_key);
  if (y.dtype == DType::float32 || y.dtype == DType::float64) {
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

namespace {

// Names "<prefix><k>.weight": the sorted distinct k of the archive.
std::vector<std::string> layer_keys(const std::vector<std::string>& names, const std::string& prefix) {
  std::map<std::int64_t, std::string> ks;
  for (const auto& n : names) {
    if (!n.starts_with(prefix) || !n.ends_with(".weight")) continue;
    const std::string k = n.substr(prefix.size(), n.size() - prefix.size() - 7);
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(k.data(), k.data() + k.size(), v);
    if (ec == std::errc{} && ptr == k.data() + k.size()) ks[v] = k;
  }
  std::vector<std::string> out;
  for (const auto& [v, k] : ks) out.push_back(k);
  return out;
}

template <typename Read>
InitialWeights assemble(const std::vector<std::string>& names, const std::string& prefix, const ModelConfig& m,
                        const std::string& file, Read read) {
  const std::vector<std::string> keys = layer_keys(names, prefix);
  if (static_cast<int>(keys.size()) != m.layers())
    throw DataError(file + ": found " + std::to_string(keys.size()) + " weights named " + prefix +
                    "<k>.weight, the model has " + std::to_string(m.layers()) + " Linear layers");
  InitialWeights w;
  for (int l = 0; l < m.layers(); ++l) {
    const std::int64_t in = m.widths[static_cast<std::size_t>(l)], out = m.widths[static_cast<std::size_t>(l) + 1];
    const std::string wname = prefix + keys[static_cast<std::size_t>(l)] + ".weight";
    const std::string bname = prefix + keys[static_cast<std::size_t>(l)] + ".bias";
    auto [wshape, wvals] = read(wname);
    if (wshape != std::vector<std::int64_t>{out, in})
      throw DataError(file + ": " + wname + " has shape (" + (wshape.size() > 0 ? std::to_string(wshape[0]) : "") +
                      (wshape.size() > 1 ? ", " + std::to_string(wshape[1]) : "") + "), layer " + std::to_string(l + 1) +
                      " needs (" + std::to_string(out) + ", " + std::to_string(in) + ") (PyTorch's (out, in))");
    Matrix<double> weight(out, in);
    weight.data = std::move(wvals);
    auto [bshape, bvals] = read(bname);
    if (bshape != std::vector<std::int64_t>{out})
      throw DataError(file + ": " + bname + " must have shape (" + std::to_string(out) + ",)");
    w.weight.push_back(std::move(weight));
    w.bias.push_back(std::move(bvals));
  }
  return w;
}

}  // namespace

InitialWeights load_npz_weights(const std::filesystem::path& path, const std::string& prefix, const ModelConfig& m) {
  const NpzFile npz(path);
  return assemble(npz.names(), prefix, m, where(path), [&](const std::string& name) {
    const NpyArray a = npz.read(name);
    const Matrix<float> f = float_matrix(a, where(path) + ":" + name);
    return std::pair{a.shape, std::vector<double>(f.data.begin(), f.data.end())};
  });
}

InitialWeights load_safetensors_weights(const std::filesystem::path& path, const std::string& prefix,
                                        const ModelConfig& m) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(where(path) + ": cannot open");
  std::uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  if (!in || header_size > 100'000'000) throw DataError(where(path) + ": not a safetensors file");
  std::string header(header_size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  const std::vector<char> body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(where(path) + ": bad safetensors header (" + e.what() + ")");
  }
  std::vector<std::string> names;
  for (const auto& [k, v] : meta.items())
    if (k != "__metadata__") names.push_back(k);
  return assemble(names, prefix, m, where(path), [&](const std::string& name) {
    if (!meta.contains(name)) throw DataError(where(path) + ": no tensor '" + name + "'");
    const auto& t = meta[name];
    const std::string dtype = t.at("dtype");
    const std::vector<std::int64_t> shape = t.at("shape");
    const std::size_t begin = t.at("data_offsets")[0], end = t.at("data_offsets")[1];
    std::int64_t count = 1;
    for (auto s : shape) count *= s;
    const std::size_t width = dtype == "F64" ? 8 : dtype == "F32" ? 4 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
    if (width == 0) throw DataError(where(path) + ": " + name + " has dtype " + dtype + " (expected F32, F64, F16 or BF16)");
    if (end > body.size() || end - begin != static_cast<std::size_t>(count) * width)
      throw DataError(where(path) + ": " + name + " has bad data offsets");
    std::vector<double> v(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < v.size(); ++i) {
      const char* p = body.data() + begin + i * width;
      if (dtype == "F64") {
        std::memcpy(&v[i], p, 8);
      } else if (dtype == "F32") {
        float f;
        std::memcpy(&f, p, 4);
        v[i] = f;
      } else {
        std::uint16_t h;
        std::memcpy(&h, p, 2);
        v[i] = decode(h, dtype == "F16" ? fp16() : bf16());
      }
    }
    return std::pair{shape, v};
  });
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
    for (auto r : rows) b.labels.push_back(data_.labels[static_cast<std::size_t>(r)]);
  } else {
    b.targets = Matrix<float>(batch_size_, data_.targets.cols);
    for (std::int64_t i = 0; i < batch_size_; ++i)
      std::copy(data_.targets.row(rows[static_cast<std::size_t>(i)]), data_.targets.row(rows[static_cast<std::size_t>(i)]) + data_.targets.cols, b.targets.row(i));
  }
  return b;
}

}  // namespace mpscope::sim
