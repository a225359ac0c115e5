//===- Tensor.h - Host tensors of the runtime -------------------*- C++ -*-===//
#ifndef MASS_RUNTIME_TENSOR_H
#define MASS_RUNTIME_TENSOR_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mass::rt {

enum class DType { F32, I32 };

/// A dense, C-ordered f32 or i32 tensor owned by the runtime.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<float> f;   // when F32
  std::vector<int32_t> i; // when I32
  /// A read-only tensor may instead view elements it does not own (a
  /// memory-mapped .npy file, which `keep` holds open); f and i stay empty.
  const void *view = nullptr;
  std::shared_ptr<const void> keep;

  Tensor() = default;
  Tensor(DType dtype, std::vector<int64_t> shape);

  int64_t numel() const;
  /// Elements in one row (the product of all but the first dimension).
  int64_t rowSize() const;
  void *data() {
    return dtype == DType::F32 ? (void *)f.data() : (void *)i.data();
  }
  const void *data() const {
    if (view)
      return view;
    return dtype == DType::F32 ? (const void *)f.data()
                               : (const void *)i.data();
  }
  /// The elements, owned or viewed, for reading.
  const float *floats() const { return static_cast<const float *>(data()); }
  const int32_t *ints() const { return static_cast<const int32_t *>(data()); }
  size_t bytes() const { return numel() * 4; }
};

std::string formatShape(const std::vector<int64_t> &shape);

} // namespace mass::rt

#endif // MASS_RUNTIME_TENSOR_H
