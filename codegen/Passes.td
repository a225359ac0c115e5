//===- Passes.td - Code generation passes ------------------*- tablegen -*-===//
#ifndef MASS_CODEGEN_PASSES_TD
#define MASS_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

def MassLowerToLinalg : Pass<"mass-lower-to-linalg", "::mlir::ModuleOp"> {
  let summary = "Lowers mass ops to linalg, tensor, arith and math on tensors";
  let description = [{
    Every mass op becomes linalg structured ops (generic, matmul, transpose,
    fill) on tensors, with tensor.empty destinations sized from the operands'
    dynamic dimensions, ready for one-shot bufferization.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"
  ];
}

#endif // MASS_CODEGEN_PASSES_TD
