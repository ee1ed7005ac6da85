// mpscope_gpu_step: times training steps of a GPU lane with SGD + momentum, as bench/gpu_vs_torch.py and
// bench/cnn_vs_torch.py run their PyTorch twins, and prints one JSON line: median / p10 / p90 step time (host wall
// clock around Lane::step, which waits for the step and reads its loss back, as a training loop logging its loss
// does) and the peak device memory mpscope allocated. Models: the MLP 784-w-w-w-w-10 (--model mlp), the digits CNN
// of samples/torch_cnn.json on 1x8x8 inputs (cnn) and a wider CNN on 3x32x32 inputs, channels 32-64-128 (wide-cnn).
//
//   mpscope_gpu_step --recipe fp16-amp --width 4096 --batch 4096 [--steps 30] [--warmup 10] [--record every|never]
//                    [--gemm fast|exact] [--mma fp32|h100] [--fp8-accumulation promoted|fast]
//                    [--model mlp|cnn|wide-cnn]
// --mma h100 in fast mode: cuBLASLt arranged to compute the CPU's h100 model (K in one pass, bias gradients in the
// CPU's order): its cost against the default fast lane is the price of bit-identity.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "gpu/gpu_lane.hpp"
#include "sim/ops/graph.hpp"
#include "sim/recipe.hpp"

using namespace mpscope;

namespace {

sim::LayerSpec layer(sim::LayerSpec::Type type, std::int64_t out = 0, std::int64_t kernel = 0, std::int64_t padding = 0) {
  sim::LayerSpec s;
  s.type = type;
  s.out = out;
  s.kernel = kernel;
  s.stride = type == sim::LayerSpec::Type::conv2d ? 1 : kernel;
  s.padding = padding;
  if (type == sim::LayerSpec::Type::activation) s.activation = sim::Activation::relu;
  return s;
}

// Conv(3x3, padding 1) - ReLU - MaxPool(2) per channel count, then Flatten - Linear(10).
sim::ModelConfig cnn(std::vector<std::int64_t> input, const std::vector<std::int64_t>& channels) {
  using T = sim::LayerSpec::Type;
  sim::ModelConfig m;
  m.type = sim::ModelConfig::Type::sequential;
  m.input = std::move(input);
  for (std::int64_t c : channels)
    for (const sim::LayerSpec& l : {layer(T::conv2d, c, 3, 1), layer(T::activation), layer(T::maxpool2d, 0, 2)}) m.sequence.push_back(l);
  m.sequence.push_back(layer(T::flatten));
  m.sequence.push_back(layer(T::linear, 10));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  std::string recipe = "fp16-amp", record = "never", gemm = "fast", model_name = "mlp", mma = "fp32",
              fp8_accumulation = "promoted";
  std::int64_t width = 256, batch = 256;
  int steps = 50, warmup = 10;
  CLI::App app{"Time training steps of an mpscope GPU lane (SGD momentum 0.9)"};
  app.add_option("--recipe", recipe)->check(CLI::IsMember({"fp32", "fp16-amp", "bf16-amp", "fp16-pure", "fp8"}));
  app.add_option("--width", width)->check(CLI::PositiveNumber);
  app.add_option("--batch", batch)->check(CLI::PositiveNumber);
  app.add_option("--steps", steps)->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup)->check(CLI::NonNegativeNumber);
  app.add_option("--record", record, "every: full statistics every step")->check(CLI::IsMember({"every", "never"}));
  app.add_option("--gemm", gemm)->check(CLI::IsMember({"fast", "exact"}));
  app.add_option("--mma", mma, "the lane's accumulation model")->check(CLI::IsMember({"fp32", "h100"}));
  app.add_option("--fp8-accumulation", fp8_accumulation, "fp8 under --mma h100")->check(CLI::IsMember({"promoted", "fast"}));
  app.add_option("--model", model_name, "mlp: 784-w-w-w-w-10; cnn: samples/torch_cnn.json's on 1x8x8; wide-cnn: 3x32x32, "
                 "channels 32-64-128")->check(CLI::IsMember({"mlp", "cnn", "wide-cnn"}));
  CLI11_PARSE(app, argc, argv);

