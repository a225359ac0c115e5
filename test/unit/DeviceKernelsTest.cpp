//===- DeviceKernelsTest.cpp - The GPU's kernels, run on the CPU ----------===//
//
// DeviceKernels.h's threads run here one after another, every thread of
// each grid the CUDA runtime launches (Cuda.cpp; attention's tiled blocks
// phase by phase, each phase of every thread between barriers), and their
// results are compared with the CPU runtime's kernels (which AttentionTest and
// LayerNormTest check against the definitions): the same shapes, strided
// views and masks. The GPU runs the same code, compiled by nvcc.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernels.h"
#include "mass/abi.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <type_traits>
#include <vector>

namespace {

/// n draws from the standard normal distribution.
std::vector<float> normalVector(std::mt19937 &rng, int64_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

using namespace mass::rt::device;

/// A memref descriptor of rank 3 over `data`, as MLIR's C interface passes
/// it, and the same view as a device kernel takes it.
struct Desc3 {
  void *allocated, *aligned;
  int64_t offset, sizes[3], strides[3];

  Desc3(float *data, int64_t offset, std::array<int64_t, 3> size,
        std::array<int64_t, 3> stride)
      : allocated(data), aligned(data),
        offset(offset), sizes{size[0], size[1], size[2]}, strides{stride[0],
                                                                  stride[1],
                                                                  stride[2]} {}
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(this); }
  Strided view() const {
    return Strided{static_cast<float *>(aligned) + offset,
                   {sizes[0], sizes[1], sizes[2]},
                   {strides[0], strides[1], strides[2]}};
  }
};

/// Every thread of a grid of `threads`, in turn.
template <typename F> void runGrid(int64_t threads, F thread) {
  for (int64_t t = 0; t < threads; ++t)
    thread(t);
}

void expectClose(const std::vector<float> &gpu, const std::vector<float> &cpu,
                 const char *what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < gpu.size(); ++i)
    ASSERT_NEAR(gpu[i], cpu[i], 2e-5 * (1 + std::abs(cpu[i])))
        << what << "[" << i << "]";
}

struct Case {
  int64_t batch, queries, keys, dim, heads;
  bool causal;
};

class DeviceAttention : public ::testing::TestWithParam<Case> {};

/// Runs the kernels for heads of `width` features, as Cuda.cpp picks them:
/// each tiled block's threads phase by phase (runTiledGrid).
void launchAttention(const AttentionArgs &a, int64_t count, bool backward) {
  auto run = [&](auto width) {
    constexpr int MAXD = decltype(width)::value;
    if (!backward) {
      runTiledGrid<AttentionForward<MAXD>>(a, count);
      return;
    }
    runTiledGrid<AttentionBackwardQueries<MAXD>>(a, count);
    runTiledGrid<AttentionBackwardKeys<MAXD>>(a, count);
  };
  switch (accumulatorWidth(a.q.size[2] / a.heads)) {
  case 32:
    return run(std::integral_constant<int, 32>());
  case 64:
    return run(std::integral_constant<int, 64>());
  case 128:
    return run(std::integral_constant<int, 128>());
  default:
    return run(std::integral_constant<int, 256>());
  }
}

TEST_P(DeviceAttention, MatchesTheCpuKernels) {
  const Case c = GetParam();
  const int64_t B = c.batch, T = c.queries, S = c.keys, D = c.dim, H = c.heads;
  std::mt19937 rng(11);
  auto filled = [&](int64_t n) { return normalVector(rng, n); };
  // q, k and v are column blocks of one [B, T, 3D] tensor when T == S (a
  // fused projection), else q is and k, v are whole tensors.
  std::vector<float> qkv = filled(B * T * 3 * D), k = filled(B * S * D),
                     v = filled(B * S * D), dout = filled(B * T * D);
  Desc3 q(qkv.data(), 0, {B, T, D}, {T * 3 * D, 3 * D, 1});
  Desc3 kd = T == S ? Desc3(qkv.data(), D, {B, S, D}, {T * 3 * D, 3 * D, 1})
                    : Desc3(k.data(), 0, {B, S, D}, {S * D, D, 1});
  Desc3 vd = T == S ? Desc3(qkv.data(), 2 * D, {B, S, D}, {T * 3 * D, 3 * D, 1})
                    : Desc3(v.data(), 0, {B, S, D}, {S * D, D, 1});
  Desc3 dod(dout.data(), 0, {B, T, D}, {T * D, D, 1});
  // Outputs: the CPU kernels' and the device kernels'.
  struct Outputs {
    std::vector<float> out, lse, dq, dk, dv;
    Desc3 od, ld, dqd, dkd, dvd;
    Outputs(int64_t B, int64_t T, int64_t S, int64_t D, int64_t H)
        : out(B * T * D), lse(B * H * T), dq(B * T * D), dk(B * S * D),
          dv(B * S * D), od(out.data(), 0, {B, T, D}, {T * D, D, 1}),
          ld(lse.data(), 0, {B, H, T}, {H * T, T, 1}),
          dqd(dq.data(), 0, {B, T, D}, {T * D, D, 1}),
          dkd(dk.data(), 0, {B, S, D}, {S * D, D, 1}),
          dvd(dv.data(), 0, {B, S, D}, {S * D, D, 1}) {}
  };
  Outputs cpu(B, T, S, D, H), gpu(B, T, S, D, H);
  for (int64_t i = 0; i < B * H; ++i) {
    _mlir_ciface_mass_attention_forward(q.get(), kd.get(), vd.get(),
                                        cpu.od.get(), cpu.ld.get(), i, H,
                                        c.causal);
    _mlir_ciface_mass_attention_backward(
        q.get(), kd.get(), vd.get(), cpu.od.get(), cpu.ld.get(), dod.get(),
        cpu.dqd.get(), cpu.dkd.get(), cpu.dvd.get(), i, H, c.causal);
  }
  AttentionArgs a{};
  a.q = q.view(), a.k = kd.view(), a.v = vd.view();
  a.out = gpu.od.view(), a.lse = gpu.ld.view(), a.dout = dod.view();
  a.dq = gpu.dqd.view(), a.dk = gpu.dkd.view(), a.dv = gpu.dvd.view();
  a.heads = H, a.causal = c.causal;
  launchAttention(a, B * H, false);
  launchAttention(a, B * H, true);
  expectClose(gpu.out, cpu.out, "out");
  expectClose(gpu.lse, cpu.lse, "lse");
  expectClose(gpu.dq, cpu.dq, "dq");
  expectClose(gpu.dk, cpu.dk, "dk");
  expectClose(gpu.dv, cpu.dv, "dv");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DeviceAttention,
    ::testing::Values(
        Case{2, 70, 70, 12, 3, true},   // fused q, k, v
        Case{2, 70, 70, 12, 3, false},  // the same, unmasked
        Case{1, 37, 130, 16, 2, false}, // cross: S > T
        Case{1, 130, 9, 8, 1, false},   // S < T
        Case{2, 20, 9, 8, 2, true},     // causal, S < T
        Case{3, 1, 1, 4, 4, true},      // one position
        // Heads of 32 (spec 09's), 48, 128 and 256 features:
        // each accumulator width.
        Case{2, 64, 64, 192, 6, true}, Case{1, 40, 100, 96, 2, false},
        Case{1, 33, 33, 256, 2, true}, Case{1, 20, 70, 256, 1, false},
        // Several blocks of rows and tiles of keys: heads of
        // 32 (tiles of 128 rows) and 128 (tiles of 32).
        Case{1, 200, 300, 64, 2, true}, Case{2, 150, 150, 128, 1, true},
        Case{1, 129, 65, 128, 1, false}));

