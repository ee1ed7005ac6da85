#include "sim/tensor_core.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "sim/rounding.hpp"

namespace mpscope::sim {

namespace {

constexpr int no_exponent = std::numeric_limits<int>::min() / 2;

// x = ±significand · 2^(exponent - mantissa_bits) with the exponent at least the format's smallest normal one
// (a subnormal input aligns as if it were normal, with a smaller significand).
struct Operand {
  bool negative = false;
  std::int64_t significand = 0;  // 0 for zero
  int exponent = no_exponent;
};

Operand operand(float x, const Format& f) {
  Operand o;
  if (x == 0) return o;
  o.negative = std::signbit(x);
  o.exponent = std::max(std::ilogb(x), f.emin());
  o.significand = static_cast<std::int64_t>(std::ldexp(std::fabs(static_cast<double>(x)), f.mantissa_bits - o.exponent));
  return o;
}

std::int64_t shifted(std::int64_t magnitude, int shift) {  // magnitude · 2^shift, truncated toward zero
  if (shift >= 0) return magnitude << shift;
  return -shift >= 63 ? 0 : magnitude >> -shift;
}

// One block: acc + Σ a_k·b_k, all finite, under the model's alignment, truncation and result rounding.
float block_sum(const TensorCoreModel& m, const Operand* a, const Operand* b, std::int64_t count, float acc,
                const Format& result) {
  const Operand c = operand(acc, fp32());
  int emax = c.exponent;
  for (std::int64_t k = 0; k < count; ++k)
    if (a[k].significand != 0 && b[k].significand != 0) emax = std::max(emax, a[k].exponent + b[k].exponent);
  if (emax == no_exponent) return acc + 0.0f;  // only zeros: IEEE's signed-zero sum
  const int unit = emax - m.kept_bits;           // every term becomes a multiple of 2^unit
  std::int64_t sum = 0;
  for (std::int64_t k = 0; k < count; ++k) {
    if (a[k].significand == 0 || b[k].significand == 0) continue;
    const int product_exponent = a[k].exponent + b[k].exponent - m.a.mantissa_bits - m.b.mantissa_bits;
    const std::int64_t term = shifted(a[k].significand * b[k].significand, product_exponent - unit);
    sum += a[k].negative != b[k].negative ? -term : term;
  }
  if (c.significand != 0) {
    const std::int64_t term = shifted(c.significand, c.exponent - fp32().mantissa_bits - unit);
    sum += c.negative ? -term : term;
  }
  ExactValue v;
  v.negative = sum < 0;
  v.significand = static_cast<std::uint64_t>(sum < 0 ? -sum : sum);
  v.exponent = unit;
  return static_cast<float>(decode(round_to_bits(v, result, Rounding::toward_zero), result));
}

void check_inputs(const char* name, const MatrixView& v, const Format& f) {
  const std::int64_t bad = first_non_representable(v, f);
  if (bad < 0) return;
  throw std::invalid_argument(std::string("gemm: ") + name + "[" + std::to_string(bad / v.cols) + ", " +
                              std::to_string(bad % v.cols) + "] = " + std::to_string(v(bad / v.cols, bad % v.cols)) +
                              " is not " + with_article(f.name) + " value");
}

}  // namespace

Fp8Accumulation parse_fp8_accumulation(std::string_view text) {
  if (text == "promoted") return Fp8Accumulation::promoted;
  if (text == "fast") return Fp8Accumulation::fast;
  throw std::invalid_argument("unknown FP8 accumulation '" + std::string(text) + "' (expected promoted or fast)");
}

std::string TensorCoreModel::describe() const {
  std::string s = a.name + " x " + b.name + ": blocks of " + std::to_string(block) + ", " + std::to_string(kept_bits) +
                  " bits kept, " + (result_bits == 24 ? std::string("binary32") : std::to_string(result_bits) + "-bit") +
                  " toward zero";
  if (promote_every > 0) s += ", into a float32 total every " + std::to_string(promote_every) + " blocks";
  return s;
}

Format block_result_format(const TensorCoreModel& m) { return make_format(8, m.result_bits - 1); }

const Format& fp8_accumulator() {
  static const Format f = [] {
    Format r = block_result_format(hopper_model(e4m3fn(), e4m3fn()));
    r.name = "fp8acc";
    return r;
  }();
  return f;
}

TensorCoreModel hopper_model(const Format& a, const Format& b, Fp8Accumulation fp8) {
  // (by encoding: the fp8 recipe's saturating E4M3 is E4M3 to the tensor core)
  const auto is = [](const Format& f, const Format& g) {
    return f.exponent_bits == g.exponent_bits && f.mantissa_bits == g.mantissa_bits && f.bias == g.bias && f.specials == g.specials;
  };
  const auto is_fp8 = [&](const Format& f) { return is(f, e4m3fn()) || is(f, e5m2()); };
  TensorCoreModel m{a, b};
  if ((is(a, fp16()) || is(a, bf16())) && is(a, b)) return m;  // mma.sync m16n16k16, cuBLAS's GEMMs
  if (is(a, tf32()) && is(b, tf32())) {
    m.block = 4;  // m16n16k8: its products are summed four at a time
    return m;
  }
  if (is_fp8(a) && is_fp8(b)) {
    if (is(a, e5m2()) && is(b, e5m2()))
      throw std::invalid_argument("e5m2 x e5m2: Hopper's FP8 GEMMs take at most one e5m2 operand");
    m.block = 32;
    m.kept_bits = 13;
    m.result_bits = 14;
    m.promote_every = fp8 == Fp8Accumulation::promoted ? 4 : 0;
    return m;
  }
  for (const Format* f : {&a, &b})
    if (!is(*f, fp16()) && !is(*f, bf16()) && !is(*f, tf32()) && !is_fp8(*f))
      throw std::invalid_argument(f->name + ": no Hopper tensor-core model (fp16, bf16, tf32, e4m3fn, e5m2)");
  throw std::invalid_argument(a.name + " x " + b.name + ": Hopper has no tensor-core GEMM of these two formats");
}

void tensor_core_gemm(const TensorCoreModel& m, MatrixView a, MatrixView b, MatrixView c, std::span<float> d) {
  const std::int64_t rows = a.rows, k = a.cols, cols = b.cols;
  if (b.rows != k) throw std::invalid_argument("gemm: A's columns and B's rows differ");
  if (c.data != nullptr && (c.rows != rows || c.cols != cols)) throw std::invalid_argument("gemm: C has the wrong shape");
  if (static_cast<std::int64_t>(d.size()) != rows * cols) throw std::invalid_argument("gemm: D has the wrong size");
  if (m.a == fp16() && m.b == fp16() && m.block == 16 && m.kept_bits == 25 && m.promote_every == 0) {
    gemm(Accumulation::h100, a, b, c, d);  // the same model, vectorized (it checks for fp16 inputs itself)
    return;
  }
  check_inputs("A", a, m.a);
  check_inputs("B", b, m.b);
  const Format result = block_result_format(m);
  std::vector<Operand> a_row(static_cast<std::size_t>(k)), b_col(static_cast<std::size_t>(k));
  std::vector<float> out(d.size());
  for (std::int64_t j = 0; j < cols; ++j) {
    for (std::int64_t p = 0; p < k; ++p) b_col[static_cast<std::size_t>(p)] = operand(b(p, j), m.b);
    for (std::int64_t i = 0; i < rows; ++i) {
      const float c_value = c.data != nullptr ? c(i, j) : 0.0f;
      bool finite = std::isfinite(c_value);
      double ieee = c_value;  // the IEEE answer when some input is not finite
      for (std::int64_t p = 0; p < k; ++p) {
        const float x = a(i, p), y = b(p, j);
        finite = finite && std::isfinite(x) && std::isfinite(y);
        ieee += static_cast<double>(x) * y;
        a_row[static_cast<std::size_t>(p)] = operand(x, m.a);
      }
      if (!finite) {
        out[static_cast<std::size_t>(i * cols + j)] = static_cast<float>(ieee);
        continue;
      }
      // The chain starts from C, or (promoted) from zero with C in the float32 total.
      float total = c_value, chain = m.promote_every > 0 ? 0.0f : c_value;
      for (std::int64_t p0 = 0, blocks = 0; p0 < k; p0 += m.block) {
        const std::int64_t count = std::min<std::int64_t>(m.block, k - p0);
        chain = block_sum(m, a_row.data() + p0, b_col.data() + p0, count, chain, result);
        if (m.promote_every > 0 && (++blocks % m.promote_every == 0 || p0 + count == k)) {
          total += chain;  // float32, round to nearest
          chain = 0.0f;
        }
      }
      out[static_cast<std::size_t>(i * cols + j)] = m.promote_every > 0 ? total : chain;
    }
  }
  std::copy(out.begin(), out.end(), d.begin());
}

}  // namespace mpscope::sim
