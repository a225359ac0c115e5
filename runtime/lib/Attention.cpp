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
// Every product of tiles is one primitive, `accumulate`: rows of vectors
// (16 floats, GCC's vector extension, so registers of any width the target
// has) plus sums of scalars times rows of vectors, a few output rows at a
// time so that enough independent sums are in flight to fill the FMA
// units. A head's features are copied into rows padded with zeros to
// whole vectors, the padding chosen at compile time (16, 32, 64, 128 or
// 256 features), so each row of a tile is a fixed number of registers.
// exp runs on whole vectors too (a polynomial, below).
//
//===----------------------------------------------------------------------===//

#include "mass/abi.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace {

constexpr int kLanes = 16;
typedef float V __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t VI __attribute__((vector_size(kLanes * sizeof(int32_t))));

constexpr int64_t kRows = 32;                   // queries per block
constexpr int64_t kCols = 64;                   // keys per block
constexpr int64_t kColVectors = kCols / kLanes; // one tile row, in vectors
static_assert(MASS_ATTENTION_MAX_HEAD <= 16 * kLanes,
              "a head pads to at most 16 vectors");

inline V splat(float x) { return V{} + x; }

/// e^x on each lane, to about 2 ulp over the range where e^x is a normal
/// float; lanes below -87.3 (the masked scores' -inf among them) give 0.
/// Cephes' expf: x = n ln 2 + r with |r| <= ln 2 / 2, e^r from a degree-7
/// polynomial, then 2^n put into the exponent.
inline V expv(V x) {
  const V lo = splat(-87.33654f), hi = splat(88.37626f);
  V c = x < lo ? lo : x;
  c = c > hi ? hi : c;
  // n = round(x / ln 2), rounding by adding and removing 1.5 * 2^23.
  const V magic = splat(12582912.0f);
  V n = (c * 1.44269504088896341f + magic) - magic;
  V r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
  V scale;
  std::memcpy(&scale, &bits, sizeof scale);
  V e = p * scale;
  return x < lo ? V{} : e;
}

/// x with each lane j swapped for lane j ^ S.
template <int S, int... J>
inline V swapLanes(V x, std::integer_sequence<int, J...>) {
  return __builtin_shufflevector(x, x, (J ^ S)...);
}

/// The maximum and the sum of a vector's lanes, as a tree of four steps.
inline float hmax(V x) {
  constexpr auto lanes = std::make_integer_sequence<int, kLanes>{};
  x = x > swapLanes<8>(x, lanes) ? x : swapLanes<8>(x, lanes);
  x = x > swapLanes<4>(x, lanes) ? x : swapLanes<4>(x, lanes);
  x = x > swapLanes<2>(x, lanes) ? x : swapLanes<2>(x, lanes);
  x = x > swapLanes<1>(x, lanes) ? x : swapLanes<1>(x, lanes);
  return x[0];
}
inline float hsum(V x) {
  constexpr auto lanes = std::make_integer_sequence<int, kLanes>{};
  x += swapLanes<8>(x, lanes);
  x += swapLanes<4>(x, lanes);
  x += swapLanes<2>(x, lanes);
  x += swapLanes<1>(x, lanes);
  return x[0];
}

