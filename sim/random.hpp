// Seeded, reproducible random streams (PCG) for stochastic rounding and data generation.
#pragma once

#include <cstdint>
#include <span>

#include <pcg_random.hpp>

namespace mpscope::sim {

// One stream of 64-bit random numbers: the same (seed, stream) always gives the same sequence, and different
// stream ids give independent sequences (PCG's stream selection), e.g. one per lane or per tensor.
class RandomStream {
 public:
  explicit RandomStream(std::uint64_t seed, std::uint64_t stream = 0) : engine_(seed, stream) {}
  std::uint64_t next() { return engine_(); }
  void fill(std::span<std::uint64_t> out) {
    for (auto& x : out) x = engine_();
  }

 private:
  pcg64 engine_;
};

}  // namespace mpscope::sim
