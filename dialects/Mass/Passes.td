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
  let summary = "Generates @update (clipping and the optimizer step) and its slice form";
  let description = [{
    Builds `@update` from the module's `mass.train` configuration: with
    `clip_grad_norm`, the global gradient norm (returned as the output
    `grad_norm`) and clipping; then SGD (momentum, nesterov, weight decay),
    Adam or AdamW for every parameter that is not frozen, with per-parameter
    learning-rate scales. The learning rate and Adam's bias corrections are
    run-time arguments (`mass.hyper`), so schedules live in the runtime.
    Also `@update_slice`, the same step over one flat slice of up to 65,536
    of the trained values, for the runtime's sharded optimizer: its rate
    comes scaled (the scales go to the runtime in `mass.optimizer`'s
    `lr_scales`), and with clipping it takes the squares of every gradient
    (`grad_squares`); and with clipping `@grad_squares`, those squares added
    as `@update` adds them.
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

def MassFuse : Pass<"mass-fuse", "::mlir::func::FuncOp"> {
  let summary = "Groups producer-consumer chains into mass.fusion regions";
  let description = [{
    Walking from the last op up, each elementwise op or reduction (`sum`,
    `max`) roots a group; a producer joins when it is elementwise, its
    result has the group's shape (the root's input shape for a reduction),
    and every other user of its result comes after the root (so the group
    can run where the root is). A value of an elementwise group used outside
    it becomes one more result: the optimizer's new moments and parameter
    come out of one group. A reduction's group yields only the reduction.
    Groups of two or more ops become `mass.fusion` ops; splat constants are
    copied into them. Lowering turns each group into one loop nest.
  }];
  let dependentDialects = ["::mass::MassDialect"];
}

#endif // MASS_PASSES_TD