/// out[i] (+)= sum_{j < nj} p[i * pi + j * pj] * m[j] for i < ni, where
/// out[i] and m[j] are rows of NV vectors, `outStride` and `mStride`
/// vectors apart. Rows of `out` go in groups so that about eight vector
/// sums are in flight.
template <int NV>
void accumulate(const float *__restrict p, int64_t pi, int64_t pj, int64_t ni,
                int64_t nj, const V *__restrict m, int64_t mStride,
                V *__restrict out, int64_t outStride, bool add) {
  constexpr int64_t G = NV >= 8 ? 1 : 8 / NV;
  int64_t i = 0;
  for (; i + G <= ni; i += G) {
    V acc[G][NV];
#pragma GCC unroll 16
    for (int64_t g = 0; g < G; ++g)
#pragma GCC unroll 16
      for (int64_t v = 0; v < NV; ++v)
        acc[g][v] = add ? out[(i + g) * outStride + v] : V{};
    for (int64_t j = 0; j < nj; ++j) {
#pragma GCC unroll 16
      for (int64_t g = 0; g < G; ++g) {
        const float x = p[(i + g) * pi + j * pj];
#pragma GCC unroll 16
        for (int64_t v = 0; v < NV; ++v)
          acc[g][v] += x * m[j * mStride + v];
      }
    }
#pragma GCC unroll 16
    for (int64_t g = 0; g < G; ++g)
#pragma GCC unroll 16
      for (int64_t v = 0; v < NV; ++v)
        out[(i + g) * outStride + v] = acc[g][v];
  }
  for (; i < ni; ++i) {
    V acc[NV];
#pragma GCC unroll 16
    for (int64_t v = 0; v < NV; ++v)
      acc[v] = add ? out[i * outStride + v] : V{};
    for (int64_t j = 0; j < nj; ++j) {
      const float x = p[i * pi + j * pj];
#pragma GCC unroll 16
      for (int64_t v = 0; v < NV; ++v)
        acc[v] += x * m[j * mStride + v];
    }
#pragma GCC unroll 16
    for (int64_t v = 0; v < NV; ++v)
      out[i * outStride + v] = acc[v];
  }
}

/// accumulate over rows of NV vectors stored back to back.
template <int NV>
void accumulateRows(const float *p, int64_t pi, int64_t pj, int64_t ni,
                    int64_t nj, const V *m, V *out, bool add) {
  accumulate<NV>(p, pi, pj, ni, nj, m, NV, out, NV, add);
}

/// One step of a 16 x 16 transpose in registers: rows a and b (S apart)
/// swap their off-diagonal blocks of S lanes.
template <int S, int... J>
inline void swapBlocks(V &a, V &b, std::integer_sequence<int, J...>) {
  V na = __builtin_shufflevector(a, b, ((J & S) ? kLanes + J - S : J)...);
  V nb = __builtin_shufflevector(a, b, ((J & S) ? kLanes + J : J + S)...);
  a = na;
  b = nb;
}
template <int S> inline void swapStage(V *t) {
  for (int i = 0; i < kLanes; ++i)
    if ((i & S) == 0)
      swapBlocks<S>(t[i], t[i + S], std::make_integer_sequence<int, kLanes>{});
}
/// t[i][j] becomes t[j][i].
inline void transpose(V *t) {
  swapStage<8>(t);
  swapStage<4>(t);
  swapStage<2>(t);
  swapStage<1>(t);
}

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

/// One head of one sample, its features padded to NV vectors: rows
/// [t, column + d] of q, k, v and their gradients.
template <int NV> struct Head {
  static constexpr int64_t kPadded = NV * kLanes;
  int64_t b, head, column, width;
  float scale;

  Head(int64_t index, int64_t heads, int64_t dim)
      : b(index / heads), head(index % heads),
        column((index % heads) * (dim / heads)), width(dim / heads),
        scale(1.0f / std::sqrt(static_cast<float>(dim / heads))) {}

  /// rows[r] = x[b, first + r, column + d], zero past the head's width.
  void load(const View3 &x, int64_t first, int64_t count, V *rows) const {
    for (int64_t r = 0; r < count; ++r) {
      const float *src = &x.at(b, first + r, column);
      V *row = rows + r * NV;
      for (int64_t v = 0; v < NV; ++v) {
        const int64_t d0 = v * kLanes;
        if (x.stride[2] == 1 && d0 + kLanes <= width) {
          std::memcpy(&row[v], src + d0, sizeof(V)); // one vector load
          continue;
        }
        V part{};
        for (int64_t d = d0; d < std::min(width, d0 + kLanes); ++d)
          part[d - d0] = src[d * x.stride[2]];
        row[v] = part;
      }
    }
  }
  /// cols[d][c] = x[b, first + c, column + d]: a block of keys transposed
  /// (kColVectors vectors per feature), zero past `count`; `rows` is
  /// scratch for the block as rows.
  void loadTransposed(const View3 &x, int64_t first, int64_t count, V *cols,
                      V *rows) const {
    load(x, first, count, rows);
    transposeBlock(rows, count, cols);
  }
  /// cols[d][c] = rows[c][d] for a block of `count` keys loaded as rows,
  /// zero past `count`: 16 x 16 tiles transposed in registers.
  static void transposeBlock(const V *rows, int64_t count, V *cols) {
    for (int64_t cv = 0; cv < kColVectors; ++cv)
      for (int64_t dv = 0; dv < NV; ++dv) {
        V t[kLanes];
        for (int64_t i = 0; i < kLanes; ++i) {
          const int64_t c = cv * kLanes + i;
          t[i] = c < count ? rows[c * NV + dv] : V{};
        }
        transpose(t);
        for (int64_t i = 0; i < kLanes; ++i)
          cols[(dv * kLanes + i) * kColVectors + cv] = t[i];
      }
  }
  /// x[b, first + r, column + d] (+)= rows[r][d].
  void store(const V *rows, int64_t first, int64_t count, const View3 &x,
             bool add) const {
    for (int64_t r = 0; r < count; ++r) {
      float *dst = &x.at(b, first + r, column);
      const V *row = rows + r * NV;
      for (int64_t v = 0; v < NV; ++v) {
        const int64_t d0 = v * kLanes;
        if (x.stride[2] == 1 && d0 + kLanes <= width) {
          V y = row[v];
          if (add) {
            V old;
            std::memcpy(&old, dst + d0, sizeof(V));
            y += old;
          }
          std::memcpy(dst + d0, &y, sizeof(V)); // one vector store
          continue;
        }
        for (int64_t d = d0; d < std::min(width, d0 + kLanes); ++d) {
          float &y = dst[d * x.stride[2]];
          y = add ? y + row[v][d - d0] : row[v][d - d0];
        }
      }
    }
  }
};

