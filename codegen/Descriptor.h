//===- Descriptor.h - The model descriptor the runtime reads ----*- C++ -*-===//
#ifndef MASS_CODEGEN_DESCRIPTOR_H
#define MASS_CODEGEN_DESCRIPTOR_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mass {

/// The JSON descriptor of a model: its inputs, labels, parameters (with
/// shapes and initialisers), tasks, train configuration, and for each entry
/// point (forward, train_step, update) the arguments and results in call
/// order, each with its role, name, element type and shape (-1: batch).
/// Built from the mass module after autodiff and the optimizer pass.
std::string buildDescriptor(mlir::ModuleOp module);

/// `descriptor` with what code generation decided per entry point: for
/// each that mass-arena gave an arena (the module's `mass.arena`),
/// `"arena": {"bytes": N, "bytes_per_sample": M}` (the entry takes one more
/// argument after its results, a buffer of at least N + M * batch bytes,
/// 64-byte aligned); for each that mass-in-place-results found
/// (`mass.in_place`), `"in_place": true` (its parameter and state results
/// may be the buffers of the arguments they replace); for each that
/// mass-grad-ready gave calls (`mass.grad_ready`), `"grad_ready": [v, ...]`
/// (the gradients' value indices in the order the entry reports them
/// final through `mass_grad_ready(v)`); for the CUDA target
/// (`cuda`), `"target": "cuda"`.
std::string addCodegenPlans(const std::string &descriptor,
                            mlir::ModuleOp module, bool cuda = false);

} // namespace mass

#endif // MASS_CODEGEN_DESCRIPTOR_H
