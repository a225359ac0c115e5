//===- LowerToLinalg.cpp - mass ops to linalg on tensors ------------------===//
//
// Elementwise ops become linalg.generic with broadcasting indexing maps,
// reductions generic ops with reduction iterators, dense and matmul linalg
// contractions. Dynamic sizes (the batch) are read from the operands with
// tensor.dim.
//
//===----------------------------------------------------------------------===//

#include "codegen/Lowering.h"

#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Shapes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/Transforms/DialectConversion.h"

#include <cmath>
#include <limits>

namespace mass {
#define GEN_PASS_DEF_MASSLOWERTOLINALG
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mass;
using namespace mass::lowering;
using namespace mlir;

namespace {

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

/// Every elementwise op: one linalg.generic over the result's shape whose
/// body is the op's scalar function (ElementwiseOpInterface).
struct ElementwisePattern
    : public OpInterfaceConversionPattern<ElementwiseOpInterface> {
  using OpInterfaceConversionPattern::OpInterfaceConversionPattern;
  LogicalResult
  matchAndRewrite(ElementwiseOpInterface op, ArrayRef<Value>,
                  ConversionPatternRewriter &rewriter) const override {
    Lowering l(rewriter, op->getLoc());
    Operation *before = op->getPrevNode();
    Value result =
        l.elementwise(tensorType(op->getResult(0)), op->getOperands(),
                      [&](OpBuilder &b, Location loc, ValueRange elements) {
                        return op.buildScalar(b, loc, elements);
                      });
    markFusionGroup(op, before);
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct BroadcastPattern : public MassPattern<BroadcastOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(BroadcastOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    SmallVector<AffineMap> maps = {
        l.broadcastMap(tensorType(op.getInput()).getShape(), type.getShape()),
        l.b.getMultiDimIdentityMap(type.getRank())};
    SmallVector<utils::IteratorType> iters(type.getRank(),
                                           utils::IteratorType::parallel);
    Value init = l.empty(type, l.dynamicSizes(type, {op.getLike()}));
    return SmallVector<Value>{
        l.b.create<linalg::GenericOp>(
               l.loc, type, ValueRange{op.getInput()}, init, maps, iters,
               [](OpBuilder &b, Location loc, ValueRange a) {
                 b.create<linalg::YieldOp>(loc, a[0]);
               })
            .getResult(0)};
  }
};

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

/// y = x wT + bias over `type` (dynamic sizes `dynamic`), with wT =
/// transpose(w) made once: loops p..., i, o keep the innermost loop on
/// contiguous rows of wT and y, where it vectorises without a reduction.
static Value lowerDense(Lowering &l, Value input, Value weight, Value bias,
                        RankedTensorType type, ArrayRef<Value> dynamic) {
  int64_t rank = type.getRank();
  // The accumulator starts as the bias (or zero), broadcast over rows.
  Value init;
  if (bias) {
    SmallVector<AffineMap> maps = {
        AffineMap::get(rank, 0, l.b.getAffineDimExpr(rank - 1),
                       l.b.getContext()),
        l.b.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    init = l.b.create<linalg::GenericOp>(
                  l.loc, type, ValueRange{bias}, l.empty(type, dynamic), maps,
                  iters,
                  [](OpBuilder &b, Location loc, ValueRange a) {
                    b.create<linalg::YieldOp>(loc, a[0]);
                  })
               .getResult(0);
  } else {
    init = l.filled(type, dynamic, l.f32(0));
  }
  auto wType = tensorType(weight);
  auto wtType = RankedTensorType::get(
      {wType.getDimSize(1), wType.getDimSize(0)}, wType.getElementType());
  Value wt = l.b.create<linalg::TransposeOp>(l.loc, weight, l.empty(wtType, {}),
                                             ArrayRef<int64_t>{1, 0})
                 .getResult()[0];
  int64_t loops = rank + 1;
  SmallVector<AffineExpr> xExprs, yExprs;
  for (int64_t i = 0; i + 1 < rank; ++i) {
    xExprs.push_back(l.b.getAffineDimExpr(i));
    yExprs.push_back(l.b.getAffineDimExpr(i));
  }
  AffineExpr k = l.b.getAffineDimExpr(rank - 1), o = l.b.getAffineDimExpr(rank);
  xExprs.push_back(k);
  yExprs.push_back(o);
  auto ctx = l.b.getContext();
  SmallVector<AffineMap> maps = {AffineMap::get(loops, 0, xExprs, ctx),
                                 AffineMap::get(loops, 0, {k, o}, ctx),
                                 AffineMap::get(loops, 0, yExprs, ctx)};
  return l.contract(type, input, wt, init, maps);
}

/// A product whose right operand is one matrix for every row of `x`
/// [p..., k] (a dense layer's weight): the rows collapse into one matrix
/// [P, k], so that it is one matrix product (the right operand packed
/// once, every row in one kernel) rather than one per leading index.
/// `product` builds it over rows of `rowsType`; the result is expanded back
/// to `type`.
static Value overRows(
    Lowering &l, Value x, RankedTensorType type,
    function_ref<Value(Value, RankedTensorType, ArrayRef<Value>)> product) {
  SmallVector<Value> dynamic;
  Value rows = l.collapseRows(x, dynamic);
  int64_t rank = type.getRank();
  auto rowsType = RankedTensorType::get(
      {tensorType(rows).getDimSize(0), type.getDimSize(rank - 1)},
      type.getElementType());
  return l.expandRows(product(rows, rowsType, dynamic), type, x);
}

struct DensePattern : public MassPattern<DenseOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(DenseOp op, Lowering &l) const override {
    auto type = tensorType(op.getResult());
    auto dense = [&](Value x, RankedTensorType t, ArrayRef<Value> dynamic) {
      return lowerDense(l, x, op.getWeight(), op.getBias(), t, dynamic);
    };
    if (type.getRank() > 2)
      return SmallVector<Value>{overRows(l, op.getInput(), type, dense)};
    return SmallVector<Value>{
        dense(op.getInput(), type, l.dynamicSizes(type, {op.getInput()}))};
  }
};

/// lhs x rhs over `type` (dynamic sizes `dynamic`): batch axes align from
/// the end, a batch axis of size 1 broadcasts.
static Value lowerMatmul(Lowering &l, Value lhs, Value rhs,
                         RankedTensorType type, ArrayRef<Value> dynamic) {
  auto lhsType = tensorType(lhs), rhsType = tensorType(rhs);
  int64_t rank = type.getRank();
  Value init = l.filled(type, dynamic, l.f32(0));
  // Loops batch..., m, k, n: the innermost loop runs along rows of the
  // rhs and of the result, contiguous in memory, so it vectorises without
  // a reduction.
  int64_t loops = rank + 1;
  auto ctx = l.b.getContext();
  AffineExpr m = l.b.getAffineDimExpr(rank - 2),
             k = l.b.getAffineDimExpr(rank - 1), n = l.b.getAffineDimExpr(rank);
  auto operandMap = [&](RankedTensorType t, AffineExpr a, AffineExpr c) {
    SmallVector<AffineExpr> exprs;
    int64_t lead = (rank - 2) - (t.getRank() - 2);
    for (int64_t j = 0; j < t.getRank() - 2; ++j)
      exprs.push_back(t.getDimSize(j) == 1 && type.getDimSize(j + lead) != 1
                          ? l.b.getAffineConstantExpr(0)
                          : l.b.getAffineDimExpr(j + lead));
    exprs.push_back(a);
    exprs.push_back(c);
    return AffineMap::get(loops, 0, exprs, ctx);
  };
  SmallVector<AffineExpr> outExprs;
  for (int64_t i = 0; i + 2 < rank; ++i)
    outExprs.push_back(l.b.getAffineDimExpr(i));
  outExprs.push_back(m);
  outExprs.push_back(n);
  SmallVector<AffineMap> maps = {operandMap(lhsType, m, k),
                                 operandMap(rhsType, k, n),
                                 AffineMap::get(loops, 0, outExprs, ctx)};
  return l.contract(type, lhs, rhs, init, maps);
}

struct MatmulPattern : public MassPattern<MatmulOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(MatmulOp op, Lowering &l) const override {
    auto type = tensorType(op.getResult());
    auto matmul = [&](Value lhs, RankedTensorType t, ArrayRef<Value> dynamic) {
      return lowerMatmul(l, lhs, op.getRhs(), t, dynamic);
    };
    if (type.getRank() > 2 && tensorType(op.getRhs()).getRank() == 2)
      return SmallVector<Value>{overRows(l, op.getLhs(), type, matmul)};
    // Dynamic sizes: batch axes align from the end, M comes from the lhs,
    // N from the rhs.
    int64_t rank = type.getRank();
    SmallVector<Value> dynamic;
    for (int64_t i = 0; i < rank; ++i) {
      if (!type.isDynamicDim(i))
        continue;
      Value source = i == rank - 1 ? op.getRhs() : op.getLhs();
      auto st = tensorType(source);
      int64_t j = i - rank + st.getRank();
      if (j < 0 || !st.isDynamicDim(j)) {
        source = op.getRhs();
        st = tensorType(op.getRhs());
        j = i - rank + st.getRank();
      }
      dynamic.push_back(l.b.create<tensor::DimOp>(l.loc, source, j));
    }
    return SmallVector<Value>{matmul(op.getLhs(), type, dynamic)};
  }
};

//===----------------------------------------------------------------------===//
// Shape
//===----------------------------------------------------------------------===//

struct ReshapePattern : public MassPattern<ReshapeOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(ReshapeOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    auto inType = tensorType(op.getInput());
    if (type.hasStaticShape() && inType.hasStaticShape() && type == inType)
      return SmallVector<Value>{op.getInput()};
    // The target shape as an index tensor; a dynamic size is the element
    // count divided by the static sizes.
    SmallVector<Value> dims;
    Value total = l.b.create<arith::ConstantIndexOp>(l.loc, 1);
    for (int64_t i = 0; i < inType.getRank(); ++i)
      total = l.b.create<arith::MulIOp>(
          l.loc, total, l.b.create<tensor::DimOp>(l.loc, op.getInput(), i));
    int64_t known = 1;
    for (int64_t d : type.getShape())
      if (!ShapedType::isDynamic(d))
        known *= d;
    // A leading batch that the reshape keeps (the other axes hold as many
    // elements on both sides) is the input's own batch: no division, and
    // the size stays recognisably the batch for later passes.
    bool keepsBatch = inType.getRank() > 0 && type.getRank() > 0 &&
                      inType.isDynamicDim(0) && type.isDynamicDim(0);
    if (keepsBatch) {
      int64_t restIn = 1;
      for (int64_t d : inType.getShape().drop_front())
        restIn *= ShapedType::isDynamic(d) ? -1 : d;
      keepsBatch = restIn == known;
    }
    for (auto [i, d] : llvm::enumerate(type.getShape())) {
      if (!ShapedType::isDynamic(d))
        dims.push_back(l.b.create<arith::ConstantIndexOp>(l.loc, d));
      else if (i == 0 && keepsBatch)
        dims.push_back(l.b.create<tensor::DimOp>(l.loc, op.getInput(), 0));
      else
        dims.push_back(l.b.create<arith::DivUIOp>(
            l.loc, total, l.b.create<arith::ConstantIndexOp>(l.loc, known)));
    }
    Value shape = l.b.create<tensor::FromElementsOp>(
        l.loc, RankedTensorType::get({type.getRank()}, l.b.getIndexType()),
        dims);
    return SmallVector<Value>{
        l.b.create<tensor::ReshapeOp>(l.loc, type, op.getInput(), shape)};
  }
};

/// Offsets, sizes and strides of the run of `len` positions at `offset`
/// along `axis` of `like`, all of the other axes.
static void runAlong(Lowering &l, Value like, int64_t axis, int64_t offset,
                     int64_t len, SmallVectorImpl<OpFoldResult> &offsets,
                     SmallVectorImpl<OpFoldResult> &sizes,
                     SmallVectorImpl<OpFoldResult> &strides) {
  auto type = tensorType(like);
  for (int64_t d = 0; d < type.getRank(); ++d) {
    offsets.push_back(l.b.getIndexAttr(d == axis ? offset : 0));
    if (d == axis)
      sizes.push_back(l.b.getIndexAttr(len));
    else if (type.isDynamicDim(d))
      sizes.push_back(l.b.create<tensor::DimOp>(l.loc, like, d).getResult());
    else
      sizes.push_back(l.b.getIndexAttr(type.getDimSize(d)));
    strides.push_back(l.b.getIndexAttr(1));
  }
}

struct ConcatPattern : public MassPattern<ConcatOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(ConcatOp op, Lowering &l) const override {
    auto type = tensorType(op.getResult());
    int64_t axis = op.getFrontAxis();
    Value out = l.empty(type, l.dynamicSizes(type, op.getInputs()));
    int64_t offset = 0;
    for (Value in : op.getInputs()) {
      int64_t len = tensorType(in).getDimSize(axis);
      SmallVector<OpFoldResult> offsets, sizes, strides;
      runAlong(l, in, axis, offset, len, offsets, sizes, strides);
      out = l.b.create<tensor::InsertSliceOp>(l.loc, in, out, offsets, sizes,
                                              strides);
      offset += len;
    }
    return SmallVector<Value>{out};
  }
};

