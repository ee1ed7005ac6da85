// Initial weights from files, by PyTorch parameter name: an NPZ archive or a safetensors file (a state_dict saved
// with numpy.savez or safetensors.torch.save_file), each name with an optional prefix ("init.0.weight").
//   sequential  every parameter "<prefix><module>.<weight|bias>" (LayerNorm/BatchNorm ones may be absent: 1 and 0)
//   mlp         "<prefix><k>.weight" and "<prefix><k>.bias" for increasing k, one pair per Linear layer, in order
//               (e.g. init.0, init.2, init.4 of a Sequential with activations between)
// Shapes are checked against the model (PyTorch's layout: Linear (out, in), Conv2d (out, in, kh, kw)).
#pragma once

#include <filesystem>
#include <string>

#include "sim/dataset.hpp"
#include "sim/model.hpp"

namespace mpscope::sim {

InitialWeights load_npz_weights(const std::filesystem::path& path, const std::string& prefix, const ModelConfig& m);
InitialWeights load_safetensors_weights(const std::filesystem::path& path, const std::string& prefix,
                                        const ModelConfig& m);

}  // namespace mpscope::sim
