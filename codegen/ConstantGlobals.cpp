//===- ConstantGlobals.cpp - Constant globals in a deterministic order ----===//

#include "codegen/Passes.h"

#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace mass {
#define GEN_PASS_DEF_MASSCONSTANTGLOBALS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class ConstantGlobals
    : public mass::impl::MassConstantGlobalsBase<ConstantGlobals> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<memref::GlobalOp> order;
    llvm::SmallPtrSet<Operation *, 16> seen;
    module.walk([&](memref::GetGlobalOp get) {
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      if (global && global.getConstant() && seen.insert(global).second)
        order.push_back(global);
    });
    // Temporary names first, so that no final name clashes with one not
    // renamed yet.
    for (auto [k, global] : llvm::enumerate(order))
      if (failed(
              symbols.rename(global, "__mass_renaming_" + std::to_string(k))))
        return signalPassFailure();
    Operation *previous = nullptr;
    for (auto [k, global] : llvm::enumerate(order)) {
      if (failed(
              symbols.rename(global, "__mass_constant_" + std::to_string(k))))
        return signalPassFailure();
      if (previous)
        global->moveAfter(previous);
      else
        global->moveBefore(&module.getBody()->front());
      previous = global;
    }
  }
};

} // namespace
