//===- DeviceKernelLaunch.h - Running DeviceKernels.h's grids ---*- C++ -*-===//
//
// The generated code's calls of the runtime's GPU kernels (DeviceCalls.cpp)
// run each kernel over a one-dimensional grid of `threads` threads through
// launchDeviceKernel, which the program's device half defines: a launch on
// the GPU's stream (Cuda.cpp), or every thread in turn on the host
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

} // namespace mass::rt::device

#endif // MASS_RUNTIME_DEVICEKERNELLAUNCH_H
