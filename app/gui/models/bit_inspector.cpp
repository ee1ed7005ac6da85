#include "app/gui/models/bit_inspector.hpp"

#include <cmath>
#include <stdexcept>

namespace mpscope::gui {

BitField field_of(const sim::Format& f, int bit) {
  if (bit >= f.exponent_bits + f.mantissa_bits) return BitField::sign;
  return bit >= f.mantissa_bits ? BitField::exponent : BitField::mantissa;
}

BitInspector::BitInspector() : formats_(sim::standard_formats().begin(), sim::standard_formats().end()) {
  set_input("0.1");
}

std::string BitInspector::set_input(const std::string& text) {
  sim::ParsedReal value;
  try {
    value = sim::parse_real(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  input_ = text;
  update(value);
  return "";
}

void BitInspector::update(const sim::ParsedReal& value, std::optional<std::pair<std::size_t, std::uint64_t>> kept) {
  readings_.clear();
  for (std::size_t i = 0; i < formats_.size(); ++i) {
    const std::uint64_t bits = kept && kept->first == i ? kept->second : sim::encode(value, formats_[i]);
    readings_.push_back(sim::read_bits(formats_[i], bits, &value));
  }
}

void BitInspector::flip(std::size_t row, int bit) {
  if (row >= readings_.size()) throw std::out_of_range("bit inspector: no format row " + std::to_string(row));
  const sim::Format& f = formats_[row];
  if (bit < 0 || bit >= f.total_bits()) throw std::out_of_range("bit inspector: " + f.name + " has no bit " + std::to_string(bit));
  const std::uint64_t bits = readings_[row].bits ^ (std::uint64_t{1} << bit);
  const double v = sim::decode(bits, f);
  input_ = std::isnan(v) ? "nan" : sim::exact_decimal(v);
  update(sim::parse_real(input_), std::pair{row, bits});
}

}  // namespace mpscope::gui
