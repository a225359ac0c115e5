//===- Attention.cpp - Tiled attention kernels with an online softmax -----===//
//
// The kernels behind mass.attention and mass.attention_grad, called by the
// generated code once per (sample, head) from its parallel loop, so each
// head is one thread's work and the sums run in one order at any thread
// count. FlashAttention's scheme: the queries go in blocks of kRows, the
// keys in blocks of kCols; a block's scores live only in a kCols x kRows
// tile, the softmax is taken online (a running maximum and sum per query,
// rescaling what was accumulated), and the scaling and the causal mask are
// applied to the tile. The forward pass keeps the log-sum-exp of each
// query's scores; the backward pass recomputes each tile's probabilities
// from it. Memory is the operands, the outputs and a few tiles on the
// stack: nothing grows with the square of the sequence length.
//
// A tile of scores is held transposed: one row per key, the block's
// queries across the lanes of kRows / 16 vectors. The softmax's maximum
// and sum per query are then sums down the rows, lane by lane, with no
// reduction across lanes, and the causal mask is a comparison with the
// lanes' query positions. Every product of tiles is one primitive,
// `accumulate`: rows of vectors (16 floats, GCC's vector extension, so
// registers of any width the target has) plus sums of scalars times rows
// of vectors, a few output rows at a time so that enough independent sums
// are in flight to fill the FMA units. A head's features are copied into
// rows padded with zeros to whole vectors, the padding chosen at compile
// time (16, 32, 64, 128 or 256 features), so each row of a tile is a fixed
// number of registers; a block of queries is also transposed (16 x 16
// tiles in registers) so that its features are rows across its queries.
// exp and log run on whole vectors (polynomials, below).
//
//===----------------------------------------------------------------------===//

#include "KernelVectors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace {

using namespace mass::rt::kernels;

// Keys per block. Queries go in blocks of RV vectors' lanes (a template
// parameter: 16 or 32 queries, see withTiles); kCols is a multiple
// of both, so with the causal mask every query of a block sees the first
// key of each block of keys it meets.
constexpr int64_t kCols = 64;
static_assert(MASS_ATTENTION_MAX_HEAD <= 16 * kLanes,
              "a head pads to at most 16 vectors");

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