struct SlicePattern : public MassPattern<SliceOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(SliceOp op, Lowering &l) const override {
    auto type = tensorType(op.getResult());
    SmallVector<OpFoldResult> offsets, sizes, strides;
    runAlong(l, op.getInput(), op.getAxis(), op.getOffset(),
             type.getDimSize(op.getAxis()), offsets, sizes, strides);
    return SmallVector<Value>{l.b.create<tensor::ExtractSliceOp>(
        l.loc, type, op.getInput(), offsets, sizes, strides)};
  }
};

struct PadPattern : public MassPattern<PadOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(PadOp op, Lowering &l) const override {
    auto type = tensorType(op.getResult());
    auto inType = tensorType(op.getInput());
    SmallVector<OpFoldResult> offsets, sizes, strides;
    runAlong(l, op.getInput(), op.getAxis(), op.getOffset(),
             inType.getDimSize(op.getAxis()), offsets, sizes, strides);
    Value zeros =
        l.filled(type, l.dynamicSizes(type, {op.getInput()}), l.f32(0));
    return SmallVector<Value>{l.b.create<tensor::InsertSliceOp>(
        l.loc, op.getInput(), zeros, offsets, sizes, strides)};
  }
};

struct TransposePattern : public MassPattern<TransposeOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(TransposeOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    SmallVector<Value> dynamic;
    for (int64_t i = 0; i < type.getRank(); ++i)
      if (type.isDynamicDim(i))
        dynamic.push_back(
            l.b.create<tensor::DimOp>(l.loc, op.getInput(), op.getPerm()[i]));
    return SmallVector<Value>{
        l.b.create<linalg::TransposeOp>(l.loc, op.getInput(),
                                        l.empty(type, dynamic), op.getPerm())
            .getResult()[0]};
  }
};

