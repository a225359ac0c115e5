//===- VectorizeRows.cpp - Short image rows as vectors
//---------------------===//
//
// Image ops run loop nests whose innermost loop walks a row of a few dozen
// elements (28, 14, 7): LLVM unrolls such loops completely and leaves them
// scalar. This pass turns the innermost loop of a linalg.generic on
// buffers into vector code when every operand walks that loop with unit
// stride (or not at all): one vector load per operand and row, the body's
// ops on vectors, one vector store. The outer loops stay loops (the
// outermost parallel one an scf.parallel, for threads).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"

namespace mass {
#define GEN_PASS_DEF_MASSVECTORIZEROWS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// How an operand walks the innermost loop.
enum class Walk { None, Unit, Other };

/// `expr` is `d_inner + (something without d_inner)`.
bool unitInInner(AffineExpr expr, unsigned inner) {
  if (auto dim = dyn_cast<AffineDimExpr>(expr))
    return dim.getPosition() == inner;
  auto add = dyn_cast<AffineBinaryOpExpr>(expr);
  if (!add || add.getKind() != AffineExprKind::Add)
    return false;
  if (unitInInner(add.getLHS(), inner))
    return !add.getRHS().isFunctionOfDim(inner);
  if (unitInInner(add.getRHS(), inner))
    return !add.getLHS().isFunctionOfDim(inner);
  return false;
}

Walk walkOf(AffineMap map, unsigned inner, Value memref) {
  bool uses = false;
  for (AffineExpr e : map.getResults())
    uses |= e.isFunctionOfDim(inner);
  if (!uses)
    return Walk::None;
  if (map.getNumResults() == 0)
    return Walk::Other;
  for (AffineExpr e : map.getResults().drop_back())
    if (e.isFunctionOfDim(inner))
      return Walk::Other;
  if (!unitInInner(map.getResults().back(), inner))
    return Walk::Other;
  auto type = dyn_cast<MemRefType>(memref.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (!type || failed(getStridesAndOffset(type, strides, offset)) ||
      strides.empty() || strides.back() != 1)
    return Walk::Other;
  return Walk::Unit;
}

/// The body ops this pass knows how to apply to vectors.
bool vectorizable(Operation &op, unsigned inner) {
  if (auto index = dyn_cast<linalg::IndexOp>(op))
    return index.getDim() != inner;
  if (op.getNumRegions() != 0 || op.getNumResults() != 1)
    return false;
  if (isa<arith::ConstantOp>(op))
    return true;
  if (!op.hasTrait<OpTrait::Elementwise>() ||
      !isa<arith::ArithDialect, math::MathDialect>(op.getDialect()))
    return false;
  // Only math ops that LLVM has vector intrinsics for.
  if (isa<math::MathDialect>(op.getDialect()) &&
      !isa<math::SqrtOp, math::AbsFOp, math::FmaOp, math::ExpOp>(op))
    return false;
  return true;
}

bool matches(linalg::GenericOp op, int64_t minWidth, int64_t maxWidth) {
  if (!op.hasPureBufferSemantics() || op.getNumLoops() == 0 ||
      op.getNumDpsInits() != 1)
    return false;
  unsigned inner = op.getNumLoops() - 1;
  if (op.getIteratorTypesArray()[inner] != utils::IteratorType::parallel)
    return false;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t width = ranges[inner];
  if (ShapedType::isDynamic(width) || width < minWidth || width > maxWidth)
    return false;
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.getElementType().isF32())
      return false;
    Walk walk =
        walkOf(op.getMatchingIndexingMap(&operand), inner, operand.get());
    if (walk == Walk::Other)
      return false;
    if (op.isDpsInit(&operand) && walk != Walk::Unit)
      return false;
  }
  for (Operation &inside : op.getRegion().front().without_terminator())
    if (!vectorizable(inside, inner))
      return false;
  return true;
}

