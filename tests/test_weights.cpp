// Initial weights by PyTorch name from NPZ and safetensors files: an mlp's Linear layers in order, a Sequential's
// parameters by module index; shapes and missing tensors are errors naming the file, the tensor and both shapes.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sim/weights.hpp"
#include "test_support.hpp"

using namespace mpscope::sim;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) { return mpscope::test::scratch_file("weights", name); }
using mpscope::test::error_of;

const fs::path digits_cnn = fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_digits_cnn.npz";

// samples/torch_cnn.json's model: PyTorch's Sequential(Conv2d(1,8,3,padding=1), ReLU, MaxPool2d(2), Conv2d(8,16,3,
// padding=1), ReLU, MaxPool2d(2), Flatten, Linear(64,10)).
ModelConfig digits_model() {
  ModelConfig m;
  m.type = ModelConfig::Type::sequential;
  m.input = {1, 8, 8};
  using T = LayerSpec::Type;
  const auto layer = [](T type, std::int64_t out = 0, std::int64_t kernel = 0, std::int64_t padding = 0) {
    LayerSpec s;
    s.type = type;
    s.out = out;
    s.kernel = kernel;
    s.stride = type == T::conv2d ? 1 : kernel;
    s.padding = padding;
    return s;
  };
  m.sequence = {layer(T::conv2d, 8, 3, 1), layer(T::activation), layer(T::maxpool2d, 0, 2), layer(T::conv2d, 16, 3, 1),
                layer(T::activation), layer(T::maxpool2d, 0, 2), layer(T::flatten), layer(T::linear, 10)};
  return m;
}

TEST(Weights, MlpFromNpzAndSafetensors) {
  ModelConfig m;
  m.widths = {2, 64, 64, 3};
  const InitialWeights w = load_npz_weights(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_spiral_mlp.npz", "init.", m);
  ASSERT_EQ(w.params.size(), 6u);
  EXPECT_EQ(w.params[4].name, "layer3.weight");
  EXPECT_EQ(w.params[4].shape, (std::vector<std::int64_t>{3, 64}));
  EXPECT_EQ(w.params[5].values.size(), 3u);
  ModelConfig wrong = m;
  wrong.widths = {2, 32, 64, 3};
  EXPECT_NE(error_of([&] { load_npz_weights(fs::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_spiral_mlp.npz", "init.", wrong); })
                .find("init.0.weight has shape (64, 2), parameter layer1.weight needs (32, 2)"),
            std::string::npos);

  // A safetensors file with the same tensors (F32 and one in BF16), written by hand: 8-byte header size, JSON, data.
  nlohmann::json header;
  std::vector<char> data;
  const auto add = [&](const std::string& name, const std::vector<float>& v, std::vector<std::int64_t> shape, bool bf16) {
    const std::size_t begin = data.size();
    for (float f : v) {
      std::uint32_t bits;
      std::memcpy(&bits, &f, 4);
      if (bf16) {
        const auto h = static_cast<std::uint16_t>(bits >> 16);
        data.insert(data.end(), reinterpret_cast<const char*>(&h), reinterpret_cast<const char*>(&h) + 2);
      } else {
        data.insert(data.end(), reinterpret_cast<const char*>(&f), reinterpret_cast<const char*>(&f) + 4);
      }
    }
    header[name] = {{"dtype", bf16 ? "BF16" : "F32"}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
  };
  ModelConfig small;
  small.widths = {2, 3, 2};
  add("net.0.weight", {1, 2, 3, 4, 5, 6}, {3, 2}, false);
  add("net.0.bias", {0.5f, -0.5f, 1}, {3}, true);
  add("net.2.weight", {1, 0, 0, 1, 1, 1}, {2, 3}, false);
  add("net.2.bias", {0, 0}, {2}, false);
  header["__metadata__"] = {{"format", "pt"}};
  const std::string text = header.dump();
  {
    std::ofstream f(scratch("w.safetensors"), std::ios::binary);
    const std::uint64_t n = text.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << text;
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  const InitialWeights s = load_safetensors_weights(scratch("w.safetensors"), "net.", small);
  EXPECT_EQ(s.at("layer1.weight").values[2 * 2 + 1], 6.0);
  EXPECT_EQ(s.at("layer1.bias").values[1], -0.5);
  EXPECT_EQ(s.at("layer2.weight").values[1 * 3 + 2], 1.0);
  EXPECT_NE(error_of([&] { load_safetensors_weights(scratch("w.safetensors"), "other.", small); })
                .find("found 0 weights named other.<k>.weight, the model has 2 Linear layers"),
            std::string::npos);
  fs::remove_all(scratch("").parent_path());
}

TEST(Weights, SequentialByModuleName) {
  const InitialWeights w = load_npz_weights(digits_cnn, "init.", digits_model());
  ASSERT_EQ(w.params.size(), 6u);
  EXPECT_EQ(w.at("0.weight").shape, (std::vector<std::int64_t>{8, 1, 3, 3}));
  EXPECT_EQ(w.at("3.weight").shape, (std::vector<std::int64_t>{16, 8, 3, 3}));
  EXPECT_EQ(w.at("7.bias").values.size(), 10u);
  for (const ParamValues& p : w.params)  // PyTorch's init: nonzero, within +-1/sqrt(fan_in)
    EXPECT_GT(*std::max_element(p.values.begin(), p.values.end()), 0.0) << p.name;

  ModelConfig wider = digits_model();
  wider.sequence[3].out = 32;
  EXPECT_NE(error_of([&] { load_npz_weights(digits_cnn, "init.", wider); })
                .find("init.3.weight has shape (16, 8, 3, 3), parameter 3.weight needs (32, 8, 3, 3)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_npz_weights(digits_cnn, "final.", digits_model()); })
                .find("no tensor final.0.weight (parameter 0.weight of layer 0, shape (8, 1, 3, 3)); the file has:"),
            std::string::npos);
}

}  // namespace
