//===- OuterParallel.cpp - One parallel dimension per loop nest -----------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"

namespace mass {
#define GEN_PASS_DEF_MASSOUTERPARALLEL
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Whether dimension `d` of `op` runs exactly once (constant bounds).
bool unitDim(scf::ParallelOp op, size_t d) {
  std::optional<int64_t> l = getConstantIntValue(op.getLowerBound()[d]),
                         u = getConstantIntValue(op.getUpperBound()[d]),
                         s = getConstantIntValue(op.getStep()[d]);
  return l && u && s && *s > 0 && *u > *l && *u - *l <= *s;
}

/// Rewrites `op` as an scf.parallel over its first dimension that runs
/// more than once (when `keepParallel`; a dimension that runs once, such
/// as a convolution's single group, gives threads nothing to split)
/// around scf.for loops over the others, in order.
void restructure(scf::ParallelOp op, bool keepParallel) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  size_t dims = op.getNumLoops();
  SmallVector<Value> ivs(dims);
  std::optional<size_t> outer;
  if (keepParallel) {
    outer = 0;
    while (*outer + 1 < dims && unitDim(op, *outer))
      ++*outer;
    auto loop =
        b.create<scf::ParallelOp>(loc, ValueRange{op.getLowerBound()[*outer]},
                                  ValueRange{op.getUpperBound()[*outer]},
                                  ValueRange{op.getStep()[*outer]});
    b.setInsertionPointToStart(loop.getBody());
    ivs[*outer] = loop.getInductionVars()[0];
  }
  for (size_t d = 0; d < dims; ++d) {
    if (outer && d == *outer)
      continue;
    auto loop = b.create<scf::ForOp>(loc, op.getLowerBound()[d],
                                     op.getUpperBound()[d], op.getStep()[d]);
    b.setInsertionPointToStart(loop.getBody());
    ivs[d] = loop.getInductionVar();
  }
  Block &body = op.getRegion().front();
  for (auto [oldIv, newIv] : llvm::zip(op.getInductionVars(), ivs))
    oldIv.replaceAllUsesWith(newIv);
  b.getInsertionBlock()->getOperations().splice(
      b.getInsertionPoint(), body.getOperations(), body.begin(),
      std::prev(body.end()));
  op.erase();
}

/// The static trip count of the iterations `op`'s body runs, nested loops
/// included; nullopt when a bound is only known at run time (the batch).
std::optional<int64_t> staticWork(scf::ParallelOp op) {
  int64_t work = 1;
  bool known = true;
  auto count = [&](ValueRange lbs, ValueRange ubs, ValueRange steps) {
    for (auto [lb, ub, step] : llvm::zip(lbs, ubs, steps)) {
      std::optional<int64_t> l = getConstantIntValue(lb),
                             u = getConstantIntValue(ub),
                             s = getConstantIntValue(step);
      if (!l || !u || !s || *s <= 0) {
        known = false;
        return;
      }
      work *= std::max<int64_t>(0, (*u - *l + *s - 1) / *s);
    }
  };
  count(op.getLowerBound(), op.getUpperBound(), op.getStep());
  op.getBody()->walk([&](Operation *inner) {
    if (auto loop = dyn_cast<scf::ForOp>(inner))
      count(loop.getLowerBound(), loop.getUpperBound(), loop.getStep());
    else if (auto par = dyn_cast<scf::ParallelOp>(inner))
      count(par.getLowerBound(), par.getUpperBound(), par.getStep());
  });
  return known ? std::optional<int64_t>(work) : std::nullopt;
}

} // namespace

void mass::sequentialize(scf::ParallelOp op) {
  restructure(op, /*keepParallel=*/false);
}

namespace {

class OuterParallel : public mass::impl::MassOuterParallelBase<OuterParallel> {
  using MassOuterParallelBase::MassOuterParallelBase;

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> loops;
    getOperation().walk([&](scf::ParallelOp op) { loops.push_back(op); });
    for (scf::ParallelOp op : loops) {
      if (op.getNumReductions() != 0) {
        op.emitError("mass-outer-parallel: parallel reductions are not "
                     "supported");
        return signalPassFailure();
      }
      // Threads pay off for a matmul's panels, and for a loop nest at the
      // top of the function with enough iterations; a nest inside a
      // sequential loop would start its threads at every iteration.
      bool kernel = op->hasAttr(mass::kParallelKernelAttr);
      std::optional<int64_t> work = staticWork(op);
      bool once = llvm::all_of(llvm::seq<size_t>(0, op.getNumLoops()),
                               [&](size_t d) { return unitDim(op, d); });
      bool sequential =
          once || (!kernel && (op->getParentOfType<scf::ParallelOp>() ||
                               op->getParentOfType<scf::ForOp>() ||
                               (work && *work < minWork)));
      if (sequential || op.getNumLoops() > 1)
        restructure(op, /*keepParallel=*/!sequential);
    }
  }
};

} // namespace
