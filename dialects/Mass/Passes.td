//===- Passes.td - Passes of the mass dialect --------------*- tablegen -*-===//
#ifndef MASS_PASSES_TD
#define MASS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MassAutodiff : Pass<"mass-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode differentiation of @forward into @train_step";
  let description = [{
    Builds `@train_step` from `@forward`: the same arguments plus one weight
    per task (`mass.task_weight`), the same results plus the gradient of
    the weighted sum of the task losses with respect to every parameter
    (`mass.grad`). Gradients come from each op's DifferentiableOpInterface.
  }];
  let dependentDialects = ["::mass::MassDialect", "::mlir::arith::ArithDialect"];
}

def MassOptimizer : Pass<"mass-optimizer", "::mlir::ModuleOp"> {
  let summary = "Generates @update: clipping and the optimizer step";
  let description = [{
    Builds `@update` from the module's `mass.train` configuration: global
    gradient-norm clipping, then SGD (momentum, nesterov, weight decay),
    Adam or AdamW for every parameter that is not frozen, with per-parameter
    learning-rate scales. The learning rate and Adam's bias corrections are
    run-time arguments (`mass.hyper`), so schedules live in the runtime.
  }];
  let dependentDialects = ["::mass::MassDialect", "::mlir::arith::ArithDialect"];
}

def MassPredict : Pass<"mass-predict", "::mlir::ModuleOp"> {
  let summary = "Splits @forward into @predict and @score at the predictions";
  let description = [{
    The predictions are the first operands of the loss and metric ops.
    `@predict` maps inputs and parameters to them (results marked
    `mass.pred`, with `mass.kind` "logits" or "value"); `@score` takes
    `@forward`'s arguments plus the predictions and returns its outputs.
    Ensembles combine members' predictions between the two.
  }];
  let dependentDialects = ["::mass::MassDialect"];
}

#endif // MASS_PASSES_TD
