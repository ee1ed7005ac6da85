// Internal: the GPU lane that trains a model's graph (sequential models, mlps with LayerNorm), the CUDA twin of sim/graph_lane.hpp. Each node is
// a GpuOp (gpu/ops/), run in the CPU lane's order of rounding points; loss, loss scaling, the inf/NaN check and
// the optimizer are the mlp lane's kernels. One step:
//
//   a0 = cast(x)                          gathered from the device dataset            (rows, input size)
//   a_{i+1} = op_i.forward(a_i)           each op casts its parameters and rounds its results
//   loss, d_n = d loss·S / d a_n          kernels::loss_rows
//   d_i = op_i.backward(d_{i+1})          parameter gradients; d_i where an op before i has parameters
//   unscale and check every gradient (in parameter order), the scaler's update, the optimizer per group
//
// The host reads back one block per step: the loss and scaler state, lost updates per group and an inf/NaN flag
// per rounding point (the first raised names the step's first non-finite tensor); recorded steps also the
// rounding effects and histograms per catalogue tensor. Each step replays a CUDA graph. fp8 lanes (exact mode) quantize
// each GEMM op's input, weight and output gradient with delayed scaling (GpuOp::use_fp8).
#pragma once

#include <memory>
#include <vector>

#include "gpu/gpu_lane.hpp"
#include "gpu/lane_support.cuh"
#include "gpu/ops/op.cuh"

namespace mpscope::gpu {

template <typename Tc, typename Tm>
class GpuGraphLane final : public sim::Lane {
 public:
  GpuGraphLane(const sim::LaneConfig& c, const sim::ModelConfig& m, const sim::InitialWeights& init, const GpuLaneOptions& o);
  ~GpuGraphLane() override;

  const sim::LaneConfig& config() const override { return config_; }
  const std::vector<sim::TensorInfo>& tensors() const override { return tensors_; }
  sim::StepResult step(const sim::Batch& batch, double lr, bool record) override;
  sim::Evaluation evaluate(const sim::Batch& data) override;
  void read_weights(sim::LayerValues& out) const override;
  void read_gradients(sim::LayerValues& out) const override;

 private:
  using Op = GpuOp<Tc, Tm>;
  using Param = GpuParam<Tc, Tm>;

  // Everything sized by the batch: one set for training, one for evaluation.
  struct Pass {
    std::int64_t rows = -1;      // this pass's batch
    std::int64_t capacity = -1;  // the rows the buffers hold (evaluation chunks may be fewer)
    bool training = false;
    std::vector<DeviceBuffer<Tc>> acts;   // [i] node i's input (rows, in_size); [n] the model's output
    std::vector<DeviceBuffer<Tc>> grads;  // [i] d loss·S / d acts[i], where computed
    std::vector<std::unique_ptr<typename Op::Buffers>> op_buffers;  // per node
    DeviceBuffer<double> terms;           // (rows) or (rows, outputs) the loss terms
    DeviceBuffer<int> correct;            // (rows)
    DeviceBuffer<std::int64_t> row_numbers, labels;  // (rows)
    DeviceBuffer<float> x, targets;       // (rows, input size) without a device dataset; (rows, outputs)
    bool has_labels = false, has_targets = false;
  };

  Pass& pass(Pass& p, std::int64_t rows, bool training);
  void load_batch(Pass& p, const sim::Batch& b);
  void run_step(Pass& p, bool record);
  void forward(Pass& p);
  void loss(Pass& p, double* total);
  void backward(Pass& p);
  void unscale_and_check();
  void update(bool record);
  void record_histograms(Pass& p);
  GpuOpContext<Tc, Tm> context(int node, bool training);
  std::string first_nonfinite(double loss, const int* flags) const;
  // Where catalogue tensor t's values are (activations and gradients: in pass p), and how many.
  struct Values {
    const void* data = nullptr;
    bool master_type = false;  // Tm values (else Tc)
    std::size_t n = 0;
  };
  Values values_of(const Pass& p, std::size_t t) const;

  kernels::DeviceStepOut* step_out() const { return reinterpret_cast<kernels::DeviceStepOut*>(step_block_.get()); }
  unsigned long long* lost() const { return reinterpret_cast<unsigned long long*>(step_block_.get() + lost_offset_); }
  int* flags() const { return reinterpret_cast<int*>(step_block_.get() + flags_offset_); }
  DeviceEffects* effects() const { return reinterpret_cast<DeviceEffects*>(stats_block_.get()); }
  DeviceHistogram* histograms() const { return reinterpret_cast<DeviceHistogram*>(stats_block_.get() + histograms_offset_); }
  kernels::OptimizerConstants* constants() const { return reinterpret_cast<kernels::OptimizerConstants*>(inputs_.get()); }
  std::int64_t* step_rows() const { return reinterpret_cast<std::int64_t*>(inputs_.get() + rows_offset); }

  int device_;  // made current before anything else is made
  sim::LaneConfig config_;
  sim::ModelConfig model_;
  sim::Graph graph_;
  GpuLaneOptions options_;
  bool exact_;
  bool fp8_;  // the fp8 recipe: GEMM inputs quantized with delayed scaling (exact mode)
  Stream stream_;  // destroyed after every buffer that work on it uses
  std::unique_ptr<Blas> blas_;  // fast mode
  std::vector<sim::TensorInfo> tensors_;
  std::vector<std::unique_ptr<Op>> ops_;           // one per graph node
  std::vector<std::vector<Param*>> group_params_;  // [group] its parameters in node order ([0]: none)
  std::vector<Param*> params_;                     // all of them, in group order
  std::vector<std::size_t> group_values_;          // [group] its parameters' values (lost updates' denominator)
  Pass train_, eval_;
  DeviceDataset data_;
  PointLog points_;
  Fp8State fp8_state_;  // fp8: three scaling slots per GEMM op (Node::gemm)

  DeviceBuffer<kernels::DeviceScaler> scaler_;
  // What the host gives each training step, in one copy: the optimizer's constants, then the batch's row numbers.
  DeviceBuffer<char> inputs_;
  PinnedBuffer<char> inputs_host_;
  static constexpr std::size_t rows_offset = (sizeof(kernels::OptimizerConstants) + 15) / 16 * 16;
  // The per-step block the host reads back: DeviceStepOut, lost updates per group, the flag of every rounding point.
  DeviceBuffer<char> step_block_;
  PinnedBuffer<char> step_block_host_;
  std::size_t lost_offset_ = 0, flags_offset_ = 0, flag_slots_ = 0;
  DeviceBuffer<double> grad_partials_;  // grad_partial_slots per parameter
  DeviceBuffer<double> eval_loss_;
  // What a recorded step reads back: per tensor the rounding effects, then the histograms.
  DeviceBuffer<char> stats_block_;
  PinnedBuffer<char> stats_host_;
  std::size_t histograms_offset_ = 0;
  GraphExec graph_exec_, recording_graph_;
  std::int64_t warm_rows_ = -1;  // the batch size a step has run at directly (cuBLASLt plans made): graphs may capture
  float last_scale_used_ = 1.0f;
  std::int64_t t_ = 0;  // optimizer steps taken (skipped steps do not count, as on the CPU)
};

}  // namespace mpscope::gpu
