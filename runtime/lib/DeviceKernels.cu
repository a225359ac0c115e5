//===- DeviceKernels.cu - DeviceKernels.h's threads as CUDA kernels -------===//
//
// Compiled by the toolkit's nvcc into a fat binary (a cubin for sm_90 and
// PTX the driver compiles for other GPUs), which libmass_cuda.a embeds and
// loads through the driver API (Cuda.cpp). Attention: tiled blocks of
// kAttentionBlock threads, one per row of a head, over a two-dimensional
// grid (heads, row blocks). Layer norm's gradient: one thread per row, a
// one-dimensional grid of `threads` threads in all.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernels.h"

using namespace mass::rt::device;

namespace {

__device__ int64_t threadIndex() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

} // namespace

namespace {

/// A tiled attention kernel (DeviceKernels.h): block (x, y) of
/// kAttentionBlock threads, head x, rows y * kAttentionBlock onwards; the
/// tiles in shared memory, a barrier after each load and each step.
template <class K> __device__ void runTiled(const AttentionArgs &a) {
  __shared__ typename K::Tile tile;
  const HeadBlock h(a, blockIdx.x,
                    static_cast<int64_t>(blockIdx.y) * kAttentionBlock);
  typename K::Row r;
  K::begin(r, a, h, h.first + threadIdx.x);
  int64_t from = 0, to = 0;
  K::range(a, h, from, to);
  for (int64_t first = from; first < to; first += K::Tile::kRows) {
    const int64_t n = to - first < K::Tile::kRows ? to - first : K::Tile::kRows;
    K::load(tile, a, h, first, n, threadIdx.x, kAttentionBlock);
    __syncthreads();
    K::step(r, tile, h, first, n);
    __syncthreads();
  }
  K::end(r, a, h);
}

} // namespace

#define MASS_ATTENTION_KERNELS(MAXD)                                           \
  extern "C" __global__ void __launch_bounds__(kAttentionBlock)                \
      mass_attention_forward_##MAXD(const AttentionArgs a) {                   \
    runTiled<AttentionForward<MAXD>>(a);                                       \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(kAttentionBlock)                \
      mass_attention_backward_queries_##MAXD(const AttentionArgs a) {          \
    runTiled<AttentionBackwardQueries<MAXD>>(a);                               \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(kAttentionBlock)                \
      mass_attention_backward_keys_##MAXD(const AttentionArgs a) {             \
    runTiled<AttentionBackwardKeys<MAXD>>(a);                                  \
  }

MASS_ATTENTION_KERNELS(32)
MASS_ATTENTION_KERNELS(64)
MASS_ATTENTION_KERNELS(128)
MASS_ATTENTION_KERNELS(256)

#define MASS_LAYERNORM_KERNEL(NAME, FUNCTION)                                  \
  extern "C" __global__ void NAME(const LayerNormArgs a, int64_t threads) {    \
    const int64_t t = threadIndex();                                           \
    if (t < threads)                                                           \
      FUNCTION(a, t);                                                          \
  }

MASS_LAYERNORM_KERNEL(mass_layernorm_backward_rows, layerNormBackwardRow)
MASS_LAYERNORM_KERNEL(mass_layernorm_backward_partial, layerNormBackwardPartial)
MASS_LAYERNORM_KERNEL(mass_layernorm_backward_sums, layerNormBackwardSum)

extern "C" __global__ void mass_nonfinite(const FiniteArgs a,
                                          int64_t threads) {
  const int64_t t = threadIndex();
  if (t < threads)
    nonfiniteElement(a, t);
}

extern "C" __global__ void mass_sum_squares(const SquaresArgs a,
                                            int64_t threads) {
  const int64_t t = threadIndex();
  if (t < threads)
    sumSquaresLane(a, t);
}

extern "C" __global__ void mass_gelu_tanh(const GeluArgs a, int64_t threads) {
  const int64_t t = threadIndex();
  if (t < threads)
    geluTanhElement(a, t);
}