//===----------------------------------------------------------------------===//
// Reductions and normalised exponentials
//===----------------------------------------------------------------------===//

SmallVector<int64_t> normalized(ArrayRef<int64_t> axes, int64_t rank) {
  SmallVector<int64_t> out;
  for (int64_t a : axes)
    out.push_back(*normalizeAxis(a, rank));
  llvm::sort(out);
  return out;
}

/// Reshapes a reduction without its axes to the op's result type (keepdim).
Value toResultType(Lowering &l, Value reduced, RankedTensorType type) {
  if (tensorType(reduced) == type)
    return reduced;
  ReshapeOp tmp = l.b.create<ReshapeOp>(l.loc, type, reduced);
  return tmp.getResult(); // lowered by ReshapePattern in the same conversion
}

template <typename OpT> struct ReducePattern : public MassPattern<OpT> {
  using MassPattern<OpT>::MassPattern;
  FailureOr<SmallVector<Value>> lower(OpT op, Lowering &l) const override {
    int64_t rank = tensorType(op.getInput()).getRank();
    SmallVector<int64_t> axes = normalized(op.getAxes(), rank);
    bool isMax = std::is_same_v<OpT, MaxOp>;
    Value init = l.f32(isMax ? -std::numeric_limits<float>::infinity() : 0.0);
    auto combine = [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
      if (isMax)
        return b.create<arith::MaximumFOp>(loc, a[0], a[1]);
      return b.create<arith::AddFOp>(loc, a[0], a[1]);
    };
    // With the last axis and others reduced, the last axes go last, from
    // one partial result per position along them: the innermost loop then
    // walks rows (vectorised) instead of adding into one accumulator in
    // memory. Enough trailing axes are kept for rows of at least 64
    // elements (a weight's [O, I, 3, 3] keeps I, 3, 3), while the partial
    // results stay small.
    auto inType = tensorType(op.getInput());
    int64_t kept = 0, row = 1;
    while (kept + 1 < static_cast<int64_t>(axes.size()) && row < 64 &&
           axes[axes.size() - 1 - kept] == rank - 1 - kept &&
           !inType.isDynamicDim(rank - 1 - kept) &&
           row * inType.getDimSize(rank - 1 - kept) <= 16384) {
      row *= inType.getDimSize(rank - 1 - kept);
      ++kept;
    }
    Value r;
    if (kept > 0 && row > 1) {
      Value partial =
          l.reduce(op.getInput(), ArrayRef<int64_t>(axes).drop_back(kept), init,
                   combine);
      int64_t partialRank = tensorType(partial).getRank();
      SmallVector<int64_t> last =
          llvm::to_vector(llvm::seq<int64_t>(partialRank - kept, partialRank));
      r = l.reduce(partial, last, init, combine);
    } else {
      r = l.reduce(op.getInput(), axes, init, combine);
    }
    if (std::is_same_v<OpT, MeanOp>) {
      Value n = l.count(op.getInput(), axes);
      r = l.elementwise(tensorType(r), {r},
                        [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
                          return b.create<arith::DivFOp>(loc, a[0], n);
                        });
    }
    return SmallVector<Value>{toResultType(l, r, tensorType(op.getResult()))};
  }
};

