//===- Attention.cpp - Tiled attention kernels with an online softmax -----===//
//
// The kernels behind mass.attention and mass.attention_grad, called by the
// generated code once per (sample, head) from its parallel loop, so each
// head is one thread's work and the sums run in one order at any thread
// count. FlashAttention's scheme: the queries go in blocks of kRows, the
// keys in blocks of kCols; a block's scores live only in a kRows x kCols
// tile, the softmax is taken online (a running maximum and sum per query,
// rescaling what was accumulated), and the scaling and the causal mask are
// applied to the tile. The forward pass keeps the log-sum-exp of each
// query's scores; the backward pass recomputes each tile's probabilities
// from it. Memory is the operands, the outputs and a few tiles on the
// stack: nothing grows with the square of the sequence length.
//
// Loops run over the contiguous axis of a tile innermost (the products are
// written as sums of rows, not dot products), so the compiler vectorises
// them without reassociating a sum.
//
//===----------------------------------------------------------------------===//

#include "mass/abi.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace {

constexpr int64_t kRows = 32; // queries per block
constexpr int64_t kCols = 64; // keys per block
constexpr int64_t kMaxHeadWidth = MASS_ATTENTION_MAX_HEAD;

/// A rank-3 f32 view through an MLIR memref descriptor: [B, T, D] (or the
/// log-sum-exp's [B, H, T]).
struct View3 {
  float *base;
  int64_t size[3], stride[3];

  explicit View3(MassMemRef *m) {
    base = static_cast<float *>(m->aligned) + m->offset;
    for (int i = 0; i < 3; ++i) {
      size[i] = m->sizes_and_strides[i];
      stride[i] = m->sizes_and_strides[3 + i];
    }
  }
  float &at(int64_t a, int64_t b, int64_t c) const {
    return base[a * stride[0] + b * stride[1] + c * stride[2]];
  }
};

/// One head of one sample: rows [t, head * width + d] of q, k, v and
/// their gradients.
struct Head {
  int64_t b, column, width;
  float scale;

  Head(int64_t index, int64_t heads, int64_t dim)
      : b(index / heads), column((index % heads) * (dim / heads)),
        width(dim / heads),
        scale(1.0f / std::sqrt(static_cast<float>(dim / heads))) {}

  /// rows[r][d] = x[b, first + r, column + d] for `count` rows.
  void load(const View3 &x, int64_t first, int64_t count, float *rows) const {
    for (int64_t r = 0; r < count; ++r)
      for (int64_t d = 0; d < width; ++d)
        rows[r * width + d] = x.at(b, first + r, column + d);
  }
  /// cols[d][c] = x[b, first + c, column + d]: a block transposed, zero
  /// past `count`.
  void loadTransposed(const View3 &x, int64_t first, int64_t count,
                      float *cols) const {
    for (int64_t c = 0; c < count; ++c)
      for (int64_t d = 0; d < width; ++d)
        cols[d * kCols + c] = x.at(b, first + c, column + d);
    // A short last block: zeros in the columns past it.
    for (int64_t d = 0; d < width && count < kCols; ++d)
      std::fill(cols + d * kCols + count, cols + (d + 1) * kCols, 0.0f);
  }
};

/// scores[r][c] = scale * sum_d rows[r][d] * cols[d][c] for a block of
/// `rows` queries and `cols` keys (`cols` as loaded by loadTransposed).
void blockScores(const float *__restrict q, const float *__restrict kt,
                 int64_t rows, int64_t cols, int64_t width, float scale,
                 float *__restrict scores) {
  for (int64_t r = 0; r < rows; ++r) {
    // A whole row of the tile in registers: kCols is fixed, and the
    // columns past `cols` read zeros (loadTransposed's padding).
    alignas(64) float acc[kCols] = {};
    for (int64_t d = 0; d < width; ++d) {
      const float x = q[r * width + d];
      const float *__restrict k = kt + d * kCols;
      for (int64_t c = 0; c < kCols; ++c)
        acc[c] += x * k[c];
    }
    for (int64_t c = 0; c < cols; ++c)
      scores[r * kCols + c] = acc[c] * scale;
  }
}

