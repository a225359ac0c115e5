//===- Lowering.h - Helpers of the mass-to-linalg patterns ------*- C++ -*-===//
//
// The builder of linalg IR at one location and the pattern base that marks
// the linalg ops of a fusion group's member, used by LowerToLinalg.cpp and
// the patterns of LowerVision.cpp and LowerSequence.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_CODEGEN_LOWERING_H
#define MASS_CODEGEN_LOWERING_H

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mass::lowering {

using namespace mlir;

using Body = function_ref<Value(OpBuilder &, Location, ValueRange)>;

inline RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Builds linalg IR at one location.
class Lowering {
public:
  Lowering(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  OpBuilder &b;
  Location loc;

  Value f32(double v) {
    return b.create<arith::ConstantOp>(loc, b.getF32FloatAttr(v));
  }

  /// The dynamic sizes of `type`, read from the operands: each dynamic
  /// dimension is taken from an operand that has a dynamic dimension at the
  /// same position counted from the end.
  SmallVector<Value> dynamicSizes(RankedTensorType type, ValueRange from) {
    SmallVector<Value> sizes;
    int64_t rank = type.getRank();
    for (int64_t i = 0; i < rank; ++i) {
      if (!type.isDynamicDim(i))
        continue;
      Value size;
      for (Value v : from) {
        auto t = dyn_cast<RankedTensorType>(v.getType());
        int64_t j = t ? i - rank + t.getRank() : -1;
        if (t && j >= 0 && t.isDynamicDim(j)) {
          size = b.create<tensor::DimOp>(loc, v, j);
          break;
        }
      }
      assert(size && "no operand carries the dynamic size");
      sizes.push_back(size);
    }
    return sizes;
  }

  Value empty(RankedTensorType type, ArrayRef<Value> dynamic) {
    return b.create<tensor::EmptyOp>(loc, type.getShape(),
                                     type.getElementType(), dynamic);
  }

  Value filled(RankedTensorType type, ArrayRef<Value> dynamic, Value scalar) {
    return b.create<linalg::FillOp>(loc, scalar, empty(type, dynamic))
        .getResult(0);
  }

  /// `x` [p..., k] as rows [P, k], the leading axes collapsed (a view of
  /// the same buffer). When P is dynamic, its size, the batch times the
  /// static axes, is appended to `dynamic` as arith ops the arena reads.
  Value collapseRows(Value x, SmallVectorImpl<Value> &dynamic) {
    auto type = tensorType(x);
    int64_t rank = type.getRank();
    int64_t known = 1;
    Value size;
    ReassociationIndices lead;
    for (int64_t i = 0; i + 1 < rank; ++i) {
      lead.push_back(i);
      if (!type.isDynamicDim(i)) {
        known *= type.getDimSize(i);
        continue;
      }
      Value d = b.create<tensor::DimOp>(loc, x, i);
      size = size ? b.create<arith::MulIOp>(loc, size, d) : d;
    }
    if (size && known != 1)
      size = b.create<arith::MulIOp>(
          loc, size, b.create<arith::ConstantIndexOp>(loc, known));
    if (size)
      dynamic.push_back(size);
    auto rowsType = RankedTensorType::get(
        {size ? ShapedType::kDynamic : known, type.getDimSize(rank - 1)},
        type.getElementType());
    return b.create<tensor::CollapseShapeOp>(
        loc, rowsType, x,
        ArrayRef<ReassociationIndices>{lead, ReassociationIndices{rank - 1}});
  }

  /// Rows `y` [P, n] as `type` [p..., n], the leading axes sized as those
  /// of `like`.
  Value expandRows(Value y, RankedTensorType type, Value like) {
    int64_t rank = type.getRank();
    SmallVector<OpFoldResult> shape;
    ReassociationIndices lead;
    for (int64_t i = 0; i + 1 < rank; ++i) {
      lead.push_back(i);
      if (type.isDynamicDim(i))
        shape.push_back(b.create<tensor::DimOp>(loc, like, i).getResult());
      else
        shape.push_back(b.getIndexAttr(type.getDimSize(i)));
    }
    shape.push_back(b.getIndexAttr(type.getDimSize(rank - 1)));
    return b.create<tensor::ExpandShapeOp>(
        loc, type, y,
        ArrayRef<ReassociationIndices>{lead, ReassociationIndices{rank - 1}},
        shape);
  }

  /// Maps the result's loops onto an operand of `shape`, NumPy style: the
  /// operand's axes align with the last ones; its size-1 axes against
  /// larger result axes read index 0.
  AffineMap broadcastMap(ArrayRef<int64_t> shape, ArrayRef<int64_t> result) {
    SmallVector<AffineExpr> exprs;
    int64_t lead = result.size() - shape.size();
    for (int64_t j = 0; j < (int64_t)shape.size(); ++j) {
      if (shape[j] == 1 && result[j + lead] != 1)
        exprs.push_back(b.getAffineConstantExpr(0));
      else
        exprs.push_back(b.getAffineDimExpr(j + lead));
    }
    return AffineMap::get(result.size(), 0, exprs, b.getContext());
  }

  /// An elementwise op over broadcast operands.
  Value elementwise(RankedTensorType type, ValueRange inputs, Body body) {
    SmallVector<AffineMap> maps;
    for (Value in : inputs)
      maps.push_back(broadcastMap(tensorType(in).getShape(), type.getShape()));
    maps.push_back(b.getMultiDimIdentityMap(type.getRank()));
    SmallVector<utils::IteratorType> iters(type.getRank(),
                                           utils::IteratorType::parallel);
    Value init = empty(type, dynamicSizes(type, inputs));
    return b
        .create<linalg::GenericOp>(
            loc, type, inputs, init, maps, iters,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              nb.create<linalg::YieldOp>(nl, body(nb, nl, args.drop_back()));
            })
        .getResult(0);
  }

  /// Reduces `inputs` (of one shape) over `axes` into a tensor without
  /// those axes, starting from `init`; `body` gets the input elements and
  /// the accumulator last. The loops follow the axes, except that a sum
  /// over the batch of [N, C, ...] per channel with images of 16 or more
  /// elements runs the channel outermost (threads split the channels; the
  /// rows stay images). A weight [O, I, 3, 3] keeps rows of I * 9.
  Value reduce(ValueRange inputs, ArrayRef<int64_t> axes, Value init, Body body,
               Type elementType = {}) {
    auto inType = tensorType(inputs[0]);
    int64_t rank = inType.getRank();
    // The loop of each axis: axes 0 and 1 swap for a per-channel sum.
    SmallVector<int64_t> loopOf = llvm::to_vector(llvm::seq<int64_t>(0, rank));
    int64_t image = 1;
    for (int64_t i = 2; i < rank; ++i)
      image = inType.isDynamicDim(i) ? 0 : image * inType.getDimSize(i);
    if (rank >= 3 && llvm::is_contained(axes, 0) &&
        !llvm::is_contained(axes, 1) && image >= 16)
      std::swap(loopOf[0], loopOf[1]);
    SmallVector<int64_t> shape;
    SmallVector<AffineExpr> inExprs, outExprs;
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    SmallVector<Value> dynamic;
    for (int64_t i = 0; i < rank; ++i) {
      AffineExpr loop = b.getAffineDimExpr(loopOf[i]);
      inExprs.push_back(loop);
      if (llvm::is_contained(axes, i)) {
        iters[loopOf[i]] = utils::IteratorType::reduction;
        continue;
      }
      shape.push_back(inType.getDimSize(i));
      outExprs.push_back(loop);
      if (inType.isDynamicDim(i))
        dynamic.push_back(b.create<tensor::DimOp>(loc, inputs[0], i));
    }
    auto outType = RankedTensorType::get(
        shape, elementType ? elementType : inType.getElementType());
    SmallVector<AffineMap> maps(
        inputs.size(), AffineMap::get(rank, 0, inExprs, b.getContext()));
    maps.push_back(AffineMap::get(rank, 0, outExprs, b.getContext()));
    Value acc = filled(outType, dynamic, init);
    return b
        .create<linalg::GenericOp>(
            loc, outType, inputs, acc, maps, iters,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              nb.create<linalg::YieldOp>(nl, body(nb, nl, args));
            })
        .getResult(0);
  }

  /// `x` along `axis` combined with a per-row value `row` (x without that
  /// axis), elementwise.
  Value withRow(Value x, Value row, int64_t axis, Body body,
                Type elementType = {}) {
    auto type = tensorType(x);
    if (elementType)
      type = RankedTensorType::get(type.getShape(), elementType);
    int64_t rank = type.getRank();
    SmallVector<AffineExpr> rowExprs;
    for (int64_t i = 0; i < rank; ++i)
      if (i != axis)
        rowExprs.push_back(b.getAffineDimExpr(i));
    SmallVector<AffineMap> maps = {
        b.getMultiDimIdentityMap(rank),
        AffineMap::get(rank, 0, rowExprs, b.getContext()),
        b.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    Value init = empty(type, dynamicSizes(type, {x}));
    return b
        .create<linalg::GenericOp>(
            loc, type, ValueRange{x, row}, init, maps, iters,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              nb.create<linalg::YieldOp>(nl, body(nb, nl, args.drop_back()));
            })
        .getResult(0);
  }

  /// The number of elements of `x` along `axes` as an f32 scalar.
  Value count(Value x, ArrayRef<int64_t> axes) {
    Value n = b.create<arith::ConstantIndexOp>(loc, 1);
    for (int64_t a : axes) {
      Value d = b.create<tensor::DimOp>(loc, x, a);
      n = b.create<arith::MulIOp>(loc, n, d);
    }
    Value i64 = b.create<arith::IndexCastOp>(loc, b.getI64Type(), n);
    return b.create<arith::SIToFPOp>(loc, b.getF32Type(), i64);
  }

  /// init += lhs * rhs over the loops of `maps`, whose reduction loop is
  /// the one before the last.
  Value contract(RankedTensorType type, Value lhs, Value rhs, Value init,
                 ArrayRef<AffineMap> maps) {
    int64_t loops = maps[0].getNumDims();
    SmallVector<utils::IteratorType> iters(loops,
                                           utils::IteratorType::parallel);
    iters[loops - 2] = utils::IteratorType::reduction;
    return b
        .create<linalg::GenericOp>(
            loc, type, ValueRange{lhs, rhs}, init, maps, iters,
            [](OpBuilder &nb, Location nl, ValueRange a) {
              Value p = nb.create<arith::MulFOp>(nl, a[0], a[1]);
              nb.create<linalg::YieldOp>(
                  nl, ValueRange{nb.create<arith::AddFOp>(nl, a[2], p)});
            })
        .getResult(0);
  }

  /// Normalisation's last pass, `(x - mean) * (invstd * weight) + bias`,
  /// with the statistics read through `statMap` and the affine parameters
  /// through `affineMap`.
  Value normalize(Value x, Value mean, Value invstd, Value weight, Value bias,
                  AffineMap statMap, AffineMap affineMap) {
    auto type = tensorType(x);
    int64_t rank = type.getRank();
    SmallVector<AffineMap> maps = {
        b.getMultiDimIdentityMap(rank), statMap, statMap, affineMap, affineMap,
        b.getMultiDimIdentityMap(rank)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    return b
        .create<linalg::GenericOp>(
            loc, type, ValueRange{x, mean, invstd, weight, bias},
            empty(type, dynamicSizes(type, {x})), maps, iters,
            [](OpBuilder &nb, Location nl, ValueRange a) {
              Value d = nb.create<arith::SubFOp>(nl, a[0], a[1]);
              Value scaled = nb.create<arith::MulFOp>(
                  nl, d, nb.create<arith::MulFOp>(nl, a[2], a[3]));
              nb.create<linalg::YieldOp>(
                  nl, ValueRange{nb.create<arith::AddFOp>(nl, scaled, a[4])});
            })
        .getResult(0);
  }

  /// A rank-0 tensor holding `scalar`.
  Value toTensor(Value scalar) {
    return b.create<tensor::FromElementsOp>(
        loc, RankedTensorType::get({}, scalar.getType()), scalar);
  }

  Value extract(Value tensor0d) {
    return b.create<tensor::ExtractOp>(loc, tensor0d, ValueRange{});
  }

  SmallVector<int64_t> allAxes(int64_t rank) {
    SmallVector<int64_t> axes;
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
    return axes;
  }
};

/// An f32 constant for op bodies.
inline Value cst(OpBuilder &b, Location l, double v) {
  return b.create<arith::ConstantOp>(l, b.getF32FloatAttr(v));
}

/// The body of a sum: the element (a[0]) added to the accumulator (a[1]).
inline Value addBody(OpBuilder &b, Location l, ValueRange a) {
  return b.create<arith::AddFOp>(l, a[0], a[1]);
}

/// The linalg ops created for `op` (those between `before` and `op`) carry
/// its fusion group's mark, when it belongs to a group.
inline void markFusionGroup(Operation *op, Operation *before) {
  Attribute group = op->getAttr(kFusionGroupAttr);
  if (!group)
    return;
  for (Operation *it = before ? before->getNextNode()
                              : &op->getBlock()->front();
       it != op; it = it->getNextNode())
    if (isa<linalg::LinalgOp>(it))
      it->setAttr(kFusionGroupAttr, group);
}

/// Lowers one mass op with `lower`; the linalg ops it creates for a member
/// of a fusion group carry the group's mark.
template <typename OpT> struct MassPattern : public OpConversionPattern<OpT> {
  using OpConversionPattern<OpT>::OpConversionPattern;
  using Adaptor = typename OpConversionPattern<OpT>::OpAdaptor;

  LogicalResult
  matchAndRewrite(OpT op, Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Lowering l(rewriter, op.getLoc());
    Operation *before = op->getPrevNode();
    FailureOr<SmallVector<Value>> results = lower(op, l);
    if (failed(results))
      return failure();
    markFusionGroup(op, before);
    rewriter.replaceOp(op, *results);
    return success();
  }

  virtual FailureOr<SmallVector<Value>> lower(OpT op, Lowering &l) const = 0;
};

/// The patterns of the convolution, pooling, normalisation and dropout ops.
void populateVisionPatterns(RewritePatternSet &patterns);
/// The patterns of layer normalisation, embeddings and attention.
void populateSequencePatterns(RewritePatternSet &patterns);

} // namespace mass::lowering

#endif // MASS_CODEGEN_LOWERING_H
