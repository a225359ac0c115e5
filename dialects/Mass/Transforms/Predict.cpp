//===- Predict.cpp - Splitting @forward at its predictions ----------------===//
//
// The predictions of a model are the values its losses and metrics judge:
// the first operand of every loss and metric op (a sequence's logits
// [B, T, C] rather than their positions reshaped into samples). @predict
// computes them from the inputs and parameters; @score computes the outputs of
// @forward from them and the labels. An ensemble runs @predict per member,
// combines the predictions and scores the combination.
//
//===----------------------------------------------------------------------===//

#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Passes.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

namespace mass {
#define GEN_PASS_DEF_MASSPREDICT
#include "dialects/Mass/Passes.h.inc"
} // namespace mass

using namespace mass;
using namespace mlir;

namespace {

/// Erases ops whose results are unused, last to first.
void eraseDead(func::FuncOp func) {
  Block &body = func.getBody().front();
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  for (Operation *op : llvm::reverse(ops))
    if (op->use_empty())
      op->erase();
}

/// What a loss or metric op judges: its first operand or, when that is a
/// sequence's positions seen as samples ([B, T, C] reshaped into
/// [B * T, C]), the sequence itself, so that predictions keep the batch
/// as their first axis.
Value judged(Operation *op) {
  Value v = op->getOperand(0);
  if (auto reshape = v.getDefiningOp<ReshapeOp>()) {
    auto in = cast<RankedTensorType>(reshape.getInput().getType());
    if (in.getRank() >= 3 && in.isDynamicDim(0))
      return reshape.getInput();
  }
  return v;
}

/// "logits" when a classification op reads the prediction (directly or
/// through a reshape), else "value": an ensemble averages probabilities
/// (over the last axis) for the one and values for the other.
StringRef kindOf(Value pred) {
  for (Operation *user : pred.getUsers())
    if (isa<ReshapeOp>(user) && kindOf(user->getResult(0)) == "logits")
      return "logits";
    else if (isa<CrossEntropyOp, TopKOp>(user) ||
             (isa<AccuracyOp>(user) &&
              cast<RankedTensorType>(user->getOperand(1).getType())
                  .getElementType()
                  .isInteger(32)))
      return "logits";
  return "value";
}

class Predict : public mass::impl::MassPredictBase<Predict> {
public:
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(abi::kForward);
    if (!forward) {
      module.emitError("mass-predict needs a function @forward");
      return signalPassFailure();
    }
    // The predictions, in the order the loss and metric ops use them.
    llvm::SetVector<Value> preds;
    forward.walk([&](Operation *op) {
      if (isa<CrossEntropyOp, MseOp, BceOp, L1Op, AccuracyOp, TopKOp,
              AbsErrorOp, SquaredErrorOp>(op))
        preds.insert(judged(op));
    });
    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(forward);

    // @predict: the forward graph up to the predictions.
    IRMapping mapping;
    auto predict = cast<func::FuncOp>(b.clone(*forward, mapping));
    predict.setSymName(abi::kPredict);
    auto ret = cast<func::ReturnOp>(predict.getBody().front().getTerminator());
    SmallVector<Value> results;
    for (Value p : preds)
      results.push_back(mapping.lookup(p));
    OpBuilder(ret).create<func::ReturnOp>(ret.getLoc(), results);
    ret.erase();
    predict.setFunctionType(b.getFunctionType(predict.getArgumentTypes(),
                                              ValueRange(results).getTypes()));
    SmallVector<DictionaryAttr> attrs;
    for (auto [i, p] : llvm::enumerate(preds))
      attrs.push_back(b.getDictionaryAttr(
          {b.getNamedAttr(abi::attr(abi::Role::Pred),
                          b.getStringAttr("pred." + std::to_string(i))),
           b.getNamedAttr("mass.kind", b.getStringAttr(kindOf(p)))}));
    predict.setAllResultAttrs(attrs);
    eraseDead(predict);

    // @score: the predictions become arguments, after the others.
    IRMapping scoreMapping;
    auto score = cast<func::FuncOp>(b.clone(*forward, scoreMapping));
    score.setSymName(abi::kScore);
    for (auto [i, p] : llvm::enumerate(preds)) {
      unsigned index = score.getNumArguments();
      score.insertArgument(index, p.getType(), attrs[i], score.getLoc());
      scoreMapping.lookup(p).replaceAllUsesWith(score.getArgument(index));
    }
    eraseDead(score);
  }
};

} // namespace
