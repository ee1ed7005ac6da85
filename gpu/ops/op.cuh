// Internal: the GPU op interface, the CUDA twin of sim/ops/op.hpp. Each layer of a sequential model is a GpuOp
// (gpu/ops/<op>.cu beside sim/ops/<op>.cpp) that the GPU graph lane (gpu/graph_lane.cuh) runs in the CPU op's order
// of rounding points: in exact mode every result is the CPU op's bits; in fast mode the GEMMs are cuBLAS's.
//
// Tc is the compute format (activations, gradients, GEMM inputs), Tm the master format (parameters and optimizer
// state): <float, float>, <__half, float>, <__nv_bfloat16, float>, <__half, __half>. Activations are row-major
// (rows, elements per sample) as on the CPU. An op reports each rounding point through cx.point(), which hands out
// the point's statistics (rounding effects on recorded steps, the inf/NaN flag that names the first non-finite
// tensor) in the order the op asks: the CPU op's order.
//
// Adding an op: its CPU file and test (sim/ops/op.hpp), then gpu/ops/<op>.cu with a GpuOp class and its
// make_gpu_<op> factory (listed in gpu/ops/ops.cu), an op-by-op test of its kernels in tests/gpu/test_gpu_ops.cu
// (conv2d, pool and batch_norm have theirs; linear, activation and layer_norm use gpu/kernels_*.cu's kernels, tested
// through the lanes in tests/gpu/test_gpu_lanes.cpp), and a model using it in tests/gpu/test_gpu_graph_lane.cpp's lockstep tests.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu/blas.cuh"
#include "gpu/buffer.cuh"
#include "gpu/check.cuh"
#include "gpu/error.hpp"
#include "gpu/fp8.cuh"
#include "gpu/kernels.cuh"
#include "sim/ops/graph.hpp"

namespace mpscope::gpu {

// The lane's GEMMs, float32 results: exact mode's own kernels under the recipe's accumulation model (mma.sync
// fp16 tiles for "h100", sequential FMA for "fp32"), or cuBLASLt (fast mode).
struct Gemm {
  Blas* blas = nullptr;  // fast mode
  bool h100 = false;     // the H100 tensor-core model: exact mode's mma.sync kernels (fp16), fast mode's set-up
  cudaStream_t stream = nullptr;
  // Row-major d (m, n) = op(a) (m, k) · op(b) (k, n), op = transpose when the flag says so (a then stored (k, m),
  // b (n, k)); lda / ldb the stored row lengths.
  template <typename T>
  void operator()(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
                  const T* b, std::int64_t ldb, float* d) const {
    if (blas) {
      blas->gemm(ta, tb, m, n, k, a, lda, b, ldb, d, cuda_type<T>, CUDA_R_32F);
      return;
    }
    if constexpr (std::is_same_v<T, __half>) {
      if (h100) {
        kernels::gemm_mma_fp16(ta, tb, m, n, k, a, lda, b, ldb, nullptr, d, stream);
        return;
      }
    }
    kernels::gemm_fma<T>(ta, tb, m, n, k, a, lda, b, ldb, d, stream);
  }
};

// The rounding points of one pass, in the order they are met: each gets an inf/NaN flag slot (named after the
// catalogue tensor it counts to) and, on recorded steps, the tensor's rounding-effects counter.
class PointLog {
 public:
  struct Slot {
    std::string name;
    bool loss = false;  // the loss value itself (its flag is the loss)
  };
  void begin(int* flags, std::size_t capacity, DeviceEffects* effects, const std::vector<sim::TensorInfo>* catalogue) {
    flags_ = flags;
    capacity_ = capacity;
    effects_ = effects;
    catalogue_ = catalogue;
    next_ = 0;
    if (counted_.size() != catalogue->size()) counted_.assign(catalogue->size(), false);
  }
  void end() { flags_ = nullptr, effects_ = nullptr; }  // (evaluation: no statistics)
  // A rounding point to type Out counted to catalogue tensor t. float32 results are the lane's own arithmetic, not
  // a narrowing: not counted (as RoundedOps does not count fp32 roles); `counted` false: checked, not rounded.
  template <typename Out>
  PointStats point(std::size_t t, bool counted = true) {
    return make_point(t, counted && !std::is_same_v<Out, float>);
  }
  // An FP8 quantization of tensor t (E4M3/E5M2 values held as float): counted like every narrowing.
  PointStats quantized(std::size_t t) { return make_point(t, true); }
  int* slot(const std::string& name, bool loss = false) {
    if (!flags_) return nullptr;
    if (next_ >= capacity_) throw GpuError("GPU lane: more rounding points than flag slots");
    if (next_ == slots_.size()) slots_.push_back({name, loss});
    return flags_ + next_++;
  }
  const std::vector<Slot>& slots() const { return slots_; }
  // Whether a counted rounding point touched tensor t (its record then carries effects, as on the CPU).
  bool counted(std::size_t t) const { return t < counted_.size() && counted_[t]; }

