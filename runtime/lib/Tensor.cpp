//===- Tensor.cpp - Host tensors of the runtime ---------------------------===//

#include "Tensor.h"

using namespace mass::rt;

Tensor::Tensor(DType dtype, std::vector<int64_t> shape)
    : dtype(dtype), shape(std::move(shape)) {
  if (dtype == DType::F32)
    f.assign(numel(), 0.0f);
  else
    i.assign(numel(), 0);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

int64_t Tensor::rowSize() const {
  int64_t n = 1;
  for (size_t k = 1; k < shape.size(); ++k)
    n *= shape[k];
  return n;
}

std::string mass::rt::formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k)
    s += (k ? ", " : "") +
         (shape[k] < 0 ? std::string("B") : std::to_string(shape[k]));
  return s + "]";
}
