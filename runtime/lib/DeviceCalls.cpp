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

#include "Buckets.h"
#include "Comm.h"
#include "Device.h"
#include "DeviceKernelLaunch.h"
#include "mass/abi.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
  launchAttentionKernel("mass_attention_forward" +
                            headSuffix(a.q.size[2] / heads),
                        a, a.q.size[1], count);
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
  launchAttentionKernel("mass_attention_backward_queries" + suffix, a,
                        a.q.size[1], count);
  launchAttentionKernel("mass_attention_backward_keys" + suffix, a, a.k.size[1],
                        count);
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

/// A gradient is final once the kernels queued so far have run: its
/// bucket's sum (NCCL on a real GPU) is queued on the same stream after
/// them, as the CPU's report starts it (Buckets.cpp).
void mass_cuda_grad_ready(int64_t value) { mass_grad_ready(value); }

/// mass.sum_ranks on device memory: the GPU's sum over the processes
/// (NCCL on a real one), queued in order with the step's kernels. The
/// buffer is one bufferization allocated for the sums, contiguous.
void _mlir_ciface_mass_cuda_sum_ranks(MassMemRef *x) {
  if (!mass::rt::comm::parallel())
    return;
  if (x->sizes_and_strides[1] != 1)
    mass::rt::comm::fail("mass_cuda_sum_ranks: the sums are not contiguous");
  mass::rt::activeDevice()->sumRanks(
      {{static_cast<float *>(x->aligned) + x->offset,
        static_cast<size_t>(x->sizes_and_strides[0])}},
      "batch norm's statistics over the processes");
}

} // extern "C"

namespace {

/// A matrix `m` (its last two dimensions; its first the batch) as cuBLAS
/// reads it: column-major, either as stored (unit stride down a column) or
/// as its transpose (unit stride along a row).
struct ColumnMajor {
  const float *data;
  bool transposed; // cuBLAS sees the stored matrix's transpose
  int64_t ld;
  int64_t batchStride;
  int64_t batch;
};

[[noreturn]] void gemmError(const char *what) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: mass_cuda_gemm: %s\n", what);
  std::exit(1);
}

ColumnMajor columnMajor(const MassMemRef *m) {
  const int64_t *size = m->sizes_and_strides;
  const int64_t *stride = m->sizes_and_strides + 3;
  ColumnMajor out{static_cast<const float *>(m->aligned) + m->offset, false, 0,
                  size[0] == 1 ? 0 : stride[0], size[0]};
  const int64_t rows = size[1], cols = size[2];
  if (stride[2] == 1 && (rows <= 1 || stride[1] >= cols)) {
    out.transposed = true; // a row-major matrix: cols x rows column-major
    out.ld = std::max<int64_t>({stride[1], cols, 1});
  } else if (stride[1] == 1 && (cols <= 1 || stride[2] >= rows)) {
    out.ld = std::max<int64_t>({stride[2], rows, 1});
  } else {
    gemmError("an operand's layout is neither row- nor column-major");
  }
  return out;
}

/// The cuBLAS arguments of C[b] += A[b] * B[b] in row-major terms.
GemmArgs gemmArgs(MassMemRef *a, MassMemRef *b, MassMemRef *c,
                  int64_t aTransposed, int64_t bTransposed) {
  const int64_t *cs = c->sizes_and_strides;
  if (cs[5] != 1)
    gemmError("the result's rows are not contiguous");
  GemmArgs g;
  g.batch = cs[0], g.m = cs[2], g.n = cs[1];
  g.k = bTransposed ? b->sizes_and_strides[2] : b->sizes_and_strides[1];
  g.c = static_cast<float *>(c->aligned) + c->offset;
  g.ldc = std::max<int64_t>({cs[4], cs[2], 1});
  g.strideC = cs[0] == 1 ? 0 : cs[3];
  ColumnMajor first = columnMajor(b), second = columnMajor(a);
  for (const ColumnMajor *x : {&first, &second})
    if (x->batch != 1 && x->batch != g.batch)
      gemmError("an operand's batch is neither 1 nor the result's");
  // op(first) must be B^T: B's stored matrix when bTransposed, its
  // transpose otherwise; likewise op(second) is A^T.
  g.first = first.data, g.ldFirst = first.ld;
  g.strideFirst = first.batchStride;
  g.transFirst = first.transposed == static_cast<bool>(bTransposed);
  g.second = second.data, g.ldSecond = second.ld;
  g.strideSecond = second.batchStride;
  g.transSecond = second.transposed == static_cast<bool>(aTransposed);
  return g;
}

/// The product overwrites C with the bias added (one value per column of
/// the row-major C).
void setBias(GemmArgs &g, const MassMemRef *bias) {
  if (bias->sizes_and_strides[0] != g.m || bias->sizes_and_strides[1] != 1)
    gemmError("the bias is not one contiguous value per column");
  g.accumulate = false;
  g.bias = static_cast<const float *>(bias->aligned) + bias->offset;
}

} // namespace

extern "C" {

// C[b] (+)= A[b] * B[b] (row-major meaning; A read as [k, m] when
// aTransposed, B as [n, k] when bTransposed); an operand of batch 1 is
// shared by every batch. cuBLAS is column-major: the row-major C is its
// column-major transpose, C^T = B^T * A^T.
void _mlir_ciface_mass_cuda_gemm(MassMemRef *a, MassMemRef *b, MassMemRef *c,
                                 int64_t aTransposed, int64_t bTransposed,
                                 int64_t accumulate) {
  GemmArgs g = gemmArgs(a, b, c, aTransposed, bTransposed);
  g.accumulate = accumulate != 0;
  if (g.batch > 0 && g.m > 0 && g.n > 0)
    launchGemm(g);
}

// C = A * B + bias, the bias (one per column of the row-major C) broadcast
// over the rows, and with `activation` 1 the ReLU of that: cuBLASLt's bias
// (or ReLU and bias) epilogue.
void _mlir_ciface_mass_cuda_gemm_bias(MassMemRef *a, MassMemRef *b,
                                      MassMemRef *c, MassMemRef *bias,
                                      int64_t aTransposed, int64_t bTransposed,
                                      int64_t activation) {
  GemmArgs g = gemmArgs(a, b, c, aTransposed, bTransposed);
  setBias(g, bias);
  if (activation != 0 && activation != 1)
    gemmError("unknown activation epilogue");
  g.relu = activation == 1;
  if (g.batch > 0 && g.m > 0 && g.n > 0)
    launchGemm(g);
}

// C = A * B + bias and out = GPT-2's GELU of C, out shaped as C (rows
// contiguous): cuBLASLt's GELU epilogue, C its auxiliary output (the
// pre-activation, which the gradient reads).
void _mlir_ciface_mass_cuda_gemm_bias_gelu(MassMemRef *a, MassMemRef *b,
                                           MassMemRef *c, MassMemRef *bias,
                                           MassMemRef *out, int64_t aTransposed,
                                           int64_t bTransposed) {
  GemmArgs g = gemmArgs(a, b, c, aTransposed, bTransposed);
  setBias(g, bias);
  const int64_t *cs = c->sizes_and_strides, *os = out->sizes_and_strides;
  if (os[0] != cs[0] || os[1] != cs[1] || os[2] != cs[2] || os[5] != 1)
    gemmError("the GELU's output is not shaped as the product");
  g.gelu = static_cast<float *>(out->aligned) + out->offset;
  g.ldGelu = std::max<int64_t>({os[4], os[2], 1});
  if (g.batch > 0 && g.m > 0 && g.n > 0)
    launchGemm(g);
}

} // extern "C"
