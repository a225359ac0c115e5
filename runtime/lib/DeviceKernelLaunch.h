//===- DeviceKernelLaunch.h - Running DeviceKernels.h's grids ---*- C++ -*-===//
//
// The generated code's calls of the runtime's GPU kernels (DeviceCalls.cpp)
// run attention's tiled kernels through launchAttentionKernel, layer norm's
// over a one-dimensional grid of `threads` threads through
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

/// Runs DeviceKernels.cu's tiled attention kernel `name` (such as
/// "mass_attention_forward_64") over `count` heads of `rows` rows each (the
/// kernel's query or key rows): blocks of kAttentionBlock threads; nothing
/// when either is not positive.
void launchAttentionKernel(const std::string &name, const AttentionArgs &args,
                           int64_t rows, int64_t count);

/// Runs DeviceKernels.cu's kernel `name` (such as
/// "mass_layernorm_backward_rows") over `threads` threads; nothing when
/// `threads` is not positive.
void launchDeviceKernel(const std::string &name, const LayerNormArgs &args,
                        int64_t threads);
void launchDeviceKernel(const std::string &name, const GeluArgs &args,
                        int64_t threads);
void launchDeviceKernel(const std::string &name, const FiniteArgs &args,
                        int64_t threads);
void launchDeviceKernel(const std::string &name, const SquaresArgs &args,
                        int64_t threads);

/// The arguments of cuBLAS's cublasSgemmStridedBatched, column-major:
/// for each of `batch` matrices, C (m x n, leading dimension ldc) =
/// op(first) (m x k) * op(second) (k x n) + C, or without `accumulate`
/// the product alone, or with `bias` (one batch) the product plus
/// bias[i] on each row i (cuBLASLt's bias epilogue), and with `relu` too
/// max(that, 0) (its ReLU-and-bias epilogue), or with `gelu` C the
/// product plus the bias and `gelu` (leading dimension `ldGelu`) its tanh
/// GELU (the GELU epilogue, C its auxiliary output). `transFirst` and
/// `transSecond` choose op (the transpose or not); a stride of 0 reads
/// the same matrix for every batch.
struct GemmArgs {
  bool transFirst = false, transSecond = false;
  bool accumulate = true;
  const float *bias = nullptr;
  bool relu = false;     // only with a bias
  float *gelu = nullptr; // only with a bias
  int64_t ldGelu = 0;
  int64_t m = 0, n = 0, k = 0, batch = 0;
  const float *first = nullptr, *second = nullptr;
  float *c = nullptr;
  int64_t ldFirst = 0, ldSecond = 0, ldc = 0;
  int64_t strideFirst = 0, strideSecond = 0, strideC = 0;
};

/// Runs the product (cuBLAS on the GPU, a plain loop nest of the same
/// meaning when emulated).
void launchGemm(const GemmArgs &args);

/// A product with `gelu`: C and the GELU's output as row-major [n, m]
/// views, for the GELU kernel.
inline GeluArgs geluOperands(const GemmArgs &g) {
  GeluArgs a{};
  a.x = Strided{g.c, {g.n, g.m, 1}, {g.ldc, 1, 0}};
  a.y = Strided{g.gelu, {g.n, g.m, 1}, {g.ldGelu, 1, 0}};
  return a;
}

/// Whether cuBLASLt's GELU epilogue may compute a product with `gelu`:
/// C's leading dimension (the auxiliary output's) a multiple of 8, as
/// cuBLASLt requires, and the GELU's output apart from the operands the
/// product still reads while the epilogue writes it (the arena may have
/// placed it over one whose last read is the product).
inline bool geluEpilogueFits(const GemmArgs &g) {
  if (g.batch != 1 || g.ldc % 8 != 0)
    return false;
  // Elements spanned by a column-major matrix of `cols` columns.
  auto end = [](const float *p, int64_t rows, int64_t cols, int64_t ld) {
    return p + (cols - 1) * ld + rows;
  };
  const float *out = g.gelu, *outEnd = end(g.gelu, g.m, g.n, g.ldGelu);
  const float *first = g.first, *second = g.second;
  const float *firstEnd = g.transFirst ? end(first, g.k, g.m, g.ldFirst)
                                       : end(first, g.m, g.k, g.ldFirst);
  const float *secondEnd = g.transSecond ? end(second, g.n, g.k, g.ldSecond)
                                         : end(second, g.k, g.n, g.ldSecond);
  auto apart = [&](const float *p, const float *pEnd) {
    return pEnd <= out || outEnd <= p;
  };
  return apart(first, firstEnd) && apart(second, secondEnd) &&
         apart(g.c, end(g.c, g.m, g.n, g.ldc));
}

} // namespace mass::rt::device

#endif // MASS_RUNTIME_DEVICEKERNELLAUNCH_H
