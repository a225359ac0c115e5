//===- DeviceKernelLaunch.h - Running DeviceKernels.h's grids ---*- C++ -*-===//
//
// The generated code's calls of the runtime's GPU kernels (DeviceCalls.cpp)
// run each kernel over a one-dimensional grid of `threads` threads through
// launchDeviceKernel, and each matrix product through launchGemm, which
// the program's device half defines: a launch on the GPU's stream and
// cuBLAS (Cuda.cpp), or every thread in turn and a loop nest on the host
// (CudaEmulated.cpp, for `massc --emulate-gpu`).
//
//===----------------------------------------------------------------------===//

#ifndef MASS_RUNTIME_DEVICEKERNELLAUNCH_H
#define MASS_RUNTIME_DEVICEKERNELLAUNCH_H

#include "DeviceKernels.h"

#include <cstdint>
#include <string>

namespace mass::rt::device {

/// Runs DeviceKernels.cu's kernel `name` (such as
/// "mass_attention_forward_64") over `threads` threads; nothing when
/// `threads` is not positive.
void launchDeviceKernel(const std::string &name, const AttentionArgs &args,
                        int64_t threads);
void launchDeviceKernel(const std::string &name, const LayerNormArgs &args,
                        int64_t threads);

/// The arguments of cuBLAS's cublasSgemmStridedBatched, column-major:
/// for each of `batch` matrices, C (m x n, leading dimension ldc) =
/// op(first) (m x k) * op(second) (k x n) + C, or without `accumulate`
/// the product alone, or with `bias` (one batch) the product plus
/// bias[i] on each row i (cuBLASLt's bias epilogue). `transFirst` and
/// `transSecond` choose op (the transpose or not); a stride of 0 reads
/// the same matrix for every batch.
struct GemmArgs {
  bool transFirst = false, transSecond = false;
  bool accumulate = true;
  const float *bias = nullptr;
  int64_t m = 0, n = 0, k = 0, batch = 0;
  const float *first = nullptr, *second = nullptr;
  float *c = nullptr;
  int64_t ldFirst = 0, ldSecond = 0, ldc = 0;
  int64_t strideFirst = 0, strideSecond = 0, strideC = 0;
};

/// Runs the product (cuBLAS on the GPU, a plain loop nest of the same
/// meaning when emulated).
void launchGemm(const GemmArgs &args);

} // namespace mass::rt::device

#endif // MASS_RUNTIME_DEVICEKERNELLAUNCH_H
