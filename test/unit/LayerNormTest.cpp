//===- LayerNormTest.cpp - Layer norm's gradient kernels against the math -===//
//
// dx, dweight and dbias written out in double from the definition (the
// means and sums along whole rows and columns) against the chunked
// kernels: widths with and without a tail past whole vectors, rows that
// do not divide into the chunks, chunks with no rows, and strided views.
//
//===----------------------------------------------------------------------===//

#include "mass/abi.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace {

/// A memref descriptor of rank R over `data`, as MLIR's C interface passes
/// it.
template <int R> struct Desc {
  void *allocated, *aligned;
  int64_t offset, sizes[R], strides[R];

  Desc(float *data, std::initializer_list<int64_t> shape,
       std::initializer_list<int64_t> stride)
      : allocated(data), aligned(data), offset(0) {
    std::copy(shape.begin(), shape.end(), sizes);
    std::copy(stride.begin(), stride.end(), strides);
  }
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(this); }
};

struct Case {
  int64_t rows, width, chunks, rowStride; // rowStride >= width
};

class LayerNormGrad : public ::testing::TestWithParam<Case> {};

TEST_P(LayerNormGrad, MatchesTheDefinition) {
  const Case c = GetParam();
  const int64_t R = c.rows, D = c.width, S = c.rowStride;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(R * S), dy(R * S), w(D), mean(R), rstd(R);
  for (float &v : x)
    v = normal(rng) * 2.0f + 0.5f;
  for (float &v : dy)
    v = normal(rng);
  for (float &v : w)
    v = normal(rng);
  // The forward's statistics, as layernorm computes them (eps = 1e-5).
  for (int64_t r = 0; r < R; ++r) {
    double m = 0, var = 0;
    for (int64_t d = 0; d < D; ++d)
      m += x[r * S + d];
    m /= D;
    for (int64_t d = 0; d < D; ++d)
      var += (x[r * S + d] - m) * (x[r * S + d] - m);
    mean[r] = static_cast<float>(m);
    rstd[r] = static_cast<float>(1.0 / std::sqrt(var / D + 1e-5));
  }
  std::vector<float> dx(R * S, -7.0f), partial(c.chunks * 2 * D, -7.0f), dw(D),
      db(D);
  Desc<2> xd(x.data(), {R, D}, {S, 1}), dyd(dy.data(), {R, D}, {S, 1}),
      dxd(dx.data(), {R, D}, {S, 1});
  Desc<1> md(mean.data(), {R}, {1}), rd(rstd.data(), {R}, {1}),
      wd(w.data(), {D}, {1}), dwd(dw.data(), {D}, {1}),
      dbd(db.data(), {D}, {1});
  Desc<3> pd(partial.data(), {c.chunks, 2, D}, {2 * D, D, 1});
  // The chunks in reverse: the result must not depend on their order.
  for (int64_t k = c.chunks; k-- > 0;)
    _mlir_ciface_mass_layernorm_backward(xd.get(), md.get(), rd.get(), wd.get(),
                                         dyd.get(), dxd.get(), pd.get(), k,
                                         c.chunks);
  _mlir_ciface_mass_layernorm_backward_sums(pd.get(), dwd.get(), dbd.get());

  auto near = [](double ours, double want) {
    return std::abs(ours - want) <= 1e-4 * (1.0 + std::abs(want));
  };
  std::vector<double> sumW(D, 0.0), sumB(D, 0.0);
  for (int64_t r = 0; r < R; ++r) {
    double meanG = 0, meanGX = 0;
    for (int64_t d = 0; d < D; ++d) {
      double xhat = (x[r * S + d] - mean[r]) * static_cast<double>(rstd[r]);
      double g = static_cast<double>(dy[r * S + d]) * w[d];
      meanG += g / D;
      meanGX += g * xhat / D;
      sumW[d] += dy[r * S + d] * xhat;
      sumB[d] += dy[r * S + d];
    }
    for (int64_t d = 0; d < D; ++d) {
      double xhat = (x[r * S + d] - mean[r]) * static_cast<double>(rstd[r]);
      double g = static_cast<double>(dy[r * S + d]) * w[d];
      double want = rstd[r] * (g - meanG - xhat * meanGX);
      ASSERT_TRUE(near(dx[r * S + d], want))
          << "dx[" << r << ", " << d << "] = " << dx[r * S + d] << " vs "
          << want;
    }
    // Past the view's width, the rows are left alone.
    for (int64_t d = D; d < S; ++d)
      ASSERT_EQ(dx[r * S + d], -7.0f);
  }
  for (int64_t d = 0; d < D; ++d) {
    ASSERT_TRUE(near(dw[d], sumW[d])) << "dweight[" << d << "]";
    ASSERT_TRUE(near(db[d], sumB[d])) << "dbias[" << d << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LayerNormGrad,
    ::testing::Values(Case{2048, 192, 64, 192}, // spec 09's rows
                      Case{37, 20, 64, 20},     // a tail; chunks with no row
                      Case{130, 7, 8, 9},       // narrower than a vector
                      Case{1, 48, 1, 64},       // one row, strided
                      Case{100, 33, 3, 40}));

} // namespace