void vectorize(linalg::GenericOp op, int64_t vectorWidth) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  unsigned inner = op.getNumLoops() - 1;
  int64_t width = op.getStaticLoopRanges()[inner];
  SmallVector<Range, 4> ranges =
      cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(b, loc);
  auto iters = op.getIteratorTypesArray();

  // The outer loops, in the op's order: the first, when parallel, as an
  // scf.parallel (threads split it), the others as scf.for.
  SmallVector<Value> ivs;
  for (unsigned d = 0; d < inner; ++d) {
    Value lb = getValueOrCreateConstantIndexOp(b, loc, ranges[d].offset);
    Value ub = getValueOrCreateConstantIndexOp(b, loc, ranges[d].size);
    Value step = getValueOrCreateConstantIndexOp(b, loc, ranges[d].stride);
    if (d == 0 && iters[d] == utils::IteratorType::parallel) {
      auto loop = b.create<scf::ParallelOp>(loc, ValueRange{lb}, ValueRange{ub},
                                            ValueRange{step});
      b.setInsertionPointToStart(loop.getBody());
      ivs.push_back(loop.getInductionVars()[0]);
    } else {
      auto loop = b.create<scf::ForOp>(loc, lb, ub, step);
      b.setInsertionPointToStart(loop.getBody());
      ivs.push_back(loop.getInductionVar());
    }
  }
  // The row in chunks of the host's vector width, the last one masked.
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  OpOperand &init = op.getDpsInitsMutable()[0];
  for (int64_t offset = 0; offset < width; offset += vectorWidth) {
    int64_t lanes = std::min(vectorWidth, width - offset);
    auto vecType = VectorType::get({vectorWidth}, b.getF32Type());
    Value mask;
    if (lanes < vectorWidth)
      mask = b.create<vector::ConstantMaskOp>(
          loc, VectorType::get({vectorWidth}, b.getI1Type()),
          b.getI64ArrayAttr({lanes}));
    SmallVector<Value> dims(ivs);
    dims.push_back(b.create<arith::ConstantIndexOp>(loc, offset));
    // Where each operand's chunk starts.
    auto indices = [&](OpOperand &operand) {
      SmallVector<Value> out;
      AffineMap map = op.getMatchingIndexingMap(&operand);
      for (AffineExpr e : map.getResults())
        out.push_back(affine::makeComposedAffineApply(
            b, loc, AffineMap::get(map.getNumDims(), 0, e),
            getAsOpFoldResult(ValueRange(dims))));
      return out;
    };
    IRMapping mapping;
    DenseSet<Value> varying;
    for (OpOperand &operand : op->getOpOperands()) {
      BlockArgument arg = op.getMatchingBlockArgument(&operand);
      if (arg.use_empty())
        continue;
      Walk walk =
          walkOf(op.getMatchingIndexingMap(&operand), inner, operand.get());
      SmallVector<Value> at = indices(operand);
      if (walk != Walk::Unit) {
        mapping.map(arg, b.create<memref::LoadOp>(loc, operand.get(), at));
        continue;
      }
      Value row;
      if (mask) {
        Value pass = b.create<arith::ConstantOp>(
            loc, vecType, DenseElementsAttr::get(vecType, 0.0f));
        row = b.create<vector::MaskedLoadOp>(loc, vecType, operand.get(), at,
                                             mask, pass);
      } else {
        row = b.create<vector::LoadOp>(loc, vecType, operand.get(), at);
      }
      mapping.map(arg, row);
      varying.insert(arg);
    }
    // The body, its ops on vectors wherever an operand varies along the
    // row.
    for (Operation &inside : body.without_terminator()) {
      if (auto index = dyn_cast<linalg::IndexOp>(inside)) {
        mapping.map(index.getResult(), ivs[index.getDim()]);
        continue;
      }
      bool vary = llvm::any_of(inside.getOperands(),
                               [&](Value v) { return varying.contains(v); });
      if (!vary) {
        b.clone(inside, mapping);
        continue;
      }
      SmallVector<Value> operands;
      for (Value v : inside.getOperands()) {
        Value mapped = mapping.lookupOrDefault(v);
        if (!varying.contains(v))
          mapped = b.create<vector::BroadcastOp>(
              loc, VectorType::get({vectorWidth}, mapped.getType()), mapped);
        operands.push_back(mapped);
      }
      Type resultType =
          VectorType::get({vectorWidth}, inside.getResult(0).getType());
      OperationState state(loc, inside.getName(), operands, {resultType},
                           inside.getAttrs());
      Operation *vectorOp = b.create(state);
      mapping.map(inside.getResult(0), vectorOp->getResult(0));
      varying.insert(inside.getResult(0));
    }
    Value result = mapping.lookupOrDefault(yield.getOperand(0));
    if (!varying.contains(yield.getOperand(0)))
      result = b.create<vector::BroadcastOp>(loc, vecType, result);
    SmallVector<Value> at = indices(init);
    if (mask)
      b.create<vector::MaskedStoreOp>(loc, init.get(), at, mask, result);
    else
      b.create<vector::StoreOp>(loc, result, init.get(), at);
  }
  op.erase();
}

class VectorizeRows : public mass::impl::MassVectorizeRowsBase<VectorizeRows> {
public:
  using MassVectorizeRowsBase::MassVectorizeRowsBase;

  void runOnOperation() override {
    // Copies into strided views are linalg.copy: generic ops like others.
    SmallVector<linalg::CopyOp> copies;
    getOperation().walk([&](linalg::CopyOp op) { copies.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (linalg::CopyOp op : copies) {
      rewriter.setInsertionPoint(op);
      (void)linalg::generalizeNamedOp(rewriter, op);
    }
    SmallVector<linalg::GenericOp> ops;
    getOperation().walk([&](linalg::GenericOp op) {
      if (matches(op, minWidth, maxWidth))
        ops.push_back(op);
    });
    for (linalg::GenericOp op : ops)
      vectorize(op, vectorWidth);
  }
};

} // namespace
