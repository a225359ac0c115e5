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

/// An id clamped into [0, rows), as an index.
Value clampedRow(OpBuilder &b, Location loc, Value id, int64_t rows) {
  auto i32 = [&](int64_t v) {
    return b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(v));
  };
  Value low = b.create<arith::MaxSIOp>(loc, id, i32(0));
  Value clamped = b.create<arith::MinSIOp>(loc, low, i32(rows - 1));
  return b.create<arith::IndexCastOp>(loc, b.getIndexType(), clamped);
}

struct EmbeddingPattern : public MassPattern<EmbeddingOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(EmbeddingOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    int64_t rank = type.getRank();
    Value table = op.getWeight();
    int64_t rows = tensorType(table).getDimSize(0);
    SmallVector<AffineMap> maps = {rowMap(l.b, rank),
                                   l.b.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    SmallVector<Value> dynamic;
    for (int64_t i = 0; i + 1 < rank; ++i)
      if (type.isDynamicDim(i))
        dynamic.push_back(l.b.create<tensor::DimOp>(l.loc, op.getIds(), i));
    Value gathered =
        l.b.create<linalg::GenericOp>(
               l.loc, type, ValueRange{op.getIds()}, l.empty(type, dynamic),
               maps, iters,
               [&](OpBuilder &b, Location loc, ValueRange a) {
                 Value row = clampedRow(b, loc, a[0], rows);
                 Value column = b.create<linalg::IndexOp>(loc, rank - 1);
                 b.create<linalg::YieldOp>(
                     loc, ValueRange{b.create<tensor::ExtractOp>(
                              loc, table, ValueRange{row, column})});
               })
            .getResult(0);
    return SmallVector<Value>{gathered};
  }
};

struct EmbeddingGradPattern : public MassPattern<EmbeddingGradOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(EmbeddingGradOp op,
                                      Lowering &l) const override {
    auto tableType = tensorType(op.getResult());
    int64_t rows = tableType.getDimSize(0), width = tableType.getDimSize(1);
    // The positions as one axis: ids [N], grad [N, D].
    auto idsType = tensorType(op.getIds());
    ReassociationIndices all =
        llvm::to_vector(llvm::seq<int64_t>(0, idsType.getRank()));
    Value ids = l.b.create<tensor::CollapseShapeOp>(
        l.loc, op.getIds(), SmallVector<ReassociationIndices>{all});
    Value grad = l.b.create<tensor::CollapseShapeOp>(
        l.loc, op.getGrad(),
        SmallVector<ReassociationIndices>{all, {idsType.getRank()}});
    Value zero = l.filled(tableType, {}, l.f32(0));
    Value c0 = l.b.create<arith::ConstantIndexOp>(l.loc, 0);
    Value c1 = l.b.create<arith::ConstantIndexOp>(l.loc, 1);
    Value n = l.b.create<tensor::DimOp>(l.loc, ids, 0);
    auto rowType = RankedTensorType::get({1, width}, l.b.getF32Type());
    SmallVector<OpFoldResult> sizes = {l.b.getIndexAttr(1),
                                       l.b.getIndexAttr(width)};
    SmallVector<OpFoldResult> strides = {l.b.getIndexAttr(1),
                                         l.b.getIndexAttr(1)};
    auto loop = l.b.create<scf::ForOp>(
        l.loc, c0, n, c1, ValueRange{zero},
        [&](OpBuilder &b, Location loc, Value i, ValueRange acc) {
          Value id = b.create<tensor::ExtractOp>(loc, ids, ValueRange{i});
          Value row = clampedRow(b, loc, id, rows);
          SmallVector<OpFoldResult> at = {row, b.getIndexAttr(0)};
          SmallVector<OpFoldResult> from = {i, b.getIndexAttr(0)};
          Value in = b.create<tensor::ExtractSliceOp>(loc, rowType, grad, from,
                                                      sizes, strides);
          Value into = b.create<tensor::ExtractSliceOp>(loc, rowType, acc[0],
                                                        at, sizes, strides);
          SmallVector<AffineMap> maps(2, b.getMultiDimIdentityMap(2));
          SmallVector<utils::IteratorType> iters(2,
                                                 utils::IteratorType::parallel);
          Value added =
              b.create<linalg::GenericOp>(
                   loc, rowType, ValueRange{in}, ValueRange{into}, maps, iters,
                   [](OpBuilder &nb, Location nl, ValueRange a) {
                     nb.create<linalg::YieldOp>(
                         nl,
                         ValueRange{nb.create<arith::AddFOp>(nl, a[1], a[0])});
                   })
                  .getResult(0);
          Value updated = b.create<tensor::InsertSliceOp>(loc, added, acc[0],
                                                          at, sizes, strides);
          b.create<scf::YieldOp>(loc, updated);
        });
    return SmallVector<Value>{loop.getResult(0)};
  }
};

} // namespace

void mass::lowering::populateSequencePatterns(RewritePatternSet &patterns) {
  patterns.add<LayerNormPattern, EmbeddingPattern, EmbeddingGradPattern>(
      patterns.getContext());
}
