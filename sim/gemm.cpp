#include "sim/gemm.hpp"

#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/exact.hpp"
#include "sim/rounding.hpp"
#include "sim/simd/gemm_kernels.hpp"

namespace mpscope::sim {

namespace simd {

namespace {
constexpr std::int64_t block = 16;

// IEEE result of a sum that has a non-finite term: NaN or +-inf (double arithmetic propagates them the same way).
float non_finite_sum(const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride, std::int64_t k,
                     float c) {
  double s = c;
  for (std::int64_t i = 0; i < k; ++i) s += static_cast<double>(a[i * a_stride]) * b[i * b_stride];
  return static_cast<float>(s);
}

bool all_finite(const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride, std::int64_t k,
                float c) {
  bool finite = std::isfinite(c);
  for (std::int64_t i = 0; i < k; ++i) finite = finite && std::isfinite(a[i * a_stride]) && std::isfinite(b[i * b_stride]);
  return finite;
}

// Integer significand of an fp16 value x with tensor-core exponent e: |x| = significand * 2^(e - 10).
std::int64_t fp16_significand(float x, std::int32_t e) {
  return static_cast<std::int64_t>(std::ldexp(std::fabs(static_cast<double>(x)), 10 - e));
}

std::int64_t shifted(std::int64_t magnitude, int shift) {  // magnitude * 2^shift, truncated toward zero
  if (shift >= 0) return magnitude << shift;
  return -shift >= 63 ? 0 : magnitude >> -shift;
}
}  // namespace

float h100_block(const float* a, const std::int32_t* a_exp, std::int64_t a_stride, const float* b,
                 const std::int32_t* b_exp, std::int64_t b_stride, float c) {
  if (!all_finite(a, a_stride, b, b_stride, block, c)) return non_finite_sum(a, a_stride, b, b_stride, block, c);

  // emax: the largest product exponent e(a)+e(b) and C's exponent (a subnormal C counts as -126).
  const std::int32_t c_exp = c == 0 ? zero_exponent : std::max(std::ilogb(c), -126);
  std::int32_t emax = c_exp;
  for (std::int64_t k = 0; k < block; ++k)
    if (a[k * a_stride] != 0 && b[k * b_stride] != 0) emax = std::max(emax, a_exp[k * a_stride] + b_exp[k * b_stride]);
  if (emax == zero_exponent) return c + 0.0f;  // nothing but zeros: IEEE's signed-zero sum

  // Every term truncated toward zero to a multiple of 2^(emax - 25), then summed exactly (fits in 64 bits:
  // 16 products below 2^27 units and C below 2^26).
  std::int64_t sum = 0;
  for (std::int64_t k = 0; k < block; ++k) {
    const float x = a[k * a_stride], y = b[k * b_stride];
    if (x == 0 || y == 0) continue;
    const std::int32_t ex = a_exp[k * a_stride], ey = b_exp[k * b_stride];
    const std::int64_t product = fp16_significand(x, ex) * fp16_significand(y, ey);  // * 2^(ex + ey - 20)
    const std::int64_t term = shifted(product, ex + ey - 20 - (emax - 25));
    sum += (x < 0) != (y < 0) ? -term : term;
  }
  if (c != 0) {
    const auto c_significand = static_cast<std::int64_t>(std::ldexp(std::fabs(static_cast<double>(c)), 23 - c_exp));
    const std::int64_t term = shifted(c_significand, c_exp - 23 - (emax - 25));
    sum += c < 0 ? -term : term;
  }
  ExactValue v;
  v.negative = sum < 0;
  v.significand = static_cast<std::uint64_t>(sum < 0 ? -sum : sum);
  v.exponent = emax - 25;
  return static_cast<float>(decode(round_to_bits(v, fp32(), Rounding::toward_zero), fp32()));
}

void h100_portable(const PackedFp16& a, const PackedFp16& b, float* d) {
  const std::int64_t m = a.rows, n = b.cols, kp = a.cols;
  for (std::int64_t i = 0; i < m; ++i) {
    const float* a_row = a.value.data() + i * kp;
    const std::int32_t* a_row_exp = a.exponent.data() + i * kp;
    for (std::int64_t j = 0; j < n; ++j) {
      float acc = d[i * n + j];
      for (std::int64_t k0 = 0; k0 < kp; k0 += block) {
        const std::int64_t at = b.panel_index(k0, j);  // the next k of column j is one panel row (16) further
        acc = h100_block(a_row + k0, a_row_exp + k0, 1, b.value.data() + at, b.exponent.data() + at,
                         PackedFp16::panel, acc);
      }
      d[i * n + j] = acc;
    }
  }
}

void fp32_portable(const float* a, const float* b, float* d, std::int64_t m, std::int64_t n, std::int64_t k) {
  for (std::int64_t i = 0; i < m; ++i) {
    float* d_row = d + i * n;
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const float x = a[i * k + kk];
      const float* b_row = b + kk * n;
      for (std::int64_t j = 0; j < n; ++j) d_row[j] = std::fmaf(x, b_row[j], d_row[j]);
    }
  }
}

}  // namespace simd

