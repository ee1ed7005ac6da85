// A row-major matrix of any scalar type: the storage of every model tensor (float for rounded recipes, double for
// fp64, a Boost float for the exact lane). Shapes are written beside every declaration that holds one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mpscope::sim {

template <typename T>
struct Matrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<T> data;  // (rows, cols) row-major

  Matrix() = default;
  Matrix(std::int64_t r, std::int64_t c, const T& fill = T(0))
      : rows(r), cols(c), data(static_cast<std::size_t>(r * c), fill) {}

  T& operator()(std::int64_t r, std::int64_t c) { return data[static_cast<std::size_t>(r * cols + c)]; }
  const T& operator()(std::int64_t r, std::int64_t c) const { return data[static_cast<std::size_t>(r * cols + c)]; }
  std::int64_t size() const { return rows * cols; }
  std::span<T> values() { return data; }
  std::span<const T> values() const { return data; }
  T* row(std::int64_t r) { return data.data() + r * cols; }
  const T* row(std::int64_t r) const { return data.data() + r * cols; }
};

}  // namespace mpscope::sim
