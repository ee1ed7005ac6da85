// Elementary functions written once for the host and the device: built only from +, -, *, /, fma and sqrt, which
// are correctly rounded on both, so the CPU lanes and the GPU "exact" lanes compute identical bits. Computed in
// double (errors near 1e-15) and rounded by the caller to the lane's format; exp/log/erf/tanh of libm and CUDA
// differ from each other in the last bits, these do not.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MPSCOPE_HD __host__ __device__
#else
#define MPSCOPE_HD
#endif

namespace mpscope::sim::mathfn {

MPSCOPE_HD inline std::uint64_t bits_of(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
MPSCOPE_HD inline double from_bits(std::uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
MPSCOPE_HD inline double fma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return __builtin_fma(a, b, c);
#endif
}
MPSCOPE_HD inline double sqrt(double x) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(x);
#else
  return __builtin_sqrt(x);
#endif
}
MPSCOPE_HD inline bool is_nan(double x) { return x != x; }
MPSCOPE_HD inline double infinity() { return from_bits(0x7FF0000000000000ULL); }
MPSCOPE_HD inline double quiet_nan() { return from_bits(0x7FF8000000000000ULL); }
MPSCOPE_HD inline double fabs(double x) { return from_bits(bits_of(x) & 0x7FFFFFFFFFFFFFFFULL); }
MPSCOPE_HD inline double nearest_integer(double x) {  // ties away from zero; |x| < 2^52
  const double r = static_cast<double>(static_cast<std::int64_t>(fabs(x) + 0.5));
  return x < 0 ? -r : r;
}
// x * 2^k for the k that range reduction produces (|k| <= 2100), in two exact steps where needed.
MPSCOPE_HD inline double scale2(double x, int k) {
  while (k > 1000) { x *= from_bits(static_cast<std::uint64_t>(1023 + 1000) << 52); k -= 1000; }
  while (k < -1000) { x *= from_bits(static_cast<std::uint64_t>(1023 - 1000) << 52); k += 1000; }
  return x * from_bits(static_cast<std::uint64_t>(1023 + k) << 52);
}

// e^x: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two parts), e^r by its Taylor series to r^13.
MPSCOPE_HD inline double exp(double x) {
  if (is_nan(x)) return x;
  if (x > 709.8) return infinity();
  if (x < -745.2) return 0.0;
  constexpr double log2e = 1.4426950408889634074;
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double k = nearest_integer(x * log2e);
  const double r = fma(-k, ln2_lo, fma(-k, ln2_hi, x));
  double p = 1.0 / 6227020800.0;  // 1/13!
  constexpr double inv_fact[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                 1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                                 1.0 / 24.0,        1.0 / 6.0,        0.5,             1.0,
                                 1.0};
  for (double c : inv_fact) p = fma(p, r, c);
  return scale2(p, static_cast<int>(k));
}

// ln x: x = m 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(t), t = (m-1)/(m+1), by its series to t^23.
MPSCOPE_HD inline double log(double x) {
  if (is_nan(x) || x < 0) return quiet_nan();
  if (x == 0) return -infinity();
  if (x == infinity()) return x;
  int e = 0;
  if (x < 2.2250738585072014e-308) {  // subnormal: normalize first
    x *= 18014398509481984.0;          // 2^54
    e -= 54;
  }
  const std::uint64_t b = bits_of(x);
  e += static_cast<int>((b >> 52) & 0x7FF) - 1023;
  double m = from_bits((b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL);  // [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  const double t = (m - 1.0) / (m + 1.0), s = t * t;
  double p = 1.0 / 23.0;
  for (int n = 21; n >= 1; n -= 2) p = fma(p, s, 1.0 / n);
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  return fma(static_cast<double>(e), ln2_hi, fma(static_cast<double>(e), ln2_lo, 2.0 * t * p));
}

MPSCOPE_HD inline double tanh(double x) {
  const double a = fabs(x);
  if (is_nan(x)) return x;
  if (a > 20) return x > 0 ? 1.0 : -1.0;
  double t;
  if (a < 0.5) {  // e^{2a} would cancel in (e-1): sum e^y - 1 = y (1 + y/2! + y^2/3! + ...) to y^18 for y = 2a < 1
    const double y = 2 * a;
    double p = 1.0;
    for (int k = 19; k >= 2; --k) p = fma(p, y / k, 1.0);  // 1 + y/2 (1 + y/3 (1 + ... (1 + y/19)))
    const double em1 = p * y;                             // e^{2a} - 1
    t = em1 / (em1 + 2.0);
  } else {
    const double e = exp(2 * a);
    t = 1.0 - 2.0 / (e + 1.0);
  }
  return x < 0 ? -t : t;
}

MPSCOPE_HD inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

// erf: Taylor series for |x| < 2.5 (alternating, no harmful cancellation in double there), else 1 - erfc(x) with
// erfc from its continued fraction (Lentz), which converges fast for x >= 2.5.
MPSCOPE_HD inline double erf(double x) {
  if (is_nan(x)) return x;
  const double a = fabs(x);
  double r;
  if (a < 2.5) {
    const double x2 = a * a;
    double term = a, sum = a;
    for (int n = 1; n < 80; ++n) {
      term *= -x2 / n;
      const double add = term / (2 * n + 1);
      sum += add;
      if (fabs(add) < 1e-17 * fabs(sum)) break;
    }
    r = sum * 1.1283791670955125739;  // 2/sqrt(pi)
  } else if (a > 6.0) {
    r = 1.0;
  } else {
    // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...)))))
    double f = a, c = a, d = 0;
    for (int n = 1; n < 200; ++n) {
      const double an = n * 0.5;
      d = a + an * d;
      d = 1.0 / d;
      c = a + an / c;
      const double delta = c * d;
      f *= delta;
      if (fabs(delta - 1.0) < 1e-16) break;
    }
    r = 1.0 - exp(-a * a) * 0.56418958354775628695 / f;  // 1/sqrt(pi)
  }
  return x < 0 ? -r : r;
}

}  // namespace mpscope::sim::mathfn
