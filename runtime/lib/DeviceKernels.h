//===- DeviceKernels.h - The GPU's attention and layer-norm kernels -------===//
//
// What one GPU thread computes in the kernels that stand for the CPU
// runtime's attention and layer-norm kernels (Attention.cpp, LayerNorm.cpp)
// on the CUDA target. The functions compile both as CUDA device code
// (DeviceKernels.cu wraps them in __global__ kernels, one thread per row)
// and as host C++, where the unit tests run every thread of a grid in turn
// and compare with the CPU kernels. A thread shares nothing with the others
// (no shared memory, no barriers), so that order of execution is exact.
//
// Attention: one thread per query row of one head computes its output row
// with an online softmax over the keys (FlashAttention's recurrence: a
// running maximum and sum, the accumulated row rescaled when the maximum
// moves) and the row's log-sum-exp. The backward pass recomputes each
// probability from the log-sum-exp: one thread per query row writes dq,
// one per key row writes dk and dv (sums over the queries that see the key,
// in order, with no atomics). Layer norm's gradient: one thread per row
// writes dx; one per (chunk of rows, column) the chunk's sums; one per
// column adds the chunks in order, as the CPU kernel does.
//
//===----------------------------------------------------------------------===//

#ifndef MASS_RUNTIME_DEVICEKERNELS_H
#define MASS_RUNTIME_DEVICEKERNELS_H

#include <stdint.h>

#ifdef __CUDACC__
#define MASS_HD __host__ __device__
#define MASS_UNROLL _Pragma("unroll")
#else
#include <cmath>
#define MASS_HD
#define MASS_UNROLL
#endif

namespace mass::rt::device {

/// A strided view of up to three axes (a memref descriptor's data).
struct Strided {
  float *base;
  int64_t size[3];
  int64_t stride[3];

  MASS_HD float &at(int64_t i, int64_t j) const {
    return base[i * stride[0] + j * stride[1]];
  }
  MASS_HD float &at(int64_t i, int64_t j, int64_t k) const {
    return base[i * stride[0] + j * stride[1] + k * stride[2]];
  }
};

/// Attention's operands: q [B, T, D], k and v [B, S, D], out [B, T, D],
/// lse [B, heads, T]; the backward pass's dout, dq, dk and dv.
struct AttentionArgs {
  Strided q, k, v, out, lse, dout, dq, dk, dv;
  int64_t heads;
  int64_t causal;
};

/// Layer norm's gradient over rows: x, dy, dx [R, D]; mean, rstd [R];
/// weight [D]; partial [chunks, 2, D]; dweight, dbias [D].
struct LayerNormArgs {
  Strided x, mean, rstd, weight, dy, dx, partial, dweight, dbias;
  int64_t chunks;
};

MASS_HD inline float expOf(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  return std::exp(x);
#endif
}
MASS_HD inline float logOf(float x) {
#ifdef __CUDA_ARCH__
  return logf(x);
#else
  return std::log(x);
#endif
}
MASS_HD inline float rsqrtOf(float x) {
#ifdef __CUDA_ARCH__
  return rsqrtf(x);
#else
  return 1.0f / std::sqrt(x);
#endif
}

/// The accumulator width (a kernel's MAXD) for a head of `width` features:
/// the smallest of 32, 64, 128 and 256 that holds it.
MASS_HD inline int accumulatorWidth(int64_t width) {
  return width <= 32 ? 32 : width <= 64 ? 64 : width <= 128 ? 128 : 256;
}

/// The head a row of a grid of B * heads * rows threads belongs to.
struct HeadRow {
  int64_t b, head, row, column, width;
  float scale;

