//===- MergeKernelModules.cpp - All kernels in one GPU module -------------===//
//
// gpu-kernel-outlining puts each kernel in a module of its own: ResNet-18's
// training program would load over a thousand modules when it starts, and
// compile as many through ptxas. Here they become one module, each kernel
// named after the module it came from; the constant globals outlining
// copied into several modules are kept once.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/IR/SymbolTable.h"

namespace mass {
#define GEN_PASS_DEF_MASSMERGEKERNELMODULES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class MergeKernelModules
    : public mass::impl::MassMergeKernelModulesBase<MergeKernelModules> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::GPUModuleOp> kernels(module.getOps<gpu::GPUModuleOp>());
    if (kernels.size() < 2)
      return;
    OpBuilder b(kernels.front());
    auto merged =
        b.create<gpu::GPUModuleOp>(kernels.front().getLoc(), "mass_kernels");
    SymbolTable table(merged);
    Block &into = merged.getBodyRegion().front();
    DenseMap<SymbolRefAttr, SymbolRefAttr> renamed;
    for (gpu::GPUModuleOp kernel : kernels) {
      StringAttr name = kernel.getSymNameAttr();
      for (Operation &op :
           llvm::make_early_inc_range(kernel.getBodyRegion().front())) {
        if (auto func = dyn_cast<gpu::GPUFuncOp>(op)) {
          auto from = SymbolRefAttr::get(
              name, {FlatSymbolRefAttr::get(func.getNameAttr())});
          func.setName(name.getValue());
          op.moveBefore(into.getTerminator());
          renamed[from] = SymbolRefAttr::get(merged.getSymNameAttr(),
                                             {FlatSymbolRefAttr::get(name)});
          continue;
        }
        auto symbol = dyn_cast<SymbolOpInterface>(op);
        if (symbol && table.lookup(symbol.getNameAttr())) {
          // Outlining copied the same global into each module that reads
          // it: one copy is enough.
          if (!isa<memref::GlobalOp>(op)) {
            op.emitError("two kernel modules define '")
                << symbol.getName() << "' differently";
            return signalPassFailure();
          }
          op.erase();
          continue;
        }
        if (symbol) {
          op.moveBefore(into.getTerminator());
          table.insert(&op);
        }
      }
    }
    WalkResult walk = module.walk([&](gpu::LaunchFuncOp launch) {
      SymbolRefAttr to = renamed.lookup(launch.getKernel());
      if (!to) {
        launch.emitError("a launch of an unknown kernel");
        return WalkResult::interrupt();
      }
      launch.setKernelAttr(to);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    for (gpu::GPUModuleOp kernel : kernels)
      kernel.erase();
  }
};

} // namespace