namespace {

using simd::PackedFp16;
__extension__ using int128 = __int128;
__extension__ using uint128 = unsigned __int128;

std::string shape(const MatrixView& m) { return "(" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + ")"; }

std::int32_t tensor_core_exponent(float x) {
  if (x == 0) return simd::zero_exponent;
  return std::max(std::ilogb(x), -14);  // fp16 subnormals count as -14
}

// A as (m, kp) row-major, zero-padded in k.
PackedFp16 pack_a(const MatrixView& m, std::int64_t kp) {
  PackedFp16 p;
  p.rows = m.rows;
  p.cols = kp;
  p.value.assign(static_cast<std::size_t>(m.rows * kp), 0.0f);
  p.exponent.assign(p.value.size(), simd::zero_exponent);
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c) {
      const float x = m(r, c);
      p.value[r * kp + c] = x;
      p.exponent[r * kp + c] = std::isfinite(x) ? tensor_core_exponent(x) : simd::zero_exponent;
      p.all_finite = p.all_finite && std::isfinite(x);
    }
  return p;
}

// B as panels of 16 columns (PackedFp16::panel_index), zero-padded in k and n.
PackedFp16 pack_b(const MatrixView& m, std::int64_t kp) {
  PackedFp16 p;
  p.rows = kp;
  p.cols = m.cols;
  const std::int64_t np = (m.cols + PackedFp16::panel - 1) / PackedFp16::panel * PackedFp16::panel;
  p.value.assign(static_cast<std::size_t>(kp * np), 0.0f);
  p.exponent.assign(p.value.size(), simd::zero_exponent);
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c) {
      const float x = m(r, c);
      const std::int64_t at = p.panel_index(r, c);
      p.value[at] = x;
      p.exponent[at] = std::isfinite(x) ? tensor_core_exponent(x) : simd::zero_exponent;
      p.all_finite = p.all_finite && std::isfinite(x);
    }
  return p;
}

std::vector<float> contiguous(const MatrixView& m) {
  std::vector<float> out(static_cast<std::size_t>(m.rows * m.cols));
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c) out[r * m.cols + c] = m(r, c);
  return out;
}

// Exact model for any float32 inputs: every product exactly, summed as Boost integers, rounded once.
float exact_dot_general(const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride, std::int64_t k,
                        float c) {
  BigExact sum = BigExact::from_double(c);
  bool all_negative_zero_products = true;
  for (std::int64_t i = 0; i < k; ++i) {
    const float x = a[i * a_stride], y = b[i * b_stride];
    all_negative_zero_products = all_negative_zero_products && (x == 0 || y == 0) && (std::signbit(x) != std::signbit(y));
    if (x != 0 && y != 0) sum = exact_add(sum, exact_mul(BigExact::from_double(x), BigExact::from_double(y)));
  }
  if (sum.is_zero()) return (all_negative_zero_products && std::signbit(c)) ? -0.0f : 0.0f;
  return static_cast<float>(decode(round_to_bits(sum.to_exact_value(), fp32(), Rounding::nearest_even), fp32()));
}

// Exact model: products of fp16 values are integers times 2^-48 below 2^80, so their sum is exact in 128 bits;
// C joins as a Boost integer and the total is rounded once.
float exact_dot(const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride, std::int64_t k,
                float c, bool fp16_inputs) {
  bool finite = std::isfinite(c);
  for (std::int64_t i = 0; i < k; ++i) finite = finite && std::isfinite(a[i * a_stride]) && std::isfinite(b[i * b_stride]);
  if (!finite) {
    double s = c;
    for (std::int64_t i = 0; i < k; ++i) s += static_cast<double>(a[i * a_stride]) * b[i * b_stride];
    return static_cast<float>(s);
  }
  if (!fp16_inputs) return exact_dot_general(a, a_stride, b, b_stride, k, c);
  int128 acc = 0;
  bool all_negative_zero_products = true;
  for (std::int64_t i = 0; i < k; ++i) {
    const double product = static_cast<double>(a[i * a_stride]) * b[i * b_stride];  // exact
    all_negative_zero_products = all_negative_zero_products && product == 0 && std::signbit(product);
    const auto units = static_cast<int128>(std::ldexp(std::fabs(product), 48));
    acc += product < 0 ? -units : units;
  }
  if (acc == 0 && c == 0) return (all_negative_zero_products && std::signbit(c)) ? -0.0f : 0.0f;
  BigExact sum;
  sum.negative = acc < 0;
  const uint128 magnitude = acc < 0 ? -static_cast<uint128>(acc) : static_cast<uint128>(acc);
  sum.magnitude = static_cast<std::uint64_t>(magnitude >> 64);
  sum.magnitude <<= 64;
  sum.magnitude += static_cast<std::uint64_t>(magnitude);
  sum.exponent = -48;
  const BigExact total = exact_add(sum, BigExact::from_double(c));
  if (total.is_zero()) return 0.0f;
  return static_cast<float>(decode(round_to_bits(total.to_exact_value(), fp32(), Rounding::nearest_even), fp32()));
}

}  // namespace

