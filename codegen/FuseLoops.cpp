//===- FuseLoops.cpp - Producer-consumer fusion of linalg ops
//--------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mass {
#define GEN_PASS_DEF_MASSFUSELOOPS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class FuseLoops : public mass::impl::MassFuseLoopsBase<FuseLoops> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    // First read sizes from operands rather than from results, so that a
    // size query does not count as a second use of a producer.
    RewritePatternSet dims(ctx);
    memref::populateResolveRankedShapedTypeResultDimsPatterns(dims);
    if (failed(applyPatternsAndFoldGreedily(getOperation(), std::move(dims))))
      return signalPassFailure();
    RewritePatternSet patterns(ctx);
    linalg::ControlFusionFn control = [](OpOperand *operand) {
      auto producer = operand->get().getDefiningOp<linalg::LinalgOp>();
      auto consumer = dyn_cast<linalg::LinalgOp>(operand->getOwner());
      return producer && consumer && producer->hasOneUse() &&
             producer.getNumLoops() == consumer.getNumLoops();
    };
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
