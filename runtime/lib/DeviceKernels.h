//===- DeviceKernels.h - The GPU's attention and layer-norm kernels -------===//
//
// What the GPU's threads compute in the kernels that stand for the CPU
// runtime's attention and layer-norm kernels (Attention.cpp, LayerNorm.cpp)
// on the CUDA target. The functions compile both as CUDA device code
// (DeviceKernels.cu wraps them in __global__ kernels) and as host C++,
// where the emulated GPU and the unit tests run every thread of a grid in
// turn and compare with the CPU kernels.
//
// Attention is tiled as FlashAttention is: a block of kAttentionBlock
// threads owns that many query rows of one head (each thread one row, its
// query and accumulator in registers) and streams the keys and values
// through shared memory a tile at a time; the scores and probabilities are
// never stored. The forward pass keeps an online softmax (a running maximum
// and sum) and writes each row's log-sum-exp; the backward pass recomputes
// each probability from it: one kernel for dq (blocks of query rows over
// tiles of keys), one for dk and dv (blocks of key rows over tiles of
// queries, their dOut rows and deltas: sums over the queries in order, no
// atomics). Each thread's arithmetic is one row's, in order; only the
// loads are shared, and the host runs the phases between barriers in turn
// (runTiledBlock), so the emulation computes what the GPU does.
//
// Layer norm's gradient: one thread per row writes dx; one per (chunk of
// rows, column) the chunk's sums; one per column adds the chunks in order,
// as the CPU kernel does. GPT-2's GELU after a product cuBLASLt could not
// take as its epilogue: one thread per element. Those threads share
// nothing.
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
#include <memory>
#include <vector>
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

// expOf, logOf, tanhOf: CUDA's float functions on the device, the C++
// library's on the host.
#ifdef __CUDA_ARCH__
#define MASS_FLOAT_FUNCTION(NAME, DEVICE, HOST)                                \
  MASS_HD inline float NAME(float x) { return DEVICE(x); }
#else
#define MASS_FLOAT_FUNCTION(NAME, DEVICE, HOST)                                \
  MASS_HD inline float NAME(float x) { return HOST(x); }
#endif
MASS_FLOAT_FUNCTION(expOf, expf, std::exp)
MASS_FLOAT_FUNCTION(logOf, logf, std::log)
MASS_FLOAT_FUNCTION(tanhOf, tanhf, std::tanh)
#undef MASS_FLOAT_FUNCTION
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

/// Attention's grids: block (x, y) of kAttentionBlock threads holds query
/// (or key) rows y * kAttentionBlock onwards of head x, where head x is
/// head x % heads of sample x / heads; thread t of the block owns one row.
constexpr int kAttentionBlock = 64;

/// The rows a block streams through shared memory at a time: K and V (or
/// Q and dOut) tiles of AttentionTile<MAXD> rows, 32 KiB together.
template <int MAXD> struct AttentionTile {
  static constexpr int kRows = 4096 / MAXD;
  float x[kRows * MAXD], y[kRows * MAXD];
  float lse[kRows], delta[kRows];
};

/// The head a block works on and its first row.
struct HeadBlock {
  int64_t b, head, column, width, first;
  float scale;

  MASS_HD HeadBlock(const AttentionArgs &a, int64_t headIndex,
                    int64_t firstRow) {
    b = headIndex / a.heads;
    head = headIndex % a.heads;
    width = a.q.size[2] / a.heads;
    column = head * width;
    first = firstRow;
    scale = rsqrtOf(static_cast<float>(width));
  }
  /// Row `r` of `x`'s head features, into registers (zeros past the width).
  template <int MAXD>
  MASS_HD void row(const Strided &x, int64_t r, float *out) const {
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      out[d] = d < width ? x.at(b, r, column + d) : 0.0f;
  }
  /// Rows [first, first + n) of `x`'s head features into a tile of rows of
  /// MAXD floats, thread `thread` of `threads` copying every threads-th
  /// element (consecutive threads read consecutive features).
  template <int MAXD>
  MASS_HD void load(const Strided &x, int64_t firstRow, int64_t n, float *tile,
                    int64_t thread, int64_t threads) const {
    for (int64_t e = thread; e < n * width; e += threads) {
      const int64_t r = e / width, d = e % width;
      tile[r * MAXD + d] = x.at(b, firstRow + r, column + d);
    }
  }
  /// acc[d] += s * x[d] over the head's features.
  template <int MAXD>
  MASS_HD void addScaled(float *acc, float s, const float *x) const {
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      if (d < width)
        acc[d] += s * x[d];
  }
  /// Row `r` of `x`'s head features = values * scale.
  template <int MAXD>
  MASS_HD void store(const Strided &x, int64_t r, const float *values,
                     float scale = 1.0f) const {
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      if (d < width)
        x.at(b, r, column + d) = values[d] * scale;
  }
  /// The sum over the head's features of x[d] * y[d], in order.
  template <int MAXD> MASS_HD float dot(const float *x, const float *y) const {
    float s = 0;
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      if (d < width)
        s += x[d] * y[d];
    return s;
  }
};

