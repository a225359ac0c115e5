//===- KernelVectors.h - What the runtime's compute kernels share --------===//
//
// Vectors of 16 floats (GCC's vector extension: registers of any width the
// target has), their loads, stores and sum, and strided views of f32 data
// through MLIR's memref descriptors, for the kernels the generated code
// calls (Attention.cpp, LayerNorm.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef MASS_RUNTIME_KERNELVECTORS_H
#define MASS_RUNTIME_KERNELVECTORS_H

#include "mass/abi.h"

#include <cstdint>
#include <cstring>
#include <utility>

namespace mass::rt::kernels {

constexpr int kLanes = 16;
typedef float V __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t VI __attribute__((vector_size(kLanes * sizeof(int32_t))));

inline V splat(float x) { return V{} + x; }

/// A vector from 16 floats at any alignment, and back.
inline V loadV(const float *p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storeV(float *p, V v) { std::memcpy(p, &v, sizeof v); }

/// x with each lane j swapped for lane j ^ S.
template <int S, int... J>
inline V swapLanes(V x, std::integer_sequence<int, J...>) {
  return __builtin_shufflevector(x, x, (J ^ S)...);
}

/// The sum of a vector's lanes, as a tree of four steps.
inline float hsum(V x) {
  constexpr auto lanes = std::make_integer_sequence<int, kLanes>{};
  x += swapLanes<8>(x, lanes);
  x += swapLanes<4>(x, lanes);
  x += swapLanes<2>(x, lanes);
  x += swapLanes<1>(x, lanes);
  return x[0];
}

/// A rank-R f32 view through an MLIR memref descriptor.
template <int R> struct View {
  float *base;
  int64_t size[R], stride[R];

  explicit View(MassMemRef *m) {
    base = static_cast<float *>(m->aligned) + m->offset;
    for (int i = 0; i < R; ++i) {
      size[i] = m->sizes_and_strides[i];
      stride[i] = m->sizes_and_strides[R + i];
    }
  }
  /// The first element of index i along the first axis.
  float *row(int64_t i) const { return base + i * stride[0]; }
  template <typename... I> float &at(I... index) const {
    static_assert(sizeof...(I) == R, "one index per axis");
    int64_t offset = 0, axis = 0;
    ((offset += static_cast<int64_t>(index) * stride[axis++]), ...);
    return base[offset];
  }
};

} // namespace mass::rt::kernels

#endif // MASS_RUNTIME_KERNELVECTORS_H