template <typename OpT> struct SoftmaxPattern : public MassPattern<OpT> {
  using MassPattern<OpT>::MassPattern;
  FailureOr<SmallVector<Value>> lower(OpT op, Lowering &l) const override {
    Value x = op.getInput();
    int64_t rank = tensorType(x).getRank();
    int64_t axis = *normalizeAxis(static_cast<int64_t>(op.getAxis()), rank);
    bool isLog = std::is_same_v<OpT, LogSoftmaxOp>;
    Value rowMax =
        l.reduce(x, {axis}, l.f32(-std::numeric_limits<float>::infinity()),
                 [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                   return b.create<arith::MaximumFOp>(loc, a[0], a[1]);
                 });
    Value shifted = l.withRow(
        x, rowMax, axis, [](OpBuilder &b, Location loc, ValueRange a) -> Value {
          return b.create<arith::SubFOp>(loc, a[0], a[1]);
        });
    Value rowSum =
        l.reduce(shifted, {axis}, l.f32(0),
                 [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                   Value e = b.create<math::ExpOp>(loc, a[0]);
                   return b.create<arith::AddFOp>(loc, e, a[1]);
                 });
    return SmallVector<Value>{l.withRow(
        shifted, rowSum, axis,
        [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
          if (isLog)
            return b.create<arith::SubFOp>(loc, a[0],
                                           b.create<math::LogOp>(loc, a[1]));
          return b.create<arith::DivFOp>(loc, b.create<math::ExpOp>(loc, a[0]),
                                         a[1]);
        })};
  }
};