 private:
  PointStats make_point(std::size_t t, bool count) {
    PointStats p;
    if (!flags_) return p;
    p.nonfinite = slot((*catalogue_)[t].name);
    if (count && effects_) {
      p.fx = effects_ + t;
      counted_[t] = true;
    }
    return p;
  }

  int* flags_ = nullptr;
  std::size_t capacity_ = 0, next_ = 0;
  DeviceEffects* effects_ = nullptr;
  const std::vector<sim::TensorInfo>* catalogue_ = nullptr;
  std::vector<Slot> slots_;
  std::vector<bool> counted_;
};

// A trainable parameter (sim::Param): master values, the compute copy (AMP), the gradient as produced (scaled by
// the loss scale; in the compute format, or the master format where the CPU op keeps it so: batch norm) and the
// optimizer's state. Shapes: info->shape, row-major.
template <typename Tc, typename Tm>
struct GpuParam {
  static constexpr bool has_copy = !std::is_same_v<Tc, Tm>;
  const sim::ParamInfo* info = nullptr;
  bool master_typed_grad = false;
  DeviceBuffer<Tm> master, state1, state2;
  DeviceBuffer<Tc> copy;       // AMP: cast(master) each forward pass (empty for fp32 / fp16-pure, and master-typed)
  DeviceBuffer<Tc> grad;       // the gradient as produced (compute format)
  DeviceBuffer<Tm> grad_m;     // ... or in the master format (master_typed_grad)
  std::size_t tensor = sim::no_tensor, grad_tensor = sim::no_tensor;
  std::size_t size() const { return master.size(); }
  const Tc* compute() const {
    if constexpr (has_copy) return copy.get();
    else return master.get();
  }
};

template <typename Tc, typename Tm>
struct GpuOpContext {
  cudaStream_t stream;
  Gemm gemm;
  PointLog& points;
  std::size_t in_tensor, out_tensor, in_grad_tensor;  // as sim::OpContext
  const Tc* residual = nullptr;                       // add: the activation added to the input
  std::size_t out_grad_tensor = sim::no_tensor;       // the output gradient's (its FP8 quantization)
  Fp8Slot* fp8 = nullptr;  // fp8 lanes: the GEMM op's scaling slots (its input, its weight, its output gradient)
  const Fp8Slot* fp8_unit = nullptr;  // a slot of scale 1 (fast mode's packing of quantized values)
  bool fp8_amax = true;    // note the amaxes (training; an evaluation's are dropped, RoundedOps::discard_amax)
  // The compute copy of a parameter (the weights or activations role: the compute format), rounded from its
  // master and counted to its tensor; without a copy the master is checked in place (the CPU casts it too).
  void cast_param(GpuParam<Tc, Tm>& p) {
    if constexpr (GpuParam<Tc, Tm>::has_copy) {
      kernels::cast<Tm, Tc>(p.master.get(), p.copy.get(), p.size(), points.point<Tc>(p.tensor), stream);
    } else {
      kernels::cast<Tm, Tm>(p.master.get(), p.master.get(), p.size(), points.point<Tm>(p.tensor), stream);
    }
  }
};

// to (n) = from (n), on the stream (ops that pass values or gradients through unchanged: flatten, add's backward)
template <typename T>
void copy_values(const T* from, T* to, std::size_t n, cudaStream_t stream) {
  MPSCOPE_CUDA_CHECK(cudaMemcpyAsync(to, from, n * sizeof(T), cudaMemcpyDeviceToDevice, stream));
}

// n ones of type T (the fast mode's column sums: ones · dy on cuBLAS).
template <typename T>
DeviceBuffer<T> device_ones(std::size_t n) {
  DeviceBuffer<T> b(n);
  const std::vector<T> host(n, T(1.0f));
  b.upload(host, nullptr);
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  return b;
}

// Fast mode's bias gradient when the rows are many: db (n) = round(ones (rows) · dy (rows, n)), summed by cuBLAS in
// float32 into sums (n) and rounded once, a little faster than the CPU's order (kernels::column_sums). Returns false
// (nothing done) where the caller sums in the CPU's order: exact mode, short batches, and fast lanes under the h100
// model, which promise the CPU lane's bits.
constexpr std::int64_t short_column = 512;
template <typename Tc, typename Tm>
bool fast_column_sums(GpuOpContext<Tc, Tm>& cx, const Tc* dy, std::int64_t rows, std::int64_t n, const Tc* ones,
                      float* sums, Tc* db, PointStats st) {
  if (!cx.gemm.blas || cx.gemm.h100 || rows <= short_column) return false;
  cx.gemm(false, false, 1, n, rows, ones, rows, dy, n, sums);
  kernels::cast<float, Tc>(sums, db, static_cast<std::size_t>(n), st, cx.stream);
  return true;
}

// fp8 fast mode: quantized values (float holding exact, scaled FP8 values) as cuBLASLt's FP8 GEMMs take them: bytes
// (rows16, cols16) and transposed (cols16, rows16), the contraction dimension contiguous, padded with zeros to
// multiples of 16. Packing is exact (scale 1) and not counted again (the quantization was).
struct Fp8Pack {
  DeviceBuffer<__nv_fp8_storage_t> bytes, transposed;
  std::int64_t rows = 0, cols = 0, rows16 = 0, cols16 = 0;
  Fp8Pack() = default;
  Fp8Pack(std::int64_t r, std::int64_t c) : rows(r), cols(c), rows16(pad16(r)), cols16(pad16(c)) {
    bytes = DeviceBuffer<__nv_fp8_storage_t>(static_cast<std::size_t>(rows16 * cols16));
    transposed = DeviceBuffer<__nv_fp8_storage_t>(bytes.size());
  }
  void pack(Fp8Kind kind, const float* values, const Fp8Slot* unit, cudaStream_t stream) {
    kernels::fp8_quantize<__nv_fp8_storage_t>(kind, values, rows, cols, rows16, cols16, const_cast<Fp8Slot*>(unit), false,
                                              bytes.get(), transposed.get(), PointStats{}, stream);
  }
};

template <typename Tc, typename Tm>
class GpuOp {
 public:
  // What the op keeps between its forward and backward passes and its scratch, per batch size.
  struct Buffers {
    virtual ~Buffers() = default;
  };

