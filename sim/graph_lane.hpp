// Internal: the lane that trains any model graph (sim/ops/graph.hpp) under any recipe, written once for every
// storage type (Ops: sim/ops/rounded_ops.hpp). One step:
//
//   a0 = cast(x)                                          input       (batch, input size)
//   a_{i+1} = op_i.forward(a_i)                           each op rounds its own results (sim/ops/*.cpp)
//   loss, d_n = d loss·S / d a_n                          sim/ops/loss.hpp, S the loss scale
//   d_i = op_i.backward(d_{i+1}), parameter gradients     d_i only where an op before i has parameters; a residual
//                                                         edge's source r gets round(d_r + the add's d) (sim/ops/add.cpp)
//   master gradients = gradients / S (AMP: in the master format), checked for inf/NaN; the loss scaler decides;
//   the optimizer updates the master weights.
#pragma once

#include <cmath>
#include <memory>

#include "sim/lane.hpp"
#include "sim/ops/loss.hpp"
#include "sim/ops/op.hpp"

namespace mpscope::sim {

template <class Ops>
class GraphLane final : public Lane {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;

  GraphLane(const LaneConfig& c, const ModelConfig& m, const InitialWeights& init)
      : config_(c), model_(m), graph_(build_graph(m)), ops_(c, graph_.gemms) {
    if (graph_.parameters() == 0) throw std::invalid_argument("lane " + c.name + ": the model has no parameters to train");
    tensors_ = graph_.tensors;
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      tensors_[i].format = ops_.format_name(tensors_[i].kind == "attention_scores" ? ops_.scores_role() : graph_.tensor_roles[i]);
    StepLog setup;
    setup.reset(tensors_.size(), false);
    setup.catalogue = &tensors_;
    group_params_.resize(graph_.groups.size());
    for (const Node& n : graph_.nodes) {
      ops_list_.push_back(make_op<Ops>(n, c.optimizer));
      const Group& g = graph_.groups[static_cast<std::size_t>(n.group)];
      for (Param<Ops>& p : ops_list_.back()->params()) {
        p.tensor = p.info->is_bias ? g.bias : g.weight;
        p.grad_tensor = p.info->is_bias ? g.bias_grad : g.weight_grad;
        const ParamValues& v = init.at(p.info->name);
        if (v.values.size() != p.master.size())
          throw std::invalid_argument("initial values of " + p.info->name + ": " + std::to_string(v.values.size()) +
                                      " values, the model needs " + std::to_string(p.master.size()));
        const std::vector<W> wide(v.values.begin(), v.values.end());
        ops_.store(Role::master, p.tensor, wide, p.master, setup);
        group_params_[static_cast<std::size_t>(n.group)].push_back(&p);
      }
    }
    acts_.resize(graph_.nodes.size() + 1);
    grads_.resize(graph_.nodes.size() + 1);
    log_.catalogue = &tensors_;
  }

  const LaneConfig& config() const override { return config_; }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }

  StepResult step(const Batch& batch, double lr, bool record) override {
    StepResult r;
    log_.reset(tensors_.size(), record);
    const float scale = scaler_.scale();
    r.loss_scale = scale;
    forward(batch.x, true);
    const std::size_t last = graph_.groups[static_cast<std::size_t>(graph_.nodes.back().group)].activation_grad;
    r.loss = compute_loss(ops_, log_, model_, acts_.back(), batch, scale, &grads_.back(), last).loss;
    if (!std::isfinite(r.loss) && log_.first_nonfinite.empty()) log_.first_nonfinite = "loss";
    backward();
    ops_.end_step();

    // Master gradients: unscaled, checked for inf/NaN.
    const T inv_scale(scaler_.inv_scale());
    double sum_squares = 0;
    bool finite = true;
    for (const auto& params : group_params_)
      for (Param<Ops>* p : params) {
        unscale(*p, inv_scale);
        for (const T& v : p->master_grad) {
          const double d = to_double(v);
          finite = finite && std::isfinite(d);
          sum_squares += d * d;
        }
      }
    r.found_inf = !finite;
    r.grad_norm = std::sqrt(sum_squares);
    const LossScaler::Update u = scaler_.update(r.found_inf);
    r.skipped = u.skipped;
    r.scale_backed_off = u.backed_off;
    r.scale_grew = u.grew;
    r.scale_after = u.scale_after;

    r.lost_updates.assign(group_params_.size() - 1, 0.0);
    if (!r.skipped) {
      for (std::size_t g = 1; g < group_params_.size(); ++g) {
        auto arith = make_arith();
        std::int64_t lost = 0, count = 0;
        for (Param<Ops>* p : group_params_[g]) {
          lost += p->opt.step(std::span<T>(p->master), std::span<const T>(p->master_grad), lr, arith);
          count += static_cast<std::int64_t>(p->master.size());
        }
        r.lost_updates[g - 1] = static_cast<double>(lost) / static_cast<double>(count);
      }
    }
    for (std::size_t g = 1; g < group_params_.size() && !r.weights_nonfinite; ++g)
      for (const Param<Ops>* p : group_params_[g]) {
        for (const T& v : p->master)
          if (!std::isfinite(to_double(v))) {
            r.weights_nonfinite = true;
            if (log_.first_nonfinite.empty()) log_.first_nonfinite = tensors_[graph_.groups[g].weight].name;
            break;
          }
        if (r.weights_nonfinite) break;
      }
    r.first_nonfinite = log_.first_nonfinite;
    if (record) r.tensors = records();
    return r;
  }

