#include "sim/round_array.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <stdexcept>
#include <string>

#include "sim/rounding.hpp"
#include "sim/simd/round_kernels.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace mpscope::sim {

namespace simd {
namespace {
std::uint32_t float_bits_of(double value) {
  const auto bits = std::bit_cast<std::uint32_t>(static_cast<float>(value));
  return std::isnan(value) ? (bits & 0x80000000u) | 0x7FC00000u : bits;
}
}  // namespace

Float32Rounding Float32Rounding::make(const Format& f, Rounding mode) {
  Float32Rounding p;
  p.mantissa_bits = f.mantissa_bits;
  p.emin = f.emin();
  p.flush = !f.subnormals;
  p.max_finite = float_bits_of(f.max_finite());
  // The scalar reference decides what an overflow and an infinite input become; the kernels copy it.
  const double huge = std::ldexp(1.0, 200);
  p.overflow_positive = float_bits_of(round(huge, f, mode, ~std::uint64_t{0})) & 0x7FFFFFFFu;
  p.overflow_negative = float_bits_of(round(-huge, f, mode, ~std::uint64_t{0})) & 0x7FFFFFFFu;
  p.infinity_result = float_bits_of(round(INFINITY, f, mode)) & 0x7FFFFFFFu;
  return p;
}
}  // namespace simd

namespace {

bool cpu_has_f16c() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & bit_F16C) != 0;
#else
  return false;
#endif
}

Isa detect_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && cpu_has_f16c())
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && cpu_has_f16c()) return Isa::avx2;
#endif
  return Isa::portable;
}

Isa hardware_isa() {
  static const Isa isa = detect_isa();
  return isa;
}

constexpr std::size_t random_chunk = 1024;

}  // namespace

const simd::RoundKernels& simd::kernels_for(Isa isa) {
  switch (isa) {
#if defined(MPSCOPE_HAVE_X86_KERNELS)
    case Isa::avx512: return avx512_kernels();
    case Isa::avx2: return avx2_kernels();
#else
    case Isa::avx512:
    case Isa::avx2:
#endif
    case Isa::portable: break;
  }
  return portable_kernels();
}


bool isa_supported(Isa isa) {
#if !defined(MPSCOPE_HAVE_X86_KERNELS)
  if (isa != Isa::portable) return false;
#endif
  return static_cast<int>(isa) <= static_cast<int>(hardware_isa());
}

Isa best_isa() {
  static const Isa isa = [] {
    Isa best = Isa::portable;
    for (Isa candidate : {Isa::avx2, Isa::avx512})
      if (isa_supported(candidate)) best = candidate;
    if (const char* env = std::getenv("MPSCOPE_ISA")) {
      const std::string wanted(env);
      for (Isa candidate : {Isa::portable, Isa::avx2, Isa::avx512})
        if (wanted == to_string(candidate) && static_cast<int>(candidate) < static_cast<int>(best)) best = candidate;
    }
    return best;
  }();
  return isa;
}

std::string_view to_string(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

void round_array(std::span<const float> in, std::span<float> out, const Format& f, Rounding mode,
                 RandomStream* random) {
  round_array(in, out, f, mode, random, best_isa());
}

void round_array(std::span<const float> in, std::span<float> out, const Format& f, Rounding mode,
                 RandomStream* random, Isa isa) {
  if (in.size() != out.size())
    throw std::invalid_argument("round_array: input has " + std::to_string(in.size()) + " elements, output " +
                                std::to_string(out.size()));
  if (mode == Rounding::stochastic && random == nullptr)
    throw std::invalid_argument("round_array: stochastic rounding needs a RandomStream");
  if (!isa_supported(isa)) throw std::invalid_argument("round_array: this CPU cannot run " + std::string(to_string(isa)));

  if (!f.within_float32()) {  // wider formats: the scalar reference, through double
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::uint64_t r = mode == Rounding::stochastic ? random->next() : 0;
      out[i] = static_cast<float>(round(static_cast<double>(in[i]), f, mode, r));
    }
    return;
  }

  const simd::RoundKernels& kernels = simd::kernels_for(isa);
  const simd::Float32Rounding params = simd::Float32Rounding::make(f, mode);
  // Format equality includes the switches: only plain fp16 / bf16 take the conversion-instruction kernels.
  if (mode == Rounding::nearest_even && f == fp16())
    return kernels.fp16_nearest(in.data(), out.data(), in.size(), params, nullptr);
  if (mode == Rounding::nearest_even && f == bf16())
    return kernels.bf16_nearest(in.data(), out.data(), in.size(), params, nullptr);

  const simd::RoundKernel kernel = kernels.generic[static_cast<int>(mode)];
  if (mode != Rounding::stochastic) return kernel(in.data(), out.data(), in.size(), params, nullptr);

  std::array<std::uint64_t, random_chunk> draws;
  for (std::size_t start = 0; start < in.size(); start += random_chunk) {
    const std::size_t count = std::min(random_chunk, in.size() - start);
    random->fill(std::span(draws.data(), count));
    kernel(in.data() + start, out.data() + start, count, params, draws.data());
  }
}