//===----------------------------------------------------------------------===//
// Losses and metrics
//===----------------------------------------------------------------------===//

/// Per-row statistics of logits [B, C] against labels [B]: the row maximum,
/// log-sum-exp, the logit of the label (0 when unlabelled) and the mean
/// logit.
struct RowStats {
  Value max, lse, picked, mean, valid; // valid: 1.0 where label >= 0
};

RowStats rowStats(Lowering &l, Value logits, Value labels) {
  RowStats s;
  int64_t classes = tensorType(logits).getDimSize(1);
  s.max = l.reduce(logits, {1}, l.f32(-std::numeric_limits<float>::infinity()),
                   [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                     return b.create<arith::MaximumFOp>(loc, a[0], a[1]);
                   });
  Value shifted = l.withRow(
      logits, s.max, 1, [](OpBuilder &b, Location loc, ValueRange a) -> Value {
        return b.create<arith::SubFOp>(loc, a[0], a[1]);
      });
  Value sumExp =
      l.reduce(shifted, {1}, l.f32(0),
               [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                 return b.create<arith::AddFOp>(
                     loc, b.create<math::ExpOp>(loc, a[0]), a[1]);
               });
  auto rowType = tensorType(sumExp);
  s.lse = l.elementwise(rowType, {sumExp, s.max},
                        [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                          return b.create<arith::AddFOp>(
                              loc, b.create<math::LogOp>(loc, a[0]), a[1]);
                        });
  // The label's logit: a reduction over classes that keeps the one whose
  // index equals the label.
  Value labelsAsRows = l.withRow(
      logits, labels, 1, [](OpBuilder &b, Location loc, ValueRange a) -> Value {
        Value c = b.create<arith::IndexCastOp>(
            loc, b.getI32Type(), b.create<linalg::IndexOp>(loc, 1));
        Value hit =
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, c, a[1]);
        return b.create<arith::SelectOp>(loc, hit, a[0], cst(b, loc, 0.0));
      });
  s.picked = l.reduce(labelsAsRows, {1}, l.f32(0),
                      [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                        return b.create<arith::AddFOp>(loc, a[0], a[1]);
                      });
  Value total = l.reduce(logits, {1}, l.f32(0),
                         [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                           return b.create<arith::AddFOp>(loc, a[0], a[1]);
                         });
  s.mean = l.elementwise(
      rowType, {total}, [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
        return b.create<arith::DivFOp>(loc, a[0], cst(b, loc, classes));
      });
  s.valid = l.elementwise(
      rowType, {labels}, [](OpBuilder &b, Location loc, ValueRange a) -> Value {
        Value zero = b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(0));
        Value ok =
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::sge, a[0], zero);
        return b.create<arith::UIToFPOp>(loc, b.getF32Type(), ok);
      });
  return s;
}

