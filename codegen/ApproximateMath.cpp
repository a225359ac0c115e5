//===- ApproximateMath.cpp - Math functions as vectorisable polynomials ---===//
//
// libm's tanhf, erff, expf and logf are calls per element; MLIR's polynomial
// approximations are arith ops that loops vectorise.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Math/Transforms/Approximation.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mass {
#define GEN_PASS_DEF_MASSAPPROXIMATEMATH
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class ApproximateMath
    : public mass::impl::MassApproximateMathBase<ApproximateMath> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns);
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
