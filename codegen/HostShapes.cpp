//===- HostShapes.cpp - The shapes reshapes read, on the host's stack -----===//
//
// memref.reshape reads its shape operand when the host builds the result's
// descriptor. On the CUDA target the arena and every argument are device
// memory, so the shape buffers bufferization allocated move to the stack.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

namespace mass {
#define GEN_PASS_DEF_MASSHOSTSHAPES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class HostShapes : public mass::impl::MassHostShapesBase<HostShapes> {
  void runOnOperation() override {
    SmallVector<memref::AllocOp> shapes;
    getOperation().walk([&](memref::ReshapeOp op) {
      auto alloc = op.getShape().getDefiningOp<memref::AllocOp>();
      if (alloc && alloc.getType().hasStaticShape() &&
          !llvm::is_contained(shapes, alloc))
        shapes.push_back(alloc);
    });
    for (memref::AllocOp alloc : shapes) {
      OpBuilder b(alloc);
      auto alloca = b.create<memref::AllocaOp>(alloc.getLoc(), alloc.getType(),
                                               alloc.getAlignmentAttr());
      // A stack buffer is never freed.
      for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
        if (isa<memref::DeallocOp>(user))
          user->erase();
      alloc.replaceAllUsesWith(alloca.getResult());
      alloc.erase();
    }
  }
};

} // namespace
