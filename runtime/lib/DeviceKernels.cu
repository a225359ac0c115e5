//===- DeviceKernels.cu - DeviceKernels.h's threads as CUDA kernels -------===//
//
// Compiled by the toolkit's nvcc into a fat binary (a cubin for sm_90 and
// PTX the driver compiles for other GPUs), which libmass_cuda.a embeds and
// loads through the driver API (CudaKernels.cpp). One thread per row; the
// grid is one-dimensional, `threads` threads in all.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernels.h"

using namespace mass::rt::device;

namespace {

__device__ int64_t threadIndex() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

} // namespace

#define MASS_ATTENTION_KERNELS(MAXD)                                           \
  extern "C" __global__ void mass_attention_forward_##MAXD(                    \
      const AttentionArgs a, int64_t threads) {                                \
    const int64_t t = threadIndex();                                           \
    if (t < threads)                                                           \
      attentionForwardRow<MAXD>(a, t);                                         \
  }                                                                            \
  extern "C" __global__ void mass_attention_backward_queries_##MAXD(           \
      const AttentionArgs a, int64_t threads) {                                \
    const int64_t t = threadIndex();                                           \
    if (t < threads)                                                           \
      attentionBackwardQueryRow<MAXD>(a, t);                                   \
  }                                                                            \
  extern "C" __global__ void mass_attention_backward_keys_##MAXD(              \
      const AttentionArgs a, int64_t threads) {                                \
    const int64_t t = threadIndex();                                           \
    if (t < threads)                                                           \
      attentionBackwardKeyRow<MAXD>(a, t);                                     \
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
