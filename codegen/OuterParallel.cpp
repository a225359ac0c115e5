//===- OuterParallel.cpp - One parallel dimension per loop nest
//------------===//

#include "codegen/Passes.h"

namespace mass {
#define GEN_PASS_DEF_MASSOUTERPARALLEL
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Rewrites `op` as an scf.parallel over its first dimension (when
/// `keepFirst`) around scf.for loops over the others.
void restructure(scf::ParallelOp op, bool keepFirst) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  SmallVector<Value> ivs;
  size_t dims = op.getNumLoops();
  size_t first = 0;
  if (keepFirst) {
    auto outer = b.create<scf::ParallelOp>(
        loc, ValueRange{op.getLowerBound()[0]},
        ValueRange{op.getUpperBound()[0]}, ValueRange{op.getStep()[0]});
    b.setInsertionPointToStart(outer.getBody());
    ivs.push_back(outer.getInductionVars()[0]);
    first = 1;
  }
  for (size_t d = first; d < dims; ++d) {
    auto loop = b.create<scf::ForOp>(loc, op.getLowerBound()[d],
                                     op.getUpperBound()[d], op.getStep()[d]);
    b.setInsertionPointToStart(loop.getBody());
    ivs.push_back(loop.getInductionVar());
  }
  Block &body = op.getRegion().front();
  for (auto [oldIv, newIv] : llvm::zip(op.getInductionVars(), ivs))
    oldIv.replaceAllUsesWith(newIv);
  b.getInsertionBlock()->getOperations().splice(
      b.getInsertionPoint(), body.getOperations(), body.begin(),
      std::prev(body.end()));
  op.erase();
}

class OuterParallel : public mass::impl::MassOuterParallelBase<OuterParallel> {
  void runOnOperation() override {
    SmallVector<scf::ParallelOp> loops;
    getOperation().walk([&](scf::ParallelOp op) { loops.push_back(op); });
    for (scf::ParallelOp op : loops) {
      if (op.getNumReductions() != 0) {
        op.emitError("mass-outer-parallel: parallel reductions are not "
                     "supported");
        return signalPassFailure();
      }
      bool nested = op->getParentOfType<scf::ParallelOp>() != nullptr;
      if (nested || op.getNumLoops() > 1)
        restructure(op, /*keepFirst=*/!nested);
    }
  }
};

} // namespace
