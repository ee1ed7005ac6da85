// The CUDA twin of sim/ops/conv2d.cpp: the layouts around its GEMMs and its rounding points (gpu/ops/ops.cuh).
#include "gpu/check.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/ops/ops.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::ops {

namespace {

using kernels::block_threads;
using kernels::blocks_for;

template <typename T>
__global__ void im2col_kernel(const T* x, T* cols, ConvShape s) {
  const std::size_t n = static_cast<std::size_t>(s.batch * s.positions() * s.patch());
  for_each(n, [&](std::size_t i, bool active) {
    if (!active) return;
    const std::int64_t row = static_cast<std::int64_t>(i) / s.patch(), col = static_cast<std::int64_t>(i) % s.patch();
    const std::int64_t b = row / s.positions(), oh = row % s.positions() / s.wo, ow = row % s.wo;
    const std::int64_t ci = col / (s.k * s.k), kh = col % (s.k * s.k) / s.k, kw = col % s.k;
    const std::int64_t ih = oh * s.stride - s.pad + kh, iw = ow * s.stride - s.pad + kw;
    const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
    cols[i] = inside ? x[((b * s.c + ci) * s.h + ih) * s.w + iw] : from_double<T>(0.0);
  });
}

template <typename T>
__global__ void conv_output_kernel(const float* sum, T* y, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t p = s.positions();
  for_each(static_cast<std::size_t>(s.batch * s.f * p), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t b = static_cast<std::int64_t>(i) / (s.f * p), f = static_cast<std::int64_t>(i) / p % s.f;
      v = sum[(b * p + static_cast<std::int64_t>(i) % p) * s.f + f];
      y[i] = from_double<T>(v);
      r = to_double(y[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename T>
__global__ void conv_bias_kernel(T* y, const T* bias, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t p = s.positions();
  for_each(static_cast<std::size_t>(s.batch * s.f * p), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      v = to_double(y[i]) + to_double(bias[static_cast<std::int64_t>(i) / p % s.f]);
      y[i] = from_double<T>(v);
      r = to_double(y[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename T>
__global__ void conv_grad_rows_kernel(const T* dy, T* dy_rows, ConvShape s) {
  const std::int64_t p = s.positions();
  for_each(static_cast<std::size_t>(s.batch * p * s.f), [&](std::size_t i, bool active) {
    if (!active) return;
    const std::int64_t row = static_cast<std::int64_t>(i) / s.f, f = static_cast<std::int64_t>(i) % s.f;
    dy_rows[i] = dy[(row / p * s.f + f) * p + row % p];
  });
}

// One thread per channel; every thread of the block reaches the tally once.
template <typename T>
__global__ void conv_bias_grad_kernel(const T* dy, T* db, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t f = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = f < s.f;
  double v = 0, r = 0;
  if (active) {
    const std::int64_t p = s.positions();
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t q = 0; q < p; ++q) v += to_double(dy[(b * s.f + f) * p + q]);
    db[f] = from_double<T>(v);
    r = to_double(db[f]);
  }
  tally.add(active, v, r);
  tally.flush();
}

template <typename T>
__global__ void conv_input_grad_rows_kernel(const T* dy, T* dcols, ConvShape s) {
  const std::int64_t fan = s.f * s.k * s.k;
  for_each(static_cast<std::size_t>(s.batch * s.h * s.w * fan), [&](std::size_t i, bool active) {
    if (!active) return;
    const std::int64_t row = static_cast<std::int64_t>(i) / fan, col = static_cast<std::int64_t>(i) % fan;
    const std::int64_t b = row / (s.h * s.w), ih = row % (s.h * s.w) / s.w, iw = row % s.w;
    const std::int64_t f = col / (s.k * s.k), kh = col % (s.k * s.k) / s.k, kw = col % s.k;
    const std::int64_t th = ih + s.pad - kh, tw = iw + s.pad - kw;
    T v = from_double<T>(0.0);
    if (th >= 0 && tw >= 0 && th % s.stride == 0 && tw % s.stride == 0 && th / s.stride < s.ho && tw / s.stride < s.wo)
      v = dy[(b * s.f + f) * s.positions() + th / s.stride * s.wo + tw / s.stride];
    dcols[i] = v;
  });
}

template <typename T>
__global__ void conv_weights_by_output_kernel(const T* w, T* w_rows, ConvShape s) {
  const std::int64_t taps = s.k * s.k;
  for_each(static_cast<std::size_t>(s.f * taps * s.c), [&](std::size_t i, bool active) {
    if (!active) return;
    const std::int64_t row = static_cast<std::int64_t>(i) / s.c, ci = static_cast<std::int64_t>(i) % s.c;
    w_rows[i] = w[(row / taps * s.c + ci) * taps + row % taps];
  });
}

template <typename T>
__global__ void conv_input_grad_kernel(const float* out, T* dx, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t area = s.h * s.w;
  for_each(static_cast<std::size_t>(s.batch * s.c * area), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t b = static_cast<std::int64_t>(i) / (s.c * area), ci = static_cast<std::int64_t>(i) / area % s.c;
      v = out[(b * area + static_cast<std::int64_t>(i) % area) * s.c + ci];
      dx[i] = from_double<T>(v);
      r = to_double(dx[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

std::size_t count(std::int64_t n) { return static_cast<std::size_t>(n); }

}  // namespace

template <typename T>
void im2col(const T* x, T* cols, const ConvShape& s, cudaStream_t stream) {
  im2col_kernel<<<blocks_for(count(s.batch * s.positions() * s.patch())), block_threads, 0, stream>>>(x, cols, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_output(const float* sum, T* y, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_output_kernel<<<blocks_for(count(s.batch * s.f * s.positions())), block_threads, 0, stream>>>(sum, y, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_bias(T* y, const T* bias, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_bias_kernel<<<blocks_for(count(s.batch * s.f * s.positions())), block_threads, 0, stream>>>(y, bias, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_grad_rows(const T* dy, T* dy_rows, const ConvShape& s, cudaStream_t stream) {
  conv_grad_rows_kernel<<<blocks_for(count(s.batch * s.positions() * s.f)), block_threads, 0, stream>>>(dy, dy_rows, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_bias_grad(const T* dy, T* db, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_bias_grad_kernel<<<kernels::row_blocks(s.f), kernels::row_threads, 0, stream>>>(dy, db, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_input_grad_rows(const T* dy, T* dcols, const ConvShape& s, cudaStream_t stream) {
  conv_input_grad_rows_kernel<<<blocks_for(count(s.batch * s.h * s.w * s.f * s.k * s.k)), block_threads, 0, stream>>>(dy, dcols, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_weights_by_output(const T* w, T* w_rows, const ConvShape& s, cudaStream_t stream) {
  conv_weights_by_output_kernel<<<blocks_for(count(s.f * s.k * s.k * s.c)), block_threads, 0, stream>>>(w, w_rows, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_input_grad(const float* out, T* dx, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_input_grad_kernel<<<blocks_for(count(s.batch * s.c * s.h * s.w)), block_threads, 0, stream>>>(out, dx, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}

#define MPSCOPE_CONV_TWINS(T)                                                                          \
  template void im2col<T>(const T*, T*, const ConvShape&, cudaStream_t);                               \
  template void conv_output<T>(const float*, T*, const ConvShape&, PointStats, cudaStream_t);          \
  template void conv_bias<T>(T*, const T*, const ConvShape&, PointStats, cudaStream_t);                \
  template void conv_grad_rows<T>(const T*, T*, const ConvShape&, cudaStream_t);                       \
  template void conv_bias_grad<T>(const T*, T*, const ConvShape&, PointStats, cudaStream_t);           \
  template void conv_input_grad_rows<T>(const T*, T*, const ConvShape&, cudaStream_t);                 \
  template void conv_weights_by_output<T>(const T*, T*, const ConvShape&, cudaStream_t);               \
  template void conv_input_grad<T>(const float*, T*, const ConvShape&, PointStats, cudaStream_t);
MPSCOPE_CONV_TWINS(float)
MPSCOPE_CONV_TWINS(__half)
MPSCOPE_CONV_TWINS(__nv_bfloat16)

}  // namespace mpscope::gpu::ops