/// The keys of a block that some query of the tile sees: all `cols`, or
/// with the causal mask those up to the tile's last query.
int64_t visibleKeys(int64_t cols, bool causal, int64_t firstQuery, int64_t rows,
                    int64_t firstKey) {
  return causal ? std::min(cols, firstQuery + rows - firstKey) : cols;
}

/// Vectors of a tile row that hold `keys` keys.
int64_t keyVectors(int64_t keys) { return (keys + kLanes - 1) / kLanes; }

/// The products of a tile, out[r][c] = sum_d a[r][d] * bt[d][c], over the
/// first `vectors` vectors of its rows (the others are left as they are).
void tileProducts(const float *a, int64_t rowStride, const V *bt, int64_t rows,
                  int64_t width, int64_t vectors, V *out) {
  switch (vectors) {
  case 1:
    return accumulate<1>(a, rowStride, 1, rows, width, bt, kColVectors, out,
                         kColVectors, false);
  case 2:
    return accumulate<2>(a, rowStride, 1, rows, width, bt, kColVectors, out,
                         kColVectors, false);
  case 3:
    return accumulate<3>(a, rowStride, 1, rows, width, bt, kColVectors, out,
                         kColVectors, false);
  default:
    return accumulate<kColVectors>(a, rowStride, 1, rows, width, bt,
                                   kColVectors, out, kColVectors, false);
  }
}

/// The scores of a tile: scores[r] = scale * q[r] . k[c] for the block's
/// keys (kt as loadTransposed gives it), then -inf where the key is past
/// the block's `cols` or hidden by the causal mask; `vectors` vectors of
/// each row (those that hold the visible keys) are written.
void tileScores(const float *__restrict q, int64_t rowStride,
                const V *__restrict kt, int64_t rows, int64_t cols,
                int64_t width, float scale, bool causal, int64_t firstQuery,
                int64_t firstKey, int64_t vectors, V *__restrict s) {
  tileProducts(q, rowStride, kt, rows, width, vectors, s);
  const float inf = std::numeric_limits<float>::infinity();
  V column;
  for (int64_t i = 0; i < kLanes; ++i)
    column[i] = static_cast<float>(i);
  for (int64_t r = 0; r < rows; ++r) {
    // Keys visible to this query: c < limit.
    int64_t limit = cols;
    if (causal)
      limit = std::min(limit, firstQuery + r - firstKey + 1);
    const V end = splat(static_cast<float>(limit));
    for (int64_t v = 0; v < vectors; ++v) {
      const V c = column + static_cast<float>(v * kLanes);
      V &x = s[r * kColVectors + v];
      x = c < end ? x * scale : splat(-inf);
    }
  }
}

