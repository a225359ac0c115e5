//===- DeviceGemmTest.cpp - The CUDA target's matrix products -------------===//
//
// The generated code calls mass_cuda_gemm(A, B, C, aTransposed,
// bTransposed) for C[b] += A[b] * B[b] in row-major terms; DeviceCalls.cpp
// turns that into the arguments of cuBLAS's column-major strided batched
// product. Here the emulated device (CudaEmulated.cpp), which computes
// what those arguments mean to cuBLAS, must give the row-major product for
// every layout the generated code passes: row- and column-major storage,
// padded rows, transposed operands, batches and operands every batch
// shares; adding onto C, overwriting it, and with a bias and a ReLU or a
// GELU (cuBLASLt's epilogues). And the GPU's choice of the GELU epilogue
// (geluEpilogueFits) is checked on layouts it must and must not take.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernelLaunch.h"
#include "mass/abi.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

extern "C" void _mlir_ciface_mass_cuda_gemm(MassMemRef *a, MassMemRef *b,
                                            MassMemRef *c, int64_t aTransposed,
                                            int64_t bTransposed,
                                            int64_t accumulate);
extern "C" void
_mlir_ciface_mass_cuda_gemm_bias(MassMemRef *a, MassMemRef *b, MassMemRef *c,
                                 MassMemRef *bias, int64_t aTransposed,
                                 int64_t bTransposed, int64_t activation);
extern "C" void _mlir_ciface_mass_cuda_gemm_bias_gelu(
    MassMemRef *a, MassMemRef *b, MassMemRef *c, MassMemRef *bias,
    MassMemRef *out, int64_t aTransposed, int64_t bTransposed);

namespace {

/// A rank-3 memref descriptor over a buffer of its own: `size` with the
/// last two dimensions stored row-major (`columnMajor` false) or
/// column-major, each row (or column) padded by `pad` elements.
struct Matrix {
  std::vector<float> data;
  void *allocated = nullptr, *aligned = nullptr;
  int64_t offset = 0, sizes[3] = {}, strides[3] = {};

  Matrix(std::mt19937 &rng, std::array<int64_t, 3> size, bool columnMajor,
         int64_t pad) {
    int64_t rows = size[1], cols = size[2];
    int64_t inner = (columnMajor ? rows : cols) + pad;
    int64_t matrix = inner * (columnMajor ? cols : rows);
    data.resize(size[0] * matrix + 3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float &x : data)
      x = normal(rng);
    allocated = aligned = data.data();
    offset = 3; // a view that starts inside its buffer
    for (int i = 0; i < 3; ++i)
      sizes[i] = size[i];
    strides[0] = matrix;
    strides[1] = columnMajor ? 1 : inner;
    strides[2] = columnMajor ? inner : 1;
  }
  float &at(int64_t b, int64_t i, int64_t j) {
    return data[offset + (sizes[0] == 1 ? 0 : b) * strides[0] + i * strides[1] +
                j * strides[2]];
  }
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(&allocated); }
};

/// What the product does with C: adds onto it, overwrites it, or
/// overwrites it with the product plus a bias per column, or the ReLU of
/// that.
enum class Mode { Accumulate, Overwrite, Bias, BiasRelu, BiasGelu };

struct Case {
  int64_t batch, m, k, n;
  bool aTransposed, bTransposed;
  bool aColumnMajor, bColumnMajor;
  bool aShared, bShared; // one matrix for every batch
  int64_t pad;
  Mode mode = Mode::Accumulate;
};

/// A rank-1 descriptor of `data` (unit stride).
struct Vector {
  void *allocated, *aligned;
  int64_t offset, size, stride;
  MassMemRef *get() { return reinterpret_cast<MassMemRef *>(this); }
};

class DeviceGemm : public ::testing::TestWithParam<Case> {};

