//===- DistinctResults.cpp - One buffer per returned tensor ---------------===//

#include "codegen/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

namespace mass {
#define GEN_PASS_DEF_MASSDISTINCTRESULTS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// The ops that make `init` a fresh destination, from `init`'s definition
/// back to a tensor.empty: reshapes, fills (and what they fill); empty when
/// `init` is anything else.
SmallVector<Operation *> destinationChain(Value init) {
  SmallVector<Operation *> chain;
  while (Operation *def = init.getDefiningOp()) {
    if (!isa<RankedTensorType>(init.getType()))
      break;
    chain.push_back(def);
    if (isa<tensor::EmptyOp>(def))
      return chain;
    if (auto fill = dyn_cast<linalg::FillOp>(def))
      init = fill.getDpsInits()[0];
    else if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def))
      init = def->getOperand(0);
    else
      break;
  }
  return {};
}

class DistinctResults
    : public mass::impl::MassDistinctResultsBase<DistinctResults> {
  void runOnOperation() override {
    // A destination that several ops write into (CSE merges equal fills
    // and empty tensors, reshaped or not) is made again right before each
    // writer: bufferization would otherwise copy it (a memcpy where a
    // memset, or nothing, does), and mass-gemm starts a product from a
    // fill only when the fill comes just before it.
    SmallVector<std::pair<OpOperand *, SmallVector<Operation *>>> shared;
    getOperation().walk([&](DestinationStyleOpInterface op) {
      for (OpOperand &init : op.getDpsInitsMutable()) {
        SmallVector<Operation *> chain = destinationChain(init.get());
        if (llvm::any_of(chain, [](Operation *def) {
              return !def->getResult(0).hasOneUse();
            }))
          shared.emplace_back(&init, std::move(chain));
      }
    });
    llvm::SetVector<Operation *> originals;
    for (auto &[init, chain] : shared) {
      // Operands from outside the chain (sizes, the fill's value) are
      // defined before the original chain, hence before the writer.
      OpBuilder b(init->getOwner());
      IRMapping mapping;
      for (Operation *def : llvm::reverse(chain))
        b.clone(*def, mapping);
      init->set(mapping.lookup(init->get()));
      originals.insert(chain.begin(), chain.end());
    }
    // The originals nothing reads any more (an op of one chain may read
    // one of another: repeat until none is left).
    SmallVector<Operation *> pending = originals.takeVector();
    for (bool erased = true; erased;) {
      erased = false;
      for (Operation *&def : pending)
        if (def && def->use_empty()) {
          def->erase();
          def = nullptr;
          erased = true;
        }
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
