//===- Builders.h - Building mass ops with inferred types -------*- C++ -*-===//
//
// Small helpers for passes that build mass IR (autodiff, the optimizer).
// The ops infer their result types (InferTypeOpInterface, with the rules of
// Shapes.h); these add the compositions a VJP rule needs, such as reduceTo.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_DIALECT_BUILDERS_H
#define MASS_DIALECT_BUILDERS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace mass {

class MassBuilder {
public:
  MassBuilder(mlir::OpBuilder &b, mlir::Location loc) : b(b), loc(loc) {}

  mlir::OpBuilder &builder() { return b; }
  mlir::Location getLoc() { return loc; }

  static mlir::RankedTensorType typeOf(mlir::Value v) {
    return mlir::cast<mlir::RankedTensorType>(v.getType());
  }

  /// A rank-0 f32 constant.
  mlir::Value constant(double value);
  mlir::Value add(mlir::Value x, mlir::Value y);
  mlir::Value sub(mlir::Value x, mlir::Value y);
  mlir::Value mul(mlir::Value x, mlir::Value y);
  mlir::Value div(mlir::Value x, mlir::Value y);
  mlir::Value neg(mlir::Value x);
  mlir::Value sqrt(mlir::Value x);
  mlir::Value sign(mlir::Value x);
  mlir::Value relu(mlir::Value x);
  mlir::Value sum(mlir::Value x, llvm::ArrayRef<int64_t> axes, bool keepdim);
  mlir::Value reshape(mlir::Value x, mlir::RankedTensorType type);
  mlir::Value transpose(mlir::Value x, llvm::ArrayRef<int64_t> perm);
  mlir::Value matmul(mlir::Value x, mlir::Value y);
  mlir::Value broadcast(mlir::Value x, mlir::Value like);
  /// Sums `grad` over the axes that broadcasting added or stretched, so
  /// that it takes the shape of `target`.
  mlir::Value reduceTo(mlir::Value grad, mlir::RankedTensorType target);
  /// The number of elements of `x` along `axes`, as a rank-0 tensor; read
  /// at run time when an axis is dynamic.
  mlir::Value count(mlir::Value x, llvm::ArrayRef<int64_t> axes);

private:
  mlir::OpBuilder &b;
  mlir::Location loc;
};

} // namespace mass

#endif // MASS_DIALECT_BUILDERS_H
