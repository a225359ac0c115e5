//===- FuseLoops.cpp - Producer-consumer fusion of linalg ops ---*- C++ -*-===//
//
// The linalg ops of one mass.fusion group become one loop nest; then
// single-use elementwise producers outside groups fuse into consumers over
// the same loops (the several nests one mass op lowers to, a convolution's
// copy back to NCHW into the group of its epilogue).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mass {
#define GEN_PASS_DEF_MASSFUSELOOPS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Fuses one producer of `consumer` from the same group into it; false
/// when there is none left.
bool fuseOneProducer(IRRewriter &rewriter, linalg::GenericOp consumer) {
  Attribute group = consumer->getAttr(mass::kFusionGroupAttr);
  for (OpOperand *operand : consumer.getDpsInputOperands()) {
    auto producer = operand->get().getDefiningOp<linalg::GenericOp>();
    if (!producer || producer->getAttr(mass::kFusionGroupAttr) != group ||
        !linalg::areElementwiseOpsFusable(operand))
      continue;
    rewriter.setInsertionPoint(consumer);
    FailureOr<linalg::ElementwiseOpFusionResult> fused =
        linalg::fuseElementwiseOps(rewriter, operand);
    if (failed(fused))
      continue;
    fused->fusedOp->setAttr(mass::kFusionGroupAttr, group);
    // The fused op yields the consumer's results and those of the
    // producer's that other ops still read; the group was formed so that
    // those readers come after the consumer.
    for (auto [original, replacement] : fused->replacements)
      rewriter.replaceAllUsesExcept(original, replacement, fused->fusedOp);
    rewriter.eraseOp(consumer);
    if (producer->use_empty())
      rewriter.eraseOp(producer);
    return true;
  }
  return false;
}

class FuseLoops : public mass::impl::MassFuseLoopsBase<FuseLoops> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    // First read sizes from operands rather than from results, so that a
    // size query does not count as a second use of a producer.
    RewritePatternSet dims(ctx);
    memref::populateResolveRankedShapedTypeResultDimsPatterns(dims);
    if (failed(applyPatternsAndFoldGreedily(getOperation(), std::move(dims))))
      return signalPassFailure();

    // Fusion groups: fuse until each is one op.
    IRRewriter rewriter(ctx);
    bool changed = true;
    while (changed) {
      changed = false;
      SmallVector<linalg::GenericOp> grouped;
      getOperation().walk([&](linalg::GenericOp op) {
        if (op->hasAttr(mass::kFusionGroupAttr))
          grouped.push_back(op);
      });
      for (linalg::GenericOp op : grouped)
        if ((changed = fuseOneProducer(rewriter, op)))
          break;
    }

    // Elsewhere: single-use producers over the same loops, into ops
    // outside groups or into a group's one op (a convolution's copy back
    // to NCHW into its bias, batch norm and activation).
    RewritePatternSet patterns(ctx);
    linalg::ControlFusionFn control = [](OpOperand *operand) {
      auto producer = operand->get().getDefiningOp<linalg::LinalgOp>();
      auto consumer = dyn_cast<linalg::LinalgOp>(operand->getOwner());
      return producer && consumer && producer->hasOneUse() &&
             producer.getNumLoops() == consumer.getNumLoops() &&
             !producer->hasAttr(mass::kFusionGroupAttr);
    };
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    getOperation().walk(
        [](Operation *op) { op->removeAttr(mass::kFusionGroupAttr); });
  }
};

} // namespace
