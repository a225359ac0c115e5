//===- TrainConfig.h - The train block of a model ---------------*- C++ -*-===//
#ifndef MASS_COMPILER_TRAINCONFIG_H
#define MASS_COMPILER_TRAINCONFIG_H

#include "compiler/Program.h"

#include "mlir/IR/BuiltinOps.h"

namespace mass {

/// Finds the train block for the module's model (the main file's replaces
/// an imported one), checks its keys and values against the language and
/// the model (task, metric, input and label names), and attaches it to the
/// module as the `mass.train` dictionary. A model without a train block
/// gets an empty one: every setting then comes from defaults and flags.
mlir::LogicalResult attachTrainConfig(mlir::ModuleOp module,
                                      const Program &program);

/// Checks the main file's train blocks when their model failed to
/// elaborate: every error of their own is reported, names of the model
/// taken on trust.
mlir::LogicalResult checkTrainBlocks(mlir::MLIRContext &context,
                                     const Program &program);

} // namespace mass

#endif // MASS_COMPILER_TRAINCONFIG_H
