//===- CudaEmulated.cpp - A GPU program's device half on the host ---------===//
//
// Linked into the programs `massc --target=cuda --emulate-gpu` writes
// (libmass_cuda_emulated.a), in place of the driver-API half (Cuda.cpp):
// the "device" is host memory that follows the GPU's copy rules (Device.h),
// and the runtime's GPU kernels run every thread of their grid in turn, as
// the generated kernels do in those programs (mass-emulate-launches). The
// tests use it to check the CUDA target's program on machines without a
// GPU: the same kernels, launches and copies, only not in parallel.
//
//===----------------------------------------------------------------------===//

#include "Device.h"
#include "DeviceKernelLaunch.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

using namespace mass::rt;
using namespace mass::rt::device;

extern "C" Device *mass_cuda_device(std::string * /*error*/) {
  return makeHostMirror("an emulated GPU (host memory, one thread at a time)")
      .release();
}

namespace {

template <typename Args> using Thread = void (*)(const Args &, int64_t);

/// A tiled attention kernel's grid over `count` heads (DeviceKernels.h's
/// runTiledGrid: each block's threads phase by phase, as between barriers).
using AttentionGrid = void (*)(const AttentionArgs &, int64_t);

template <int MAXD>
void addAttention(std::map<std::string, AttentionGrid> &kernels) {
  const std::string suffix = "_" + std::to_string(MAXD);
  kernels["mass_attention_forward" + suffix] =
      runTiledGrid<AttentionForward<MAXD>>;
  kernels["mass_attention_backward_queries" + suffix] =
      runTiledGrid<AttentionBackwardQueries<MAXD>>;
  kernels["mass_attention_backward_keys" + suffix] =
      runTiledGrid<AttentionBackwardKeys<MAXD>>;
}

[[noreturn]] void noKernel(const std::string &name) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: the runtime has no GPU kernel '%s'\n",
               name.c_str());
  std::exit(1);
}

} // namespace

void mass::rt::device::launchAttentionKernel(const std::string &name,
                                             const AttentionArgs &args,
                                             int64_t rows, int64_t count) {
  static const auto kernels = [] {
    std::map<std::string, AttentionGrid> k;
    addAttention<32>(k);
    addAttention<64>(k);
    addAttention<128>(k);
    addAttention<256>(k);
    return k;
  }();
  auto it = kernels.find(name);
  if (it == kernels.end())
    noKernel(name);
  if (rows > 0 && count > 0)
    it->second(args, count);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const LayerNormArgs &args,
                                          int64_t threads) {
  static const std::map<std::string, Thread<LayerNormArgs>> kernels = {
      {"mass_layernorm_backward_rows", layerNormBackwardRow},
      {"mass_layernorm_backward_partial", layerNormBackwardPartial},
      {"mass_layernorm_backward_sums", layerNormBackwardSum}};
  auto it = kernels.find(name);
  if (it == kernels.end())
    noKernel(name);
  for (int64_t t = 0; t < threads; ++t)
    it->second(args, t);
}

// cublasSgemmStridedBatched's meaning (cuBLASLt's with a bias and a ReLU or
// a GELU), column-major, summed over k in order.
void mass::rt::device::launchGemm(const GemmArgs &g) {
  for (int64_t p = 0; p < g.batch; ++p) {
    const float *first = g.first + p * g.strideFirst;
    const float *second = g.second + p * g.strideSecond;
    float *c = g.c + p * g.strideC;
    for (int64_t j = 0; j < g.n; ++j)
      for (int64_t i = 0; i < g.m; ++i) {
        float sum = 0.0f;
        for (int64_t l = 0; l < g.k; ++l) {
          float x = g.transFirst ? first[l + i * g.ldFirst]
                                 : first[i + l * g.ldFirst];
          float y = g.transSecond ? second[j + l * g.ldSecond]
                                  : second[l + j * g.ldSecond];
          sum += x * y;
        }
        float &out = c[i + j * g.ldc];
        out = g.bias ? sum + g.bias[i] : g.accumulate ? out + sum : sum;
        // arith.maximumf's ReLU, as the CPU computes it (NaN stays NaN).
        if (g.relu && out < 0.0f)
          out = 0.0f;
      }
  }
  // The GELU epilogue's output, by the GPU's own GELU kernel.
  if (g.gelu) {
    const GeluArgs gelu = geluOperands(g);
    launchDeviceKernel("mass_gelu_tanh", gelu, gelu.x.size[0] * gelu.x.size[1]);
  }
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const GeluArgs &args,
                                          int64_t threads) {
  if (name != "mass_gelu_tanh")
    noKernel(name);
  for (int64_t t = 0; t < threads; ++t)
    geluTanhElement(args, t);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const FiniteArgs &args,
                                          int64_t threads) {
  if (name != "mass_nonfinite")
    noKernel(name);
  for (int64_t t = 0; t < threads; ++t)
    nonfiniteElement(args, t);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const SquaresArgs &args,
                                          int64_t threads) {
  if (name != "mass_sum_squares")
    noKernel(name);
  for (int64_t t = 0; t < threads; ++t)
    sumSquaresLane(args, t);
}

/// As Cuda.cpp's.
extern "C" void mass_device_sum_squares(const float *x, int64_t count,
                                        double *lane, int64_t lanes) {
  launchDeviceKernel("mass_sum_squares", SquaresArgs{x, lane, count, lanes},
                     std::min(count, lanes));
}

/// The training loop's non-finite guard (Train.cpp, which declares it weak):
/// sets `*flag` (device memory) to 1 when one of the `count` floats at `x`
/// (device memory) is NaN or Inf, queued in order with the steps. Defined
/// beside the device itself, which every GPU program links.
extern "C" void mass_device_nonfinite(const float *x, int64_t count,
                                      int32_t *flag) {
  launchDeviceKernel("mass_nonfinite", FiniteArgs{x, flag}, count);
}
