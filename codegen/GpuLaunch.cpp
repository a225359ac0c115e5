//===- GpuLaunch.cpp - Parallel loop nests as GPU kernel launches ---------===//

#include "codegen/Passes.h"

namespace mass {
#define GEN_PASS_DEF_MASSGPULAUNCH
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Replaces `op` with a gpu.launch of one thread per iteration.
void launch(scf::ParallelOp op, int64_t blockSize) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
  Value one = b.create<arith::ConstantIndexOp>(loc, 1);
  Value threads = b.create<arith::ConstantIndexOp>(loc, blockSize);
  // Iterations per dimension, and in all.
  SmallVector<Value> counts;
  Value total = one;
  for (auto [lb, ub, step] :
       llvm::zip(op.getLowerBound(), op.getUpperBound(), op.getStep())) {
    Value span = b.create<arith::SubIOp>(loc, ub, lb);
    Value count = b.create<arith::CeilDivSIOp>(loc, span, step);
    count = b.create<arith::MaxSIOp>(loc, count, zero);
    counts.push_back(count);
    total = b.create<arith::MulIOp>(loc, total, count);
  }
  Value blocks = b.create<arith::CeilDivSIOp>(loc, total, threads);
  auto kernel =
      b.create<gpu::LaunchOp>(loc, blocks, one, one, threads, one, one);
  b.setInsertionPointToStart(&kernel.getBody().front());
  Value id = b.create<arith::AddIOp>(
      loc, b.create<arith::MulIOp>(loc, kernel.getBlockIds().x, threads),
      kernel.getThreadIds().x);
  Value inRange =
      b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, id, total);
  auto guard = b.create<scf::IfOp>(loc, inRange, /*withElseRegion=*/false);
  b.create<gpu::TerminatorOp>(loc);
  b.setInsertionPointToStart(&guard.getThenRegion().front());
  // The last dimension varies fastest between neighbouring threads.
  size_t dims = counts.size();
  SmallVector<Value> ivs(dims);
  Value rest = id;
  for (size_t d = dims; d-- > 0;) {
    Value index =
        d == 0 ? rest : b.create<arith::RemSIOp>(loc, rest, counts[d]);
    if (d > 0)
      rest = b.create<arith::DivSIOp>(loc, rest, counts[d]);
    ivs[d] = b.create<arith::AddIOp>(
        loc, op.getLowerBound()[d],
        b.create<arith::MulIOp>(loc, index, op.getStep()[d]));
  }
  Block &body = op.getRegion().front();
  for (auto [oldIv, newIv] : llvm::zip(op.getInductionVars(), ivs))
    oldIv.replaceAllUsesWith(newIv);
  Block *then = b.getInsertionBlock();
  then->getOperations().splice(b.getInsertionPoint(), body.getOperations(),
                               body.begin(), std::prev(body.end()));
  op.erase();
  SmallVector<scf::ParallelOp> inner;
  then->walk([&](scf::ParallelOp nested) { inner.push_back(nested); });
  for (scf::ParallelOp nested : llvm::reverse(inner))
    mass::sequentialize(nested);
}

struct GpuLaunch : mass::impl::MassGpuLaunchBase<GpuLaunch> {
  using MassGpuLaunchBase::MassGpuLaunchBase;

  void runOnOperation() override {
    if (blockSize < 1 || blockSize > 1024) {
      getOperation().emitError("mass-gpu-launch: block-size must be in "
                               "[1, 1024], not ")
          << blockSize;
      return signalPassFailure();
    }
    SmallVector<scf::ParallelOp> outermost;
    bool failed = false;
    getOperation().walk([&](scf::ParallelOp op) {
      if (op.getNumResults() > 0) {
        op.emitError("a parallel reduction is not supported yet on the "
                     "CUDA target");
        failed = true;
      }
      if (!op->getParentOfType<scf::ParallelOp>())
        outermost.push_back(op);
    });
    // The CPU runtime's kernels (attention, layer norm) bufferize into
    // calls; the GPU has none of them yet.
    getOperation().walk([&](func::CallOp call) {
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      if (callee && callee.isExternal()) {
        call.emitError() << "the runtime kernel '" << call.getCallee()
                         << "' is not supported yet on the CUDA target";
        failed = true;
      }
    });
    if (failed)
      return signalPassFailure();
    for (scf::ParallelOp op : outermost)
      launch(op, blockSize);
  }
};

} // namespace
