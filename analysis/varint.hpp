// Internal: the unsigned LEB128 numbers of the run file's blobs (histograms, tensor statistics; docs/run-format.md).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mpscope::analysis::detail {

inline void append_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

// The number at blob[at] (at moves past it); a truncated or overlong one throws Error("<blob> is truncated" / ...).
template <typename Error>
std::uint64_t read_varint(std::span<const std::uint8_t> blob, std::size_t& at, const char* blob_name) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= blob.size()) throw Error(std::string(blob_name) + " is truncated");
    const std::uint8_t byte = blob[at++];
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  throw Error(std::string(blob_name) + " has an overlong number");
}

}  // namespace mpscope::analysis::detail