/// Whether key `key` is hidden from query `query`.
inline bool masked(bool causal, int64_t query, int64_t key) {
  return causal && key > query;
}

} // namespace

extern "C" void _mlir_ciface_mass_attention_forward(
    MassMemRef *qm, MassMemRef *km, MassMemRef *vm, MassMemRef *outm,
    MassMemRef *lsem, int64_t index, int64_t heads, int64_t causal) {
  View3 q(qm), k(km), v(vm), out(outm), lse(lsem);
  const int64_t queries = q.size[1], keys = k.size[1];
  const Head h(index, heads, q.size[2]);
  const int64_t w = h.width;
  const float inf = std::numeric_limits<float>::infinity();
  alignas(64) float qb[kRows * kMaxHeadWidth];
  alignas(64) float kt[kMaxHeadWidth * kCols];
  alignas(64) float vb[kCols * kMaxHeadWidth];
  alignas(64) float s[kRows * kCols];
  alignas(64) float acc[kRows * kMaxHeadWidth];
  float m[kRows], l[kRows];
  for (int64_t i0 = 0; i0 < queries; i0 += kRows) {
    const int64_t rows = std::min(kRows, queries - i0);
    h.load(q, i0, rows, qb);
    std::fill(m, m + rows, -inf);
    std::fill(l, l + rows, 0.0f);
    std::fill(acc, acc + rows * w, 0.0f);
    // With the causal mask, the block's last query sees keys up to itself.
    const int64_t end = causal ? std::min(keys, i0 + rows) : keys;
    for (int64_t j0 = 0; j0 < end; j0 += kCols) {
      const int64_t cols = std::min(kCols, end - j0);
      h.loadTransposed(k, j0, cols, kt);
      h.load(v, j0, cols, vb);
      blockScores(qb, kt, rows, cols, w, h.scale, s);
      for (int64_t r = 0; r < rows; ++r) {
        float *__restrict sr = s + r * kCols;
        float top = m[r];
        for (int64_t c = 0; c < cols; ++c) {
          if (masked(causal, i0 + r, j0 + c))
            sr[c] = -inf;
          top = std::max(top, sr[c]);
        }
        // The running maximum moves to `top`: what was summed scales down.
        const float rescale = std::exp(m[r] - top);
        float sum = 0;
        for (int64_t c = 0; c < cols; ++c) {
          sr[c] = std::exp(sr[c] - top);
          sum += sr[c];
        }
        l[r] = l[r] * rescale + sum;
        m[r] = top;
        float *__restrict a = acc + r * w;
        for (int64_t d = 0; d < w; ++d)
          a[d] *= rescale;
        for (int64_t c = 0; c < cols; ++c) {
          const float p = sr[c];
          const float *__restrict vr = vb + c * w;
          for (int64_t d = 0; d < w; ++d)
            a[d] += p * vr[d];
        }
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float inv = 1.0f / l[r];
      for (int64_t d = 0; d < w; ++d)
        out.at(h.b, i0 + r, h.column + d) = acc[r * w + d] * inv;
      lse.at(h.b, index % heads, i0 + r) = m[r] + std::log(l[r]);
    }
  }
}

extern "C" void _mlir_ciface_mass_attention_backward(
    MassMemRef *qm, MassMemRef *km, MassMemRef *vm, MassMemRef *outm,
    MassMemRef *lsem, MassMemRef *doutm, MassMemRef *dqm, MassMemRef *dkm,
    MassMemRef *dvm, int64_t index, int64_t heads, int64_t causal) {
  View3 q(qm), k(km), v(vm), out(outm), lse(lsem), dout(doutm), dq(dqm),
      dk(dkm), dv(dvm);
  const int64_t queries = q.size[1], keys = k.size[1];
  const Head h(index, heads, q.size[2]);
  const int64_t w = h.width, head = index % heads;
  alignas(64) float kb[kCols * kMaxHeadWidth];
  alignas(64) float kt[kMaxHeadWidth * kCols];
  alignas(64) float vt[kMaxHeadWidth * kCols];
  alignas(64) float dkb[kCols * kMaxHeadWidth];
  alignas(64) float dvb[kCols * kMaxHeadWidth];
  alignas(64) float qb[kRows * kMaxHeadWidth];
  alignas(64) float dob[kRows * kMaxHeadWidth];
  alignas(64) float dqb[kRows * kMaxHeadWidth];
  alignas(64) float p[kRows * kCols];
  alignas(64) float ds[kRows * kCols];
  float delta[kRows], logSum[kRows];
  for (int64_t t = 0; t < queries; ++t)
    for (int64_t d = 0; d < w; ++d)
      dq.at(h.b, t, h.column + d) = 0;
  for (int64_t j0 = 0; j0 < keys; j0 += kCols) {
    const int64_t cols = std::min(kCols, keys - j0);
    h.load(k, j0, cols, kb);
    h.loadTransposed(k, j0, cols, kt);
    h.loadTransposed(v, j0, cols, vt);
    std::fill(dkb, dkb + cols * w, 0.0f);
    std::fill(dvb, dvb + cols * w, 0.0f);
    // With the causal mask, queries before the block's first key see none
    // of its keys.
    for (int64_t i0 = causal ? j0 : 0; i0 < queries; i0 += kRows) {
      const int64_t rows = std::min(kRows, queries - i0);
      h.load(q, i0, rows, qb);
      h.load(dout, i0, rows, dob);
      for (int64_t r = 0; r < rows; ++r) {
        // delta = sum_d dout * out: the softmax's gradient term per query.
        float sum = 0;
        for (int64_t d = 0; d < w; ++d)
          sum += dob[r * w + d] * out.at(h.b, i0 + r, h.column + d);
        delta[r] = sum;
        logSum[r] = lse.at(h.b, head, i0 + r);
      }
      // p = softmax probabilities of the tile, from the forward's lse.
      blockScores(qb, kt, rows, cols, w, h.scale, p);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          p[r * kCols + c] = masked(causal, i0 + r, j0 + c)
                                 ? 0.0f
                                 : std::exp(p[r * kCols + c] - logSum[r]);
      // dv += p^T dout
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const float x = p[r * kCols + c];
          float *__restrict dvr = dvb + c * w;
          const float *__restrict dor = dob + r * w;
          for (int64_t d = 0; d < w; ++d)
            dvr[d] += x * dor[d];
        }
      // dp = dout v^T; ds = p * (dp - delta) * scale
      blockScores(dob, vt, rows, cols, w, 1.0f, ds);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          ds[r * kCols + c] =
              p[r * kCols + c] * (ds[r * kCols + c] - delta[r]) * h.scale;
      // dq += ds k; dk += ds^T q
      std::fill(dqb, dqb + rows * w, 0.0f);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const float x = ds[r * kCols + c];
          const float *__restrict kr = kb + c * w;
          const float *__restrict qr = qb + r * w;
          float *__restrict dqr = dqb + r * w;
          float *__restrict dkr = dkb + c * w;
          for (int64_t d = 0; d < w; ++d) {
            dqr[d] += x * kr[d];
            dkr[d] += x * qr[d];
          }
        }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t d = 0; d < w; ++d)
          dq.at(h.b, i0 + r, h.column + d) += dqb[r * w + d];
    }
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t d = 0; d < w; ++d) {
        dk.at(h.b, j0 + c, h.column + d) = dkb[c * w + d];
        dv.at(h.b, j0 + c, h.column + d) = dvb[c * w + d];
      }
  }
}
