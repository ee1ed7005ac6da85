// The "model" section of experiment files (docs/experiments.md): "mlp" (widths) or "sequential" (an input shape
// and nn.Sequential's layers), parsed with errors naming the key path, written back resolved, and checked against
// the data before training.
#pragma once

#include <nlohmann/json.hpp>

#include "sim/dataset.hpp"
#include "sim/json_reader.hpp"
#include "sim/model.hpp"

namespace mpscope::sim {

// Everything but "init" and "loss" (the experiment reads those). Throws ConfigError naming the key path; the
// graph is built once to check every layer's shape.
ModelConfig parse_model_json(JsonObject& o);
nlohmann::json model_json(const ModelConfig& m);  // every key, defaults included

// The model's input and output against the data's samples and classes/targets; throws ConfigError.
void check_model_fits_data(const ModelConfig& m, const Dataset& data);

}  // namespace mpscope::sim
