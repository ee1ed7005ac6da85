// The op interface (docs/design.md "Ops"): every layer of a model is an Op, written once for every storage type
// (Ops = RoundedOps for float32 storage with the recipe's rounding points, WideOps<double|Exact> for the fp64 and
// exact lanes) as the readable CPU reference; its CUDA twin (gpu/ops/op.cuh's GpuOp) lives in gpu/ops/ under the
// same name.
//
// Activations are Matrix<T> (batch, elements per sample), each row one sample in the node's shape (C, H, W order
// for images). An op rounds every result it makes through `cx.ops` at the role's format, counting the rounding to
// the catalogue entry the context names, and keeps what its backward needs.
//
// Adding an op: a LayerSpec::Type and its shape rule (sim/ops/graph.cpp), one file sim/ops/<op>.cpp with the
// class and its make_<op> factory (listed in sim/ops/ops.cpp), one CUDA file gpu/ops/<op>.cu with its op-by-op test
// (tests/gpu/test_gpu_ops.cu), one CPU test.
#pragma once

#include <memory>
#include <vector>

#include "sim/ops/graph.hpp"
#include "sim/ops/rounded_ops.hpp"
#include "sim/optimizer.hpp"

namespace mpscope::sim {

// A trainable parameter: master values (the `master` role), the compute copy the forward pass uses, its gradient
// as the backward pass produces it (scaled by the loss scale) and the unscaled master gradient the optimizer reads.
template <class Ops>
struct Param {
  using T = typename Ops::T;
  Param(const ParamInfo& i, const OptimizerConfig& c) : info(&i), master(static_cast<std::size_t>(i.size())), opt(c, master.size()) {}
  const ParamInfo* info;
  std::vector<T> master, compute, grad, master_grad;  // each (info->shape), row-major
  ParamOptimizer<T> opt;
  std::size_t tensor = no_tensor, grad_tensor = no_tensor;  // catalogue entries its roundings count to
  float descale = 1.0f;  // FP8: 1 / the compute copy's scale
};

template <class Ops>
struct OpContext {
  Ops& ops;
  StepLog& log;
  std::size_t in_tensor;        // the catalogue entries the roundings count to: of the input (its FP8 cast),
  std::size_t out_tensor;       // the output,
  std::size_t out_grad_tensor;  // the output's gradient (its FP8 cast)
  std::size_t in_grad_tensor;   // and the input's gradient
  const Matrix<typename Ops::T>* residual = nullptr;  // add: the activation added to the input (the lane's)
  // The format of the output (activations, or promoted: Node::promoted) and whether the input is promoted (a GEMM
  // casts it to the activation format first, autocast's cast); the gradients follow their values' formats.
  Role out_role = Role::activations;
  bool promoted_input = false;
  Role out_grad_role() const { return out_role == Role::promoted ? Role::promoted : Role::gradients; }
  Role in_grad_role() const { return promoted_input ? Role::promoted : Role::gradients; }
};

// dx = dy for an op that passes its gradient through unchanged (add, position embedding): a copy, or the cast to
// the input gradient's format where that differs (a narrow input under a promoted output: the cast's backward).
template <class Ops>
void pass_gradient(OpContext<Ops>& cx, const Matrix<typename Ops::T>& dy, Matrix<typename Ops::T>& dx) {
  if (cx.ops.same_format(cx.in_grad_role(), cx.out_grad_role())) {
    dx = dy;
    return;
  }
  dx = Matrix<typename Ops::T>(dy.rows, dy.cols);
  cx.ops.cast(cx.in_grad_role(), cx.in_grad_tensor, dy.values(), dx.values(), cx.log);
}

// A GEMM op's input as the GEMM takes it: x itself, or (a promoted input, where that format is not the activation
// format) x cast to the activation format in `scratch`, counted to the input's tensor.
template <class Ops>
const Matrix<typename Ops::T>& gemm_operand(OpContext<Ops>& cx, const Matrix<typename Ops::T>& x, Matrix<typename Ops::T>& scratch) {
  if (!cx.promoted_input || cx.ops.same_format(Role::promoted, Role::activations)) return x;
  scratch = Matrix<typename Ops::T>(x.rows, x.cols);
  cx.ops.cast(Role::activations, cx.in_tensor, x.values(), scratch.values(), cx.log);
  return scratch;
}

template <class Ops>
class Op {
 public:
  using T = typename Ops::T;
  using W = typename Ops::Wide;  // elementwise math (double for float32 storage)

  explicit Op(const Node& n) : node_(&n) {}
  virtual ~Op() = default;
  const Node& node() const { return *node_; }
  std::vector<Param<Ops>>& params() { return params_; }
  const std::vector<Param<Ops>>& params() const { return params_; }

  // in (batch, in_size) -> out (batch, out_size). `training`: keep what backward needs and update batch statistics.
  virtual void forward(OpContext<Ops>& cx, const Matrix<T>& in, Matrix<T>& out, bool training) = 0;
  // From dout (batch, out_size), the gradient at this op's output: the parameters' `grad` and, when din is given,
  // the gradient at its input (batch, in_size). `in` and `out` are the forward pass's.
  virtual void backward(OpContext<Ops>& cx, const Matrix<T>& in, const Matrix<T>& out, const Matrix<T>& dout,
                        Matrix<T>* din) = 0;
  // The values of a catalogue entry the op keeps inside (attention scores), empty for others.
  virtual std::span<const T> internal_values(std::size_t /*tensor*/) const { return {}; }

 protected:
  const Node* node_;
  std::vector<Param<Ops>> params_;
};

// The op for a node (sim/ops/ops.cpp), its parameters made from the node's ParamInfo (values still to be stored).
template <class Ops>
std::unique_ptr<Op<Ops>> make_op(const Node& n, const OptimizerConfig& optimizer);

// One factory per op file.
template <class Ops> std::unique_ptr<Op<Ops>> make_linear(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_conv2d(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_pool(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_flatten(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_activation(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_layer_norm(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_batch_norm2d(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_add(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_embedding(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_position_embedding(const Node&, const OptimizerConfig&);
template <class Ops> std::unique_ptr<Op<Ops>> make_causal_attention(const Node&, const OptimizerConfig&);

// Every op file instantiates its factory for the three storage policies.
#define MPSCOPE_INSTANTIATE_OP(factory)                                                                   \
  template std::unique_ptr<Op<RoundedOps>> factory<RoundedOps>(const Node&, const OptimizerConfig&);     \
  template std::unique_ptr<Op<WideOps<double>>> factory<WideOps<double>>(const Node&, const OptimizerConfig&); \
  template std::unique_ptr<Op<WideOps<Exact>>> factory<WideOps<Exact>>(const Node&, const OptimizerConfig&);

}  // namespace mpscope::sim
