// Training data: seeded synthetic sets (spiral, circles, xor, blobs, sine, images, token tasks), text, NPZ and CSV
// files, and the batch of every step (fixed by a batch_index array, or seeded shuffling per epoch).
// Every lane sees exactly the same batches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/model.hpp"

namespace mpscope::sim {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Dataset {
  Matrix<float> x;                   // (n, features): each row one sample, flattened row-major (images: C, H, W)
  std::vector<std::int64_t> sample_shape;  // the shape of one sample: {features} (tabular) or {C, H, W} (images)
  std::vector<std::int64_t> labels;  // (n, label_positions) class indices: classification
  std::int64_t label_positions = 1;  // labels per sample: 1, or one per position of a token sequence
  Matrix<float> targets;             // (n, outputs): regression
  std::int64_t classes = 0;          // classification: 1 + the largest label (token data: the vocabulary size)
  std::int64_t vocab = 0;            // token data: x holds token ids in [0, vocab) (exact in float32); 0: real values
  Matrix<std::int64_t> batch_index;  // (steps, batch) rows of every step's batch; empty: shuffle per epoch
  std::vector<std::string> token_text;  // text data: the character of each token id

  bool classification() const { return !labels.empty(); }
  std::int64_t size() const { return x.rows; }
  std::int64_t features() const { return x.cols; }  // the product of sample_shape
  std::int64_t outputs() const { return classification() ? classes : targets.cols; }
  Batch all() const;  // the whole set as one batch (for evaluation)
};

Dataset make_spiral(std::int64_t classes, std::int64_t points_per_class, double noise, std::uint64_t seed);
Dataset make_circles(std::int64_t points, double noise, double factor, std::uint64_t seed);
Dataset make_xor(std::int64_t points, double noise, std::uint64_t seed);
Dataset make_blobs(std::int64_t classes, std::int64_t points_per_class, std::int64_t features, double spread,
                   std::uint64_t seed);
Dataset make_sine(std::int64_t points, double noise, double amplitude, std::uint64_t seed);
// Images (channels, height, width) with values in [0, 1], points_per_class of each class in class order. Class k
// draws one pattern family (k < 8: horizontal, vertical or diagonal stripes, a filled square, a ring, a
// checkerboard, a cross, a linear gradient; k >= 8: the brighter of two of them, pairs in order (0,1), (0,2), ...)
// with a random position, phase, size and intensity per image and a random tint per channel, plus Gaussian noise
// of standard deviation `noise`, clipped to [0, 1]. Throws std::invalid_argument naming the argument: classes
// 2..max_image_classes, points_per_class >= 1, channels >= 1, height and width >= 4, noise finite and >= 0, and
// at most 2^31 values in all.
inline constexpr std::int64_t max_image_classes = 36;
Dataset make_images(std::int64_t classes, std::int64_t points_per_class, std::int64_t channels, std::int64_t height,
                    std::int64_t width, double noise, std::uint64_t seed);

// Token data for language models (sim/token_data.cpp). Every sample is a sequence s of length + 1 tokens: x (n, length)
// holds s[0..length) as token ids, labels (n * length, row-major) the next tokens s[1..length]; sample_shape
// {length}, label_positions = length, classes = vocab.
//
// A seeded task over vocab_size tokens (vocab = vocab_size), `sequences` samples:
//   markov       a random first-order Markov chain: token i goes to up to 4 successors (the next token on a random
//                cycle through all tokens, so the chain visits every token, and min(vocab_size, 4) - 1 others drawn
//                at random) with Dirichlet(1) probabilities. One stream of sequences * length + 1 tokens from a
//                random first token; sample i is stream[i*length .. i*length + length] (consecutive samples share
//                their boundary token, as the windows of a text). Needs vocab_size >= 2.
//   copy         token 0 separates: k = length / 2 content tokens uniform in 1..vocab_size-1, 0, the same k tokens
//                again, and (odd length) one more 0. Needs vocab_size >= 3, length >= 2.
//   reverse      as copy, the second half reversed.
//   modular_add  problems "a + b = c", c = (a + b) mod p, p = vocab_size - 2: tokens 0..p-1 are the numbers,
//                p is '+', p + 1 is '='; 5 tokens a problem, a and b uniform, new problems back to back from the
//                start of each sample (the last one cut off where the sample ends). Needs vocab_size >= 4,
//                length >= 4 (one whole problem).
// Limits for every task: vocab_size <= max_token_vocab, sequences * length <= 2^31.
inline constexpr std::int64_t max_token_vocab = 65536;
inline const std::vector<std::string> token_tasks = {"markov", "copy", "reverse", "modular_add"};
// "" when make_token_task takes these arguments, else "key: what is wrong" (key: task, vocab_size, length or
// sequences), e.g. "vocab_size: the copy task needs at least 3 tokens, got 2".
std::string check_token_task(const std::string& task, std::int64_t vocab_size, std::int64_t length,
                             std::int64_t sequences);
// Throws std::invalid_argument ("make_token_task: " + check_token_task's message) for arguments it refuses.
Dataset make_token_task(const std::string& task, std::int64_t vocab_size, std::int64_t length, std::int64_t sequences,
                        std::uint64_t seed);

// A text file, character by character: the file's bytes decoded as UTF-8 (a leading byte-order mark skipped, line
// ends kept as they are); invalid UTF-8 is an error naming the byte offset (convert the file first, e.g. with
// iconv). The vocabulary is the file's distinct characters (code points) in increasing order, token id = rank;
// token_text[id] holds each one's UTF-8 bytes. Samples are the windows chars[i*length .. i*length + length] in file
// order (consecutive windows share their boundary character, so every character but the first is a target once):
// the first `sequences` of them, or all (chars - 1) / length when sequences is 0. DataError naming the path: cannot
// open, empty, fewer than length + 1 characters, more than max_token_vocab distinct characters, more sequences
// than windows. Throws std::invalid_argument unless length >= 1 and sequences >= 0.
Dataset load_text_dataset(const std::filesystem::path& path, std::int64_t length, std::int64_t sequences = 0);

// x_key: float32/float64 (n, d1, d2, ...), any rank >= 2: each sample flattened row-major, sample_shape {d1, d2, ...}
// (images: (n, C, H, W)); y_key: integer labels (n) -> classification, or float targets (n) or
// (n, outputs) -> regression; batch_index_key ("" for none): integer (steps, batch).
// Token data: an integer x (n, T) holds token ids (vocab = 1 + the largest id; with y (n, T), the target token of
// every position (a language model's next tokens), of x and y), or y (n) one class label per sequence.
Dataset load_npz_dataset(const std::filesystem::path& path, const std::string& x_key, const std::string& y_key,
                         const std::string& batch_index_key);
// A header row, comma-separated numbers. `label`: an integer class column (classification); or `targets`: one or
// more numeric columns (regression). The other columns (or `features`, when given) are the inputs.
Dataset load_csv_dataset(const std::filesystem::path& path, const std::string& label,
                         const std::vector<std::string>& targets, const std::vector<std::string>& features);

// The batch of each step: the dataset's batch_index when it has one, else a seeded shuffle per epoch (batches of
// batch_size consecutive rows of the permutation; a last partial batch is dropped).
class Batcher {
 public:
  Batcher(const Dataset& data, std::int64_t batch_size, std::uint64_t seed);
  Batch batch(std::int64_t step);

 private:
  const Dataset& data_;
  std::int64_t batch_size_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> order_;
};

}  // namespace mpscope::sim