TEST_P(DeviceGemm, MatchesTheRowMajorProduct) {
  const Case p = GetParam();
  std::mt19937 rng(11);
  Matrix a(rng,
           {p.aShared ? 1 : p.batch, p.aTransposed ? p.k : p.m,
            p.aTransposed ? p.m : p.k},
           p.aColumnMajor, p.pad);
  Matrix b(rng,
           {p.bShared ? 1 : p.batch, p.bTransposed ? p.n : p.k,
            p.bTransposed ? p.k : p.n},
           p.bColumnMajor, p.pad);
  Matrix c(rng, {p.batch, p.m, p.n}, false, p.pad);
  std::vector<float> bias(p.n);
  for (float &x : bias)
    x = std::normal_distribution<float>(0.0f, 1.0f)(rng);
  std::vector<double> expected;
  for (int64_t s = 0; s < p.batch; ++s)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = p.mode == Mode::Accumulate  ? c.at(s, i, j)
                     : p.mode == Mode::Overwrite ? 0.0
                                                 : bias[j];
        for (int64_t l = 0; l < p.k; ++l)
          sum += double(p.aTransposed ? a.at(s, l, i) : a.at(s, i, l)) *
                 double(p.bTransposed ? b.at(s, j, l) : b.at(s, l, j));
        expected.push_back(p.mode == Mode::BiasRelu ? std::max(sum, 0.0) : sum);
      }
  Matrix gelu(rng, {p.batch, p.m, p.n}, false, p.pad + 1);
  if (p.mode == Mode::BiasGelu) {
    Vector v{bias.data(), bias.data(), 0, p.n, 1};
    _mlir_ciface_mass_cuda_gemm_bias_gelu(a.get(), b.get(), c.get(), v.get(),
                                          gelu.get(), p.aTransposed,
                                          p.bTransposed);
  } else if (p.mode == Mode::Bias || p.mode == Mode::BiasRelu) {
    Vector v{bias.data(), bias.data(), 0, p.n, 1};
    _mlir_ciface_mass_cuda_gemm_bias(a.get(), b.get(), c.get(), v.get(),
                                     p.aTransposed, p.bTransposed,
                                     p.mode == Mode::BiasRelu);
  } else {
    _mlir_ciface_mass_cuda_gemm(a.get(), b.get(), c.get(), p.aTransposed,
                                p.bTransposed, p.mode == Mode::Accumulate);
  }
  size_t next = 0;
  for (int64_t s = 0; s < p.batch; ++s)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double want = expected[next++];
        ASSERT_NEAR(c.at(s, i, j), want, 1e-4 * (1 + std::abs(want)))
            << "C[" << s << "][" << i << "][" << j << "]";
        if (p.mode != Mode::BiasGelu)
          continue;
        // GPT-2's GELU of the pre-activation (kept in C).
        double t = std::tanh(std::sqrt(2 / M_PI) *
                             (want + 0.044715 * want * want * want));
        double g = 0.5 * want * (1 + t);
        ASSERT_NEAR(gelu.at(s, i, j), g, 1e-4 * (1 + std::abs(g)))
            << "GELU[" << s << "][" << i << "][" << j << "]";
      }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, DeviceGemm,
    ::testing::Values(
        // A dense layer: x [m, k] times W^T, W stored [n, k].
        Case{1, 5, 7, 3, false, true, false, false, false, false, 0},
        // Its weight gradient: dy^T [n, m] * x, A stored [m, n] read
        // transposed.
        Case{1, 3, 5, 7, true, false, false, false, false, false, 0},
        // Its input gradient, padded rows.
        Case{1, 4, 6, 5, false, false, false, false, false, false, 3},
        // Column-major storage of either operand (a transposed view).
        Case{1, 6, 4, 5, false, false, true, false, false, false, 0},
        Case{1, 6, 4, 5, true, true, false, true, false, false, 2},
        // Batches, and operands every batch shares.
        Case{3, 4, 5, 6, false, false, false, false, false, false, 1},
        Case{3, 4, 5, 6, true, false, false, true, false, true, 0},
        Case{4, 2, 3, 5, false, true, true, false, true, false, 0},
        // Degenerate sizes: one row, one column, k of 1.
        Case{2, 1, 4, 1, false, false, false, false, false, false, 0},
        Case{1, 3, 1, 4, true, true, true, true, false, false, 0},
        // Products that overwrite C (a fill of zeros before them), and a
        // dense layer's forward with its bias as the epilogue.
        Case{1, 5, 7, 3, false, true, false, false, false, false, 0,
             Mode::Overwrite},
        Case{3, 4, 5, 6, true, false, false, true, false, true, 1,
             Mode::Overwrite},
        Case{1, 5, 7, 3, false, true, false, false, false, false, 2,
             Mode::Bias},
        Case{1, 4, 6, 5, true, false, true, false, false, false, 0, Mode::Bias},
        // And with the ReLU epilogue (about half the outputs clamp).
        Case{1, 9, 7, 8, false, true, false, false, false, false, 1,
             Mode::BiasRelu},
        // And with the GELU epilogue (the pre-activation kept in C).
        Case{1, 9, 7, 8, false, true, false, false, false, false, 0,
             Mode::BiasGelu},
        Case{1, 6, 5, 4, true, false, true, false, false, false, 2,
             Mode::BiasGelu}));

using mass::rt::device::GemmArgs;

/// A dense layer's product with a GELU, column-major as cuBLAS sees it
/// (DeviceCalls.cpp): C (m x n, ld m) = W^T-side `first` (k x m stored,
/// transposed) times `second` (k x n), in one buffer `memory` at offsets.
GemmArgs geluProduct(float *memory, int64_t m, int64_t n, int64_t k,
                     int64_t firstAt, int64_t secondAt, int64_t cAt,
                     int64_t outAt) {
  GemmArgs g;
  g.transFirst = true, g.batch = 1, g.m = m, g.n = n, g.k = k;
  g.first = memory + firstAt, g.ldFirst = k;
  g.second = memory + secondAt, g.ldSecond = k;
  g.c = memory + cAt, g.ldc = m;
  g.gelu = memory + outAt, g.ldGelu = m;
  return g;
}

TEST(DeviceGemm, GeluEpilogueOnlyWhereItFits) {
  std::vector<float> memory(1 << 16);
  // Extents: first (4 x 16 stored, ld 4) [200, 264); second (4 x 10, ld
  // 4) [1000, 1040); C (at 2000) and the output (16 x 10, ld 16) 160
  // elements each.
  struct Layout {
    int64_t m, out;
    bool fits;
    const char *what;
  };
  for (const Layout &l : {
           Layout{16, 3000, true, "every matrix apart, 8 | m"},
           Layout{12, 3000, false, "the auxiliary output's ld not 8 | ld"},
           Layout{16, 264, true, "the output just after the first operand"},
           Layout{16, 263, false, "the output over the first's last element"},
           Layout{16, 840, true, "the output just before the second operand"},
           Layout{16, 841, false, "the output over the second's first"},
           Layout{16, 2100, false, "the output over C"},
       })
    EXPECT_EQ(mass::rt::device::geluEpilogueFits(geluProduct(
                  memory.data(), l.m, 10, 4, 200, 1000, 2000, l.out)),
              l.fits)
        << l.what;
}

} // namespace
