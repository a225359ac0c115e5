//===- AttentionTest.cpp - The attention kernels against the definition ---===//
//
// softmax(q k^T / sqrt(d)) v per head, and its gradients, written out in
// double with whole score matrices, against the tiled kernels: sequences
// that end inside a block, heads of every padded width, keys longer than
// queries, the causal mask, and operands that are strided views into a wider
// tensor (a fused q, k, v).
//
//===----------------------------------------------------------------------===//

#include "mass/abi.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <vector>

namespace {

/// A rank-3 memref descriptor over `data`, laid out as MLIR's C interface
/// passes it.
struct Desc3 {
  void *allocated, *aligned;
  int64_t offset, sizes[3], strides[3];

  Desc3(float *data, int64_t offset, std::array<int64_t, 3> sizes,
        std::array<int64_t, 3> strides)
      : allocated(data), aligned(data),
        offset(offset), sizes{sizes[0], sizes[1], sizes[2]}, strides{
                                                                 strides[0],
                                                                 strides[1],
                                                                 strides[2]} {}
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(this); }
  float at(int64_t a, int64_t b, int64_t c) const {
    return static_cast<float *>(
        aligned)[offset + a * strides[0] + b * strides[1] + c * strides[2]];
  }
};

struct Case {
  int64_t batch, queries, keys, dim, heads;
  bool causal;
};

class AttentionKernels : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionKernels, MatchTheDefinition) {
  const Case c = GetParam();
  const int64_t B = c.batch, T = c.queries, S = c.keys, D = c.dim, H = c.heads,
                W = D / H;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](std::vector<float> &v) {
    for (float &x : v)
      x = normal(rng);
  };
  // q is a strided view: columns [D, 2D) of a [B, T, 3D] tensor.
  std::vector<float> qkv(B * T * 3 * D), k(B * S * D), v(B * S * D),
      dout(B * T * D);
  fill(qkv);
  fill(k);
  fill(v);
  fill(dout);
  Desc3 q(qkv.data(), D, {B, T, D}, {T * 3 * D, 3 * D, 1});
  Desc3 kd(k.data(), 0, {B, S, D}, {S * D, D, 1});
  Desc3 vd(v.data(), 0, {B, S, D}, {S * D, D, 1});
  std::vector<float> out(B * T * D), lse(B * H * T), dq(B * T * D),
      dk(B * S * D), dv(B * S * D);
  Desc3 od(out.data(), 0, {B, T, D}, {T * D, D, 1});
  Desc3 ld(lse.data(), 0, {B, H, T}, {H * T, T, 1});
  Desc3 dod(dout.data(), 0, {B, T, D}, {T * D, D, 1});
  Desc3 dqd(dq.data(), 0, {B, T, D}, {T * D, D, 1});
  Desc3 dkd(dk.data(), 0, {B, S, D}, {S * D, D, 1});
  Desc3 dvd(dv.data(), 0, {B, S, D}, {S * D, D, 1});
  for (int64_t i = 0; i < B * H; ++i) {
    _mlir_ciface_mass_attention_forward(q.get(), kd.get(), vd.get(), od.get(),
                                        ld.get(), i, H, c.causal);
    _mlir_ciface_mass_attention_backward(q.get(), kd.get(), vd.get(), od.get(),
                                         ld.get(), dod.get(), dqd.get(),
                                         dkd.get(), dvd.get(), i, H, c.causal);
  }

  double worst = 0;
  auto expectNear = [&](double ours, double want, const char *what) {
    double err = std::abs(ours - want) / (1.0 + std::abs(want));
    worst = std::max(worst, err);
    ASSERT_LT(err, 2e-5) << what << ": " << ours << " vs " << want;
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(W));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t col = h * W;
      // Whole matrices of this head, in double.
      std::vector<double> p(T * S), dp(T * S);
      for (int64_t t = 0; t < T; ++t) {
        double top = -INFINITY;
        for (int64_t s = 0; s < S; ++s) {
          double x = 0;
          for (int64_t d = 0; d < W; ++d)
            x += q.at(b, t, col + d) * kd.at(b, s, col + d);
          p[t * S + s] = c.causal && s > t ? -INFINITY : x * scale;
          top = std::max(top, p[t * S + s]);
        }
        double sum = 0;
        for (int64_t s = 0; s < S; ++s)
          sum += std::exp(p[t * S + s] - top);
        expectNear(ld.at(b, h, t), top + std::log(sum), "lse");
        for (int64_t s = 0; s < S; ++s)
          p[t * S + s] = std::exp(p[t * S + s] - top) / sum;
        for (int64_t d = 0; d < W; ++d) {
          double o = 0;
          for (int64_t s = 0; s < S; ++s)
            o += p[t * S + s] * vd.at(b, s, col + d);
          expectNear(od.at(b, t, col + d), o, "out");
        }
      }
      // ds = p * (dout v^T - rowsum(dout * out)) * scale
      for (int64_t t = 0; t < T; ++t) {
        double delta = 0;
        for (int64_t d = 0; d < W; ++d)
          delta += dod.at(b, t, col + d) * od.at(b, t, col + d);
        for (int64_t s = 0; s < S; ++s) {
          double x = 0;
          for (int64_t d = 0; d < W; ++d)
            x += dod.at(b, t, col + d) * vd.at(b, s, col + d);
          dp[t * S + s] = p[t * S + s] * (x - delta) * scale;
        }
      }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < W; ++d) {
          double x = 0;
          for (int64_t s = 0; s < S; ++s)
            x += dp[t * S + s] * kd.at(b, s, col + d);
          expectNear(dqd.at(b, t, col + d), x, "dq");
        }
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < W; ++d) {
          double gk = 0, gv = 0;
          for (int64_t t = 0; t < T; ++t) {
            gk += dp[t * S + s] * q.at(b, t, col + d);
            gv += p[t * S + s] * dod.at(b, t, col + d);
          }
          expectNear(dkd.at(b, s, col + d), gk, "dk");
          expectNear(dvd.at(b, s, col + d), gv, "dv");
        }
    }
  RecordProperty("worst", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionKernels,
    ::testing::Values(Case{2, 70, 70, 12, 3, true},   // blocks end inside
                      Case{2, 70, 70, 12, 3, false},  // the same, unmasked
                      Case{1, 37, 130, 16, 2, false}, // cross: S > T
                      Case{1, 130, 9, 8, 1, false},   // S < one key block
                      Case{3, 1, 1, 4, 4, true},      // one position
                      // Heads of 32 (spec 09's), 48 (padded to 64), 128 and
                      // 256 features: each width of the padded rows.
                      Case{2, 64, 64, 192, 6, true},
                      Case{1, 40, 100, 96, 2, false},
                      Case{1, 33, 33, 256, 2, true},
                      Case{1, 20, 70, 256, 1, false},
                      // Longer causal sequences take blocks of 32 queries.
                      Case{1, 300, 300, 64, 2, true}));

} // namespace
