//===- LowerSequence.cpp - Sequence-model ops to linalg on tensors --------===//
//
// Layer normalisation is two row reductions along the last axis (the mean,
// then the squares about it) and one elementwise pass. An embedding is a
// gather of weight rows by id; its gradient adds rows of the incoming
// gradient into the rows their ids name, one position after another (a
// loop over the positions whose body adds one row: deterministic, and
// bufferized in place).
//
//===----------------------------------------------------------------------===//

#include "codegen/Lowering.h"

#include "dialects/Mass/MassOps.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mass;
using namespace mass::lowering;
using namespace mlir;

namespace {

/// The map from a tensor's loops to those of its rows (all but the last).
AffineMap rowMap(OpBuilder &b, int64_t rank) {
  SmallVector<AffineExpr> exprs;
  for (int64_t i = 0; i + 1 < rank; ++i)
    exprs.push_back(b.getAffineDimExpr(i));
  return AffineMap::get(rank, 0, exprs, b.getContext());
}

/// The map from a tensor's loops to its last axis.
AffineMap lastMap(OpBuilder &b, int64_t rank) {
  return AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1));
}

/// The dynamic sizes of `x`'s rows (`x` without its last axis).
SmallVector<Value> rowSizes(Lowering &l, Value x) {
  SmallVector<Value> sizes;
  auto type = tensorType(x);
  for (int64_t i = 0; i + 1 < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(l.b.create<tensor::DimOp>(l.loc, x, i));
  return sizes;
}

/// Per row of `x`: the sum along the last axis of `body`'s value for each
/// element (inputs: x's element, then each of `perRow`'s).
Value rowSum(Lowering &l, Value x, ValueRange perRow, RankedTensorType rowType,
             Body body) {
  int64_t rank = tensorType(x).getRank();
  SmallVector<Value> ins = {x};
  ins.append(perRow.begin(), perRow.end());
  SmallVector<AffineMap> maps = {l.b.getMultiDimIdentityMap(rank)};
  maps.append(perRow.size() + 1, rowMap(l.b, rank));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  iters.back() = utils::IteratorType::reduction;
  return l.b
      .create<linalg::GenericOp>(
          l.loc, rowType, ins, l.filled(rowType, rowSizes(l, x), l.f32(0)),
          maps, iters,
          [&](OpBuilder &b, Location loc, ValueRange a) {
            Value v = body(b, loc, a.drop_back());
            b.create<linalg::YieldOp>(
                loc, ValueRange{b.create<arith::AddFOp>(loc, a.back(), v)});
          })
      .getResult(0);
}

struct LayerNormPattern : public MassPattern<LayerNormOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(LayerNormOp op,
                                      Lowering &l) const override {
    Value x = op.getInput();
    auto type = tensorType(x);
    auto rowType = tensorType(op.getMean());
    int64_t rank = type.getRank();
    double width = static_cast<double>(type.getShape().back());
    double eps = op.getEps().convertToDouble();
    Value sum =
        rowSum(l, x, {}, rowType,
               [](OpBuilder &, Location, ValueRange a) { return a[0]; });
    Value mean = l.elementwise(
        rowType, {sum}, [&](OpBuilder &b, Location loc, ValueRange a) {
          return Value(b.create<arith::DivFOp>(loc, a[0], cst(b, loc, width)));
        });
    // Two passes: the squares are taken about the mean.
    Value squares = rowSum(l, x, {mean}, rowType,
                           [](OpBuilder &b, Location loc, ValueRange a) {
                             Value d = b.create<arith::SubFOp>(loc, a[0], a[1]);
                             return Value(b.create<arith::MulFOp>(loc, d, d));
                           });
    Value rstd = l.elementwise(
        rowType, {squares}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value var = b.create<arith::DivFOp>(loc, a[0], cst(b, loc, width));
          Value shifted = b.create<arith::AddFOp>(loc, var, cst(b, loc, eps));
          return Value(b.create<arith::DivFOp>(
              loc, cst(b, loc, 1.0), b.create<math::SqrtOp>(loc, shifted)));
        });
    // y = (x - mean) * rstd * weight + bias, one pass.
    Value y = l.normalize(x, mean, rstd, op.getWeight(), op.getBias(),
                          rowMap(l.b, rank), lastMap(l.b, rank));
    return SmallVector<Value>{y, mean, rstd};
  }
};

} // namespace

void mass::lowering::populateSequencePatterns(RewritePatternSet &patterns) {
  patterns.add<LayerNormPattern>(patterns.getContext());
}
