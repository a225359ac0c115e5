//===- DistinctResults.cpp - One buffer per returned tensor
//----------------===//

#include "codegen/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"

namespace mass {
#define GEN_PASS_DEF_MASSDISTINCTRESULTS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class DistinctResults
    : public mass::impl::MassDistinctResultsBase<DistinctResults> {
  void runOnOperation() override {
    // A destination that several ops write into (CSE merges equal fills
    // and empty tensors) is made again for each writer but the last:
    // bufferization would otherwise copy it, a memcpy where a memset
    // (or nothing) does.
    SmallVector<OpOperand *> shared;
    getOperation().walk([&](DestinationStyleOpInterface op) {
      for (OpOperand &init : op.getDpsInitsMutable()) {
        Operation *def = init.get().getDefiningOp();
        if (def && isa<linalg::FillOp, tensor::EmptyOp>(def) &&
            !def->hasOneUse() && isa<RankedTensorType>(init.get().getType()))
          shared.push_back(&init);
      }
    });
    for (OpOperand *init : shared) {
      Operation *def = init->get().getDefiningOp();
      if (def->hasOneUse())
        continue;
      // The clone goes right before its writer; its operands (sizes, the
      // value) are defined before the original.
      OpBuilder b(init->getOwner());
      IRMapping mapping;
      if (auto fill = dyn_cast<linalg::FillOp>(def))
        if (Operation *empty = fill.getDpsInits()[0].getDefiningOp();
            empty && isa<tensor::EmptyOp>(empty))
          mapping.map(empty->getResult(0), b.clone(*empty)->getResult(0));
      init->set(b.clone(*def, mapping)->getResult(0));
    }

    getOperation().walk([](func::ReturnOp ret) {
      OpBuilder b(ret);
      llvm::DenseSet<Value> seen;
      for (OpOperand &operand : ret->getOpOperands()) {
        Value v = operand.get();
        auto type = dyn_cast<RankedTensorType>(v.getType());
        if (!type || (seen.insert(v).second && !isa<BlockArgument>(v)))
          continue;
        // A fresh allocation that holds a copy of the value.
        auto copy = b.create<bufferization::AllocTensorOp>(
            ret.getLoc(), type, ValueRange{}, /*copy=*/v);
        operand.set(copy);
      }
    });
  }
};

} // namespace