/// Sum over all axes into a rank-0 tensor.
Value total(Lowering &l, Value x) {
  return l.reduce(x, l.allAxes(tensorType(x).getRank()), l.f32(0), addBody);
}

struct CrossEntropyPattern : public MassPattern<CrossEntropyOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(CrossEntropyOp op,
                                      Lowering &l) const override {
    RowStats s = rowStats(l, op.getLogits(), op.getLabels());
    double smoothing = op.getSmoothing().convertToDouble();
    auto rowType = tensorType(s.lse);
    // Per row: valid * ((1-s) (lse - picked) + s (lse - mean)).
    Value rows = l.elementwise(
        rowType, {s.lse, s.picked, s.mean, s.valid},
        [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
          Value nll = b.create<arith::SubFOp>(loc, a[0], a[1]);
          Value smooth = b.create<arith::SubFOp>(loc, a[0], a[2]);
          Value mixed = b.create<arith::AddFOp>(
              loc,
              b.create<arith::MulFOp>(loc, nll, cst(b, loc, 1 - smoothing)),
              b.create<arith::MulFOp>(loc, smooth, cst(b, loc, smoothing)));
          return b.create<arith::MulFOp>(loc, mixed, a[3]);
        });
    Value sum = l.extract(total(l, rows));
    Value n = l.extract(total(l, s.valid));
    Value denom = l.b.create<arith::MaximumFOp>(l.loc, n, l.f32(1.0));
    return SmallVector<Value>{
        l.toTensor(l.b.create<arith::DivFOp>(l.loc, sum, denom))};
  }
};

struct CrossEntropyGradPattern : public MassPattern<CrossEntropyGradOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(CrossEntropyGradOp op,
                                      Lowering &l) const override {
    RowStats s = rowStats(l, op.getLogits(), op.getLabels());
    double smoothing = op.getSmoothing().convertToDouble();
    int64_t classes = tensorType(op.getLogits()).getDimSize(1);
    Value n = l.extract(total(l, s.valid));
    Value scale = l.b.create<arith::DivFOp>(
        l.loc, l.extract(op.getGrad()),
        l.b.create<arith::MaximumFOp>(l.loc, n, l.f32(1.0)));
    // Per row: label and lse, to build softmax - target in one pass.
    auto type = tensorType(op.getLogits());
    int64_t rank = 2;
    auto ctx = l.b.getContext();
    AffineMap row = AffineMap::get(rank, 0, l.b.getAffineDimExpr(0), ctx);
    SmallVector<AffineMap> maps = {l.b.getMultiDimIdentityMap(rank), row, row,
                                   row, l.b.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    Value init = l.empty(type, l.dynamicSizes(type, {op.getLogits()}));
    Value grad =
        l.b.create<linalg::GenericOp>(
               l.loc, type,
               ValueRange{op.getLogits(), s.lse, op.getLabels(), s.valid}, init,
               maps, iters,
               [&](OpBuilder &b, Location loc, ValueRange a) {
                 Value p = b.create<math::ExpOp>(
                     loc, b.create<arith::SubFOp>(loc, a[0], a[1]));
                 Value c = b.create<arith::IndexCastOp>(
                     loc, b.getI32Type(), b.create<linalg::IndexOp>(loc, 1));
                 Value hit = b.create<arith::CmpIOp>(
                     loc, arith::CmpIPredicate::eq, c, a[2]);
                 Value target = b.create<arith::SelectOp>(
                     loc, hit, cst(b, loc, 1 - smoothing + smoothing / classes),
                     cst(b, loc, smoothing / classes));
                 Value d = b.create<arith::SubFOp>(loc, p, target);
                 Value w = b.create<arith::MulFOp>(loc, a[3], scale);
                 b.create<linalg::YieldOp>(
                     loc, ValueRange{b.create<arith::MulFOp>(loc, d, w)});
               })
            .getResult(0);
    return SmallVector<Value>{grad};
  }
};