template <int NV>
void attentionForward(MassMemRef *qm, MassMemRef *km, MassMemRef *vm,
                      MassMemRef *outm, MassMemRef *lsem, int64_t index,
                      int64_t heads, bool causal) {
  View3 q(qm), k(km), v(vm), out(outm), lse(lsem);
  const int64_t queries = q.size[1], keys = k.size[1];
  const Head<NV> h(index, heads, q.size[2]);
  const float inf = std::numeric_limits<float>::infinity();
  V qb[kRows * NV], kt[NV * kLanes * kColVectors], vb[kCols * NV];
  V s[kRows * kColVectors], acc[kRows * NV];
  float m[kRows], l[kRows];
  for (int64_t i0 = 0; i0 < queries; i0 += kRows) {
    const int64_t rows = std::min(kRows, queries - i0);
    h.load(q, i0, rows, qb);
    std::fill(m, m + rows, -inf);
    std::fill(l, l + rows, 0.0f);
    std::fill(acc, acc + rows * NV, V{});
    // With the causal mask, the block's last query sees keys up to itself.
    const int64_t end = causal ? std::min(keys, i0 + rows) : keys;
    for (int64_t j0 = 0; j0 < end; j0 += kCols) {
      const int64_t cols = std::min(kCols, end - j0);
      const int64_t vectors = keyVectors(cols);
      h.loadTransposed(k, j0, cols, kt, vb);
      h.load(v, j0, cols, vb);
      tileScores(reinterpret_cast<const float *>(qb), h.kPadded, kt, rows, cols,
                 h.width, h.scale, causal, i0, j0, vectors, s);
      for (int64_t r = 0; r < rows; ++r) {
        V *sr = s + r * kColVectors;
        V top = splat(m[r]);
        for (int64_t c = 0; c < vectors; ++c)
          top = sr[c] > top ? sr[c] : top;
        // The running maximum moves to `top`: what was summed scales down.
        const float newMax = hmax(top);
        if (newMax == -inf) { // no key visible yet: the row adds nothing
          std::fill(sr, sr + vectors, V{});
          continue;
        }
        const float rescale = m[r] == -inf ? 0.0f : std::exp(m[r] - newMax);
        V sum{};
        for (int64_t c = 0; c < vectors; ++c) {
          sr[c] = expv(sr[c] - newMax);
          sum += sr[c];
        }
        l[r] = l[r] * rescale + hsum(sum);
        m[r] = newMax;
        for (int64_t d = 0; d < NV; ++d)
          acc[r * NV + d] *= rescale;
      }
      accumulateRows<NV>(reinterpret_cast<const float *>(s), kCols, 1, rows,
                         cols, vb, acc, true);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float inv = 1.0f / l[r];
      for (int64_t d = 0; d < NV; ++d)
        acc[r * NV + d] *= inv;
      lse.at(h.b, h.head, i0 + r) = m[r] + std::log(l[r]);
    }
    h.store(acc, i0, rows, out, false);
  }
}

