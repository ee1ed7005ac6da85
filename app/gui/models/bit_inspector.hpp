// The bit inspector: a value typed by the user, shown in every standard format (bits, exact value, rounding error,
// neighbours, ulp), with single bits flipped on request. The readings are sim::read_bits's, as `mpscope inspect`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/decimal.hpp"
#include "sim/inspect.hpp"

namespace mpscope::gui {

enum class BitField { sign, exponent, mantissa };
BitField field_of(const sim::Format& f, int bit);  // bit 0: the least significant

class BitInspector {
 public:
  BitInspector();  // the seven standard formats, widest first; input "0.1"

  // "" when the text is a number (decimal, hex float, inf, nan); else why not, and nothing changes.
  std::string set_input(const std::string& text);
  const std::string& input() const { return input_; }
  const std::vector<sim::FormatReading>& readings() const { return readings_; }

  // Flips one bit of one format's pattern: that format shows the new pattern, the new value becomes the input
  // (its exact decimal) and every other format shows how it rounds.
  void flip(std::size_t row, int bit);

 private:
  void update(const sim::ParsedReal& value, std::optional<std::pair<std::size_t, std::uint64_t>> kept = {});
  std::vector<sim::Format> formats_;
  std::string input_;
  std::vector<sim::FormatReading> readings_;
};

}  // namespace mpscope::gui
