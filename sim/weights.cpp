#include "sim/weights.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "sim/npy.hpp"
#include "sim/ops/graph.hpp"
#include "sim/rounding.hpp"

namespace mpscope::sim {

namespace {

std::string where(const std::filesystem::path& p) { return p.string(); }

using Tensor = std::pair<std::vector<std::int64_t>, std::vector<double>>;

// float32 or float64 values, as float32 (PyTorch's parameters are), widened to double.
std::vector<double> float_values(const NpyArray& a, const std::string& what) {
  std::vector<double> out;
  if (a.dtype == DType::float32) {
    const auto v = a.values<float>(what);
    out.assign(v.begin(), v.end());
  } else if (a.dtype == DType::float64) {
    for (double x : a.values<double>(what)) out.push_back(static_cast<float>(x));
  } else {
    throw DataError(what + ": expected float32 or float64 values, found " + std::string(to_string(a.dtype)));
  }
  return out;
}

// Names "<prefix><k>.weight": the sorted distinct k of the archive.
std::vector<std::string> layer_keys(const std::vector<std::string>& names, const std::string& prefix) {
  std::map<std::int64_t, std::string> ks;
  for (const auto& n : names) {
    if (!n.starts_with(prefix) || !n.ends_with(".weight")) continue;
    const std::string k = n.substr(prefix.size(), n.size() - prefix.size() - 7);
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(k.data(), k.data() + k.size(), v);
    if (ec == std::errc{} && ptr == k.data() + k.size()) ks[v] = k;
  }
  std::vector<std::string> out;
  for (const auto& [v, k] : ks) out.push_back(k);
  return out;
}

// Reads every parameter of the model's graph through `read` (name -> (shape, values), or nullopt when absent).
template <typename Read>
InitialWeights assemble(const std::vector<std::string>& names, const std::string& prefix, const ModelConfig& m,
                        const std::string& file, Read read) {
  const Graph graph = build_graph(m);
  InitialWeights w = default_initial_weights(graph, 0);
  // The file's name of each parameter (mlp: by the order of its Linear layers' indices).
  std::vector<std::string> file_names;
  if (m.type == ModelConfig::Type::mlp) {
    const std::vector<std::string> keys = layer_keys(names, prefix);
    if (static_cast<int>(keys.size()) != m.layers())
      throw DataError(file + ": found " + std::to_string(keys.size()) + " weights named " + prefix +
                      "<k>.weight, the model has " + std::to_string(m.layers()) + " Linear layers");
    std::size_t linear = 0;
    for (const Node& n : graph.nodes) {
      for (const ParamInfo& p : n.params) {
        const bool is_linear = n.spec.type == LayerSpec::Type::linear;
        file_names.push_back(is_linear ? prefix + keys[linear] + (p.is_bias ? ".bias" : ".weight") : "");
      }
      if (n.spec.type == LayerSpec::Type::linear) ++linear;
    }
  } else {
    for (const Node& n : graph.nodes)
      for (const ParamInfo& p : n.params) file_names.push_back(prefix + p.name);
  }
  std::size_t at = 0;
  for (const Node& n : graph.nodes)
    for (const ParamInfo& p : n.params) {
      ParamValues& v = w.params[at];
      const std::string& name = file_names[at++];
      const bool optional = p.init != ParamInfo::Init::uniform;  // norms: PyTorch's defaults when absent
      auto found = name.empty() ? std::nullopt : read(name);
      if (!found) {
        if (optional) continue;
        std::string have;
        for (std::size_t i = 0; i < names.size() && i < 12; ++i) have += (i ? ", " : "") + names[i];
        throw DataError(file + ": no tensor " + name + " (parameter " + p.name + " of layer " + n.module + ", shape " +
                        shape_text(p.shape) + "); the file has: " + have + (names.size() > 12 ? ", ..." : ""));
      }
      auto& [shape, values] = *found;
      if (shape != p.shape)
        throw DataError(file + ": " + name + " has shape " + shape_text(shape) + ", parameter " + p.name + " needs " +
                        shape_text(p.shape) + " (PyTorch's layout)");
      v.values = std::move(values);
    }
  return w;
}

}  // namespace

InitialWeights load_npz_weights(const std::filesystem::path& path, const std::string& prefix, const ModelConfig& m) {
  const NpzFile npz(path);
  const std::vector<std::string> names = npz.names();
  return assemble(names, prefix, m, where(path), [&](const std::string& name) -> std::optional<Tensor> {
    if (std::find(names.begin(), names.end(), name) == names.end()) return std::nullopt;
    const NpyArray a = npz.read(name);
    return Tensor{a.shape, float_values(a, where(path) + ":" + name)};
  });
}

InitialWeights load_safetensors_weights(const std::filesystem::path& path, const std::string& prefix,
                                        const ModelConfig& m) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(where(path) + ": cannot open");
  std::uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  if (!in || header_size > 100'000'000) throw DataError(where(path) + ": not a safetensors file");
  std::string header(header_size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  const std::vector<char> body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(where(path) + ": bad safetensors header (" + e.what() + ")");
  }
  std::vector<std::string> names;
  for (const auto& [k, v] : meta.items())
    if (k != "__metadata__") names.push_back(k);
  return assemble(names, prefix, m, where(path), [&](const std::string& name) -> std::optional<Tensor> {
    if (!meta.contains(name)) return std::nullopt;
    const auto& t = meta[name];
    const std::string dtype = t.at("dtype");
    const std::vector<std::int64_t> shape = t.at("shape");
    const std::size_t begin = t.at("data_offsets")[0], end = t.at("data_offsets")[1];
    std::int64_t count = 1;
    for (auto s : shape) count *= s;
    const std::size_t width = dtype == "F64" ? 8 : dtype == "F32" ? 4 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
    if (width == 0) throw DataError(where(path) + ": " + name + " has dtype " + dtype + " (expected F32, F64, F16 or BF16)");
    if (end > body.size() || end - begin != static_cast<std::size_t>(count) * width)
      throw DataError(where(path) + ": " + name + " has bad data offsets");
    std::vector<double> v(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < v.size(); ++i) {
      const char* p = body.data() + begin + i * width;
      if (dtype == "F64") {
        std::memcpy(&v[i], p, 8);
      } else if (dtype == "F32") {
        float f;
        std::memcpy(&f, p, 4);
        v[i] = f;
      } else {
        std::uint16_t h;
        std::memcpy(&h, p, 2);
        v[i] = decode(h, dtype == "F16" ? fp16() : bf16());
      }
    }
    return Tensor{shape, v};
  });
}


}  // namespace mpscope::sim