/// f(pred, target) summed over all elements: as a mean (a loss, one
/// result), or as the sum and the element count (a metric, two results).
template <typename OpT, bool Mean>
struct PairReducePattern : public MassPattern<OpT> {
  using Fn = Value (*)(OpBuilder &, Location, Value, Value);
  PairReducePattern(MLIRContext *ctx, Fn fn) : MassPattern<OpT>(ctx), fn(fn) {}
  Fn fn;
  FailureOr<SmallVector<Value>> lower(OpT op, Lowering &l) const override {
    Value e =
        l.elementwise(tensorType(op.getPred()), {op.getPred(), op.getTarget()},
                      [&](OpBuilder &b, Location loc, ValueRange a) {
                        return fn(b, loc, a[0], a[1]);
                      });
    Value n =
        l.count(op.getPred(), l.allAxes(tensorType(op.getPred()).getRank()));
    if (Mean)
      return SmallVector<Value>{l.toTensor(
          l.b.create<arith::DivFOp>(l.loc, l.extract(total(l, e)), n))};
    return SmallVector<Value>{total(l, e), l.toTensor(n)};
  }
};

Value squaredError(OpBuilder &b, Location l, Value p, Value t) {
  Value d = b.create<arith::SubFOp>(l, p, t);
  return b.create<arith::MulFOp>(l, d, d);
}
Value absError(OpBuilder &b, Location l, Value p, Value t) {
  return b.create<math::AbsFOp>(l, b.create<arith::SubFOp>(l, p, t));
}
/// BCEWithLogits: max(x, 0) - x t + log(1 + exp(-|x|)).
Value bceWithLogits(OpBuilder &b, Location l, Value x, Value t) {
  Value relu = b.create<arith::MaximumFOp>(l, x, cst(b, l, 0.0));
  Value xt = b.create<arith::MulFOp>(l, x, t);
  Value e = b.create<math::ExpOp>(
      l, b.create<arith::NegFOp>(l, b.create<math::AbsFOp>(l, x)));
  return b.create<arith::AddFOp>(l, b.create<arith::SubFOp>(l, relu, xt),
                                 b.create<math::Log1pOp>(l, e));
}

struct AccuracyPattern : public MassPattern<AccuracyOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(AccuracyOp op,
                                      Lowering &l) const override {
    Value logits = op.getLogits(), labels = op.getLabels();
    if (tensorType(labels).getElementType().isF32()) {
      // Binary: (logit > 0) == (target > 0.5).
      Value hits = l.elementwise(
          tensorType(logits), {logits, labels},
          [](OpBuilder &b, Location loc, ValueRange a) -> Value {
            Value p = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGT,
                                              a[0], cst(b, loc, 0.0));
            Value t = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGT,
                                              a[1], cst(b, loc, 0.5));
            Value same =
                b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, p, t);
            return b.create<arith::UIToFPOp>(loc, b.getF32Type(), same);
          });
      return SmallVector<Value>{
          total(l, hits),
          l.toTensor(l.count(logits, l.allAxes(tensorType(logits).getRank())))};
    }
    // A hit when no class scores above the label's, and none before it
    // scores equal (argmax takes the first maximum).
    RowStats s = rowStats(l, logits, labels);
    Value ahead = rank(l, logits, labels, s.picked);
    Value hits = l.elementwise(
        tensorType(s.valid), {ahead, s.valid},
        [](OpBuilder &b, Location loc, ValueRange a) -> Value {
          Value first = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OEQ,
                                                a[0], cst(b, loc, 0.0));
          Value hit = b.create<arith::UIToFPOp>(loc, b.getF32Type(), first);
          return b.create<arith::MulFOp>(loc, hit, a[1]);
        });
    return SmallVector<Value>{total(l, hits), total(l, s.valid)};
  }

  /// Per row, the number of classes ranked before the label: higher logits,
  /// and equal logits at lower indices.
  static Value rank(Lowering &l, Value logits, Value labels, Value picked) {
    Value before =
        l.withRow(logits, picked, 1,
                  [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                    return b.create<arith::SubFOp>(loc, a[0], a[1]);
                  });
    Value flags = l.withRow(
        before, labels, 1,
        [](OpBuilder &b, Location loc, ValueRange a) -> Value {
          Value c = b.create<arith::IndexCastOp>(
              loc, b.getI32Type(), b.create<linalg::IndexOp>(loc, 1));
          Value higher = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGT,
                                                 a[0], cst(b, loc, 0.0));
          Value equal = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OEQ,
                                                a[0], cst(b, loc, 0.0));
          Value earlier =
              b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, c, a[1]);
          Value tie = b.create<arith::AndIOp>(loc, equal, earlier);
          Value ahead = b.create<arith::OrIOp>(loc, higher, tie);
          return b.create<arith::UIToFPOp>(loc, b.getF32Type(), ahead);
        });
    return l.reduce(flags, {1}, l.f32(0),
                    [](OpBuilder &b, Location loc, ValueRange a) -> Value {
                      return b.create<arith::AddFOp>(loc, a[0], a[1]);
                    });
  }
};

