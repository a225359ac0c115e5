//===- Autodiff.cpp - Reverse-mode differentiation ------------------------===//
//
// Clones @forward into @train_step, puts it in training mode (batch norm
// on batch statistics, returning its new running statistics; dropout drawn
// from a seed argument), seeds each task's loss with its weight, walks the
// ops backwards asking each for its vector-Jacobian product, and returns the
// accumulated gradient of every parameter.
//
//===----------------------------------------------------------------------===//

#include "dialects/Mass/Builders.h"
#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Passes.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"

namespace mass {
#define GEN_PASS_DEF_MASSAUTODIFF
#include "dialects/Mass/Passes.h.inc"
} // namespace mass

using namespace mass;
using namespace mlir;

namespace {

class Autodiff : public mass::impl::MassAutodiffBase<Autodiff> {
public:
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(abi::kForward);
    if (!forward) {
      module.emitError("mass-autodiff needs a function @forward");
      return signalPassFailure();
    }
    if (module.lookupSymbol(abi::kTrainStep)) {
      module.emitError("the module already has @train_step");
      return signalPassFailure();
    }
    if (failed(differentiate(module, forward)))
      signalPassFailure();
  }

private:
  LogicalResult differentiate(ModuleOp module, func::FuncOp forward);
};

/// A new buffer value that the step returns, named after the buffer.
struct BufferUpdate {
  Value value;
  StringAttr name;
};

/// Switches the step's ops to training mode. Dropout reads a seed argument
/// added to the step; batch norm's new running statistics become results.
LogicalResult enterTrainingMode(func::FuncOp step,
                                SmallVectorImpl<BufferUpdate> &updates) {
  OpBuilder b(step.getContext());
  Value seed;
  auto bufferName = [&](Value v) -> StringAttr {
    auto arg = dyn_cast<BlockArgument>(v);
    return arg ? step.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                   abi::attr(abi::Role::Buffer))
               : StringAttr();
  };
  WalkResult walk = step.walk([&](Operation *op) {
    if (auto dropout = dyn_cast<DropoutOp>(op)) {
      if (!seed) {
        unsigned index = step.getNumArguments();
        step.insertArgument(
            index, RankedTensorType::get({3}, b.getI32Type()),
            b.getDictionaryAttr(b.getNamedAttr(abi::attr(abi::Role::Seed),
                                               b.getStringAttr("dropout"))),
            step.getLoc());
        seed = step.getArgument(index);
      }
      dropout.getSeedMutable().assign(seed);
      dropout.setTraining(true);
    } else if (auto bn = dyn_cast<BatchNormOp>(op)) {
      bn.setTraining(true);
      StringAttr mean = bufferName(bn.getRunningMean());
      StringAttr var = bufferName(bn.getRunningVar());
      if (!mean || !var) {
        bn.emitOpError("needs its running statistics as buffer arguments");
        return WalkResult::interrupt();
      }
      updates.push_back({bn.getNewRunningMean(), mean});
      updates.push_back({bn.getNewRunningVar(), var});
    }
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

} // namespace

LogicalResult Autodiff::differentiate(ModuleOp module, func::FuncOp forward) {
  OpBuilder b(module.getContext());
  b.setInsertionPointAfter(forward);
  auto step = cast<func::FuncOp>(b.clone(*forward));
  step.setSymName(abi::kTrainStep);
  SmallVector<BufferUpdate> updates;
  if (failed(enterTrainingMode(step, updates)))
    return failure();
  Block &body = step.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  b.setInsertionPoint(ret);

  // One weight argument per task, after the others.
  auto scalarType = RankedTensorType::get({}, b.getF32Type());
  llvm::StringMap<Value> weights;
  auto tasks = module->getAttrOfType<ArrayAttr>("mass.tasks");
  if (!tasks)
    return module.emitError("the module has no mass.tasks");
  for (Attribute t : tasks) {
    StringRef name = cast<DictionaryAttr>(t).getAs<StringAttr>(abi::key::kName);
    unsigned index = step.getNumArguments();
    step.insertArgument(
        index, scalarType,
        b.getDictionaryAttr(b.getNamedAttr(abi::attr(abi::Role::TaskWeight),
                                           b.getStringAttr(name))),
        step.getLoc());
    weights[name] = step.getArgument(index);
  }

  llvm::DenseMap<Value, Value> grads;
  auto accumulate = [&](Value v, Value g, Location loc) {
    auto [it, inserted] = grads.try_emplace(v, g);
    if (!inserted)
      it->second = MassBuilder(b, loc).add(it->second, g);
  };

  // Seed: d(sum_t w_t * loss_t) / d loss_t = w_t.
  for (auto [i, result] : llvm::enumerate(ret.getOperands())) {
    auto name =
        step.getResultAttrOfType<StringAttr>(i, abi::attr(abi::Role::Output));
    if (!name || !name.getValue().starts_with(abi::kLossPrefix))
      continue;
    accumulate(
        result,
        weights.lookup(name.getValue().drop_front(abi::kLossPrefix.size())),
        step.getLoc());
  }

  // Reverse sweep over the forward ops (the backward ones go after them).
  SmallVector<Operation *> forwardOps;
  for (Operation &op : body.without_terminator())
    forwardOps.push_back(&op);
  for (Operation *op : llvm::reverse(forwardOps)) {
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value r : op->getResults()) {
      resultGrads.push_back(grads.lookup(r));
      any |= static_cast<bool>(resultGrads.back());
    }
    if (!any)
      continue;
    auto differentiable = dyn_cast<DifferentiableOpInterface>(op);
    if (!differentiable) {
      if (isa<arith::ConstantOp>(op))
        continue;
      return op->emitError("'") << op->getName() << "' is not differentiable";
    }
    SmallVector<Value> operandGrads;
    if (failed(differentiable.buildVJP(b, resultGrads, operandGrads)))
      return failure();
    if (operandGrads.size() != op->getNumOperands())
      return op->emitError("VJP returned ")
             << operandGrads.size() << " gradients for " << op->getNumOperands()
             << " operands";
    for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads)) {
      if (!g)
        continue;
      if (g.getType() != operand.getType())
        return op->emitError("VJP gradient type ")
               << g.getType() << " differs from operand type "
               << operand.getType();
      accumulate(operand, g, op->getLoc());
    }
  }

  // Return every parameter's gradient; zero where the loss does not reach.
  SmallVector<Value> results(ret.getOperands());
  SmallVector<DictionaryAttr> resultAttrs;
  step.getAllResultAttrs(resultAttrs);
  for (BlockArgument arg : body.getArguments()) {
    auto name = step.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  abi::attr(abi::Role::Param));
    if (!name)
      continue;
    Value g = grads.lookup(arg);
    if (!g) {
      auto type = cast<RankedTensorType>(arg.getType());
      g = b.create<arith::ConstantOp>(step.getLoc(), type,
                                      DenseElementsAttr::get(type, 0.0f));
    }
    results.push_back(g);
    resultAttrs.push_back(
        b.getDictionaryAttr(b.getNamedAttr(abi::attr(abi::Role::Grad), name)));
  }
  // Then the buffers' new values.
  for (const BufferUpdate &u : updates) {
    results.push_back(u.value);
    resultAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr(abi::attr(abi::Role::Buffer), u.name)));
  }
  b.create<func::ReturnOp>(ret.getLoc(), results);
  ret.erase();
  step.setFunctionType(b.getFunctionType(body.getArgumentTypes(),
                                         ValueRange(results).getTypes()));
  step.setAllResultAttrs(resultAttrs);
  return success();
}
