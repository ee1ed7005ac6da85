#include "sim/decimal.hpp"

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "sim/exact.hpp"

namespace mpscope::sim {

namespace bmp = boost::multiprecision;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw std::invalid_argument("cannot read '" + std::string(text) + "' as a number: " + why);
}

bmp::cpp_rational rational_of(double x) {  // exact
  const ExactValue v = ExactValue::from_double(std::fabs(x));
  bmp::cpp_rational r = bmp::cpp_int(v.significand);
  if (v.exponent >= 0) return r * bmp::cpp_rational(bmp::cpp_int(1) << v.exponent);
  return r / bmp::cpp_rational(bmp::cpp_int(1) << -v.exponent);
}

bmp::cpp_rational signed_value(const ParsedReal& p) { return p.negative ? -p.magnitude : p.magnitude; }

std::string format_rational(const bmp::cpp_rational& r, int digits) {
  if (r == 0) return "0";
  using wide = bmp::number<bmp::cpp_bin_float<200, bmp::digit_base_2>>;
  const wide w = wide(bmp::numerator(r)) / wide(bmp::denominator(r));
  return w.str(digits, std::ios_base::scientific);
}

}  // namespace

ParsedReal parse_real(std::string_view text) {
  ParsedReal p;
  std::string s = lower(text);
  std::size_t i = 0;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    p.negative = s[0] == '-';
    i = 1;
  }
  const std::string body = s.substr(i);
  if (body == "inf" || body == "infinity") {
    p.kind = ParsedReal::Kind::infinity;
    return p;
  }
  if (body == "nan") {
    p.kind = ParsedReal::Kind::nan;
    return p;
  }
  if (body.starts_with("0x")) {  // hex float: strtod is exact for up to 53 significant bits
    char* end = nullptr;
    const double v = std::strtod(body.c_str(), &end);
    if (end != body.c_str() + body.size() || body.size() == 2) bad(text, "malformed hex float (e.g. 0x1.8p3)");
    p.magnitude = rational_of(v);
    return p;
  }

  bmp::cpp_int digits = 0;
  int scale = 0;  // value = digits * 10^scale
  bool any_digit = false, point = false;
  std::size_t j = 0;
  for (; j < body.size(); ++j) {
    const char c = body[j];
    if (c >= '0' && c <= '9') {
      digits = digits * 10 + (c - '0');
      any_digit = true;
      if (point) --scale;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!any_digit) bad(text, "expected a decimal number such as 0.1, 1e-8 or -65504, or inf / nan");
  if (j < body.size()) {
    if (body[j] != 'e') bad(text, "unexpected '" + std::string(1, body[j]) + "'");
    int exp10 = 0;
    const char* first = body.c_str() + j + 1;
    if (*first == '+') ++first;
    const auto [ptr, ec] = std::from_chars(first, body.c_str() + body.size(), exp10);
    if (ec != std::errc{} || ptr != body.c_str() + body.size()) bad(text, "malformed exponent");
    if (exp10 > 9999 || exp10 < -9999) bad(text, "decimal exponent beyond +-9999");
    scale += exp10;
  }
  if (scale >= 0) {
    p.magnitude = digits * bmp::pow(bmp::cpp_int(10), static_cast<unsigned>(scale));
  } else {
    p.magnitude = bmp::cpp_rational(digits, bmp::pow(bmp::cpp_int(10), static_cast<unsigned>(-scale)));
  }
  return p;
}

std::uint64_t encode(const ParsedReal& p, const Format& f, Rounding mode, std::uint64_t random) {
  if (p.kind == ParsedReal::Kind::nan) return sim::encode(p.negative ? -NAN : NAN, f, mode);
  if (p.kind == ParsedReal::Kind::infinity) return sim::encode(p.negative ? -INFINITY : INFINITY, f, mode);
  // magnitude = num / den: take >= 66 quotient bits and keep the remainder as sticky.
  BigExact num, den;
  num.magnitude = bmp::numerator(p.magnitude);
  den.magnitude = bmp::denominator(p.magnitude);
  BigExact q = num.magnitude == 0 ? num : exact_div(num, den);
  q.negative = p.negative;
  return round_to_bits(q.to_exact_value(), f, mode, random);
}

std::string exact_decimal(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  const std::string sign = std::signbit(x) ? "-" : "";
  const ExactValue v = ExactValue::from_double(std::fabs(x));
  if (v.significand == 0) return sign + "0";
  if (v.exponent >= 0) return sign + (bmp::cpp_int(v.significand) << v.exponent).str();
  // sig * 2^-k = sig * 5^k / 10^k: the digits of sig * 5^k with the point k places from the right.
  const auto k = static_cast<unsigned>(-v.exponent);
  std::string digits = (bmp::cpp_int(v.significand) * bmp::pow(bmp::cpp_int(5), k)).str();
  if (digits.size() <= k) digits.insert(0, k - digits.size() + 1, '0');
  digits.insert(digits.size() - k, ".");
  while (digits.back() == '0') digits.pop_back();
  if (digits.back() == '.') digits.pop_back();
  return sign + digits;
}

std::string difference(double x, const ParsedReal& p, int digits) {
  if (!std::isfinite(x) || p.kind != ParsedReal::Kind::finite) return "n/a";
  bmp::cpp_rational xv = rational_of(x);
  if (std::signbit(x)) xv = -xv;
  const bmp::cpp_rational d = xv - signed_value(p);
  return d == 0 ? "0" : format_rational(d, digits);
}

std::string relative_difference(double x, const ParsedReal& p, int digits) {
  if (!std::isfinite(x) || p.kind != ParsedReal::Kind::finite || p.magnitude == 0) return "n/a";
  bmp::cpp_rational xv = rational_of(x);
  if (std::signbit(x)) xv = -xv;
  const bmp::cpp_rational d = (xv - signed_value(p)) / p.magnitude;
  return d == 0 ? "0" : format_rational(d, digits);
}

namespace {
template <typename T>
std::string shortest_of(T x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, ptr);
}
}  // namespace

std::string shortest(double x) { return shortest_of(x); }
std::string shortest(float x) { return shortest_of(x); }

}  // namespace mpscope::sim