  MASS_HD HeadRow(const AttentionArgs &a, int64_t thread, int64_t rows) {
    row = thread % rows;
    const int64_t bh = thread / rows;
    b = bh / a.heads;
    head = bh % a.heads;
    width = a.q.size[2] / a.heads;
    column = head * width;
    scale = rsqrtOf(static_cast<float>(width));
  }
  /// scale * x[b, i] . y[b, j] over the head's features.
  MASS_HD float dot(const Strided &x, int64_t i, const Strided &y,
                    int64_t j) const {
    float s = 0;
    for (int64_t d = 0; d < width; ++d)
      s += x.at(b, i, column + d) * y.at(b, j, column + d);
    return s;
  }
};

/// The keys query `i` sees: all, or under a causal mask those up to `i`.
MASS_HD inline int64_t visibleKeys(const AttentionArgs &a, int64_t i) {
  const int64_t keys = a.k.size[1];
  return a.causal && i + 1 < keys ? i + 1 : keys;
}

/// Query row `thread % T` of head `thread / T`: out and lse. MAXD bounds
/// the head's width (the accumulator lives in registers).
template <int MAXD>
MASS_HD void attentionForwardRow(const AttentionArgs &a, int64_t thread) {
  const int64_t queries = a.q.size[1];
  const HeadRow h(a, thread, queries);
  const int64_t i = h.row;
  const int64_t keys = visibleKeys(a, i);
  float acc[MAXD];
  MASS_UNROLL
  for (int d = 0; d < MAXD; ++d)
    acc[d] = 0;
  float top = -INFINITY, sum = 0;
  for (int64_t j = 0; j < keys; ++j) {
    const float s = h.scale * h.dot(a.q, i, a.k, j);
    if (s > top) {
      // The running maximum moves: what was summed scales down.
      const float rescale = expOf(top - s);
      sum *= rescale;
      MASS_UNROLL
      for (int d = 0; d < MAXD; ++d)
        acc[d] *= rescale;
      top = s;
    }
    const float p = expOf(s - top);
    sum += p;
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      if (d < h.width)
        acc[d] += p * a.v.at(h.b, j, h.column + d);
  }
  // A query that sees no key gets zeros and a log-sum-exp of -inf.
  const float inv = sum > 0 ? 1.0f / sum : 0.0f;
  MASS_UNROLL
  for (int d = 0; d < MAXD; ++d)
    if (d < h.width)
      a.out.at(h.b, i, h.column + d) = acc[d] * inv;
  a.lse.at(h.b, h.head, i) = sum > 0 ? top + logOf(sum) : -INFINITY;
}

/// delta = dout[b, i] . out[b, i] over the head's features.
MASS_HD inline float attentionDelta(const AttentionArgs &a, const HeadRow &h,
                                    int64_t i) {
  float delta = 0;
  for (int64_t d = 0; d < h.width; ++d)
    delta += a.dout.at(h.b, i, h.column + d) * a.out.at(h.b, i, h.column + d);
  return delta;
}

/// Query row `thread % T` of head `thread / T`: its row of dq.
template <int MAXD>
MASS_HD void attentionBackwardQueryRow(const AttentionArgs &a, int64_t thread) {
  const int64_t queries = a.q.size[1];
  const HeadRow h(a, thread, queries);
  const int64_t i = h.row;
  const int64_t keys = visibleKeys(a, i);
  const float delta = attentionDelta(a, h, i);
  const float logSum = a.lse.at(h.b, h.head, i);
  float acc[MAXD];
  MASS_UNROLL
  for (int d = 0; d < MAXD; ++d)
    acc[d] = 0;
  for (int64_t j = 0; j < keys; ++j) {
    const float p = expOf(h.scale * h.dot(a.q, i, a.k, j) - logSum);
    const float ds = p * (h.dot(a.dout, i, a.v, j) - delta) * h.scale;
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      if (d < h.width)
        acc[d] += ds * a.k.at(h.b, j, h.column + d);
  }
  MASS_UNROLL
  for (int d = 0; d < MAXD; ++d)
    if (d < h.width)
      a.dq.at(h.b, i, h.column + d) = acc[d];
}

/// Key row `thread % S` of head `thread / S`: its rows of dk and dv, sums
/// over the queries that see the key, in order.
template <int MAXD>
MASS_HD void attentionBackwardKeyRow(const AttentionArgs &a, int64_t thread) {
  const int64_t keys = a.k.size[1], queries = a.q.size[1];
  const HeadRow h(a, thread, keys);
  const int64_t j = h.row;
  float dk[MAXD], dv[MAXD];
  MASS_UNROLL
  for (int d = 0; d < MAXD; ++d)
    dk[d] = dv[d] = 0;
  for (int64_t i = a.causal ? j : 0; i < queries; ++i) {
    const float p =
        expOf(h.scale * h.dot(a.q, i, a.k, j) - a.lse.at(h.b, h.head, i));
    const float ds =
        p * (h.dot(a.dout, i, a.v, j) - attentionDelta(a, h, i)) * h.scale;
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      if (d < h.width) {
        dv[d] += p * a.dout.at(h.b, i, h.column + d);
        dk[d] += ds * a.q.at(h.b, i, h.column + d);
      }
  }
  MASS_UNROLL
  for (int d = 0; d < MAXD; ++d)
    if (d < h.width) {
      a.dk.at(h.b, j, h.column + d) = dk[d];
      a.dv.at(h.b, j, h.column + d) = dv[d];
    }
}

/// Row `r` of layer norm's gradient: dx = rstd * (g - mean(g) - xhat *
/// mean(g * xhat)), g = dy * weight, xhat = (x - mean) * rstd.
MASS_HD inline void layerNormBackwardRow(const LayerNormArgs &a, int64_t r) {
  const int64_t width = a.x.size[1];
  const float mean = a.mean.base[r * a.mean.stride[0]];
  const float rstd = a.rstd.base[r * a.rstd.stride[0]];
  float sumG = 0, sumGX = 0;
  for (int64_t d = 0; d < width; ++d) {
    const float xhat = (a.x.at(r, d) - mean) * rstd;
    const float g = a.dy.at(r, d) * a.weight.base[d * a.weight.stride[0]];
    sumG += g;
    sumGX += g * xhat;
  }
  const float meanG = sumG / static_cast<float>(width);
  const float meanGX = sumGX / static_cast<float>(width);
  for (int64_t d = 0; d < width; ++d) {
    const float xhat = (a.x.at(r, d) - mean) * rstd;
    const float g = a.dy.at(r, d) * a.weight.base[d * a.weight.stride[0]];
    a.dx.at(r, d) = (g - meanG - xhat * meanGX) * rstd;
  }
}

/// Column `thread % D` of chunk `thread / D`: the chunk's sums over its
/// rows (the CPU kernel's chunks) of dy * xhat and of dy.
MASS_HD inline void layerNormBackwardPartial(const LayerNormArgs &a,
                                             int64_t thread) {
  const int64_t rows = a.x.size[0], width = a.x.size[1];
  const int64_t d = thread % width, chunk = thread / width;
  const int64_t first = rows * chunk / a.chunks;
  const int64_t end = rows * (chunk + 1) / a.chunks;
  float sw = 0, sb = 0;
  for (int64_t r = first; r < end; ++r) {
    const float xhat = (a.x.at(r, d) - a.mean.base[r * a.mean.stride[0]]) *
                       a.rstd.base[r * a.rstd.stride[0]];
    sw += a.dy.at(r, d) * xhat;
    sb += a.dy.at(r, d);
  }
  a.partial.at(chunk, 0, d) = sw;
  a.partial.at(chunk, 1, d) = sb;
}

/// Column `d`: dweight and dbias, the chunks added in order.
MASS_HD inline void layerNormBackwardSum(const LayerNormArgs &a, int64_t d) {
  float sw = 0, sb = 0;
  for (int64_t c = 0; c < a.partial.size[0]; ++c) {
    sw += a.partial.at(c, 0, d);
    sb += a.partial.at(c, 1, d);
  }
  a.dweight.base[d * a.dweight.stride[0]] = sw;
  a.dbias.base[d * a.dbias.stride[0]] = sb;
}

} // namespace mass::rt::device

#endif // MASS_RUNTIME_DEVICEKERNELS_H
