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

template <int MAXD>
void addAttention(std::map<std::string, Thread<AttentionArgs>> &kernels) {
  const std::string suffix = "_" + std::to_string(MAXD);
  kernels["mass_attention_forward" + suffix] = attentionForwardRow<MAXD>;
  kernels["mass_attention_backward_queries" + suffix] =
      attentionBackwardQueryRow<MAXD>;
  kernels["mass_attention_backward_keys" + suffix] =
      attentionBackwardKeyRow<MAXD>;
}

Thread<AttentionArgs> threadOf(const std::string &name, const AttentionArgs *) {
  static const auto kernels = [] {
    std::map<std::string, Thread<AttentionArgs>> k;
    addAttention<32>(k);
    addAttention<64>(k);
    addAttention<128>(k);
    addAttention<256>(k);
    return k;
  }();
  auto it = kernels.find(name);
  return it == kernels.end() ? nullptr : it->second;
}

Thread<LayerNormArgs> threadOf(const std::string &name, const LayerNormArgs *) {
  static const std::map<std::string, Thread<LayerNormArgs>> kernels = {
      {"mass_layernorm_backward_rows", layerNormBackwardRow},
      {"mass_layernorm_backward_partial", layerNormBackwardPartial},
      {"mass_layernorm_backward_sums", layerNormBackwardSum}};
  auto it = kernels.find(name);
  return it == kernels.end() ? nullptr : it->second;
}

template <typename Args>
void runGrid(const std::string &name, const Args &args, int64_t threads) {
  Thread<Args> thread = threadOf(name, &args);
  if (!thread) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: the runtime has no GPU kernel '%s'\n",
                 name.c_str());
    std::exit(1);
  }
  for (int64_t t = 0; t < threads; ++t)
    thread(args, t);
}

} // namespace

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const AttentionArgs &args,
                                          int64_t threads) {
  runGrid(name, args, threads);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const LayerNormArgs &args,
                                          int64_t threads) {
  runGrid(name, args, threads);
}

// cublasSgemmStridedBatched's meaning (cuBLASLt's with a bias), column-major,
// summed over k in order.
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
      }
  }
}