  Evaluation evaluate(const Batch& data) override {
    // No state may change: the stochastic-rounding stream is restored, FP8 amaxes are dropped; batch norms use
    // their running statistics. Large sets go through in chunks (the loss summed in the wide type).
    const auto saved_stream = ops_.random_state();
    const std::int64_t rows = data.x.rows, chunk = graph_.evaluation_chunk(rows);
    Evaluation e;
    if (model_.loss == LossType::cross_entropy || !data.labels.empty()) e.accuracy = 0.0;
    double loss_sum = 0, last_loss = 0;
    std::int64_t correct = 0, predictions = 0;
    for (std::int64_t begin = 0; begin < rows; begin += chunk) {
      const std::int64_t end = std::min(rows, begin + chunk);
      const Batch part = chunk >= rows ? Batch{} : slice(data, begin, end);
      const Batch& b = chunk >= rows ? data : part;
      log_.reset(tensors_.size(), false);
      forward(b.x, false);
      ops_.discard_amax();
      const LossResult l = compute_loss(ops_, log_, model_, acts_.back(), b, 1.0f, nullptr, no_tensor);
      loss_sum += l.loss * static_cast<double>(end - begin);
      last_loss = l.loss;
      correct += l.correct;
      predictions += l.predictions;
    }
    ops_.restore_random_state(saved_stream);
    e.loss = chunk >= rows ? last_loss : to_double(ops_.loss_value(W(loss_sum / static_cast<double>(rows))));
    if (e.accuracy) e.accuracy = static_cast<double>(correct) / static_cast<double>(std::max<std::int64_t>(1, predictions));
    return e;
  }

  void read_weights(LayerValues& out) const override { read_params(out, &Param<Ops>::master); }
  void read_gradients(LayerValues& out) const override { read_params(out, &Param<Ops>::master_grad); }

  bool read_tensor(std::size_t index, std::vector<double>& out) const override {
    if (index >= tensors_.size()) return false;
    flatten(values_of(index), out);
    return true;
  }

 private:
  void forward(const Matrix<float>& x, bool training) {
    std::vector<W> wide(x.data.begin(), x.data.end());
    acts_[0] = Matrix<T>(x.rows, x.cols);
    if (graph_.tokens) {  // token ids: read by the embedding as they are
      std::copy(wide.begin(), wide.end(), acts_[0].data.begin());
    } else {
      ops_.store(Role::activations, 0, wide, acts_[0].values(), log_);
    }
    for (std::size_t i = 0; i < ops_list_.size(); ++i) {
      OpContext<Ops> cx = context(static_cast<int>(i));
      ops_list_[i]->forward(cx, acts_[i], acts_[i + 1], training);
    }
  }

  void backward() {
    std::vector<const Matrix<T>*> residual_grad(graph_.nodes.size() + 1, nullptr);  // [a] an add's d for activation a
    for (std::size_t i = ops_list_.size(); i-- > 0;) {
      const Node& n = graph_.nodes[i];
      OpContext<Ops> cx = context(static_cast<int>(i));
      Matrix<T>* dx = n.needs_input_grad ? &grads_[i] : nullptr;
      ops_list_[i]->backward(cx, acts_[i], acts_[i + 1], grads_[i + 1], dx);
      if (n.residual >= 0) residual_grad[static_cast<std::size_t>(n.residual)] = &grads_[i + 1];
      // Activation i's gradient is complete once its consumer (node i) and an add reading it have sent theirs back.
      if (dx && residual_grad[i]) {
        std::vector<W> wide(dx->data.size());
        for (std::size_t k = 0; k < wide.size(); ++k) wide[k] = W(dx->data[k]) + W(residual_grad[i]->data[k]);
        ops_.store(cx.in_grad_role(), graph_.input_grad_tensor(static_cast<int>(i)), wide, dx->values(), log_);
      }
    }
  }

  OpContext<Ops> context(int node) {
    const std::size_t in = node == 0 ? 0 : graph_.output_tensor(node - 1);
    const Node& n = graph_.nodes[static_cast<std::size_t>(node)];
    const Group& g = graph_.groups[static_cast<std::size_t>(n.group)];
    const Matrix<T>* residual = n.residual >= 0 ? &acts_[static_cast<std::size_t>(n.residual)] : nullptr;
    return {ops_, log_, in, graph_.output_tensor(node), g.activation_grad, graph_.input_grad_tensor(node), residual,
            n.promoted ? Role::promoted : Role::activations, n.promoted_input};
  }

