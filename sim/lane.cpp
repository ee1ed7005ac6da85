#include "sim/lane.hpp"

#include <stdexcept>

#include "sim/graph_lane.hpp"

namespace mpscope::sim {

std::unique_ptr<Lane> make_lane(const LaneConfig& lane, const ModelConfig& model, const InitialWeights& init) {
  const std::string problem = check_recipe(lane.recipe);
  if (!problem.empty()) throw std::invalid_argument("lane " + lane.name + ": " + problem);
  switch (lane.recipe.storage) {
    case Storage::float32: return std::make_unique<GraphLane<RoundedOps>>(lane, model, init);
    case Storage::float64: return std::make_unique<GraphLane<WideOps<double>>>(lane, model, init);
    case Storage::exact: return std::make_unique<GraphLane<WideOps<Exact>>>(lane, model, init);
  }
  throw std::logic_error("unknown storage");
}

}  // namespace mpscope::sim