/// The natural logarithm of each lane, for positive normal floats, to
/// about 1 ulp: Cephes' logf. x = 2^e m with m in [sqrt(1/2), sqrt(2)),
/// log(m) from a degree-8 polynomial in m - 1.
inline V logv(V x) {
  VI bits;
  std::memcpy(&bits, &x, sizeof bits);
  VI e = ((bits >> 23) & 0xff) - 126;
  bits = (bits & 0x007fffff) | 0x3f000000; // the mantissa, in [0.5, 1)
  V m;
  std::memcpy(&m, &bits, sizeof m);
  const VI small = m < 0.707106781186547524f; // VI of 0 / -1
  e += small;
  V f = __builtin_convertvector(e, V);
  m = (small ? m + m : m) - 1.0f;
  const V z = m * m;
  V p = splat(7.0376836292e-2f);
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  V y = p * m * z;
  y += f * -2.12194440e-4f;
  y -= z * 0.5f;
  return m + y + f * 0.693359375f;
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

/// One step of a 16 x 16 transpose in registers: rows a and b (S apart)
/// swap their off-diagonal blocks of S lanes.
template <int S, int... J>
inline void swapBlocks(V &a, V &b, std::integer_sequence<int, J...>) {
  V na = __builtin_shufflevector(a, b, ((J & S) ? kLanes + J - S : J)...);
  V nb = __builtin_shufflevector(a, b, ((J & S) ? kLanes + J : J + S)...);
  a = na;
  b = nb;
}
template <int S> __attribute__((always_inline)) inline void swapStage(V *t) {
  for (int i = 0; i < kLanes; ++i)
    if ((i & S) == 0)
      swapBlocks<S>(t[i], t[i + S], std::make_integer_sequence<int, kLanes>{});
}
/// t[i][j] becomes t[j][i].
__attribute__((always_inline)) inline void transpose(V *t) {
  swapStage<8>(t);
  swapStage<4>(t);
  swapStage<2>(t);
  swapStage<1>(t);
}

/// [B, T, D] (or the log-sum-exp's [B, H, T]).
using View3 = View<3>;

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

/// A block of `rows` queries' rows (NV vectors each, zero past `rows`)
/// transposed: out[d * RV + rv] holds feature d of queries
/// rv * 16 to rv * 16 + 15, times `factor`.
template <int NV, int RV>
void transposeQueries(const V *rows, float factor, V *out) {
  for (int64_t rv = 0; rv < RV; ++rv)
    for (int64_t dv = 0; dv < NV; ++dv) {
      V t[kLanes];
      for (int64_t i = 0; i < kLanes; ++i)
        t[i] = rows[(rv * kLanes + i) * NV + dv];
      transpose(t);
      for (int64_t i = 0; i < kLanes; ++i)
        out[(dv * kLanes + i) * RV + rv] = t[i] * factor;
    }
}

/// sums[rv] lane i = a[r] . b[r] for the block's query r = rv * 16 + i:
/// each row's products as a vector, then 16 of them transposed and added.
template <int NV, int RV> void rowDots(const V *a, const V *b, V *sums) {
  for (int64_t rv = 0; rv < RV; ++rv) {
    V t[kLanes];
    for (int64_t i = 0; i < kLanes; ++i) {
      const int64_t r = rv * kLanes + i;
      V x = a[r * NV] * b[r * NV];
      for (int64_t dv = 1; dv < NV; ++dv)
        x += a[r * NV + dv] * b[r * NV + dv];
      t[i] = x;
    }
    transpose(t);
    for (int64_t i = 1; i < kLanes; ++i)
      t[0] += t[i];
    sums[rv] = t[0];
  }
}

/// The scores of a tile, transposed: st[c][rv] = scale * q . k for key
/// firstKey + c (c < keys) and the block's queries across the lanes (qt
/// as transposeQueries gives it, the scale folded in), -inf where the
/// causal mask hides the key from the query.
template <int NV, int RV>
void tileScores(const V *__restrict kb, const V *__restrict qt, int64_t keys,
                int64_t width, bool causal, int64_t firstQuery,
                int64_t firstKey, V *__restrict st) {
  accumulate<RV>(reinterpret_cast<const float *>(kb), NV * kLanes, 1, keys,
                 width, qt, RV, st, RV, false);
  if (!causal)
    return;
  VI lane;
  for (int64_t i = 0; i < kLanes; ++i)
    lane[i] = static_cast<int32_t>(i);
  const V hidden = splat(-std::numeric_limits<float>::infinity());
  // Key firstKey + c is visible to query firstQuery + q when q >= c +
  // firstKey - firstQuery: every query sees the keys up to firstQuery.
  for (int64_t c = std::max<int64_t>(0, firstQuery - firstKey + 1); c < keys;
       ++c) {
    const int32_t first = static_cast<int32_t>(c + firstKey - firstQuery);
    for (int64_t rv = 0; rv < RV; ++rv) {
      V &x = st[c * RV + rv];
      x = lane + static_cast<int32_t>(rv * kLanes) >= first ? x : hidden;
    }
  }
}

/// Rows [rows, kRows) of a block of queries' rows set to zero.
template <int NV, int RV> void zeroTail(V *block, int64_t rows) {
  std::fill(block + rows * NV, block + RV * kLanes * NV, V{});
}

/// Lane i of each vector of x, as floats: x[i / 16][i % 16].
inline float laneOf(const V *x, int64_t i) { return x[i / kLanes][i % kLanes]; }

template <int NV, int RV>
void attentionForward(MassMemRef *qm, MassMemRef *km, MassMemRef *vm,
                      MassMemRef *outm, MassMemRef *lsem, int64_t index,
                      int64_t heads, bool causal) {
  constexpr int64_t kRows = RV * kLanes;
  static_assert(kCols % kRows == 0, "blocks of keys start blocks of queries");
  View3 q(qm), k(km), v(vm), out(outm), lse(lsem);
  const int64_t queries = q.size[1], keys = k.size[1];
  const Head<NV> h(index, heads, q.size[2]);
  V qb[kRows * NV], qt[NV * kLanes * RV], kb[kCols * NV], vb[kCols * NV],
      st[kCols * RV], acc[kRows * NV];
  V m[RV], l[RV];
  const float *pt = reinterpret_cast<const float *>(st);
  // Keys that fit one block (spec 09's 64) are loaded once for all the
  // blocks of queries, not once per block (forward 6% faster there).
  const bool oneBlock = keys <= kCols;
  if (oneBlock) {
    h.load(k, 0, keys, kb);
    h.load(v, 0, keys, vb);
  }
  for (int64_t i0 = 0; i0 < queries; i0 += kRows) {
    const int64_t rows = std::min(kRows, queries - i0);
    h.load(q, i0, rows, qb);
    zeroTail<NV, RV>(qb, rows);
    transposeQueries<NV, RV>(qb, h.scale, qt);
    std::fill(m, m + RV, splat(-std::numeric_limits<float>::infinity()));
    std::fill(l, l + RV, V{});
    std::fill(acc, acc + rows * NV, V{});
    // With the causal mask, the block's last query sees keys up to itself.
    const int64_t end = causal ? std::min(keys, i0 + rows) : keys;
    for (int64_t j0 = 0; j0 < end; j0 += kCols) {
      const int64_t cols =
          visibleKeys(std::min(kCols, keys - j0), causal, i0, rows, j0);
      if (!oneBlock) {
        h.load(k, j0, cols, kb);
        h.load(v, j0, cols, vb);
      }
      tileScores<NV, RV>(kb, qt, cols, h.width, causal, i0, j0, st);
      // Each query sees the block's first key (kCols % kRows == 0), so its
      // maximum is finite from the first block on.
      V rescale[RV];
      for (int64_t rv = 0; rv < RV; ++rv) {
        V top = m[rv];
        for (int64_t c = 0; c < cols; ++c)
          top = st[c * RV + rv] > top ? st[c * RV + rv] : top;
        // The running maximum moves to `top`: what was summed scales down
        // (by e^-inf = 0 in the first block).
        rescale[rv] = expv(m[rv] - top);
        V sum{};
        for (int64_t c = 0; c < cols; ++c) {
          V &x = st[c * RV + rv];
          x = expv(x - top);
          sum += x;
        }
        l[rv] = l[rv] * rescale[rv] + sum;
        m[rv] = top;
      }
      if (j0 > 0)
        for (int64_t r = 0; r < rows; ++r) {
          const float factor = laneOf(rescale, r);
          for (int64_t d = 0; d < NV; ++d)
            acc[r * NV + d] *= factor;
        }
      // acc[r] += sum_c p[c][r] v[c]
      accumulate<NV>(pt, 1, kRows, rows, cols, vb, NV, acc, NV, true);
    }
    V logSum[RV];
    for (int64_t rv = 0; rv < RV; ++rv) {
      logSum[rv] = m[rv] + logv(l[rv]);
      l[rv] = 1.0f / l[rv];
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float inv = laneOf(l, r);
      for (int64_t d = 0; d < NV; ++d)
        acc[r * NV + d] *= inv;
      lse.at(h.b, h.head, i0 + r) = laneOf(logSum, r);
    }
    h.store(acc, i0, rows, out, false);
  }
}

template <int NV, int RV>
void attentionBackward(MassMemRef *qm, MassMemRef *km, MassMemRef *vm,
                       MassMemRef *outm, MassMemRef *lsem, MassMemRef *doutm,
                       MassMemRef *dqm, MassMemRef *dkm, MassMemRef *dvm,
                       int64_t index, int64_t heads, bool causal) {
  constexpr int64_t kRows = RV * kLanes;
  static_assert(kCols % kRows == 0, "blocks of keys start blocks of queries");
  View3 q(qm), k(km), v(vm), out(outm), lse(lsem), dout(doutm), dq(dqm),
      dk(dkm), dv(dvm);
  const int64_t queries = q.size[1], keys = k.size[1];
  const Head<NV> h(index, heads, q.size[2]);
  V kb[kCols * NV], vb[kCols * NV], dkb[kCols * NV], dvb[kCols * NV];
  V qb[kRows * NV], ob[kRows * NV], dob[kRows * NV], dqb[kRows * NV];
  V qt[NV * kLanes * RV], dot[NV * kLanes * RV];
  V pt[kCols * RV], dst[kCols * RV];
  V delta[RV], logSum[RV];
  const float *pf = reinterpret_cast<const float *>(pt);
  const float *dsf = reinterpret_cast<const float *>(dst);
  if (keys == 0) // no key block writes dq
    for (int64_t t = 0; t < queries; ++t)
      for (int64_t d = 0; d < h.width; ++d)
        dq.at(h.b, t, h.column + d) = 0;
  for (int64_t j0 = 0; j0 < keys; j0 += kCols) {
    const int64_t cols = std::min(kCols, keys - j0);
    h.load(k, j0, cols, kb);
    h.load(v, j0, cols, vb);
    std::fill(dkb, dkb + cols * NV, V{});
    std::fill(dvb, dvb + cols * NV, V{});
    // With the causal mask, queries before the block's first key see none
    // of its keys. Every block of queries meets the first block of keys,
    // which stores its dq; later blocks add to it.
    for (int64_t i0 = causal ? j0 : 0; i0 < queries; i0 += kRows) {
      const int64_t rows = std::min(kRows, queries - i0);
      // Only the keys some query of the tile sees take part.
      const int64_t seen = visibleKeys(cols, causal, i0, rows, j0);
      h.load(q, i0, rows, qb);
      h.load(dout, i0, rows, dob);
      h.load(out, i0, rows, ob);
      zeroTail<NV, RV>(qb, rows);
      zeroTail<NV, RV>(dob, rows);
      zeroTail<NV, RV>(ob, rows);
      transposeQueries<NV, RV>(qb, h.scale, qt);
      transposeQueries<NV, RV>(dob, 1.0f, dot);
      // delta = dout . out: the softmax's gradient term per query.
      rowDots<NV, RV>(dob, ob, delta);
      // Queries past the block's end get an infinite log-sum-exp: their
      // probabilities are 0.
      for (int64_t rv = 0; rv < RV; ++rv)
        logSum[rv] = splat(std::numeric_limits<float>::infinity());
      for (int64_t r = 0; r < rows; ++r)
        logSum[r / kLanes][r % kLanes] = lse.at(h.b, h.head, i0 + r);
      // p = the tile's probabilities, from the forward's log-sum-exp.
      tileScores<NV, RV>(kb, qt, seen, h.width, causal, i0, j0, pt);
      for (int64_t c = 0; c < seen; ++c)
        for (int64_t rv = 0; rv < RV; ++rv) {
          V &x = pt[c * RV + rv];
          x = expv(x - logSum[rv]);
        }
      // dv[c] += sum_r p[c][r] dout[r]
      accumulate<NV>(pf, kRows, 1, seen, rows, dob, NV, dvb, NV, true);
      // dp[c][r] = v[c] . dout[r]; ds = p * (dp - delta) * scale
      accumulate<RV>(reinterpret_cast<const float *>(vb), NV * kLanes, 1, seen,
                     h.width, dot, RV, dst, RV, false);
      for (int64_t c = 0; c < seen; ++c)
        for (int64_t rv = 0; rv < RV; ++rv) {
          V &x = dst[c * RV + rv];
          x = pt[c * RV + rv] * (x - delta[rv]) * h.scale;
        }
      // dq[r] (+)= sum_c ds[c][r] k[c]; dk[c] += sum_r ds[c][r] q[r]
      accumulate<NV>(dsf, 1, kRows, rows, seen, kb, NV, dqb, NV, false);
      h.store(dqb, i0, rows, dq, j0 > 0);
      accumulate<NV>(dsf, kRows, 1, seen, rows, qb, NV, dkb, NV, true);
    }
    h.store(dkb, j0, cols, dk, false);
    h.store(dvb, j0, cols, dv, false);
  }
}

/// Calls `kernel(nv, rv)` with std::integral_constants: NV the smallest
/// number of vectors, of 1, 2, 4, 8 and 16, that holds a head of `width`
/// features; RV the vectors of a block of queries. Short causal sequences
/// take blocks of 16 queries: the blocks on the diagonal, half hidden by
/// the mask, are then smaller (spec 09's 64 positions: about 15% faster
/// than 32); longer ones take 32, fewer loads per FMA in the scores.
template <typename Kernel>
void withTiles(int64_t width, int64_t queries, bool causal, Kernel kernel) {
  auto rows = [&](auto nv) {
    if (causal && queries <= 256)
      return kernel(nv, std::integral_constant<int, 1>{});
    return kernel(nv, std::integral_constant<int, 2>{});
  };
  if (width <= kLanes)
    return rows(std::integral_constant<int, 1>{});
  if (width <= 2 * kLanes)
    return rows(std::integral_constant<int, 2>{});
  if (width <= 4 * kLanes)
    return rows(std::integral_constant<int, 4>{});
  if (width <= 8 * kLanes)
    return rows(std::integral_constant<int, 8>{});
  return rows(std::integral_constant<int, 16>{});
}

} // namespace

extern "C" void _mlir_ciface_mass_attention_forward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, int64_t index, int64_t heads, int64_t causal) {
  withTiles(q->sizes_and_strides[2] / heads, q->sizes_and_strides[1], causal,
            [&](auto nv, auto rv) {
              attentionForward<decltype(nv)::value, decltype(rv)::value>(
                  q, k, v, out, lse, index, heads, causal);
            });
}

extern "C" void _mlir_ciface_mass_attention_backward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, MassMemRef *dout, MassMemRef *dq, MassMemRef *dk,
    MassMemRef *dv, int64_t index, int64_t heads, int64_t causal) {
  withTiles(q->sizes_and_strides[2] / heads, q->sizes_and_strides[1], causal,
            [&](auto nv, auto rv) {
              attentionBackward<decltype(nv)::value, decltype(rv)::value>(
                  q, k, v, out, lse, dout, dq, dk, dv, index, heads, causal);
            });
}
