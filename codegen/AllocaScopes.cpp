//===- AllocaScopes.cpp - Stack memory released per loop iteration --------===//
//
// scf.for and scf.parallel are allocation scopes: a memref.alloca in their
// body lives for one iteration. Their lowering to branches drops that
// promise, so a loop that allocates on the stack (a matmul panel's packed
// block of B) would grow the stack by one allocation per iteration and
// overflow it on large inputs. This pass saves the stack pointer at the
// start of such bodies and restores it at their end.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/LoopLikeInterface.h"

namespace mass {
#define GEN_PASS_DEF_MASSALLOCASCOPES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Saves the stack pointer at the start of `block` and restores it before
/// its terminator. (memref.alloca_scope says the same, but its region must
/// stay one block, which the lowering of the loops inside it breaks.)
void releaseStack(Block &block) {
  OpBuilder b(&block, block.begin());
  Location loc = block.getParentOp()->getLoc();
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  Value saved = b.create<LLVM::StackSaveOp>(loc, ptr);
  b.setInsertionPoint(block.getTerminator());
  b.create<LLVM::StackRestoreOp>(loc, saved);
}

class AllocaScopes : public mass::impl::MassAllocaScopesBase<AllocaScopes> {
  void runOnOperation() override {
    SmallVector<Block *> bodies;
    getOperation().walk([&](LoopLikeOpInterface loop) {
      for (Region *region : loop.getLoopRegions())
        for (Block &block : *region)
          if (llvm::any_of(block, [](Operation &op) {
                return isa<memref::AllocaOp>(op);
              }))
            bodies.push_back(&block);
    });
    for (Block *block : bodies)
      releaseStack(*block);
  }
};

} // namespace