void round_array(std::span<const double> in, std::span<double> out, const Format& f, Rounding mode,
                 RandomStream* random) {
  if (in.size() != out.size())
    throw std::invalid_argument("round_array: input has " + std::to_string(in.size()) + " elements, output " +
                                std::to_string(out.size()));
  if (mode == Rounding::stochastic && random == nullptr)
    throw std::invalid_argument("round_array: stochastic rounding needs a RandomStream");
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::uint64_t r = mode == Rounding::stochastic ? random->next() : 0;
    out[i] = round(in[i], f, mode, r);
  }
}

void round_array(std::span<const double> in, std::span<float> out, const Format& f, Rounding mode,
                 RandomStream* random) {
  if (in.size() != out.size())
    throw std::invalid_argument("round_array: input has " + std::to_string(in.size()) + " elements, output " +
                                std::to_string(out.size()));
  if (!f.values_fit_float32()) throw std::invalid_argument("round_array: " + f.name + " does not fit float32 results");
  if (mode == Rounding::stochastic && random == nullptr)
    throw std::invalid_argument("round_array: stochastic rounding needs a RandomStream");
  if (f == fp32() && mode == Rounding::nearest_even) {
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = static_cast<float>(in[i]);
    return;
  }
  if (f.mantissa_bits > 21 || mode == Rounding::stochastic) {
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::uint64_t r = mode == Rounding::stochastic ? random->next() : 0;
      out[i] = static_cast<float>(round(in[i], f, mode, r));
    }
    return;
  }
  // Round to odd at 24 bits: the nearest float, moved toward zero when it overshot, with its last bit set when inexact.
  for (std::size_t i = 0; i < in.size(); ++i) {
    const double d = in[i];
    const float nearest = static_cast<float>(d);
    std::uint32_t bits = std::bit_cast<std::uint32_t>(nearest);
    const double back = static_cast<double>(nearest);
    const bool inexact = back != d && !std::isnan(d);
    bits -= (inexact && std::fabs(back) > std::fabs(d)) ? 1u : 0u;
    bits |= inexact ? 1u : 0u;
    out[i] = std::bit_cast<float>(bits);
  }
  round_array(out, out, f, mode, random);
}

RoundingEffects& RoundingEffects::operator+=(const RoundingEffects& o) {
  elements += o.elements;
  underflow += o.underflow;
  subnormal += o.subnormal;
  overflow += o.overflow;
  saturated += o.saturated;
  return *this;
}

namespace {
template <typename Before, typename After, typename Kernel>
RoundingEffects count_with(std::span<const Before> before, std::span<const After> after, const Format& f, Kernel kernel) {
  if (before.size() != after.size()) throw std::invalid_argument("count_rounding_effects: arrays differ in length");
  RoundingEffects e;
  kernel(before.data(), after.data(), before.size(), f.min_normal(), f.max_finite(), &e);
  return e;
}
}  // namespace

RoundingEffects count_rounding_effects(std::span<const float> before, std::span<const float> after,
                                       const Format& f) {
  return count_with(before, after, f, simd::kernels_for(best_isa()).count_float_float);
}

RoundingEffects count_rounding_effects(std::span<const double> before, std::span<const double> after,
                                       const Format& f) {
  return count_with(before, after, f, simd::kernels_for(best_isa()).count_double_double);
}

RoundingEffects count_rounding_effects(std::span<const double> before, std::span<const float> after,
                                       const Format& f) {
  return count_with(before, after, f, simd::kernels_for(best_isa()).count_double_float);
}

namespace {
template <typename In>
RoundingEffects round_and_count(std::span<const In> in, std::span<float> out, const Format& f, Rounding mode,
                                RandomStream* random) {
  if (in.size() != out.size())
    throw std::invalid_argument("round_array: input has " + std::to_string(in.size()) + " elements, output " +
                                std::to_string(out.size()));
  constexpr std::size_t chunk = 1024;  // 4 KB of results (and of inputs kept aside): both stay in L1
  std::array<In, chunk> kept;
  const bool in_place = static_cast<const void*>(in.data()) == static_cast<const void*>(out.data());
  RoundingEffects total;
  for (std::size_t start = 0; start < in.size(); start += chunk) {
    const std::size_t count = std::min(chunk, in.size() - start);
    std::span<const In> before = in.subspan(start, count);
    if (in_place) {
      std::copy(before.begin(), before.end(), kept.begin());
      before = std::span<const In>(kept.data(), count);
    }
    const std::span<float> after = out.subspan(start, count);
    round_array(before, after, f, mode, random);
    total += count_rounding_effects(before, std::span<const float>(after), f);
  }
  return total;
}
}  // namespace

RoundingEffects round_array_counted(std::span<const float> in, std::span<float> out, const Format& f, Rounding mode,
                                    RandomStream* random) {
  return round_and_count(in, out, f, mode, random);
}

RoundingEffects round_array_counted(std::span<const double> in, std::span<float> out, const Format& f,
                                    Rounding mode, RandomStream* random) {
  return round_and_count(in, out, f, mode, random);
}

}  // namespace mpscope::sim
