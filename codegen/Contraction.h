//===- Contraction.h - Recognising matrix products on linalg ----*- C++ -*-===//
//
// What mass-gemm and mass-fold-transposes both look for in a linalg.generic.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_CODEGEN_CONTRACTION_H
#define MASS_CODEGEN_CONTRACTION_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <optional>

namespace mass {

/// Whether the body yields out + in0 * in1 (in either order): the
/// multiply-add of a contraction.
bool isMulAdd(mlir::linalg::GenericOp op);

/// A matched contraction: loops (batch..., m, k, n).
struct Contraction {
  mlir::linalg::GenericOp op;
  unsigned batch;
  mlir::Value a, b, c;
  mlir::AffineMap mapA, mapB;
  /// B read as B[b..., n, k] (x * W^T with W as stored).
  bool bTransposed = false;
  /// B has unit stride along its last dimension.
  bool bUnitK = false;
  /// A read as A[b..., k, m] (W^T with W as stored).
  bool aTransposed = false;
  /// A has unit stride along its last dimension.
  bool aUnitInner = false;
  /// The op just before that fills C with what the contraction adds onto:
  /// a constant (linalg.fill) or, with no batch, a vector along n (the
  /// bias, broadcast over rows by a linalg.generic).
  mlir::Operation *init = nullptr;
  mlir::Value initScalar = {}, initRow = {};
  /// The elementwise op just after that reads C (an activation), applied
  /// to the block of C in registers after its last block of k.
  mlir::linalg::GenericOp epilogue = {};
};

/// `op` as a contraction C[b..., m, n] += A * B of f32 buffers (Gemm.cpp),
/// with the fill or bias before it and the elementwise op after it that
/// mass-gemm folds into its kernel, or nothing.
std::optional<Contraction> matchContraction(mlir::linalg::GenericOp op);

} // namespace mass

#endif // MASS_CODEGEN_CONTRACTION_H
