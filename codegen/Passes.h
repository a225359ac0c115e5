//===- Passes.h - Code generation passes ------------------------*- C++ -*-===//
#ifndef MASS_CODEGEN_PASSES_H
#define MASS_CODEGEN_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mass {

/// Marks the linalg ops lowered from one mass.fusion group, so that
/// mass-fuse-loops fuses them into one loop nest.
constexpr llvm::StringLiteral kFusionGroupAttr = "mass.fusion_group";

/// Marks the scf.parallel of a mass-gemm kernel, whose panels are worth
/// threads wherever the loop is.
constexpr llvm::StringLiteral kParallelKernelAttr = "mass.parallel_kernel";

/// Rewrites `op` as scf.for loops over its dimensions, in order
/// (OuterParallel.cpp).
void sequentialize(mlir::scf::ParallelOp op);

#define GEN_PASS_DECL
#include "codegen/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "codegen/Passes.h.inc"

} // namespace mass

#endif // MASS_CODEGEN_PASSES_H
