//===- EmulateLaunches.cpp - GPU kernel launches as host loops ------------===//
//
// The CUDA target's program with its kernels run on the host, for the tests
// of machines without a GPU: each gpu.launch a loop nest over its grid and
// blocks, one iteration per thread, in order.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

namespace mass {
#define GEN_PASS_DEF_MASSEMULATELAUNCHES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Replaces `kernel` with loops over blocks z, y, x and threads z, y, x.
LogicalResult emulate(gpu::LaunchOp kernel) {
  Region &region = kernel.getBody();
  if (!region.hasOneBlock())
    return kernel.emitError("mass-emulate-launches: a kernel of one block "
                            "was expected");
  if (!kernel.getAsyncDependencies().empty() || kernel.getAsyncToken() ||
      kernel.getDynamicSharedMemorySize() || kernel.getClusterSizeX() ||
      !kernel.getWorkgroupAttributions().empty())
    return kernel.emitError("mass-emulate-launches: only synchronous "
                            "kernels without shared memory are emulated");
  WalkResult shared = kernel.walk([](Operation *op) {
    return isa<gpu::BarrierOp, gpu::ShuffleOp>(op) ? WalkResult::interrupt()
                                                   : WalkResult::advance();
  });
  if (shared.wasInterrupted())
    return kernel.emitError("mass-emulate-launches: threads that exchange "
                            "data are not emulated");
  OpBuilder b(kernel);
  Location loc = kernel.getLoc();
  Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
  Value one = b.create<arith::ConstantIndexOp>(loc, 1);
  gpu::KernelDim3 grid = kernel.getGridSizeOperandValues();
  gpu::KernelDim3 block = kernel.getBlockSizeOperandValues();
  gpu::KernelDim3 blockIds = kernel.getBlockIds();
  gpu::KernelDim3 threadIds = kernel.getThreadIds();
  gpu::KernelDim3 gridArgs = kernel.getGridSize();
  gpu::KernelDim3 blockArgs = kernel.getBlockSize();
  IRMapping map;
  for (auto [arg, size] :
       llvm::zip(SmallVector<Value>{gridArgs.x, gridArgs.y, gridArgs.z,
                                    blockArgs.x, blockArgs.y, blockArgs.z},
                 SmallVector<Value>{grid.x, grid.y, grid.z, block.x, block.y,
                                    block.z}))
    map.map(arg, size);
  SmallVector<std::pair<Value, Value>> loops = {
      {blockIds.z, grid.z},   {blockIds.y, grid.y},   {blockIds.x, grid.x},
      {threadIds.z, block.z}, {threadIds.y, block.y}, {threadIds.x, block.x}};
  for (auto [id, size] : loops) {
    auto loop = b.create<scf::ForOp>(loc, zero, size, one);
    map.map(id, loop.getInductionVar());
    b.setInsertionPoint(loop.getBody()->getTerminator());
  }
  for (Operation &op : region.front().without_terminator())
    b.clone(op, map);
  kernel.erase();
  return success();
}

struct EmulateLaunches : mass::impl::MassEmulateLaunchesBase<EmulateLaunches> {
  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> kernels;
    getOperation().walk(
        [&](gpu::LaunchOp kernel) { kernels.push_back(kernel); });
    for (gpu::LaunchOp kernel : kernels)
      if (failed(emulate(kernel)))
        return signalPassFailure();
  }
};

} // namespace
