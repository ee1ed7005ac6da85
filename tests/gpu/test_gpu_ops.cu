// The graph ops' CUDA twins (gpu/ops/) against their CPU references (sim/ops/), op by op as ggml's backend tests
// do: the same inputs and weights through the CPU op (RoundedOps, the lane's rounding points) and through the GPU
// kernels with mpscope's exact GEMMs; every output and gradient bit-identical, for fp32, fp16 (fp32 and h100
// accumulation) and bf16, with strides, padding, overlapping pooling windows and ties; batch norm in training and
// evaluation mode with its running statistics (fp16-pure: fp16 parameters).
#include <algorithm>
#include <memory>
#include <random>

#include "gpu/buffer.cuh"
#include "gpu/kernels.cuh"
#include "gpu/ops/ops.cuh"
#include "gpu_support.hpp"
#include "sim/ops/op.hpp"
#include "sim/rounding.hpp"

using namespace mpscope;
using gpu::DeviceBuffer;
using gpu::PointStats;

namespace {

template <typename T>
DeviceBuffer<T> device_values(const std::vector<float>& values) {  // values that T holds exactly
  DeviceBuffer<float> staging(values.size());
  staging.upload(values, nullptr);
  DeviceBuffer<T> out(values.size());
  gpu::kernels::cast<float, T>(staging.get(), out.get(), values.size(), PointStats{}, nullptr);
  return out;
}
template <typename T>
std::vector<float> host_values(const T* d, std::size_t n) {
  DeviceBuffer<float> wide(n);
  gpu::kernels::cast<T, float>(d, wide.get(), n, PointStats{}, nullptr);
  return wide.download(nullptr);
}

// `n` random values of the format (normal(0, scale) rounded to it), as float
std::vector<float> random_values(std::size_t n, const sim::Format& f, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(sim::round(d(rng), f));
  return v;
}

void expect_same_bits(const std::vector<float>& cpu, const std::vector<float>& gpu_values, const std::string& what) {
  ASSERT_EQ(cpu.size(), gpu_values.size()) << what;
  std::size_t differ = 0, first = 0;
  for (std::size_t i = 0; i < cpu.size(); ++i)
    if (!gputest::same_bits(cpu[i], gpu_values[i]) && differ++ == 0) first = i;
  EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << cpu.size() << " values differ, the first at " << first
                        << ": CPU " << cpu[first] << ", GPU " << gpu_values[first];
}

struct Case {
  const char* recipe;
  sim::Accumulation mma;
};

// One node of a one-layer-plus-head sequential model, its CPU op and what the op's context needs.
struct CpuOp {
  sim::Graph graph;
  sim::LaneConfig lane;
  std::unique_ptr<sim::RoundedOps> ops;
  std::unique_ptr<sim::Op<sim::RoundedOps>> op;
  sim::StepLog log;
  CpuOp(const sim::ModelConfig& m, const Case& c) : graph(sim::build_graph(m)) {
    lane.name = c.recipe;
    lane.recipe = sim::recipe_preset(c.recipe);
    lane.recipe.mma = c.mma;
    ops = std::make_unique<sim::RoundedOps>(lane, graph.gemms);
    op = sim::make_op<sim::RoundedOps>(graph.nodes[0], lane.optimizer);
    log.reset(graph.tensors.size(), false);
    log.catalogue = &graph.tensors;
  }
  sim::OpContext<sim::RoundedOps> context() {
    return {*ops, log, 0, graph.output_tensor(0), graph.groups[static_cast<std::size_t>(graph.nodes[0].group)].activation_grad,
            graph.groups[0].activation_grad == sim::no_tensor ? graph.output_tensor(0) : graph.groups[0].activation_grad};
  }
  sim::Format format() const { return lane.recipe.activations.format; }
};

sim::LayerSpec layer(sim::LayerSpec::Type type, std::int64_t out, std::int64_t k, std::int64_t stride, std::int64_t pad) {
  sim::LayerSpec s;
  s.type = type;
  s.out = out;
  s.kernel = k;
  s.stride = stride;
  s.padding = pad;
  return s;
}

sim::ModelConfig image_model(std::vector<std::int64_t> input, sim::LayerSpec first) {
  sim::ModelConfig m;
  m.type = sim::ModelConfig::Type::sequential;
  m.input = std::move(input);
  m.sequence = {first, layer(sim::LayerSpec::Type::flatten, 0, 0, 0, 0), layer(sim::LayerSpec::Type::linear, 3, 0, 0, 0)};
  return m;
}

// d (m, n) = op(a) · op(b) under the case's accumulation model, on the device
template <typename T>
void device_gemm(const Case& c, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                 std::int64_t lda, const T* b, std::int64_t ldb, float* d) {
  if constexpr (std::is_same_v<T, __half>) {
    if (c.mma == sim::Accumulation::h100) {
      gpu::kernels::gemm_mma_fp16(ta, tb, m, n, k, a, lda, b, ldb, nullptr, d, nullptr);
      return;
    }
  }
  gpu::kernels::gemm_fma<T>(ta, tb, m, n, k, a, lda, b, ldb, d, nullptr);
}

template <typename T>
void check_conv(const Case& c, std::int64_t stride, std::int64_t pad, bool bias) {
  sim::LayerSpec spec = layer(sim::LayerSpec::Type::conv2d, 5, 3, stride, pad);
  spec.bias = bias;
  CpuOp cpu(image_model({3, 9, 7}, spec), c);
  const sim::Node& node = cpu.graph.nodes[0];
  const gpu::ops::ConvShape s{6, 3, 9, 7, 5, node.out_shape[1], node.out_shape[2], 3, stride, pad};
  const std::string what = std::string(c.recipe) + "/" + std::string(sim::to_string(c.mma)) + " stride " +
                           std::to_string(stride) + " pad " + std::to_string(pad) + (bias ? "" : " no bias");
  std::mt19937 rng(5);
  const sim::Format f = cpu.format();
  auto& params = cpu.op->params();
  for (auto& p : params) {
    const std::vector<float> v = random_values(p.master.size(), f, rng, 0.3);
    p.master.assign(v.begin(), v.end());
  }
  sim::Matrix<float> x(s.batch, s.c * s.h * s.w), y;
  x.data = random_values(x.data.size(), f, rng);
  sim::OpContext<sim::RoundedOps> cx = cpu.context();
  cpu.op->forward(cx, x, y, true);

  const auto positions = static_cast<std::size_t>(s.batch * s.positions());
  DeviceBuffer<T> dx_in = device_values<T>(x.data), w = device_values<T>(params[0].compute);
  DeviceBuffer<T> cols(positions * static_cast<std::size_t>(s.patch())), dy_out(static_cast<std::size_t>(y.size()));
  DeviceBuffer<float> sum(positions * static_cast<std::size_t>(s.f));
  gpu::ops::im2col<T>(dx_in.get(), cols.get(), s, nullptr);
  device_gemm<T>(c, false, true, s.batch * s.positions(), s.f, s.patch(), cols.get(), s.patch(), w.get(), s.patch(), sum.get());
  gpu::ops::conv_output<T>(sum.get(), dy_out.get(), s, PointStats{}, nullptr);
  if (bias) {
    DeviceBuffer<T> b = device_values<T>(std::vector<float>(params[1].master.begin(), params[1].master.end()));
    gpu::ops::conv_bias<T>(dy_out.get(), b.get(), s, PointStats{}, nullptr);
  }
  expect_same_bits(y.data, host_values(dy_out.get(), dy_out.size()), what + ": forward");

  // backward from a random output gradient
  sim::Matrix<float> dy(y.rows, y.cols), dx;
  dy.data = random_values(dy.data.size(), f, rng, 0.01);
  cpu.op->backward(cx, x, y, dy, &dx);
  DeviceBuffer<T> g = device_values<T>(dy.data), g_rows(positions * static_cast<std::size_t>(s.f));
  gpu::ops::conv_grad_rows<T>(g.get(), g_rows.get(), s, nullptr);
  DeviceBuffer<float> dw32(static_cast<std::size_t>(s.f * s.patch()));
  device_gemm<T>(c, true, false, s.f, s.patch(), s.batch * s.positions(), g_rows.get(), s.f, cols.get(), s.patch(), dw32.get());
  DeviceBuffer<T> dw(dw32.size());
  gpu::kernels::cast<float, T>(dw32.get(), dw.get(), dw32.size(), PointStats{}, nullptr);
  expect_same_bits(params[0].grad, host_values(dw.get(), dw.size()), what + ": weight gradient");
  if (bias) {
    DeviceBuffer<T> db(static_cast<std::size_t>(s.f));
    gpu::ops::conv_bias_grad<T>(g.get(), db.get(), s, PointStats{}, nullptr);
    expect_same_bits(params[1].grad, host_values(db.get(), db.size()), what + ": bias gradient");
  }
  const std::int64_t fan = s.f * s.k * s.k, inputs = s.batch * s.h * s.w;
  DeviceBuffer<T> dcols(static_cast<std::size_t>(inputs * fan)), w_rows(static_cast<std::size_t>(fan * s.c));
  DeviceBuffer<float> out(static_cast<std::size_t>(inputs * s.c));
  DeviceBuffer<T> gx(static_cast<std::size_t>(inputs * s.c));
  gpu::ops::conv_input_grad_rows<T>(g.get(), dcols.get(), s, nullptr);
  gpu::ops::conv_weights_by_output<T>(w.get(), w_rows.get(), s, nullptr);
  device_gemm<T>(c, false, false, inputs, s.c, fan, dcols.get(), fan, w_rows.get(), s.c, out.get());
  gpu::ops::conv_input_grad<T>(out.get(), gx.get(), s, PointStats{}, nullptr);
  expect_same_bits(dx.data, host_values(gx.get(), gx.size()), what + ": input gradient");
}

template <typename T>
void check_pool(const Case& c, bool max, std::int64_t k, std::int64_t stride) {
  CpuOp cpu(image_model({4, 8, 7}, layer(max ? sim::LayerSpec::Type::maxpool2d : sim::LayerSpec::Type::avgpool2d, 0, k, stride, 0)), c);
  const sim::Node& node = cpu.graph.nodes[0];
  const gpu::ops::PoolShape s{5, 4, 8, 7, node.out_shape[1], node.out_shape[2], k, stride, max};
  const std::string what = std::string(c.recipe) + (max ? " max" : " avg") + " k" + std::to_string(k) + " s" + std::to_string(stride);
  std::mt19937 rng(9);
  const sim::Format f = cpu.format();
  sim::Matrix<float> x(s.batch, s.c * s.h * s.w), y;
  x.data = random_values(x.data.size(), f, rng);
  for (std::size_t i = 0; i < x.data.size(); i += 3) x.data[i] = std::max(0.0f, x.data[i]);  // ties at 0, as after ReLU
  for (std::size_t i = 0; i < x.data.size(); i += 7) x.data[i] = 0.0f;
  sim::OpContext<sim::RoundedOps> cx = cpu.context();
  cpu.op->forward(cx, x, y, true);
  DeviceBuffer<T> dx_in = device_values<T>(x.data), dy_out(static_cast<std::size_t>(y.size()));
  DeviceBuffer<std::int64_t> argmax(static_cast<std::size_t>(y.size()));
  gpu::ops::pool_forward<T>(dx_in.get(), dy_out.get(), argmax.get(), s, PointStats{}, nullptr);
  expect_same_bits(y.data, host_values(dy_out.get(), dy_out.size()), what + ": forward");

  sim::Matrix<float> dy(y.rows, y.cols), dx;
  dy.data = random_values(dy.data.size(), f, rng, 0.01);
  cpu.op->backward(cx, x, y, dy, &dx);
  DeviceBuffer<T> g = device_values<T>(dy.data), gx(static_cast<std::size_t>(x.size()));
  gpu::ops::pool_backward<T>(g.get(), argmax.get(), gx.get(), s, PointStats{}, nullptr);
  expect_same_bits(dx.data, host_values(gx.get(), gx.size()), what + ": input gradient");
}

template <typename T, typename M>
void check_batch_norm(const Case& c) {
  sim::LayerSpec spec = layer(sim::LayerSpec::Type::batch_norm2d, 0, 0, 0, 0);
  spec.momentum = 0.3;
  CpuOp cpu(image_model({4, 5, 6}, spec), c);
  const gpu::ops::NormShape s{7, 4, 30, spec.eps, spec.momentum};
  const std::string what = std::string(c.recipe) + " batch_norm2d";
  std::mt19937 rng(11);
  const sim::Format f = cpu.format(), master = cpu.lane.recipe.master.format;
  auto& params = cpu.op->params();
  for (auto& p : params) {
    const std::vector<float> v = random_values(p.master.size(), master, rng, 0.5);
    p.master.assign(v.begin(), v.end());
  }
  sim::Matrix<float> x(s.batch, s.c * s.area), y, y_eval;
  x.data = random_values(x.data.size(), f, rng, 2.0);
  sim::OpContext<sim::RoundedOps> cx = cpu.context();
  const auto channels = static_cast<std::size_t>(s.c);
  DeviceBuffer<T> dx_in = device_values<T>(x.data), out(x.data.size());
  DeviceBuffer<M> gamma = device_values<M>(params[0].master), beta = device_values<M>(params[1].master);
  DeviceBuffer<double> mean(channels), rstd(channels), running_mean(channels), running_var(channels), sums(2 * channels);
  running_mean.upload(std::vector<double>(channels, 0.0), nullptr);
  running_var.upload(std::vector<double>(channels, 1.0), nullptr);
  // evaluation mode first (the initial running statistics), then a training step, then evaluation again
  cpu.op->forward(cx, x, y_eval, false);
  gpu::ops::batch_norm_forward<T, M>(dx_in.get(), gamma.get(), beta.get(), out.get(), mean.get(), rstd.get(),
                                     running_mean.get(), running_var.get(), s, 0, PointStats{}, nullptr);
  expect_same_bits(y_eval.data, host_values(out.get(), out.size()), what + ": evaluation before training");
  cpu.op->forward(cx, x, y, true);
  gpu::ops::batch_norm_forward<T, M>(dx_in.get(), gamma.get(), beta.get(), out.get(), mean.get(), rstd.get(),
                                     running_mean.get(), running_var.get(), s, 1, PointStats{}, nullptr);
  expect_same_bits(y.data, host_values(out.get(), out.size()), what + ": training forward");

  sim::Matrix<float> dy(y.rows, y.cols), dx;
  dy.data = random_values(dy.data.size(), f, rng, 0.01);
  cpu.op->backward(cx, x, y, dy, &dx);
  DeviceBuffer<T> g = device_values<T>(dy.data), gx(x.data.size());
  DeviceBuffer<M> dgamma(channels), dbeta(channels);
  gpu::ops::batch_norm_backward<T, M>(dx_in.get(), g.get(), gamma.get(), mean.get(), rstd.get(), dgamma.get(),
                                      dbeta.get(), sums.get(), gx.get(), s, PointStats{}, PointStats{}, PointStats{},
                                      nullptr);
  expect_same_bits(params[0].grad, host_values(dgamma.get(), channels), what + ": weight gradient");
  expect_same_bits(params[1].grad, host_values(dbeta.get(), channels), what + ": bias gradient");
  expect_same_bits(dx.data, host_values(gx.get(), gx.size()), what + ": input gradient");

  sim::Matrix<float> y_after;  // the running statistics the training step left
  cpu.op->forward(cx, x, y_after, false);
  gpu::ops::batch_norm_forward<T, M>(dx_in.get(), gamma.get(), beta.get(), out.get(), mean.get(), rstd.get(),
                                     running_mean.get(), running_var.get(), s, 0, PointStats{}, nullptr);
  expect_same_bits(y_after.data, host_values(out.get(), out.size()), what + ": evaluation after a training step");
}

const Case fp32{"fp32", sim::Accumulation::fp32}, fp16{"fp16-amp", sim::Accumulation::fp32},
    fp16_h100{"fp16-amp", sim::Accumulation::h100}, bf16{"bf16-amp", sim::Accumulation::fp32};

TEST(GpuOps, Conv2dMatchesTheCpuOp) {
  MPSCOPE_REQUIRE_GPU();
  for (const auto& [stride, pad, bias] : {std::tuple{1, 1, true}, std::tuple{2, 1, true}, std::tuple{2, 0, false}}) {
    check_conv<float>(fp32, stride, pad, bias);
    check_conv<__half>(fp16, stride, pad, bias);
    check_conv<__half>(fp16_h100, stride, pad, bias);
    check_conv<__nv_bfloat16>(bf16, stride, pad, bias);
  }
}

TEST(GpuOps, PoolingMatchesTheCpuOp) {
  MPSCOPE_REQUIRE_GPU();
  for (const bool max : {true, false})
    for (const auto& [k, stride] : {std::pair{2, 2}, std::pair{3, 2}, std::pair{2, 1}}) {  // overlapping windows too
      check_pool<float>(fp32, max, k, stride);
      check_pool<__half>(fp16, max, k, stride);
      check_pool<__nv_bfloat16>(bf16, max, k, stride);
    }
}

TEST(GpuOps, BatchNormMatchesTheCpuOp) {
  MPSCOPE_REQUIRE_GPU();
  check_batch_norm<float, float>(fp32);
  check_batch_norm<__half, float>(fp16);
  check_batch_norm<__nv_bfloat16, float>(bf16);
  check_batch_norm<__half, __half>(Case{"fp16-pure", sim::Accumulation::fp32});  // parameters in fp16 too
}

}  // namespace