std::string_view to_string(Accumulation a) {
  switch (a) {
    case Accumulation::fp32: return "fp32";
    case Accumulation::exact: return "exact";
    case Accumulation::h100: return "h100";
  }
  return "?";
}

Accumulation parse_accumulation(std::string_view text) {
  if (text == "fp32") return Accumulation::fp32;
  if (text == "exact") return Accumulation::exact;
  if (text == "h100") return Accumulation::h100;
  throw std::invalid_argument("unknown accumulation model '" + std::string(text) + "' (expected fp32, exact or h100)");
}

std::int64_t first_non_representable(MatrixView m, const Format& f) {
  // Round every element (vectorized) and look for one that changed; NaNs are representable as NaN.
  const std::vector<float> values = contiguous(m);
  std::vector<float> rounded(values.size());
  round_array(values, rounded, f, Rounding::nearest_even);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const bool same = std::bit_cast<std::uint32_t>(values[i]) == std::bit_cast<std::uint32_t>(rounded[i]) ||
                      (std::isnan(values[i]) && std::isnan(rounded[i]));
    if (!same) return static_cast<std::int64_t>(i);
  }
  return -1;
}

void gemm(Accumulation model, MatrixView a, MatrixView b, MatrixView c, std::span<float> d) {
  gemm(model, a, b, c, d, best_isa());
}

void gemm(Accumulation model, MatrixView a, MatrixView b, MatrixView c, std::span<float> d, Isa isa) {
  const std::int64_t m = a.rows, k = a.cols, n = b.cols;
  if (b.rows != k)
    throw std::invalid_argument("gemm: A is " + shape(a) + " and B is " + shape(b) + ": inner dimensions differ");
  if (c.data != nullptr && (c.rows != m || c.cols != n))
    throw std::invalid_argument("gemm: C is " + shape(c) + ", expected (" + std::to_string(m) + ", " +
                                std::to_string(n) + ")");
  if (static_cast<std::int64_t>(d.size()) != m * n)
    throw std::invalid_argument("gemm: D has " + std::to_string(d.size()) + " elements, expected " +
                                std::to_string(m * n));
  bool fp16_inputs = model != Accumulation::fp32;  // (the fp32 model does not care)
  for (const auto& [name, view] : {std::pair{"A", a}, std::pair{"B", b}}) {
    if (model == Accumulation::fp32) break;
    const std::int64_t bad = first_non_representable(view, fp16());
    fp16_inputs = fp16_inputs && bad < 0;
    if (bad >= 0 && model == Accumulation::h100)
      throw std::invalid_argument(std::string("gemm: ") + name + "[" + std::to_string(bad / view.cols) + ", " +
                                  std::to_string(bad % view.cols) + "] = " + std::to_string(view(bad / view.cols, bad % view.cols)) +
                                  " is not an fp16 value (the h100 model takes fp16 inputs)");
  }
  std::vector<float> result = c.data != nullptr ? contiguous(c) : std::vector<float>(static_cast<std::size_t>(m * n), 0.0f);

  switch (model) {
    case Accumulation::fp32: {
      const std::vector<float> ac = contiguous(a), bc = contiguous(b);
#if defined(MPSCOPE_HAVE_X86_KERNELS)
      if (isa == Isa::avx512 && isa_supported(Isa::avx512)) {
        simd::fp32_avx512(ac.data(), bc.data(), result.data(), m, n, k);
        break;
      }
#endif
      simd::fp32_portable(ac.data(), bc.data(), result.data(), m, n, k);
      break;
    }
    case Accumulation::exact:
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          result[i * n + j] = exact_dot(&a.data[i * a.row_stride], a.col_stride, &b.data[j * b.col_stride],
                                        b.row_stride, k, result[i * n + j], fp16_inputs);
      break;
    case Accumulation::h100: {
      const std::int64_t kp = (k + 15) / 16 * 16;
      const PackedFp16 pa = pack_a(a, kp), pb = pack_b(b, kp);
      bool c_finite = true;
      for (float x : result) c_finite = c_finite && std::isfinite(x);
#if defined(MPSCOPE_HAVE_X86_KERNELS)
      if (isa == Isa::avx512 && isa_supported(Isa::avx512) && pa.all_finite && pb.all_finite && c_finite) {
        simd::h100_avx512(pa, pb, result.data());
        break;
      }
#endif
      simd::h100_portable(pa, pb, result.data());
      break;
    }
  }
  std::copy(result.begin(), result.end(), d.begin());
}

}  // namespace mpscope::sim
