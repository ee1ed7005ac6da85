// Token data for language models: seeded tasks (markov, copy, reverse, modular_add) and character-level text files
// (sim/dataset.hpp says what each one holds).
#include <algorithm>
#include <boost/regex/pending/unicode_iterator.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <numeric>

#include "sim/dataset.hpp"
#include "sim/random.hpp"

namespace mpscope::sim {

namespace {

double uniform01(RandomStream& r) { return static_cast<double>(r.next() >> 11) * 0x1p-53; }

std::int64_t uniform_below(RandomStream& r, std::int64_t n) {
  __extension__ using u128 = unsigned __int128;
  return static_cast<std::int64_t>((static_cast<u128>(r.next()) * static_cast<std::uint64_t>(n)) >> 64);
}

// n samples of T tokens from `sequence(i, s)`, which fills s (T + 1 tokens) for sample i: x = s[0..T), labels s[1..T].
template <class Sequence>
Dataset token_dataset(std::int64_t n, std::int64_t T, std::int64_t vocab, Sequence sequence) {
  Dataset d;
  d.x = Matrix<float>(n, T);
  d.sample_shape = {T};
  d.labels.resize(static_cast<std::size_t>(n * T));
  d.label_positions = T;
  d.vocab = d.classes = vocab;
  std::vector<std::int64_t> s(static_cast<std::size_t>(T + 1));
  for (std::int64_t i = 0; i < n; ++i) {
    sequence(i, s);
    for (std::int64_t t = 0; t < T; ++t) {
      d.x(i, t) = static_cast<float>(s[static_cast<std::size_t>(t)]);  // ids < 2^24: exact
      d.labels[static_cast<std::size_t>(i * T + t)] = s[static_cast<std::size_t>(t + 1)];
    }
  }
  return d;
}

// The random Markov chain of the markov task: up to 4 successors per token with their cumulative probabilities.
class MarkovChain {
 public:
  MarkovChain(std::int64_t vocab, RandomStream& r) : k_(std::min<std::int64_t>(vocab, 4)) {
    const auto V = static_cast<std::size_t>(vocab), k = static_cast<std::size_t>(k_);
    std::vector<std::int64_t> cycle(V);
    std::iota(cycle.begin(), cycle.end(), 0);
    for (std::int64_t i = vocab - 1; i > 0; --i)
      std::swap(cycle[static_cast<std::size_t>(i)], cycle[static_cast<std::size_t>(uniform_below(r, i + 1))]);
    next_.resize(V * k);
    cumulative_.resize(V * k);
    for (std::size_t j = 0; j < V; ++j) next_[static_cast<std::size_t>(cycle[j]) * k] = cycle[(j + 1) % V];
    for (std::size_t i = 0; i < V; ++i) {
      std::int64_t* next = &next_[i * k];
      for (std::size_t j = 1; j < k; ++j) {  // distinct successors (k <= vocab: the draws end)
        std::int64_t t = 0;
        do t = uniform_below(r, vocab);
        while (std::find(next, next + j, t) != next + j);
        next[j] = t;
      }
      double sum = 0;  // Dirichlet(1, ..., 1): normalized Exp(1) draws
      for (std::size_t j = 0; j < k; ++j) cumulative_[i * k + j] = sum += -std::log(1.0 - uniform01(r));
      for (std::size_t j = 0; j < k; ++j) cumulative_[i * k + j] /= sum;
    }
  }

  std::int64_t step(std::int64_t token, RandomStream& r) const {
    const auto k = static_cast<std::size_t>(k_), row = static_cast<std::size_t>(token) * k;
    const double u = uniform01(r);
    std::size_t j = 0;
    while (j + 1 < k && u >= cumulative_[row + j]) ++j;
    return next_[row + j];
  }

