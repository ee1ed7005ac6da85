// The loss on a model's output and its gradient, under the lane's recipe (docs/recipes.md):
//   cross-entropy  lp = round(log_softmax(z)) to the logits' format (autocast: F.cross_entropy is not promoted) or
//                  to float32 ("logits": "fp32"); loss = mean(−lp[y]) in float32; backward from the seed
//                  g = round(−S/B) (float32, then the cast's backward to the gradient format under autocast):
//                  dz = round(g·onehot − exp(lp)·g), one rounding (log_softmax's backward on its rounded output)
//   mse            loss = mean((z − t)²); dz = S·2(z − t)/(B·n), float32 then the cast to the gradient format
#pragma once

#include "sim/ops/rounded_ops.hpp"

namespace mpscope::sim {

struct LossResult {
  double loss = 0;              // in the lane's loss precision
  std::int64_t correct = 0;     // predictions whose largest output is the label
  std::int64_t predictions = 0; // rows of outputs: batch × positions
};

// z (batch, positions × outputs): one row of outputs per label (a sequence model predicts every position; the
// loss is the mean over batch × positions, as F.cross_entropy of (B·T, V) logits); `dz` (same shape) is filled
// when given, its roundings counted to `dz_tensor`.
template <class Ops>
LossResult compute_loss(Ops& ops, StepLog& log, const ModelConfig& m, const Matrix<typename Ops::T>& z, const Batch& b,
                        float scale, Matrix<typename Ops::T>* dz, std::size_t dz_tensor);

}  // namespace mpscope::sim
