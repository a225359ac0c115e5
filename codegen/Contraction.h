//===- Contraction.h - Recognising matrix products on linalg ----*- C++ -*-===//
//
// What mass-gemm and mass-fold-transposes both look for in a linalg.generic.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_CODEGEN_CONTRACTION_H
#define MASS_CODEGEN_CONTRACTION_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mass {

/// Whether the body yields out + in0 * in1 (in either order): the
/// multiply-add of a contraction.
bool isMulAdd(mlir::linalg::GenericOp op);

} // namespace mass

#endif // MASS_CODEGEN_CONTRACTION_H
