#include "sim/ops/loss.hpp"

namespace mpscope::sim {

template <class Ops>
LossResult compute_loss(Ops& ops, StepLog& log, const ModelConfig& m, const Matrix<typename Ops::T>& z, const Batch& b,
                        float scale, Matrix<typename Ops::T>* dz, std::size_t dz_tensor) {
  using T = typename Ops::T;
  using W = typename Ops::Wide;
  // rows of outputs: one per label (sequence models: batch × positions), or one per sample (MSE on targets)
  const std::int64_t batch = b.targets.rows > 0 || b.labels.empty() ? z.rows : static_cast<std::int64_t>(b.labels.size());
  const std::int64_t n = z.size() / batch;
  const View<T> zv{z.data.data(), batch, n, n, 1};
  std::vector<W> grad(static_cast<std::size_t>(batch * n));
  W total(0);
  const W s(scale), inv_batch = W(1) / W(static_cast<double>(batch));
  const bool autocast = m.loss_logits == LossLogits::autocast;
  const W seed32 = ops.to_float32(-s / W(static_cast<double>(batch)));
  const W seed = autocast ? ops.to_format(Role::gradients, seed32) : seed32;
  std::vector<W> log_probs(static_cast<std::size_t>(n));
  LossResult r;
  for (std::int64_t i = 0; i < batch; ++i) {
    std::int64_t best = 0;
    for (std::int64_t j = 1; j < n; ++j)
      if (W(zv(i, j)) > W(zv(i, best))) best = j;
    if (!b.labels.empty() && best == b.labels[static_cast<std::size_t>(i)]) ++r.correct;
    if (m.loss == LossType::cross_entropy) {
      const std::int64_t y = b.labels[static_cast<std::size_t>(i)];
      const W max(zv(i, best));
      W sum(0);
      for (std::int64_t j = 0; j < n; ++j) sum += lanemath::exp(W(zv(i, j)) - max);
      const W lse = max + lanemath::log(sum);
      for (std::int64_t j = 0; j < n; ++j) {
        const W lp = W(zv(i, j)) - lse;
        log_probs[static_cast<std::size_t>(j)] = autocast ? ops.to_format(Role::activations, lp) : ops.to_float32(lp);
      }
      total -= log_probs[static_cast<std::size_t>(y)];
      for (std::int64_t j = 0; j < n; ++j)
        grad[static_cast<std::size_t>(i * n + j)] = (j == y ? seed : W(0)) - lanemath::exp(log_probs[static_cast<std::size_t>(j)]) * seed;
    } else {
      const W inv_count = W(1) / W(static_cast<double>(batch * n));
      for (std::int64_t j = 0; j < n; ++j) {
        const W t = b.targets.rows > 0 ? W(b.targets(i, j)) : W(j == b.labels[static_cast<std::size_t>(i)] ? 1.0 : 0.0);
        const W d = W(zv(i, j)) - t;
        total += d * d * inv_count;
        grad[static_cast<std::size_t>(i * n + j)] = s * W(2) * d * inv_count;
      }
    }
  }
  if (m.loss == LossType::cross_entropy) total *= inv_batch;
  if (dz) {
    *dz = Matrix<T>(z.rows, z.cols);
    if (m.loss == LossType::cross_entropy && autocast) {
      ops.store(Role::gradients, dz_tensor, grad, dz->values(), log);  // one rounding, as log_softmax's backward
    } else {
      ops.store_loss_grad(dz_tensor, grad, dz->values(), log);  // float32 first, then the cast's backward
    }
  }
  r.loss = to_double(ops.loss_value(total));
  r.predictions = batch;
  return r;
}

#define MPSCOPE_INSTANTIATE_LOSS(O)                                                                             \
  template LossResult compute_loss<O>(O&, StepLog&, const ModelConfig&, const Matrix<typename O::T>&, const Batch&, \
                                      float, Matrix<typename O::T>*, std::size_t);
MPSCOPE_INSTANTIATE_LOSS(RoundedOps)
MPSCOPE_INSTANTIATE_LOSS(WideOps<double>)
MPSCOPE_INSTANTIATE_LOSS(WideOps<Exact>)

}  // namespace mpscope::sim