/// The keys query `i` sees: all, or under a causal mask those up to `i`.
MASS_HD inline int64_t visibleKeys(const AttentionArgs &a, int64_t i) {
  const int64_t keys = a.k.size[1];
  return a.causal && i + 1 < keys ? i + 1 : keys;
}

/// The keys a block of query rows sees (its last row sees the most).
MASS_HD inline int64_t blockKeys(const AttentionArgs &a, const HeadBlock &h) {
  const int64_t last = h.first + kAttentionBlock < a.q.size[1]
                           ? h.first + kAttentionBlock
                           : a.q.size[1];
  return last > h.first ? visibleKeys(a, last - 1) : 0;
}

// The three kernels, each as the phases of a tiled block: `begin` (a
// thread's row into registers), for each tile of the rows the block
// streams [from, to): `load` (every thread copies its share into shared
// memory) and, after a barrier, `step` (each thread takes the tile's rows
// in order), then `end` (the row's results out). A thread's arithmetic is
// that of one row in order, as the CPU kernels do it; only the loads are
// shared. runTiled (DeviceKernels.cu) and runTiledBlock (the host) drive
// the phases.

/// The phases the kernels over query rows share: blocks of query rows, the
/// keys they see (K and V rows) streamed a tile at a time.
template <int MAXD> struct OverKeys {
  MASS_HD static int64_t rows(const AttentionArgs &a) { return a.q.size[1]; }
  MASS_HD static void range(const AttentionArgs &a, const HeadBlock &h,
                            int64_t &from, int64_t &to) {
    from = 0, to = blockKeys(a, h);
  }
  MASS_HD static void load(AttentionTile<MAXD> &t, const AttentionArgs &a,
                           const HeadBlock &h, int64_t first, int64_t n,
                           int64_t thread, int64_t threads) {
    h.load<MAXD>(a.k, first, n, t.x, thread, threads);
    h.load<MAXD>(a.v, first, n, t.y, thread, threads);
  }
};

/// Forward: a query row's output and log-sum-exp with an online softmax
/// over the keys (FlashAttention's recurrence: a running maximum and sum,
/// the accumulated row rescaled when the maximum moves).
template <int MAXD> struct AttentionForward : OverKeys<MAXD> {
  using Tile = AttentionTile<MAXD>;
  struct Row {
    int64_t i, keys;
    float q[MAXD], acc[MAXD], top, sum;
  };
  MASS_HD static void begin(Row &r, const AttentionArgs &a, const HeadBlock &h,
                            int64_t i) {
    r.i = i;
    r.keys = i < a.q.size[1] ? visibleKeys(a, i) : 0;
    if (r.keys)
      h.row<MAXD>(a.q, i, r.q);
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      r.acc[d] = 0;
    r.top = -INFINITY, r.sum = 0;
  }
  MASS_HD static void step(Row &r, const Tile &t, const HeadBlock &h,
                           int64_t first, int64_t n) {
    const int64_t end = first + n < r.keys ? first + n : r.keys;
    for (int64_t j = first; j < end; ++j) {
      const float *k = t.x + (j - first) * MAXD, *v = t.y + (j - first) * MAXD;
      const float s = h.scale * h.dot<MAXD>(r.q, k);
      if (s > r.top) {
        // The running maximum moves: what was summed scales down.
        const float rescale = expOf(r.top - s);
        r.sum *= rescale;
        MASS_UNROLL
        for (int d = 0; d < MAXD; ++d)
          r.acc[d] *= rescale;
        r.top = s;
      }
      const float p = expOf(s - r.top);
      r.sum += p;
      h.addScaled<MAXD>(r.acc, p, v);
    }
  }
  MASS_HD static void end(const Row &r, const AttentionArgs &a,
                          const HeadBlock &h) {
    if (r.i >= a.q.size[1])
      return;
    // A query that sees no key gets zeros and a log-sum-exp of -inf.
    h.store<MAXD>(a.out, r.i, r.acc, r.sum > 0 ? 1.0f / r.sum : 0.0f);
    a.lse.at(h.b, h.head, r.i) = r.sum > 0 ? r.top + logOf(r.sum) : -INFINITY;
  }
};