  // master = grad * inv_scale: in the master format (AMP: fp32) or, without master gradients, the gradient format.
  void unscale(Param<Ops>& p, const T& inv_scale) {
    p.master_grad.resize(p.grad.size());
    if (ops_.master_gradients()) {
      for (std::size_t i = 0; i < p.grad.size(); ++i) p.master_grad[i] = p.grad[i] * inv_scale;  // exact but for overflow
      return;
    }
    std::vector<W> wide(p.grad.size());
    for (std::size_t i = 0; i < p.grad.size(); ++i) wide[i] = W(p.grad[i]) * W(inv_scale);
    ops_.store(Role::gradients, p.grad_tensor, wide, p.master_grad, log_);
  }

  auto make_arith() {
    if constexpr (std::is_same_v<T, float>) {
      FormatArith a;
      a.format = config_.recipe.master.format;
      a.update_rounding = config_.recipe.update.rounding;
      a.random = &ops_.random();
      return a;
    } else {
      return NativeArith<T>{};
    }
  }

  // The values catalogue entry `index` shows: the input, a group's primary parameter or its gradient, the group's
  // output, or the gradient at its first op's output.
  std::span<const T> values_of(std::size_t index) const {
    if (index == 0) return acts_[0].values();
    const TensorInfo& t = tensors_[index];
    const Group& g = graph_.groups[static_cast<std::size_t>(t.layer)];
    if (t.kind == "attention_scores" || t.kind == "attention_probs")
      for (std::size_t i = static_cast<std::size_t>(g.first_node); i < graph_.nodes.size(); ++i)
        if (graph_.nodes[i].spec.type == LayerSpec::Type::causal_attention && graph_.nodes[i].group == t.layer)
          return ops_list_[i]->internal_values(index);
    const auto& params = ops_list_[static_cast<std::size_t>(g.first_node)]->params();
    if (t.kind == "weight") return params[0].master;
    if (t.kind == "bias") return params[1].master;
    if (t.kind == "weight_grad") return params[0].grad;
    if (t.kind == "bias_grad") return params[1].grad;
    if (t.kind == "activation_grad") return grads_[static_cast<std::size_t>(g.first_node) + 1].values();
    int last = g.first_node;
    while (static_cast<std::size_t>(last + 1) < graph_.nodes.size() && graph_.nodes[static_cast<std::size_t>(last) + 1].group == t.layer) ++last;
    return acts_[static_cast<std::size_t>(last) + 1].values();
  }

  // The step's tensors: their histograms, made here from the lane's own buffers (no copies handed on).
  std::vector<TensorRecord> records() {
    std::vector<TensorRecord> out;
    out.reserve(tensors_.size());
    for (std::size_t index = 0; index < tensors_.size(); ++index) {
      const std::span<const T> values = values_of(index);
      TensorRecord r;
      r.index = index;
      tensors_[index].elements = static_cast<std::int64_t>(values.size());
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        r.histogram = analysis::Log2Histogram::of(values);
      } else {
        std::vector<double> wide(values.size());
        for (std::size_t i = 0; i < values.size(); ++i) wide[i] = to_double(values[i]);
        r.histogram = analysis::Log2Histogram::of(std::span<const double>(wide));
      }
      if (log_.rounded[index]) r.effects = log_.effects[index];
      out.push_back(std::move(r));
    }
    return out;
  }

  void read_params(LayerValues& out, std::vector<T> Param<Ops>::*field) const {
    out.resize(group_params_.size() - 1);
    for (std::size_t g = 1; g < group_params_.size(); ++g) {
      std::vector<double>& v = out[g - 1];
      v.clear();
      for (const Param<Ops>* p : group_params_[g])
        for (const T& x : p->*field) v.push_back(to_double(x));
    }
  }

  static void flatten(std::span<const T> values, std::vector<double>& out) {
    out.resize(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = to_double(values[i]);
  }

  LaneConfig config_;
  ModelConfig model_;
  Graph graph_;
  Ops ops_;
  LossScaler scaler_{config_.loss_scale};
  std::vector<TensorInfo> tensors_;
  std::vector<std::unique_ptr<Op<Ops>>> ops_list_;       // one per graph node
  std::vector<std::vector<Param<Ops>*>> group_params_;   // [group] its parameters in node order ([0]: none)
  std::vector<Matrix<T>> acts_;   // [i] the input of node i (batch, in_size); [n] the model's output
  std::vector<Matrix<T>> grads_;  // [i] d loss·S / d acts_[i] (where computed)
  StepLog log_;
};

}  // namespace mpscope::sim
