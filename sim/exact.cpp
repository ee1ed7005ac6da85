#include "sim/exact.hpp"

#include <stdexcept>

namespace mpscope::sim {

namespace bmp = boost::multiprecision;

namespace {
int bit_length(const bmp::cpp_int& x) { return x == 0 ? 0 : static_cast<int>(bmp::msb(x)) + 1; }

// Bring a to b's (smaller) exponent without losing bits.
bmp::cpp_int aligned(const BigExact& x, int exponent) { return x.magnitude << (x.exponent - exponent); }
}  // namespace

BigExact BigExact::from_double(double x) {
  const ExactValue v = ExactValue::from_double(x);
  BigExact b;
  b.negative = v.negative;
  b.magnitude = v.significand;
  b.exponent = v.exponent;
  return b;
}

ExactValue BigExact::to_exact_value() const {
  ExactValue v;
  v.negative = negative;
  const int length = bit_length(magnitude);
  if (length == 0) {
    if (sticky) throw std::logic_error("BigExact: sticky without significant bits");
    return v;
  }
  if (length > 64) {
    const int drop = length - 64;
    v.significand = static_cast<std::uint64_t>(magnitude >> drop);
    v.exponent = exponent + drop;
    v.sticky = sticky || bmp::lsb(magnitude) < static_cast<unsigned>(drop);
  } else {
    v.significand = static_cast<std::uint64_t>(magnitude);
    v.exponent = exponent;
    v.sticky = sticky;
    v = v.normalized();
  }
  return v;
}

BigExact exact_add(const BigExact& a, const BigExact& b) {
  const int e = std::min(a.exponent, b.exponent);
  const bmp::cpp_int x = aligned(a, e), y = aligned(b, e);
  BigExact r;
  r.exponent = e;
  if (a.negative == b.negative) {
    r.magnitude = x + y;
    r.negative = a.negative;
  } else if (x >= y) {
    r.magnitude = x - y;
    r.negative = a.negative;
  } else {
    r.magnitude = y - x;
    r.negative = b.negative;
  }
  return r;
}

BigExact exact_mul(const BigExact& a, const BigExact& b) {
  BigExact r;
  r.magnitude = a.magnitude * b.magnitude;
  r.exponent = a.exponent + b.exponent;
  r.negative = a.negative != b.negative;
  return r;
}

BigExact exact_div(const BigExact& a, const BigExact& b) {
  if (b.magnitude == 0) throw std::domain_error("exact_div: division by zero");
  BigExact r;
  r.negative = a.negative != b.negative;
  if (a.magnitude == 0) return r;
  const int k = std::max(0, 66 + bit_length(b.magnitude) - bit_length(a.magnitude) + 1);
  bmp::cpp_int remainder;
  bmp::divide_qr(a.magnitude << k, b.magnitude, r.magnitude, remainder);
  r.exponent = a.exponent - b.exponent - k;
  r.sticky = remainder != 0;
  return r;
}

BigExact exact_sqrt(const BigExact& a) {
  if (a.negative && a.magnitude != 0) throw std::domain_error("exact_sqrt: negative argument");
  BigExact r;
  r.negative = a.negative;  // sqrt(-0) = -0
  if (a.magnitude == 0) return r;
  bmp::cpp_int m = a.magnitude;
  int e = a.exponent;
  if (e % 2 != 0) {  // make the exponent even so that it halves exactly
    m <<= 1;
    e -= 1;
  }
  const int k = std::max(0, (132 - bit_length(m)) / 2 + 1);  // m * 4^k has >= 132 bits: the root >= 66
  bmp::cpp_int remainder;
  r.magnitude = bmp::sqrt(bmp::cpp_int(m << (2 * k)), remainder);
  r.exponent = e / 2 - k;
  r.sticky = remainder != 0;
  return r;
}

}  // namespace mpscope::sim
