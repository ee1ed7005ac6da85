// Exact arithmetic on binary numbers with Boost.Multiprecision integers: a value is magnitude * 2^exponent
// (plus "a little more" when sticky). Used where no fast path is provably correct: arithmetic in wide custom
// formats, the `exact` GEMM accumulation, decimal strings.
#pragma once

#include <boost/multiprecision/cpp_int.hpp>

#include "sim/rounding.hpp"

namespace mpscope::sim {

struct BigExact {
  bool negative = false;
  boost::multiprecision::cpp_int magnitude = 0;  // >= 0
  int exponent = 0;
  bool sticky = false;  // the true magnitude is slightly more than magnitude * 2^exponent

  static BigExact from_double(double x);  // x finite
  ExactValue to_exact_value() const;      // keeps the top 64 bits, the rest goes to sticky
  bool is_zero() const { return magnitude == 0 && !sticky; }
};

BigExact exact_add(const BigExact& a, const BigExact& b);  // exact (inputs without sticky)
BigExact exact_mul(const BigExact& a, const BigExact& b);  // exact (inputs without sticky)
BigExact exact_div(const BigExact& a, const BigExact& b);  // >= 66 significant bits + sticky; b != 0
BigExact exact_sqrt(const BigExact& a);                    // >= 66 significant bits + sticky; a >= 0

}  // namespace mpscope::sim
