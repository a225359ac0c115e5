//===- GpuLaunch.cpp - Parallel loop nests as GPU kernel launches ---------===//

#include "codegen/Passes.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

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

/// The buffer `view` is a view of: through subviews, casts and reshapes
/// to the argument or allocation.
Value rootBuffer(Value view) {
  while (Operation *def = view.getDefiningOp()) {
    auto viewLike = dyn_cast<ViewLikeOpInterface>(def);
    if (!viewLike)
      break;
    view = viewLike.getViewSource();
  }
  return view;
}

/// `for i { A(i); parallel j { B(i, j) } }` as
/// `parallel j { for i { A(i); B(i, j) } }`: the reduction loops linalg puts
/// outside (a sum over the batch) and the scatter of an embedding's
/// gradient (a row per token, `A` the token's load) run inside each
/// thread, in order, so the result is the CPU's. Loops from linalg write
/// distinct elements for distinct j, so the order of i within each j is all
/// that must stay; `A` only computes and reads (each thread repeats it),
/// and not from a buffer that `B` writes.
void interchange(scf::ForOp loop) {
  Block *body = loop.getBody();
  // Inside a parallel loop it would only reorder one thread's work.
  if (loop.getNumResults() != 0 || body->getOperations().size() < 2 ||
      loop->getParentOfType<scf::ParallelOp>())
    return;
  auto inner = dyn_cast<scf::ParallelOp>(*std::prev(body->end(), 2));
  if (!inner || inner.getNumResults() != 0)
    return;
  for (ValueRange bounds :
       {inner.getLowerBound(), inner.getUpperBound(), inner.getStep()})
    for (Value bound : bounds)
      if (!bound.getParentRegion()->isProperAncestor(&loop.getRegion()))
        return;
  llvm::SmallPtrSet<Value, 4> written;
  inner.walk([&](Operation *op) {
    if (auto store = dyn_cast<memref::StoreOp>(op))
      written.insert(rootBuffer(store.getMemRef()));
    else if (auto copy = dyn_cast<memref::CopyOp>(op))
      written.insert(rootBuffer(copy.getTarget()));
    else if (!isa<memref::LoadOp>(op) && !isMemoryEffectFree(op) &&
             op->getNumRegions() == 0)
      written.insert(Value()); // An effect not tracked here.
  });
  if (written.contains(Value()))
    return;
  for (Operation &op : llvm::make_range(body->begin(), inner->getIterator())) {
    if (op.getNumRegions() != 0)
      return;
    auto load = dyn_cast<memref::LoadOp>(op);
    if (load ? written.contains(rootBuffer(load.getMemRef()))
             : !isMemoryEffectFree(&op))
      return;
  }
  OpBuilder b(loop);
  auto outer =
      b.create<scf::ParallelOp>(inner.getLoc(), inner.getLowerBound(),
                                inner.getUpperBound(), inner.getStep());
  b.setInsertionPointToStart(outer.getBody());
  auto serial = b.create<scf::ForOp>(loop.getLoc(), loop.getLowerBound(),
                                     loop.getUpperBound(), loop.getStep());
  Block &from = inner.getRegion().front();
  Block *to = serial.getBody();
  for (auto [oldIv, newIv] :
       llvm::zip(inner.getInductionVars(), outer.getInductionVars()))
    oldIv.replaceAllUsesWith(newIv);
  loop.getInductionVar().replaceAllUsesWith(serial.getInductionVar());
  to->getOperations().splice(std::prev(to->end()), body->getOperations(),
                             body->begin(), inner->getIterator());
  to->getOperations().splice(std::prev(to->end()), from.getOperations(),
                             from.begin(), std::prev(from.end()));
  loop.erase();
}

/// Whether `buffer` is the host's: a stack allocation or a constant global
/// (the shapes reshapes read), or a view of one. Everything else (the
/// arguments, the arena) is device memory.
bool onHost(Value buffer) {
  Operation *def = rootBuffer(buffer).getDefiningOp();
  return def && isa<memref::AllocaOp, memref::GetGlobalOp>(def);
}

