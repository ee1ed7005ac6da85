// Internal: the GPU lane, the CUDA twin of sim/graph_lane.hpp on an mlp without LayerNorm (mlps with LayerNorm run on
// GpuGraphLane, gpu/graph_lane.cuh, whose LayerNorm keeps autocast's float32 parameters and output). Tc is the compute
// format (activations, gradients, the GEMM inputs), Tm the master format (weights and optimizer state): <float, float>
// fp32, <__half, float> fp16-amp, <__nv_bfloat16, float> bf16-amp, <__half, __half> fp16-pure; fp8 is <float, float>
// with the GEMM inputs quantized (mlp_fp8.cu). mlp_lane.cu holds the set-up and the step's host side, mlp_passes.cu
// the device work of a step (forward, loss, backward, update).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu/blas.cuh"
#include "gpu/buffer.cuh"
#include "gpu/fp8.cuh"
#include "gpu/gpu_lane.hpp"
#include "gpu/kernels.cuh"
#include "gpu/lane_support.cuh"

namespace mpscope::gpu {

template <typename Tc, typename Tm>
class GpuMlpLane final : public sim::Lane {
 public:
  GpuMlpLane(const sim::LaneConfig& c, const sim::ModelConfig& m, const sim::InitialWeights& init, const GpuLaneOptions& o);
  ~GpuMlpLane() override;

  const sim::LaneConfig& config() const override { return config_; }
  const std::vector<sim::TensorInfo>& tensors() const override { return tensors_; }
  sim::StepResult step(const sim::Batch& batch, double lr, bool record) override;
  sim::Evaluation evaluate(const sim::Batch& data) override;
  void read_weights(sim::LayerValues& out) const override;
  void read_gradients(sim::LayerValues& out) const override;

 private:
  static constexpr bool has_copy = !std::is_same_v<Tc, Tm>;  // AMP: fp16/bf16 copies of the float32 masters
  // float32 results of the lane's own arithmetic are not a narrowing: not counted (as on the CPU)
  static constexpr bool counts = !std::is_same_v<Tc, float>;
  static constexpr bool fp8_capable = std::is_same_v<Tc, float> && std::is_same_v<Tm, float>;
  using Fp8Bytes = DeviceBuffer<__nv_fp8_storage_t>;

  enum Kind { weight = 0, bias, weight_grad, bias_grad, activation, activation_grad };
  static std::size_t tensor(int layer, Kind kind) { return 1 + 6 * static_cast<std::size_t>(layer) + kind; }
  static constexpr std::size_t input_tensor = 0;

  struct Layer {
    std::int64_t in = 0, out = 0;
    DeviceBuffer<Tm> w, b;                         // master: (out, in), (out)
    DeviceBuffer<Tc> wc, bc;                       // compute copies (AMP only), written by the update
    DeviceBuffer<Tc> gw, gb;                       // gradients as produced, scaled: (out, in), (out)
    DeviceBuffer<Tm> w1, w2, b1, b2;               // optimizer state (momentum / exp_avg, exp_avg_sq)
    DeviceBuffer<float> wq;                        // fp8 exact: the quantized weight (out, in), E4M3 values
    Fp8Bytes wq8, wq8t;                            // fp8 fast: E4M3 bytes (out16, in16) and transposed (in16, out16)
    // The parameters in the compute format: the copies, or the masters themselves.
    const Tc* weight_c() const { return compute(wc, w); }
    const Tc* bias_c() const { return compute(bc, b); }
    std::int64_t parameters() const { return in * out + out; }

   private:
    static const Tc* compute(const DeviceBuffer<Tc>& copy, const DeviceBuffer<Tm>& master) {
      if constexpr (has_copy) return copy.get();
      else return master.get();
    }
  };