  explicit GpuOp(const sim::Node& n) : node_(&n) {}
  virtual ~GpuOp() = default;
  const sim::Node& node() const { return *node_; }
  std::vector<GpuParam<Tc, Tm>>& params() { return params_; }
  const std::vector<GpuParam<Tc, Tm>>& params() const { return params_; }

  virtual std::unique_ptr<Buffers> make_buffers(std::int64_t /*batch*/, bool /*training*/) const { return nullptr; }
  // in (batch, in_size) -> out (batch, out_size)
  virtual void forward(GpuOpContext<Tc, Tm>& cx, Buffers* b, const Tc* in, Tc* out, std::int64_t batch, bool training) = 0;
  // From dout (batch, out_size): the parameters' gradients and, when din is given, din (batch, in_size).
  virtual void backward(GpuOpContext<Tc, Tm>& cx, Buffers* b, const Tc* in, const Tc* out, const Tc* dout, Tc* din,
                        std::int64_t batch) = 0;
  // An fp8 lane's GEMM ops quantize their GEMM inputs (sim::RoundedOps::quantize; <float, float>); `fast`: their
  // GEMMs run on the FP8 tensor cores (Fp8Pack), else on the exact fma kernel.
  virtual void use_fp8(bool /*fast*/) {}

 protected:
  // The node's parameters on the device, master values still to be stored; `master_typed` gradients stay in the
  // master format.
  void add_params(bool master_typed = false) {
    for (const sim::ParamInfo& i : node_->params) {
      GpuParam<Tc, Tm> p;
      p.info = &i;
      p.master_typed_grad = master_typed;
      const auto n = static_cast<std::size_t>(i.size());
      p.master = DeviceBuffer<Tm>(n);
      if (master_typed) {
        p.grad_m = DeviceBuffer<Tm>(n);
      } else {
        p.grad = DeviceBuffer<Tc>(n);
        if constexpr (GpuParam<Tc, Tm>::has_copy) p.copy = DeviceBuffer<Tc>(n);
      }
      params_.push_back(std::move(p));
    }
  }

  const sim::Node* node_;
  std::vector<GpuParam<Tc, Tm>> params_;
};

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_op(const sim::Node& n);

template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_linear(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_conv2d(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_pool(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_flatten(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_activation(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_layer_norm(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_batch_norm2d(const sim::Node&);
template <typename Tc, typename Tm> std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_add(const sim::Node&);

// out (n) = round(a + b), elementwise (gpu/ops/add.cu): the add op, and a residual gradient's accumulation
template <typename T>
void add_values(const T* a, const T* b, T* out, std::size_t n, PointStats st, cudaStream_t stream);

// Every op file instantiates its factory for the GPU lanes' element types.
#define MPSCOPE_INSTANTIATE_GPU_OP(factory)                                                     \
  template std::unique_ptr<GpuOp<float, float>> factory<float, float>(const sim::Node&);        \
  template std::unique_ptr<GpuOp<__half, float>> factory<__half, float>(const sim::Node&);      \
  template std::unique_ptr<GpuOp<__nv_bfloat16, float>> factory<__nv_bfloat16, float>(const sim::Node&); \
  template std::unique_ptr<GpuOp<__half, __half>> factory<__half, __half>(const sim::Node&);

}  // namespace mpscope::gpu
