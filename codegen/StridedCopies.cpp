//===- StridedCopies.cpp - Copies between strided buffers as loops --------===//
//
// A memref.copy between buffers of identity layout becomes memcpy; one that
// involves a strided view (a slice of a concatenation) would become a call
// into MLIR's C runner library, which the programs do not link. Such copies
// become linalg.copy, and so loops like every other linalg op. On the CUDA
// target (option `all`) every copy does: it runs as a kernel on the device.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

namespace mass {
#define GEN_PASS_DEF_MASSSTRIDEDCOPIES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class StridedCopies : public mass::impl::MassStridedCopiesBase<StridedCopies> {
public:
  using MassStridedCopiesBase::MassStridedCopiesBase;

private:
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp op) {
      auto identity = [](Value v) {
        auto type = dyn_cast<MemRefType>(v.getType());
        return type && type.getLayout().isIdentity();
      };
      if (all || !identity(op.getSource()) || !identity(op.getTarget()))
        copies.push_back(op);
    });
    for (memref::CopyOp op : copies) {
      OpBuilder b(op);
      b.create<linalg::CopyOp>(op.getLoc(), op.getSource(), op.getTarget());
      op.erase();
    }
  }
};

} // namespace
