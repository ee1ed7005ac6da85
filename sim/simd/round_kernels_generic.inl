// The generic float32 -> format rounding kernel, written once and compiled per instruction set (included by
// round_kernels_<isa>.cpp inside an anonymous namespace; the compiler vectorizes the loop for that ISA).
// It follows sim/rounding.cpp's round_to_bits step by step, on float32 bit patterns:
//   ex  = floor(log2|x|);  fq = float32's quantum exponent at x;  tq = the format's quantum exponent at x;
//   sh  = tq - fq low bits of the 24-bit significand are dropped, the kept part rounded per mode;
//   the result is r * 2^tq (exact in float32), then flushed / overflowed as the format says.

// Written without branches (selects and masks only) so that the loop vectorizes.
template <Rounding R>
void round_generic(const float* in, float* out, std::size_t n, const simd::Float32Rounding& p,
                   const std::uint64_t* random) {
  const std::int32_t m = p.mantissa_bits;
  const std::int32_t emin = p.emin;
  const std::int32_t lowest = p.flush ? -1000 : emin;  // flushing formats keep full precision below emin
  const std::uint32_t flush_mask = p.flush ? ~0u : 0u;
  const std::uint32_t carry_bound = std::uint32_t{2} << m;
  const std::uint32_t max_finite = p.max_finite, overflow_negative = p.overflow_negative,
                      overflow_positive = p.overflow_positive, infinity_result = p.infinity_result;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(in[i]);
    const std::uint32_t a = u & 0x7FFFFFFFu;
    const std::uint32_t sign = u & 0x80000000u;
    const std::int32_t field = static_cast<std::int32_t>(a >> 23);
    // float32 subnormals: the exponent of (float)a gives floor(log2) of the integer a (exact, a < 2^23).
    const std::int32_t sub_ex = static_cast<std::int32_t>(
        std::bit_cast<std::uint32_t>(static_cast<float>(static_cast<std::int32_t>(a))) >> 23) - 276;
    const std::int32_t ex = field != 0 ? field - 127 : sub_ex;
    const std::int32_t fq = std::max(ex, -126) - 23;
    const std::int32_t tq = std::max(ex, lowest) - m;
    const std::int32_t sh = tq - fq;
    const std::uint32_t sig = field != 0 ? ((a & 0x7FFFFFu) | 0x800000u) : a;
    const std::uint32_t rounds = sh > 0 ? ~0u : 0u;
    const std::int32_t shc = std::clamp(sh, 0, 25);
    std::uint32_t r = sig >> shc;
    const std::uint32_t rem = sig & ((std::uint32_t{1} << shc) - 1);
    const std::uint32_t half = (std::uint32_t{1} << shc) >> 1;
    std::uint32_t up = 0;
    if constexpr (R == Rounding::nearest_even)
      up = rounds & ((rem > half ? 1u : 0u) | ((rem == half ? 1u : 0u) & r));
    if constexpr (R == Rounding::up) up = (rem != 0 ? 1u : 0u) & (sign == 0 ? 1u : 0u);
    if constexpr (R == Rounding::down) up = (rem != 0 ? 1u : 0u) & (sign >> 31);
    if constexpr (R == Rounding::stochastic) {
      // The dropped bits as a 64-bit fraction of the quantum; round away when the draw is below it.
      const std::uint64_t wide = sig;
      const std::uint64_t left = wide << std::clamp(64 - sh, 0, 63);
      const std::uint64_t right = wide >> std::clamp(sh - 64, 0, 63);
      const std::uint64_t frac = (sh > 0 && sh < 64 ? left : 0) | (sh >= 64 && sh < 88 ? right : 0);
      up = random[i] < frac ? 1u : 0u;
    }
    r += up & 1u;
    const std::uint32_t carried = (r == carry_bound ? ~0u : 0u) & rounds;
    const std::uint32_t keep =
        ~flush_mask | (ex >= emin ? ~0u : 0u) | ((ex == emin - 1 ? ~0u : 0u) & carried);
    const std::int32_t qexp = std::max(sh > 0 ? tq : fq, -149);  // -149 only for flushed lanes
    const std::uint32_t pow2 = qexp >= -126 ? static_cast<std::uint32_t>(qexp + 127) << 23
                                            : std::uint32_t{1} << ((qexp + 149) & 31);
    std::uint32_t mag = std::bit_cast<std::uint32_t>(static_cast<float>(r) * std::bit_cast<float>(pow2));
    mag = mag > max_finite ? (sign != 0 ? overflow_negative : overflow_positive) : mag;
    mag &= keep;
    mag = a >= 0x7F800000u ? (a > 0x7F800000u ? 0x7FC00000u : infinity_result) : mag;
    out[i] = std::bit_cast<float>(sign | mag);
  }
}

// bf16 nearest-even on the bit pattern: bf16 shares float32's exponent range, so adding 0x7FFF plus the lowest
// kept bit and truncating rounds normals, subnormals and overflow (to inf) alike.
inline void round_bf16_nearest_bits(const float* in, float* out, std::size_t n, const simd::Float32Rounding&,
                                    const std::uint64_t*) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(in[i]);
    const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    out[i] = std::bit_cast<float>(nan ? (u & 0x80000000u) | 0x7FC00000u : rounded);
  }
}