 private:
  std::int64_t k_;
  std::vector<std::int64_t> next_;
  std::vector<double> cumulative_;
};

}  // namespace

std::string check_token_task(const std::string& task, std::int64_t vocab_size, std::int64_t length,
                             std::int64_t sequences) {
  if (std::find(token_tasks.begin(), token_tasks.end(), task) == token_tasks.end())
    return "task: '" + task + "' is not one of markov, copy, reverse, modular_add";
  if (vocab_size <= 0) return "vocab_size: must be positive, got " + std::to_string(vocab_size);
  if (length <= 0) return "length: must be positive, got " + std::to_string(length);
  if (sequences <= 0) return "sequences: must be positive, got " + std::to_string(sequences);
  if (vocab_size > max_token_vocab)
    return "vocab_size: at most " + std::to_string(max_token_vocab) + " tokens, got " + std::to_string(vocab_size);
  const std::int64_t least = task == "markov" ? 2 : task == "modular_add" ? 4 : 3;
  const char* why = task == "markov"        ? ""
                    : task == "modular_add" ? " (numbers 0..p-1, '+' and '=', p >= 2)"
                                            : " (a separator and at least two content tokens)";
  if (vocab_size < least)
    return "vocab_size: the " + task + " task needs at least " + std::to_string(least) + " tokens" + why + ", got " +
           std::to_string(vocab_size);
  if ((task == "copy" || task == "reverse") && length < 2)
    return "length: the " + task + " task needs at least 2 tokens per sample, got " + std::to_string(length);
  if (task == "modular_add" && length < 4)
    return "length: the modular_add task needs at least 4 tokens per sample (one whole problem \"a + b = c\"), got " +
           std::to_string(length);
  if (sequences > (std::int64_t{1} << 31) / length)
    return "sequences: sequences * length = " + std::to_string(sequences) + " * " + std::to_string(length) +
           " is more than 2^31 tokens";
  return "";
}

Dataset make_token_task(const std::string& task, std::int64_t vocab_size, std::int64_t length, std::int64_t sequences,
                        std::uint64_t seed) {
  const std::string problem = check_token_task(task, vocab_size, length, sequences);
  if (!problem.empty()) throw std::invalid_argument("make_token_task: " + problem);
  const std::int64_t V = vocab_size, T = length;
  using Tokens = std::vector<std::int64_t>;
  if (task == "markov") {
    RandomStream r(seed, 8);
    const MarkovChain chain(V, r);
    std::int64_t token = uniform_below(r, V);
    return token_dataset(sequences, T, V, [&](std::int64_t, Tokens& s) {  // samples in order: one stream
      s[0] = token;
      for (std::size_t t = 1; t < s.size(); ++t) s[t] = token = chain.step(token, r);
    });
  }
  if (task == "copy" || task == "reverse") {
    RandomStream r(seed, task == "copy" ? 9 : 10);
    const auto k = static_cast<std::size_t>(T / 2);
    return token_dataset(sequences, T, V, [&](std::int64_t, Tokens& s) {
      std::fill(s.begin(), s.end(), 0);  // the separator, and the padding of an odd length
      for (std::size_t j = 0; j < k; ++j) s[j] = 1 + uniform_below(r, V - 1);
      for (std::size_t j = 0; j < k; ++j) s[k + 1 + j] = task == "copy" ? s[j] : s[k - 1 - j];
    });
  }
  RandomStream r(seed, 11);  // modular_add
  const std::int64_t p = V - 2, plus = p, equals = p + 1;
  return token_dataset(sequences, T, V, [&](std::int64_t, Tokens& s) {
    for (std::size_t j = 0; j < s.size(); j += 5) {
      const std::int64_t a = uniform_below(r, p), b = uniform_below(r, p);
      const std::int64_t problem[5] = {a, plus, b, equals, (a + b) % p};
      for (std::size_t m = 0; m < 5 && j + m < s.size(); ++m) s[j + m] = problem[m];
    }
  });
}

Dataset load_text_dataset(const std::filesystem::path& path, std::int64_t length, std::int64_t sequences) {
  if (length <= 0) throw std::invalid_argument("load_text_dataset: length must be positive, got " + std::to_string(length));
  if (sequences < 0) throw std::invalid_argument("load_text_dataset: sequences must not be negative, got " + std::to_string(sequences));
  const std::string where = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(where + ": cannot open");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(where + ": cannot read");
  const std::size_t size = bytes.size();
  // Boost's decoder checks every sequence it reads (continuation bytes, overlong forms, surrogates, the range); the
  // zero bytes after the end stop a sequence cut short there, so it never reads past the buffer.
  bytes.append(4, '\0');
  using Utf8 = boost::u8_to_u32_iterator<std::string::const_iterator, std::uint32_t>;
  std::vector<std::uint32_t> chars;
  std::size_t at = size >= 3 && bytes.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a byte-order mark
  try {
    for (Utf8 it(bytes.cbegin() + static_cast<std::ptrdiff_t>(at)); at < size;
         ++it, at = static_cast<std::size_t>(it.base() - bytes.cbegin())) {
      if (static_cast<unsigned char>(bytes[at]) >= 0xF8) throw std::out_of_range("");  // (Boost reads F8..FF as F0..F7)
      chars.push_back(*it);
    }
  } catch (const std::out_of_range&) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(bytes[at])));
    throw DataError(where + ": not valid UTF-8 at byte " + std::to_string(at) + " (" + byte +
                    "); convert the file to UTF-8 first (e.g. iconv -f latin1 -t utf-8)");
  }
  if (chars.empty()) throw DataError(where + ": empty (a text source needs characters)");
  const auto n_chars = static_cast<std::int64_t>(chars.size());
  if (n_chars < length + 1)
    throw DataError(where + ": " + std::to_string(n_chars) + " characters, fewer than length + 1 = " +
                    std::to_string(length + 1) + " (one sample of " + std::to_string(length) + " tokens and its next token)");
  std::vector<std::uint32_t> alphabet = chars;
  std::sort(alphabet.begin(), alphabet.end());
  alphabet.erase(std::unique(alphabet.begin(), alphabet.end()), alphabet.end());
  if (static_cast<std::int64_t>(alphabet.size()) > max_token_vocab)
    throw DataError(where + ": " + std::to_string(alphabet.size()) + " distinct characters, more than " +
                    std::to_string(max_token_vocab) + " (a character-level vocabulary)");
  const std::int64_t windows = (n_chars - 1) / length;
  if (sequences > windows)
    throw DataError(where + ": sequences " + std::to_string(sequences) + " is more than the file's " + std::to_string(windows) +
                    " windows of " + std::to_string(length + 1) + " characters (" + std::to_string(n_chars) + " characters)");
  const std::int64_t n = sequences == 0 ? windows : sequences;
  const auto id = [&](std::uint32_t c) {
    return static_cast<std::int64_t>(std::lower_bound(alphabet.begin(), alphabet.end(), c) - alphabet.begin());
  };
  Dataset d = token_dataset(n, length, static_cast<std::int64_t>(alphabet.size()), [&](std::int64_t i, std::vector<std::int64_t>& s) {
    for (std::size_t t = 0; t < s.size(); ++t) s[t] = id(chars[static_cast<std::size_t>(i * length) + t]);
  });
  d.token_text.reserve(alphabet.size());
  for (const std::uint32_t c : alphabet) {
    std::string text;
    *boost::utf8_output_iterator<std::back_insert_iterator<std::string>>(std::back_inserter(text)) = c;
    d.token_text.push_back(std::move(text));
  }
  return d;
}

}  // namespace mpscope::sim
