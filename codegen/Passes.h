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
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/Pass.h"

namespace mass {

/// Marks the linalg ops lowered from one mass.fusion group, so that
/// mass-fuse-loops fuses them into one loop nest.
constexpr llvm::StringLiteral kFusionGroupAttr = "mass.fusion_group";

/// Marks the scf.parallel of a mass-gemm kernel, whose panels are worth
/// threads wherever the loop is.
constexpr llvm::StringLiteral kParallelKernelAttr = "mass.parallel_kernel";

/// On an entry point, the argument positions its gradients' out-parameters
/// take after bufferization (the runtime's value indices: arguments, then
/// results), set by mass-c-interfaces for mass-grad-ready.
constexpr llvm::StringLiteral kGradValuesAttr = "mass.grad_values";

/// The module's map from each entry point that calls the runtime when its
/// gradients are final to their value indices in the order of the calls
/// (mass-grad-ready).
constexpr llvm::StringLiteral kGradReadyAttr = "mass.grad_ready";

/// Marks a function that mass-outline-kernels or mass-gemm made of a loop
/// nest: private, internal to the object, never inlined.
constexpr llvm::StringLiteral kKernelAttr = "mass.kernel";

/// A kernel function `name` of `type`, created at `b`'s insertion point
/// (OutlineKernels.cpp).
mlir::func::FuncOp createKernel(mlir::OpBuilder &b, mlir::Location loc,
                                llvm::StringRef name, mlir::FunctionType type);

/// Moves `ops` (of one block, in order, with only pure ops between them)
/// into kernel `name`, placed after `previous`, and calls it where the last
/// of them was. The kernel takes `extra`, then the values the ops read from
/// outside (copies of constants instead), each value v as type
/// `argumentType(v)`, a memref cast to it at the call when that differs;
/// it returns their results. `map` gets each op's and value's copy in the
/// kernel (OutlineKernels.cpp).
mlir::func::FuncOp
outlineOps(llvm::ArrayRef<mlir::Operation *> ops, llvm::StringRef name,
           mlir::Operation *previous, mlir::SymbolTable &symbols,
           mlir::ValueRange extra,
           llvm::function_ref<mlir::Type(mlir::Value)> argumentType,
           mlir::IRMapping &map);

/// Makes the calls to each of `kernels` whose text, but for its name,
/// equals an earlier one's call that one instead, and erases it: equal
/// nests compile once (OutlineKernels.cpp).
void mergeEqualKernels(mlir::ModuleOp module, mlir::SymbolTable &symbols,
                       llvm::ArrayRef<mlir::func::FuncOp> kernels);

/// Rewrites `op` as scf.for loops over its dimensions, in order
/// (OuterParallel.cpp).
void sequentialize(mlir::scf::ParallelOp op);

#define GEN_PASS_DECL
#include "codegen/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "codegen/Passes.h.inc"

} // namespace mass

#endif // MASS_CODEGEN_PASSES_H