/// delta = dout[b, i] . out[b, i] over the head's features.
MASS_HD inline float attentionDelta(const AttentionArgs &a, const HeadBlock &h,
                                    int64_t i) {
  float delta = 0;
  for (int64_t d = 0; d < h.width; ++d)
    delta += a.dout.at(h.b, i, h.column + d) * a.out.at(h.b, i, h.column + d);
  return delta;
}

/// Backward, one query row: its row of dq, each probability recomputed
/// from the log-sum-exp, the keys in order.
template <int MAXD> struct AttentionBackwardQueries : OverKeys<MAXD> {
  using Tile = AttentionTile<MAXD>;
  struct Row {
    int64_t i, keys;
    float q[MAXD], dout[MAXD], acc[MAXD], delta, logSum;
  };
  MASS_HD static void begin(Row &r, const AttentionArgs &a, const HeadBlock &h,
                            int64_t i) {
    r.i = i;
    r.keys = i < a.q.size[1] ? visibleKeys(a, i) : 0;
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      r.acc[d] = 0;
    if (!r.keys)
      return;
    h.row<MAXD>(a.q, i, r.q);
    h.row<MAXD>(a.dout, i, r.dout);
    r.delta = attentionDelta(a, h, i);
    r.logSum = a.lse.at(h.b, h.head, i);
  }
  MASS_HD static void step(Row &r, const Tile &t, const HeadBlock &h,
                           int64_t first, int64_t n) {
    const int64_t end = first + n < r.keys ? first + n : r.keys;
    for (int64_t j = first; j < end; ++j) {
      const float *k = t.x + (j - first) * MAXD, *v = t.y + (j - first) * MAXD;
      const float p = expOf(h.scale * h.dot<MAXD>(r.q, k) - r.logSum);
      const float ds = p * (h.dot<MAXD>(r.dout, v) - r.delta) * h.scale;
      h.addScaled<MAXD>(r.acc, ds, k);
    }
  }
  MASS_HD static void end(const Row &r, const AttentionArgs &a,
                          const HeadBlock &h) {
    if (r.i < a.q.size[1])
      h.store<MAXD>(a.dq, r.i, r.acc);
  }
};

/// Backward, one key row: its rows of dk and dv, sums over the queries
/// that see the key, in order (no atomics). The tiles hold Q and dOut rows
/// and each query's log-sum-exp and delta.
template <int MAXD> struct AttentionBackwardKeys {
  using Tile = AttentionTile<MAXD>;
  struct Row {
    int64_t j, from;
    float k[MAXD], v[MAXD], dk[MAXD], dv[MAXD];
  };
  MASS_HD static int64_t rows(const AttentionArgs &a) { return a.k.size[1]; }
  MASS_HD static void begin(Row &r, const AttentionArgs &a, const HeadBlock &h,
                            int64_t j) {
    r.j = j;
    // Under a causal mask key j is seen by queries j onwards.
    r.from = j >= a.k.size[1] ? a.q.size[1] : a.causal ? j : 0;
    MASS_UNROLL
    for (int d = 0; d < MAXD; ++d)
      r.dk[d] = r.dv[d] = 0;
    if (r.from < a.q.size[1]) {
      h.row<MAXD>(a.k, j, r.k);
      h.row<MAXD>(a.v, j, r.v);
    }
  }
  MASS_HD static void range(const AttentionArgs &a, const HeadBlock &h,
                            int64_t &from, int64_t &to) {
    from = a.causal ? h.first : 0, to = a.q.size[1];
  }
  MASS_HD static void load(Tile &t, const AttentionArgs &a, const HeadBlock &h,
                           int64_t first, int64_t n, int64_t thread,
                           int64_t threads) {
    h.load<MAXD>(a.q, first, n, t.x, thread, threads);
    h.load<MAXD>(a.dout, first, n, t.y, thread, threads);
    for (int64_t e = thread; e < n; e += threads) {
      t.lse[e] = a.lse.at(h.b, h.head, first + e);
      t.delta[e] = attentionDelta(a, h, first + e);
    }
  }
  MASS_HD static void step(Row &r, const Tile &t, const HeadBlock &h,
                           int64_t first, int64_t n) {
    for (int64_t i = first > r.from ? first : r.from; i < first + n; ++i) {
      const float *q = t.x + (i - first) * MAXD;
      const float *dout = t.y + (i - first) * MAXD;
      const float p = expOf(h.scale * h.dot<MAXD>(q, r.k) - t.lse[i - first]);
      const float ds =
          p * (h.dot<MAXD>(dout, r.v) - t.delta[i - first]) * h.scale;
      h.addScaled<MAXD>(r.dv, p, dout);
      h.addScaled<MAXD>(r.dk, ds, q);
    }
  }
  MASS_HD static void end(const Row &r, const AttentionArgs &a,
                          const HeadBlock &h) {
    if (r.j >= a.k.size[1])
      return;
    h.store<MAXD>(a.dk, r.j, r.dk);
    h.store<MAXD>(a.dv, r.j, r.dv);
  }
};

