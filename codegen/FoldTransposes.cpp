//===- FoldTransposes.cpp - Products read transposed operands in place ----===//
//
// A contraction whose operand is a transpose of the last two axes reads the
// transpose's input through a swapped indexing map instead: no transposed
// copy is made (x * W^T reads W as stored).
//
//===----------------------------------------------------------------------===//

#include "codegen/Contraction.h"
#include "codegen/Passes.h"

#include "llvm/ADT/SetVector.h"

namespace mass {
#define GEN_PASS_DEF_MASSFOLDTRANSPOSES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;
using mass::isMulAdd;

namespace {

/// The transpose that produces `v` when it swaps the last two axes only.
linalg::TransposeOp swapOfLastTwo(Value v) {
  auto t = v.getDefiningOp<linalg::TransposeOp>();
  if (!t)
    return nullptr;
  ArrayRef<int64_t> perm = t.getPermutation();
  int64_t rank = perm.size();
  for (int64_t i = 0; i < rank; ++i) {
    int64_t expected = i < rank - 2 ? i : (i == rank - 2 ? rank - 1 : rank - 2);
    if (perm[i] != expected)
      return nullptr;
  }
  return rank >= 2 ? t : nullptr;
}

class FoldTransposes
    : public mass::impl::MassFoldTransposesBase<FoldTransposes> {
  void runOnOperation() override {
    llvm::SetVector<linalg::TransposeOp> folded;
    getOperation().walk([&](linalg::GenericOp op) {
      if (op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
          op.getNumReductionLoops() != 1 || !isMulAdd(op))
        return;
      SmallVector<AffineMap> maps = op.getIndexingMapsArray();
      for (OpOperand *operand : op.getDpsInputOperands()) {
        linalg::TransposeOp t = swapOfLastTwo(operand->get());
        if (!t)
          continue;
        // Reading T[..., i, j] is reading X[..., j, i].
        AffineMap &map = maps[operand->getOperandNumber()];
        SmallVector<AffineExpr> exprs(map.getResults());
        std::swap(exprs[exprs.size() - 2], exprs[exprs.size() - 1]);
        map = AffineMap::get(map.getNumDims(), map.getNumSymbols(), exprs,
                             op.getContext());
        operand->set(t.getInput());
        folded.insert(t);
      }
      op.setIndexingMapsAttr(OpBuilder(op).getAffineMapArrayAttr(maps));
    });
    for (linalg::TransposeOp t : folded)
      if (t->use_empty())
        t->erase();
  }
};

} // namespace
