// The op list: a layer type's op, one factory per op file.
#include "sim/ops/op.hpp"

namespace mpscope::sim {

template <class Ops>
std::unique_ptr<Op<Ops>> make_op(const Node& n, const OptimizerConfig& c) {
  using T = LayerSpec::Type;
  switch (n.spec.type) {
    case T::linear: return make_linear<Ops>(n, c);
    case T::conv2d: return make_conv2d<Ops>(n, c);
    case T::maxpool2d:
    case T::avgpool2d: return make_pool<Ops>(n, c);
    case T::flatten: return make_flatten<Ops>(n, c);
    case T::activation: return make_activation<Ops>(n, c);
    case T::layer_norm: return make_layer_norm<Ops>(n, c);
    case T::batch_norm2d: return make_batch_norm2d<Ops>(n, c);
    case T::add: return make_add<Ops>(n, c);
    case T::embedding: return make_embedding<Ops>(n, c);
    case T::position_embedding: return make_position_embedding<Ops>(n, c);
    case T::causal_attention: return make_causal_attention<Ops>(n, c);
  }
  throw std::logic_error("unknown layer type");
}
MPSCOPE_INSTANTIATE_OP(make_op)

}  // namespace mpscope::sim