#ifndef __CUDACC__
/// Block (head, rowBlock) of a tiled kernel on the host: each phase of every
/// thread in turn, a barrier between phases.
template <class K>
void runTiledBlock(const AttentionArgs &a, int64_t head, int64_t rowBlock,
                   typename K::Tile &tile, typename K::Row *rows) {
  const HeadBlock h(a, head, rowBlock * kAttentionBlock);
  for (int t = 0; t < kAttentionBlock; ++t)
    K::begin(rows[t], a, h, h.first + t);
  int64_t from = 0, to = 0;
  K::range(a, h, from, to);
  for (int64_t first = from; first < to; first += K::Tile::kRows) {
    const int64_t n = to - first < K::Tile::kRows ? to - first : K::Tile::kRows;
    for (int t = 0; t < kAttentionBlock; ++t)
      K::load(tile, a, h, first, n, t, kAttentionBlock);
    for (int t = 0; t < kAttentionBlock; ++t)
      K::step(rows[t], tile, h, first, n);
  }
  for (int t = 0; t < kAttentionBlock; ++t)
    K::end(rows[t], a, h);
}

/// A tiled kernel's whole grid on the host, for `count` heads.
template <class K> void runTiledGrid(const AttentionArgs &a, int64_t count) {
  auto tile = std::make_unique<typename K::Tile>();
  std::vector<typename K::Row> rows(kAttentionBlock);
  const int64_t blocks = (K::rows(a) + kAttentionBlock - 1) / kAttentionBlock;
  for (int64_t head = 0; head < count; ++head)
    for (int64_t block = 0; block < blocks; ++block)
      runTiledBlock<K>(a, head, block, *tile, rows.data());
}
#endif

/// GPT-2's GELU of x [R, D] into y [R, D]: where cuBLASLt's GELU epilogue
/// cannot write it (DeviceCalls.cpp), after the product.
struct GeluArgs {
  Strided x, y;
};

/// The check for NaN and Inf in a gradient on the device (the training
/// loop's non-finite guard): element `t` of `x` sets `*flag` to 1 when it
/// is either (every such thread stores the same value).
struct FiniteArgs {
  const float *x;
  int32_t *flag;
};

MASS_HD inline void nonfiniteElement(const FiniteArgs &a, int64_t t) {
  const float x = a.x[t];
  // x - x is 0 for every finite x, NaN for NaN and the infinities.
  if (!(x - x == 0.0f))
    *a.flag = 1;
}

/// The sum of the squares of a gradient on the device (the sharded
/// optimizer's clipping norm), in an order fixed by `lanes`: thread `t` adds
/// the squares of x[t], x[t + lanes], ... (of `count`) to lane[t], in
/// double. The host adds the lanes in order.
struct SquaresArgs {
  const float *x;
  double *lane;
  int64_t count, lanes;
};

MASS_HD inline void sumSquaresLane(const SquaresArgs &a, int64_t t) {
  double sum = 0;
  for (int64_t k = t; k < a.count; k += a.lanes)
    sum += static_cast<double>(a.x[k]) * a.x[k];
  a.lane[t] += sum;
}

/// Element `t` (row-major) of y = (0.5 x) (1 + tanh(sqrt(2 / pi) (x +
/// 0.044715 x^3))), in the generated code's order of operations.
MASS_HD inline void geluTanhElement(const GeluArgs &a, int64_t t) {
  const int64_t cols = a.x.size[1];
  const int64_t i = t / cols, j = t % cols;
  const float x = a.x.at(i, j);
  const float inner = (x + x * x * x * 0.044715f) * 0.7978845608028654f;
  a.y.at(i, j) = x * 0.5f * (tanhOf(inner) + 1.0f);
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