// Counting on bit patterns (it runs at every recorded rounding point). Before may be float or double, after is the
// same type or float. Most values round to a normal finite number (or a zero stays zero), and then none of the
// counts moves: a block of values is first checked for that (a few vector instructions per value), and only a block
// holding something else is counted value by value.
//
// A result is ordinary when ordinary_lo <= |after| < ordinary_lo + ordinary_span (one unsigned comparison: a normal
// finite value of the format), or when it is a zero from a zero: then it counts nowhere (each count needs a zero
// from a nonzero, a subnormal, or |after| >= max). ordinary_block says whether after[start, end) holds only such.
template <typename After>
using AfterBits = std::conditional_t<sizeof(After) == 4, std::uint32_t, std::uint64_t>;

template <typename Before, typename After>
bool ordinary_block(const Before* before, const After* after, std::size_t start, std::size_t end,
                    AfterBits<After> ordinary_lo, AfterBits<After> ordinary_span) {
  using BB = std::conditional_t<sizeof(Before) == 4, std::uint32_t, std::uint64_t>;
  using AB = AfterBits<After>;
  constexpr BB b_abs = ~(BB{1} << (sizeof(BB) * 8 - 1));
  constexpr AB a_abs = ~(AB{1} << (sizeof(AB) * 8 - 1));
  AB unusual = 0;
  for (std::size_t i = start; i < end; ++i) {
    const BB x = std::bit_cast<BB>(before[i]) & b_abs;
    const AB y = std::bit_cast<AB>(after[i]) & a_abs;
    const AB odd = static_cast<AB>(y - ordinary_lo) >= ordinary_span ? 1 : 0;
    const AB zero_from_zero = (y == 0 ? 1 : 0) & (x == 0 ? 1 : 0);
    unusual |= odd & (zero_from_zero ^ 1);
  }
  return unusual == 0;
}

template <typename Before, typename After, auto block_is_ordinary = ordinary_block<Before, After>>
void count_effects(const Before* before, const After* after, std::size_t n, double min_normal, double max_finite,
                   RoundingEffects* out) {
  using BB = std::conditional_t<sizeof(Before) == 4, std::uint32_t, std::uint64_t>;
  using AB = AfterBits<After>;
  constexpr BB b_abs = ~(BB{1} << (sizeof(BB) * 8 - 1));
  constexpr AB a_abs = ~(AB{1} << (sizeof(AB) * 8 - 1));
  constexpr BB b_inf = std::bit_cast<BB>(std::numeric_limits<Before>::infinity());
  constexpr AB a_inf = std::bit_cast<AB>(std::numeric_limits<After>::infinity());
  // (a smallest normal below float32's range cannot be passed by a float32 result: no subnormal to count)
  const bool min_normal_fits = static_cast<double>(static_cast<After>(min_normal)) == min_normal;
  const AB a_min_normal = min_normal_fits ? std::bit_cast<AB>(static_cast<After>(min_normal)) : AB{0};
  const BB b_max = std::bit_cast<BB>(static_cast<Before>(max_finite));
  const AB a_max = std::bit_cast<AB>(static_cast<After>(max_finite));
  const AB ordinary_lo = std::max(a_min_normal, AB{1});
  const AB ordinary_span = a_max - ordinary_lo;
  constexpr std::size_t block = 64, longest_stretch = std::size_t{1} << 24;  // (no 32-bit counter can wrap)
  const auto ordinary = [&](std::size_t start) {  // the block at start holds nothing to count
    return block_is_ordinary(before, after, start, std::min(n, start + block), ordinary_lo, ordinary_span);
  };
  std::int64_t underflow = 0, subnormal = 0, overflow = 0, saturated = 0;
  // Value by value over each stretch of blocks that are not ordinary (one sum per stretch, in 32-bit counters).
  const auto count = [&](std::size_t start, std::size_t end) {
    std::uint32_t u = 0, s = 0, o = 0, t = 0;
    for (std::size_t i = start; i < end; ++i) {
      const BB x = std::bit_cast<BB>(before[i]) & b_abs;
      const AB y = std::bit_cast<AB>(after[i]) & a_abs;
      const std::uint32_t x_finite = x < b_inf, y_finite = y < a_inf;
      u += static_cast<std::uint32_t>(x != 0) & static_cast<std::uint32_t>(x <= b_inf) & static_cast<std::uint32_t>(y == 0);
      s += static_cast<std::uint32_t>(y != 0) & static_cast<std::uint32_t>(y < a_min_normal);
      o += x_finite & (y_finite ^ 1u);
      t += x_finite & static_cast<std::uint32_t>(x > b_max) & static_cast<std::uint32_t>(y == a_max);
    }
    underflow += u;
    subnormal += s;
    overflow += o;
    saturated += t;
  };
  for (std::size_t start = 0; start < n;) {
    if (ordinary(start)) {
      start += block;
      continue;
    }
    std::size_t end = std::min(n, start + block);
    while (end < n && end - start < longest_stretch && !ordinary(end)) {
      end = std::min(n, end + block);
      // Unusual values everywhere (small gradients in fp16 are often subnormal): stop checking, count the rest.
      if (end - start >= 8 * block) end = std::min(n, start + longest_stretch);
    }
    count(start, end);
    start = end;
  }
  out->elements = static_cast<std::int64_t>(n);
  out->underflow = underflow;
  out->subnormal = subnormal;
  out->overflow = overflow;
  out->saturated = saturated;
}

constexpr simd::RoundKernel generic_table[5] = {
    round_generic<Rounding::nearest_even>, round_generic<Rounding::toward_zero>, round_generic<Rounding::up>,
    round_generic<Rounding::down>, round_generic<Rounding::stochastic>};
