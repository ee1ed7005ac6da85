// What a bit pattern of a format means: its fields, exact value, category, neighbours, ulp and (given the input it
// was rounded from) the rounding error. Shared by `mpscope inspect` and the GUI's bit inspector.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "sim/decimal.hpp"
#include "sim/format.hpp"

namespace mpscope::sim {

struct FormatReading {
  Format format;
  std::uint64_t bits = 0;
  int sign = 0;
  std::uint64_t exponent_field = 0, mantissa_field = 0;
  double value = 0;
  Category category = Category::zero;
  std::string exact;  // the exact decimal value
  // Against the input (empty without one): "exact", "rounded up", "rounded down", "overflow to infinity", or
  // "overflow: no finite value of F is this large, and it has no infinity"; the error and relative error.
  std::string direction, error, relative_error;
  // Finite values only; a neighbour is empty past the largest finite value of a format without infinity.
  std::optional<double> next_down, next_up, ulp;
};

FormatReading read_bits(const Format& f, std::uint64_t bits, const ParsedReal* input = nullptr);

std::string binary_digits(std::uint64_t x, int width);  // "0101", most significant first
std::string hex_digits(std::uint64_t x, int bits);      // "0x3C00", as many digits as the bits need

}  // namespace mpscope::sim
