//===- GradReady.cpp - Tell the runtime when each gradient is final ------===//
//
// Data-parallel training sums the gradients over the processes. Started
// only after the step, that sum waits for the whole backward pass; started
// bucket by bucket as the gradients become final, it runs while the rest
// of the backward pass still computes. This pass marks those points: after
// the last op that touches a gradient's out-parameter (or a view of it), a
// call of the runtime's `mass_grad_ready(value)`.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

namespace mass {
#define GEN_PASS_DEF_MASSGRADREADY
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

constexpr llvm::StringLiteral kHook = "mass_grad_ready";

/// The op of `block` that last touches `buffer` or a value derived from it
/// (any memref an op makes from it may be a view); null when none does.
/// Ops nested in a region count as their ancestor in `block`.
Operation *lastToucher(Value buffer, Block &block) {
  Operation *last = nullptr;
  SmallVector<Value> views{buffer};
  llvm::SmallPtrSet<Value, 8> seen{buffer};
  while (!views.empty()) {
    Value view = views.pop_back_val();
    for (Operation *user : view.getUsers()) {
      Operation *top = block.findAncestorOpInBlock(*user);
      // A buffer the terminator uses is final before it.
      if (top && top->hasTrait<OpTrait::IsTerminator>())
        top = top->getPrevNode();
      if (top && (!last || last->isBeforeInBlock(top)))
        last = top;
      for (Value result : user->getResults())
        if (isa<BaseMemRefType>(result.getType()) && seen.insert(result).second)
          views.push_back(result);
    }
  }
  return last;
}

class GradReady : public mass::impl::MassGradReadyBase<GradReady> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *context = &getContext();
    SmallVector<NamedAttribute> orders;
    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      auto values =
          func->getAttrOfType<DenseI64ArrayAttr>(mass::kGradValuesAttr);
      if (!values)
        continue;
      func->removeAttr(mass::kGradValuesAttr);
      if (func.isExternal())
        continue;
      if (!func.getBody().hasOneBlock()) {
        // Only straight-line steps are planned: this one calls nothing and
        // the runtime sums its gradients after it.
        func.emitWarning("mass-grad-ready: a step of more than one block "
                         "reports no gradient before it returns");
        continue;
      }
      Block &body = func.getBody().front();
      // Where each gradient is final: after its last toucher, or at the
      // start for one that nothing writes.
      SmallVector<std::pair<Operation *, int64_t>> points;
      for (int64_t value : values.asArrayRef()) {
        if (value < 0 || value >= func.getNumArguments() ||
            !isa<BaseMemRefType>(func.getArgument(value).getType())) {
          func.emitError("mass-grad-ready: gradient value ")
              << value << " is no buffer argument";
          return signalPassFailure();
        }
        points.push_back({lastToucher(func.getArgument(value), body), value});
      }
      // In the order of the calls: by their op, then by value (each value
      // once: a total order).
      llvm::sort(points, [](const auto &a, const auto &b) {
        if (a.first == b.first)
          return a.second < b.second;
        if (!a.first || !b.first)
          return !a.first;
        return a.first->isBeforeInBlock(b.first);
      });
      func::FuncOp hook = declareHook(module, func.getLoc());
      OpBuilder b(context);
      SmallVector<int64_t> order;
      // Calls after the same op keep their order: each goes after the last.
      Operation *previous = nullptr, *lastCall = nullptr;
      for (auto [op, value] : points) {
        if (op != previous || !lastCall) {
          if (op)
            b.setInsertionPointAfter(op);
          else
            b.setInsertionPointToStart(&body);
        } else {
          b.setInsertionPointAfter(lastCall);
        }
        Location loc = op ? op->getLoc() : func.getLoc();
        Value index = b.create<arith::ConstantIntOp>(loc, value, 64);
        lastCall = b.create<func::CallOp>(loc, hook, ValueRange{index});
        previous = op;
        order.push_back(value);
      }
      orders.push_back(
          b.getNamedAttr(func.getSymName(), b.getDenseI64ArrayAttr(order)));
    }
    if (!orders.empty())
      module->setAttr(mass::kGradReadyAttr,
                      DictionaryAttr::get(context, orders));
  }

  /// `void mass_grad_ready(i64)`, declared at the start of the module once.
  func::FuncOp declareHook(ModuleOp module, Location loc) {
    if (auto f = module.lookupSymbol<func::FuncOp>(kHook))
      return f;
    OpBuilder b(module.getBodyRegion());
    auto f = b.create<func::FuncOp>(loc, kHook,
                                    b.getFunctionType({b.getI64Type()}, {}));
    f.setPrivate();
    return f;
  }
};

} // namespace
