//===- DeviceCalls.cpp - The generated code's calls of GPU kernels --------===//
//
// On the CUDA target the host calls the runtime's attention and layer-norm
// kernels once for what the CPU target calls once per sample and head (or
// chunk of rows), `count` the number of those calls; each call runs
// DeviceKernels.h's threads over the whole batch (DeviceKernelLaunch.h).
// Linked into GPU programs (libmass_cuda.a) and emulated ones
// (libmass_cuda_emulated.a).
//
//===----------------------------------------------------------------------===//

#include "DeviceKernelLaunch.h"
#include "mass/abi.h"

#include <string>

using namespace mass::rt::device;

namespace {

/// A memref descriptor of rank `rank` (at most 3) as a kernel's view.
Strided strided(const MassMemRef *m, int rank) {
  Strided s{static_cast<float *>(m->aligned) + m->offset, {1, 1, 1}, {0, 0, 0}};
  for (int i = 0; i < rank; ++i) {
    s.size[i] = m->sizes_and_strides[i];
    s.stride[i] = m->sizes_and_strides[rank + i];
  }
  return s;
}

/// The kernels' name suffix for a head of `width` features.
std::string headSuffix(int64_t width) {
  return "_" + std::to_string(accumulatorWidth(width));
}

} // namespace

extern "C" {

void _mlir_ciface_mass_cuda_attention_forward(MassMemRef *q, MassMemRef *k,
                                              MassMemRef *v, MassMemRef *out,
                                              MassMemRef *lse, int64_t count,
                                              int64_t heads, int64_t causal) {
  AttentionArgs a{};
  a.q = strided(q, 3), a.k = strided(k, 3), a.v = strided(v, 3);
  a.out = strided(out, 3), a.lse = strided(lse, 3);
  a.heads = heads, a.causal = causal;
  launchDeviceKernel("mass_attention_forward" + headSuffix(a.q.size[2] / heads),
                     a, count * a.q.size[1]);
}

void _mlir_ciface_mass_cuda_attention_backward(
    MassMemRef *q, MassMemRef *k, MassMemRef *v, MassMemRef *out,
    MassMemRef *lse, MassMemRef *dout, MassMemRef *dq, MassMemRef *dk,
    MassMemRef *dv, int64_t count, int64_t heads, int64_t causal) {
  AttentionArgs a{};
  a.q = strided(q, 3), a.k = strided(k, 3), a.v = strided(v, 3);
  a.out = strided(out, 3), a.lse = strided(lse, 3);
  a.dout = strided(dout, 3), a.dq = strided(dq, 3), a.dk = strided(dk, 3);
  a.dv = strided(dv, 3);
  a.heads = heads, a.causal = causal;
  const std::string suffix = headSuffix(a.q.size[2] / heads);
  launchDeviceKernel("mass_attention_backward_queries" + suffix, a,
                     count * a.q.size[1]);
  launchDeviceKernel("mass_attention_backward_keys" + suffix, a,
                     count * a.k.size[1]);
}

void _mlir_ciface_mass_cuda_layernorm_backward(
    MassMemRef *x, MassMemRef *mean, MassMemRef *rstd, MassMemRef *weight,
    MassMemRef *dy, MassMemRef *dx, MassMemRef *partial, int64_t chunks) {
  LayerNormArgs a{};
  a.x = strided(x, 2), a.mean = strided(mean, 1), a.rstd = strided(rstd, 1);
  a.weight = strided(weight, 1), a.dy = strided(dy, 2), a.dx = strided(dx, 2);
  a.partial = strided(partial, 3);
  a.chunks = chunks;
  launchDeviceKernel("mass_layernorm_backward_rows", a, a.x.size[0]);
  launchDeviceKernel("mass_layernorm_backward_partial", a,
                     chunks * a.x.size[1]);
}

void _mlir_ciface_mass_cuda_layernorm_backward_sums(MassMemRef *partial,
                                                    MassMemRef *dweight,
                                                    MassMemRef *dbias) {
  LayerNormArgs a{};
  a.partial = strided(partial, 3), a.dweight = strided(dweight, 1);
  a.dbias = strided(dbias, 1);
  launchDeviceKernel("mass_layernorm_backward_sums", a, a.partial.size[2]);
}

} // extern "C"