  // Everything sized by the batch: one set for training, one for evaluation.
  struct Activations {
    std::int64_t rows = -1;
    bool training = false;
    DeviceBuffer<Tc> input;                       // (rows, in0) the network input after its cast
    std::vector<DeviceBuffer<Tc>> z, h;           // per layer (rows, out): pre-activation (when kept), activation
                                                  // (hidden layers)
    DeviceBuffer<float> scratch;                  // float32 GEMM results: exact mode's, and weight gradients
    DeviceBuffer<Tc> gz[2], da;                   // (rows, widest): d loss/d z (layer k in gz[k % 2]), d loss/d a
    DeviceBuffer<Tc> ones;                        // (rows) fast mode: bias gradients are ones · gz
    DeviceBuffer<float> bias32;                   // (widest) ... in float32, before their rounding
    DeviceBuffer<double> terms;                   // (rows) or (rows, outputs) the loss terms
    DeviceBuffer<int> correct;                    // (rows)
    DeviceBuffer<std::int64_t> row_numbers, labels;  // (rows)
    DeviceBuffer<float> x, targets;               // (rows, in0) without a device dataset; (rows, outputs)
    // fp8: the quantized GEMM inputs of each layer (exact: float values (rows, in); fast: E4M3 bytes (rows16, in16)
    // and transposed), the quantized output gradient (exact (rows, out); fast E5M2 (rows16, out16) and transposed),
    // and fast mode's padded float32 GEMM results (sizes rounded up to 16)
    std::vector<DeviceBuffer<float>> xq;
    std::vector<Fp8Bytes> xq8, xq8t;
    DeviceBuffer<float> gq, padded;
    Fp8Bytes gq8, gq8t;
    bool has_labels = false, has_targets = false;
    // The output of layer k (the next layer's input).
    const Tc* output(std::size_t k) const { return h[k].size() ? h[k].get() : z[k].get(); }
  };

  // Where a pass's statistics go: recorded steps everything, other steps only the inf/NaN flags, evaluation
  // nothing.
  struct Stats {
    bool flags = false;
    bool recording = false;
    DeviceEffects* effects = nullptr;       // per tensor
    DeviceHistogram* histograms = nullptr;  // per tensor
  };

  // ---- set-up and host side (mlp_lane.cu) ----
  void build_catalogue();
  Layer make_layer(int k, const sim::InitialWeights& init);
  Activations& activations(Activations& a, std::int64_t rows, bool training);
  void load_batch(Activations& a, const sim::Batch& b);
  std::string first_nonfinite(double loss, const int* flags, const int* cast_flags);
  kernels::DeviceStepOut* step_out() const { return reinterpret_cast<kernels::DeviceStepOut*>(step_block_.get()); }
  kernels::StepBlock step_block() const;

  // ---- device work (mlp_passes.cu) ----
  void run_step(Activations& a, const Stats& s);
  void forward(Activations& a, const Stats& s);
  void loss(Activations& a, bool training, const Stats& s, double* total);
  void backward(Activations& a, const Stats& s);
  void update(const Stats& s);
  void initial_casts();
  // Statistics of a rounding point of tensor t: effects and histogram (recording, `histogram` true when these are
  // the tensor's recorded values) and the inf/NaN flag of the next point in the step's order.
  PointStats point(const Stats& s, std::size_t t, bool histogram);
  int* flag_slot(const Stats& s, const std::string& name, int phase, int rank, bool loss = false, int cast = -1);
  int* cast_flags() const { return reinterpret_cast<int*>(step_block_.get() + cast_flags_offset_); }
  kernels::GradCheck grad_check(int slot, const Stats& s, std::size_t t);
  void exact_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const Tc* a, std::int64_t lda,
                  const Tc* b, std::int64_t ldb, float* d);
  bool keeps_z(std::size_t k) const;
  // ---- fp8 (mlp_fp8.cu; <float, float> only) ----
  void fp8_setup();
  void fp8_layer_buffers(Layer& L);
  void fp8_batch_buffers(Activations& a, std::int64_t rows, bool training);
  // scratch (rows, out) = descaled quantized input · quantized weightᵀ (quantizes both)
  void fp8_forward_gemm(Activations& a, int k, const float* in, const Stats& s);
  // quantizes gz (rows, out); L.gw = the weight gradient; when `input_grad`, scratch (rows, in) = d loss / d input
  void fp8_backward_gemms(Activations& a, int k, const float* gz, bool input_grad, const Stats& s);
  void fp8_end_step();
  PointStats fp8_point(const Stats& s, std::size_t t);
  // the tensors the quantizations round: each layer's weight, each layer's input (the network input and every
  // hidden activation), each output gradient
  bool fp8_rounds(const sim::TensorInfo& t) const {
    return t.kind == "weight" || t.kind == "input" || t.kind == "activation_grad" ||
           (t.kind == "activation" && t.layer < model_.layers());
  }