template <int NV>
void attentionBackward(MassMemRef *qm, MassMemRef *km, MassMemRef *vm,
                       MassMemRef *outm, MassMemRef *lsem, MassMemRef *doutm,
                       MassMemRef *dqm, MassMemRef *dkm, MassMemRef *dvm,
                       int64_t index, int64_t heads, bool causal) {
  View3 q(qm), k(km), v(vm), out(outm), lse(lsem), dout(doutm), dq(dqm),
      dk(dkm), dv(dvm);
  const int64_t queries = q.size[1], keys = k.size[1];
  const Head<NV> h(index, heads, q.size[2]);
  const int64_t w = h.width;
  V kb[kCols * NV], kt[NV * kLanes * kColVectors],
      vt[NV * kLanes * kColVectors], dkb[kCols * NV], dvb[kCols * NV];
  V qb[kRows * NV], ob[kRows * NV], dob[kRows * NV], dqb[kRows * NV];
  V p[kRows * kColVectors], ds[kRows * kColVectors];
  float delta[kRows], logSum[kRows];
  for (int64_t t = 0; t < queries; ++t)
    for (int64_t d = 0; d < w; ++d)
      dq.at(h.b, t, h.column + d) = 0;
  const float *pf = reinterpret_cast<const float *>(p);
  const float *dsf = reinterpret_cast<const float *>(ds);
  for (int64_t j0 = 0; j0 < keys; j0 += kCols) {
    const int64_t cols = std::min(kCols, keys - j0);
    h.load(k, j0, cols, kb);
    h.transposeBlock(kb, cols, kt);
    h.loadTransposed(v, j0, cols, vt, dvb);
    std::fill(dkb, dkb + cols * NV, V{});
    std::fill(dvb, dvb + cols * NV, V{});
    // With the causal mask, queries before the block's first key see none
    // of its keys.
    for (int64_t i0 = causal ? j0 : 0; i0 < queries; i0 += kRows) {
      const int64_t rows = std::min(kRows, queries - i0);
      // Only the keys some query of the tile sees take part.
      const int64_t seen = visibleKeys(cols, causal, i0, rows, j0);
      const int64_t vectors = keyVectors(seen);
      h.load(q, i0, rows, qb);
      h.load(dout, i0, rows, dob);
      h.load(out, i0, rows, ob);
      for (int64_t r = 0; r < rows; ++r) {
        // delta = sum_d dout * out: the softmax's gradient term per query.
        V sum{};
        for (int64_t d = 0; d < NV; ++d)
          sum += dob[r * NV + d] * ob[r * NV + d];
        delta[r] = hsum(sum);
        logSum[r] = lse.at(h.b, h.head, i0 + r);
      }
      // p = softmax probabilities of the tile, from the forward's lse.
      tileScores(reinterpret_cast<const float *>(qb), h.kPadded, kt, rows, cols,
                 w, h.scale, causal, i0, j0, vectors, p);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < vectors; ++c)
          p[r * kColVectors + c] = expv(p[r * kColVectors + c] - logSum[r]);
      // dv += p^T dout
      accumulateRows<NV>(pf, 1, kCols, seen, rows, dob, dvb, true);
      // dp = dout v^T; ds = p * (dp - delta) * scale
      tileProducts(reinterpret_cast<const float *>(dob), h.kPadded, vt, rows, w,
                   vectors, ds);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < vectors; ++c) {
          V &x = ds[r * kColVectors + c];
          x = p[r * kColVectors + c] * (x - delta[r]) * h.scale;
        }
      // dq += ds k; dk += ds^T q
      accumulateRows<NV>(dsf, kCols, 1, rows, seen, kb, dqb, false);
      h.store(dqb, i0, rows, dq, true);
      accumulateRows<NV>(dsf, 1, kCols, seen, rows, qb, dkb, true);
    }
    h.store(dkb, j0, cols, dk, false);
    h.store(dvb, j0, cols, dv, false);
  }
}

/// Calls `kernel` with std::integral_constant<int, NV>, NV the smallest
/// number of vectors, of 1, 2, 4, 8 and 16, that holds a head of `width`
/// features.
template <typename Kernel> void withPaddedWidth(int64_t width, Kernel kernel) {
  if (width <= kLanes)
    return kernel(std::integral_constant<int, 1>{});
  if (width <= 2 * kLanes)
    return kernel(std::integral_constant<int, 2>{});
  if (width <= 4 * kLanes)
    return kernel(std::integral_constant<int, 4>{});
  if (width <= 8 * kLanes)
    return kernel(std::integral_constant<int, 8>{});
  return kernel(std::integral_constant<int, 16>{});
}

} // namespace

extern "C" void _mlir_ciface_mass_attention_forward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, int64_t index, int64_t heads, int64_t causal) {
  withPaddedWidth(q->sizes_and_strides[2] / heads, [&](auto nv) {
    attentionForward<decltype(nv)::value>(q, k, v, out, lse, index, heads,
                                          causal);
  });
}

extern "C" void _mlir_ciface_mass_attention_backward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, MassMemRef *dout, MassMemRef *dq, MassMemRef *dk,
    MassMemRef *dv, int64_t index, int64_t heads, int64_t causal) {
  withPaddedWidth(q->sizes_and_strides[2] / heads, [&](auto nv) {
    attentionBackward<decltype(nv)::value>(q, k, v, out, lse, dout, dq, dk, dv,
                                           index, heads, causal);
  });
}