/// Rank-2 and rank-1 memref descriptors, as the CPU kernels take them.
struct Desc2 {
  void *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(this); }
};
struct Desc1 {
  void *allocated, *aligned;
  int64_t offset, size, stride;
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(this); }
};

/// Layer norm's gradient over rows [R, D]: the device's three grids against
/// the CPU's chunks and sums.
TEST(DeviceLayerNorm, MatchesTheCpuKernels) {
  for (auto [R, D] : {std::pair<int64_t, int64_t>{300, 48}, {5, 7}, {64, 1}}) {
    constexpr int64_t kChunks = 64;
    std::mt19937 rng(5);
    auto filled = [&](int64_t n) { return normalVector(rng, n); };
    std::vector<float> x = filled(R * D), dy = filled(R * D), w = filled(D),
                       mean = filled(R), rstd = filled(R);
    for (float &r : rstd)
      r = 0.5f + std::abs(r);
    struct Outputs {
      std::vector<float> dx, partial, dw, db;
    };
    Outputs cpu{std::vector<float>(R * D), std::vector<float>(kChunks * 2 * D),
                std::vector<float>(D), std::vector<float>(D)};
    Outputs gpu = cpu;

    auto d2 = [](float *p, int64_t r, int64_t d) {
      return Desc2{p, p, 0, {r, d}, {d, 1}};
    };
    auto d1 = [](float *p, int64_t n) { return Desc1{p, p, 0, n, 1}; };
    Desc2 cx = d2(x.data(), R, D), cdy = d2(dy.data(), R, D),
          cdx = d2(cpu.dx.data(), R, D);
    Desc1 cm = d1(mean.data(), R), cr = d1(rstd.data(), R),
          cw = d1(w.data(), D), cdw = d1(cpu.dw.data(), D),
          cdb = d1(cpu.db.data(), D);
    Desc3 cp(cpu.partial.data(), 0, {kChunks, 2, D}, {2 * D, D, 1});
    for (int64_t chunk = 0; chunk < kChunks; ++chunk)
      _mlir_ciface_mass_layernorm_backward(cx.get(), cm.get(), cr.get(),
                                           cw.get(), cdy.get(), cdx.get(),
                                           cp.get(), chunk, kChunks);
    _mlir_ciface_mass_layernorm_backward_sums(cp.get(), cdw.get(), cdb.get());

    auto rows = [](float *p, int64_t r, int64_t d) {
      return Strided{p, {r, d, 1}, {d, 1, 0}};
    };
    auto column = [](float *p, int64_t n) {
      return Strided{p, {n, 1, 1}, {1, 0, 0}};
    };
    LayerNormArgs a{};
    a.x = rows(x.data(), R, D), a.dy = rows(dy.data(), R, D);
    a.dx = rows(gpu.dx.data(), R, D);
    a.weight = column(w.data(), D), a.mean = column(mean.data(), R);
    a.rstd = column(rstd.data(), R);
    a.partial =
        Desc3(gpu.partial.data(), 0, {kChunks, 2, D}, {2 * D, D, 1}).view();
    a.dweight = column(gpu.dw.data(), D), a.dbias = column(gpu.db.data(), D);
    a.chunks = kChunks;
    runGrid(R, [&](int64_t t) { layerNormBackwardRow(a, t); });
    runGrid(kChunks * D, [&](int64_t t) { layerNormBackwardPartial(a, t); });
    runGrid(D, [&](int64_t t) { layerNormBackwardSum(a, t); });
    expectClose(gpu.dx, cpu.dx, "dx");
    expectClose(gpu.dw, cpu.dw, "dweight");
    expectClose(gpu.db, cpu.db, "dbias");
  }
}

} // namespace
