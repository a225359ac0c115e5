//===- DistinctResults.cpp - One buffer per returned tensor
//----------------===//

#include "codegen/Passes.h"

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