  const std::string why = gpu::unavailable_reason();
  if (!why.empty()) {
    std::cerr << "mpscope_gpu_step: " << why << "\n";
    return 3;
  }
  sim::ModelConfig model;
  model.widths = {784, width, width, width, width, 10};
  if (model_name == "cnn") model = cnn({1, 8, 8}, {8, 16});
  if (model_name == "wide-cnn") model = cnn({3, 32, 32}, {32, 64, 128});
  const sim::Graph graph = sim::build_graph(model);
  const std::int64_t features = graph.nodes.front().in_size();
  // Random data: two batches' worth of rows, each step a shuffled batch of them.
  sim::Dataset data;
  const std::int64_t rows = 2 * batch;
  data.x = sim::Matrix<float>(rows, features);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : data.x.data) v = normal(rng);
  for (std::int64_t i = 0; i < rows; ++i) data.labels.push_back(static_cast<std::int64_t>(rng() % 10));
  data.classes = 10;

  sim::LaneConfig lane;
  lane.name = recipe;
  lane.recipe = sim::recipe_preset(recipe);
  lane.recipe.mma = sim::parse_accumulation(mma);
  lane.recipe.fp8_accumulation = sim::parse_fp8_accumulation(fp8_accumulation);
  lane.optimizer.lr = 0.01;
  lane.optimizer.momentum = 0.9;
  if (recipe == "fp16-amp") lane.loss_scale.type = sim::LossScaleConfig::Type::dynamic;  // GradScaler, as PyTorch AMP
  gpu::GpuLaneOptions options;
  options.mode = gemm == "exact" ? gpu::GemmMode::exact : gpu::GemmMode::fast;
  options.data = &data;
  gpu::reset_peak_device_memory();
  const auto lane_ptr = gpu::make_gpu_lane(lane, model, sim::default_initial_weights(graph, 1), options);

  std::vector<std::vector<std::int64_t>> orders(8);
  for (auto& o : orders) {
    o.resize(static_cast<std::size_t>(rows));
    for (std::int64_t i = 0; i < rows; ++i) o[static_cast<std::size_t>(i)] = i;
    std::shuffle(o.begin(), o.end(), rng);
    o.resize(static_cast<std::size_t>(batch));
  }
  std::vector<double> times;
  double loss = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    sim::Batch b;
    b.rows = orders[static_cast<std::size_t>(s) % orders.size()];
    const auto start = std::chrono::steady_clock::now();
    loss = lane_ptr->step(b, 0.01, record == "every").loss;
    const auto end = std::chrono::steady_clock::now();
    if (s >= warmup) times.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  std::sort(times.begin(), times.end());
  const auto at = [&](double q) { return times[static_cast<std::size_t>(q * static_cast<double>(times.size() - 1))]; };
  const std::string model_text = mma == "h100" && recipe == "fp8" ? "h100/" + fp8_accumulation : mma;
  std::printf("{\"impl\": \"mpscope\", \"model\": \"%s\", \"recipe\": \"%s\", \"width\": %lld, \"batch\": %lld, \"record\": \"%s\", \"gemm\": \"%s\", "
              "\"mma\": \"%s\", \"median_ms\": %.4f, \"p10_ms\": %.4f, \"p90_ms\": %.4f, \"peak_mib\": %.1f, \"last_loss\": %.5g}\n",
              model_name.c_str(), recipe.c_str(), static_cast<long long>(width), static_cast<long long>(batch), record.c_str(), gemm.c_str(),
              model_text.c_str(), at(0.5), at(0.1), at(0.9), static_cast<double>(gpu::peak_device_memory()) / (1 << 20), loss);
  return 0;
}