struct TopKPattern : public MassPattern<TopKOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(TopKOp op, Lowering &l) const override {
    RowStats s = rowStats(l, op.getLogits(), op.getLabels());
    Value ahead =
        AccuracyPattern::rank(l, op.getLogits(), op.getLabels(), s.picked);
    double k = static_cast<double>(op.getK());
    Value hits = l.elementwise(
        tensorType(s.valid), {ahead, s.valid},
        [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
          Value in = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OLT,
                                             a[0], cst(b, loc, k));
          Value hit = b.create<arith::UIToFPOp>(loc, b.getF32Type(), in);
          return b.create<arith::MulFOp>(loc, hit, a[1]);
        });
    return SmallVector<Value>{total(l, hits), total(l, s.valid)};
  }
};

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

class LowerToLinalg : public mass::impl::MassLowerToLinalgBase<LowerToLinalg> {
public:
  using MassLowerToLinalgBase::MassLowerToLinalgBase;

  /// Replaces each mass.fusion op by its body, marking the body's ops with
  /// the group they belong to.
  void inlineFusionGroups() {
    SmallVector<FusionOp> groups;
    getOperation().walk([&](FusionOp op) { groups.push_back(op); });
    OpBuilder b(&getContext());
    for (auto [id, group] : llvm::enumerate(groups)) {
      Block &body = group.getBody().front();
      for (auto [arg, input] :
           llvm::zip(body.getArguments(), group.getInputs()))
        arg.replaceAllUsesWith(input);
      auto yield = cast<YieldOp>(body.getTerminator());
      for (auto [result, value] :
           llvm::zip(group.getResults(), yield.getValues()))
        result.replaceAllUsesWith(value);
      Attribute mark = b.getI64IntegerAttr(id);
      for (Operation &op : body.without_terminator())
        if (!op.hasTrait<OpTrait::ConstantLike>())
          op.setAttr(kFusionGroupAttr, mark);
      group->getBlock()->getOperations().splice(
          group->getIterator(), body.getOperations(), body.begin(),
          std::prev(body.end()));
      group.erase();
    }
  }

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    inlineFusionGroups();
    RewritePatternSet patterns(ctx);
    patterns.add<ElementwisePattern>(ctx);
    patterns.add<BroadcastPattern, DensePattern, MatmulPattern, ReshapePattern,
                 TransposePattern, ConcatPattern, SlicePattern, PadPattern,
                 ReducePattern<SumOp>, ReducePattern<MeanOp>,
                 ReducePattern<MaxOp>, SoftmaxPattern<SoftmaxOp>,
                 SoftmaxPattern<LogSoftmaxOp>, CrossEntropyPattern,
                 CrossEntropyGradPattern, AccuracyPattern, TopKPattern>(ctx);
    using P = Value (*)(OpBuilder &, Location, Value, Value);
    patterns.add<PairReducePattern<MseOp, true>>(ctx, P(squaredError));
    patterns.add<PairReducePattern<L1Op, true>>(ctx, P(absError));
    patterns.add<PairReducePattern<BceOp, true>>(ctx, P(bceWithLogits));
    patterns.add<PairReducePattern<AbsErrorOp, false>>(ctx, P(absError));
    patterns.add<PairReducePattern<SquaredErrorOp, false>>(ctx,
                                                           P(squaredError));

    populateVisionPatterns(patterns);
    populateSequencePatterns(patterns);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<MassDialect>();
    // Kernels of the runtime: they stay until bufferization calls them.
    target.addLegalOp<AttentionOp, AttentionGradOp, SelfAttentionOp,
                      SelfAttentionGradOp, LayerNormGradOp, SumRanksOp>();
    target.addLegalDialect<linalg::LinalgDialect, tensor::TensorDialect,
                           arith::ArithDialect, math::MathDialect,
                           scf::SCFDialect, func::FuncDialect>();
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns)))) {
      signalPassFailure();
      return;
    }
    if (!fastMath)
      return;
    auto flags = arith::FastMathFlagsAttr::get(
        ctx, arith::FastMathFlags::reassoc | arith::FastMathFlags::contract);
    getOperation().walk([&](arith::ArithFastMathInterface op) {
      op->setAttr(op.getFastMathAttrName(), flags);
    });
  }
};

} // namespace