/// The first op in `op` (or `op` itself) that reads or writes device
/// memory, or null.
Operation *deviceAccess(Operation *op) {
  Operation *found = nullptr;
  op->walk([&](Operation *inner) {
    Value buffer;
    if (auto load = dyn_cast<memref::LoadOp>(inner))
      buffer = load.getMemRef();
    else if (auto store = dyn_cast<memref::StoreOp>(inner))
      buffer = store.getMemRef();
    else if (isa<memref::CopyOp, linalg::LinalgOp, vector::TransferReadOp,
                 vector::TransferWriteOp, vector::LoadOp, vector::StoreOp>(
                 inner)) {
      found = inner;
      return WalkResult::interrupt();
    }
    if (buffer && !onHost(buffer)) {
      found = inner;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return found;
}

/// Whether `op`, outside the parallel loops in it, reads or writes device
/// memory.
bool touchesDeviceAround(Operation *op) {
  bool found = false;
  op->walk<WalkOrder::PreOrder>([&](Operation *inner) {
    if (isa<scf::ParallelOp>(inner))
      return WalkResult::skip();
    if (inner->getNumRegions() == 0 && deviceAccess(inner)) {
      found = true;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return found;
}

/// Moves `ops` (consecutive in one block, in order) into a kernel of one
/// thread. Fails if the host uses a value they compute.
LogicalResult launchSerially(ArrayRef<Operation *> ops) {
  llvm::SmallPtrSet<Operation *, 16> inRun(ops.begin(), ops.end());
  for (Operation *op : ops)
    for (Value result : op->getResults())
      for (Operation *user : result.getUsers()) {
        Operation *top = op->getBlock()->findAncestorOpInBlock(*user);
        if (!top || !inRun.contains(top))
          return user->emitError("the host reads a value that a kernel "
                                 "computes on the device");
      }
  OpBuilder b(ops.front());
  Location loc = ops.front()->getLoc();
  Value one = b.create<arith::ConstantIndexOp>(loc, 1);
  auto kernel = b.create<gpu::LaunchOp>(loc, one, one, one, one, one, one);
  b.setInsertionPointToStart(&kernel.getBody().front());
  auto end = b.create<gpu::TerminatorOp>(loc);
  for (Operation *op : ops)
    op->moveBefore(end);
  return success();
}

/// Runs the ops of `block` outside the loop nests that touch device memory
/// in kernels of one thread: each maximal sequence of them, with the pure
/// ops that depend on them, becomes one kernel; pure ops in between that do
/// not depend on them move ahead of it.
LogicalResult launchSerialRuns(Block &block) {
  SmallVector<Operation *> run;
  llvm::SmallPtrSet<Operation *, 16> inRun;
  auto flush = [&]() -> LogicalResult {
    if (run.empty())
      return success();
    LogicalResult result = launchSerially(run);
    run.clear();
    inRun.clear();
    return result;
  };
  auto dependsOnRun = [&](Operation *op) {
    bool depends = false;
    op->walk([&](Operation *inner) {
      for (Value operand : inner->getOperands())
        if (Operation *def = operand.getDefiningOp())
          if (Operation *top = block.findAncestorOpInBlock(*def))
            depends |= inRun.contains(top);
    });
    return depends;
  };
  for (Operation &op : llvm::make_early_inc_range(block)) {
    if (isa<scf::ParallelOp, gpu::LaunchOp>(op) ||
        op.hasTrait<OpTrait::IsTerminator>()) {
      if (failed(flush()))
        return failure();
      continue;
    }
    bool device = deviceAccess(&op) != nullptr;
    // A constant global is on both sides (sinkGlobals copies it into the
    // kernels): a read of one joins a kernel that is being formed.
    auto load = dyn_cast<memref::LoadOp>(op);
    if (load && !run.empty() &&
        load.getMemRef().getDefiningOp<memref::GetGlobalOp>())
      device = true;
    bool depends = !run.empty() && dependsOnRun(&op);
    bool pure = isPure(&op) && op.getNumRegions() == 0;
    // An op that depends on the run joins it where it stands: a division,
    // not speculatable, may join too.
    bool effectFree = isMemoryEffectFree(&op) && op.getNumRegions() == 0;
    if (device || (depends && effectFree)) {
      run.push_back(&op);
      inRun.insert(&op);
    } else if (pure && !run.empty()) {
      op.moveBefore(run.front());
    } else if (failed(flush())) {
      return failure();
    }
  }
  return flush();
}

/// Clones the constant globals a kernel reads into it (outlining copies the
/// globals into the kernel's module).
void sinkGlobals(gpu::LaunchOp kernel) {
  llvm::SetVector<Value> above;
  getUsedValuesDefinedAbove(kernel.getBody(), above);
  OpBuilder b(kernel.getBody());
  b.setInsertionPointToStart(&kernel.getBody().front());
  for (Value v : above)
    if (auto global = v.getDefiningOp<memref::GetGlobalOp>()) {
      Operation *copy = b.clone(*global);
      replaceAllUsesInRegionWith(v, copy->getResult(0), kernel.getBody());
    }
}

/// The first op outside the kernels that touches device memory: after this
/// pass there must be none.
Operation *hostAccess(func::FuncOp func) {
  Operation *found = nullptr;
  func.walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (isa<gpu::LaunchOp>(op))
      return WalkResult::skip();
    if (isa<memref::AllocOp>(op) ||
        (op != func && deviceAccess(op) && op->getNumRegions() == 0)) {
      found = op;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return found;
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
    if (getOperation().isExternal())
      return;
    // Innermost first, so that `for i { for k { parallel j } }` ends as
    // `parallel j { for i { for k } }`.
    SmallVector<scf::ForOp> loops;
    getOperation().walk([&](scf::ForOp loop) { loops.push_back(loop); });
    for (scf::ForOp loop : loops)
      interchange(loop);
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
    // The host calls the GPU runtime's kernels (mass-device-kernel-calls
    // takes them out of their loops); a call left in a loop nest would run
    // on the device, which has no version of it.
    getOperation().walk([&](func::CallOp call) {
      if (call->getParentOfType<scf::ParallelOp>() ||
          call->getParentOfType<scf::ForOp>()) {
        call.emitError() << "the runtime kernel '" << call.getCallee()
                         << "' is not supported yet on the CUDA target";
        failed = true;
      }
    });
    if (failed)
      return signalPassFailure();
    for (scf::ParallelOp op : outermost) {
      // A loop nest on the host around `op` that itself touches device
      // memory becomes a kernel of one thread below: `op` runs there in
      // order, as a kernel cannot launch kernels.
      Operation *top = getOperation().getBody().front().findAncestorOpInBlock(
          *op.getOperation());
      if (top != op.getOperation() && touchesDeviceAround(top))
        mass::sequentialize(op);
      else
        launch(op, blockSize);
    }
    if (mlir::failed(launchSerialRuns(getOperation().getBody().front())))
      return signalPassFailure();
    getOperation().walk([](gpu::LaunchOp kernel) { sinkGlobals(kernel); });
    if (Operation *op = hostAccess(getOperation())) {
      op->emitError("mass-gpu-launch: the host would touch device memory "
                    "here");
      return signalPassFailure();
    }
  }
};

} // namespace