  int device_;  // made current before anything else is made
  sim::LaneConfig config_;
  sim::ModelConfig model_;
  GpuLaneOptions options_;
  bool exact_;
  bool fp8_;  // the fp8 recipe (GEMM inputs quantized with per-tensor scales)
  Stream stream_;  // destroyed after every buffer that work on it uses
  std::unique_ptr<Blas> blas_;  // fast mode
  std::vector<sim::TensorInfo> tensors_;
  std::vector<Layer> layers_;
  Activations train_, eval_;
  DeviceDataset data_;

  DeviceBuffer<kernels::DeviceScaler> scaler_;
  // What the host gives each training step, copied in one piece (the graphs copy from the pinned copy): the
  // optimizer's constants, then the batch's row numbers (train_.rows of them).
  DeviceBuffer<char> inputs_;
  PinnedBuffer<char> inputs_host_;
  static constexpr std::size_t rows_offset = (sizeof(kernels::OptimizerConstants) + 15) / 16 * 16;
  kernels::OptimizerConstants* constants() const { return reinterpret_cast<kernels::OptimizerConstants*>(inputs_.get()); }
  std::int64_t* step_rows() const { return reinterpret_cast<std::int64_t*>(inputs_.get() + rows_offset); }
  // The per-step block the host reads back: DeviceStepOut, then lost updates per layer, then the inf/NaN flags of
  // this step's weight casts (2 per layer: weight, bias; made by the last update), then the inf/NaN flag of every
  // rounding point in the step's order.
  DeviceBuffer<char> step_block_;
  PinnedBuffer<char> step_block_host_;
  std::size_t lost_offset_ = 0, cast_flags_offset_ = 0, flags_offset_ = 0, flag_slots_ = 0;
  DeviceBuffer<int> cast_flags_next_;  // 2 per layer, raised by the update for the next step
  // The rounding points of a step in the order the CPU lane meets them (phase: 0 the passes, 1 unscaling, 2 the
  // updated weights; rank within the phase), each with a flag slot; registered as the step's work is issued.
  struct Point {
    std::string name;
    int phase = 0, rank = 0;
    bool loss = false;  // the loss itself (its flag is the loss value)
    int cast = -1;      // a weight cast (made by the last update): its flag is cast flag `cast`
  };
  std::vector<Point> points_;
  std::vector<std::size_t> point_order_;  // slots sorted by (phase, rank)
  std::size_t next_point_ = 0;
  DeviceBuffer<double> grad_partials_;       // grad_partial_slots per gradient tensor
  DeviceBuffer<double> eval_loss_;
  DeviceBuffer<DeviceEffects> cast_fx_next_;  // per tensor: the weight casts' effects, counted by the update
  // What a recorded step reads back, in one copy: per tensor the effects of this step's weight casts, the effects
  // of the step's other rounding points, and the histograms.
  DeviceBuffer<char> stats_block_;
  PinnedBuffer<char> stats_host_;
  std::size_t effects_offset_ = 0, histograms_offset_ = 0;
  DeviceEffects* cast_fx_now() const { return reinterpret_cast<DeviceEffects*>(stats_block_.get()); }
  DeviceEffects* effects() const { return reinterpret_cast<DeviceEffects*>(stats_block_.get() + effects_offset_); }
  DeviceHistogram* histograms() const { return reinterpret_cast<DeviceHistogram*>(stats_block_.get() + histograms_offset_); }
  // fp8: the scaling slots (3 per layer) and their amax histories (fp8_history values each)
  Fp8State fp8_state_;
  GraphExec graph_, recording_graph_;
  std::int64_t warm_rows_ = -1;  // the batch size a step has run at directly (cuBLASLt plans made): graphs may capture
  float last_scale_used_ = 1.0f;
  std::int64_t t_ = 0;  // optimizer steps taken (skipped steps do not count, as on the CPU)
};

}  // namespace mpscope::gpu
