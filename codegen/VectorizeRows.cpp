//===- VectorizeRows.cpp - Short image rows as vectors --------------------===//
//
// Image ops run loop nests whose innermost loop walks a row of a few dozen
// elements (28, 14, 7): LLVM unrolls such loops completely and leaves them
// scalar. This pass turns the innermost loop of a linalg.generic on
// buffers into vector code when every operand walks that loop with unit
// stride, stride 2 (inputs only) or not at all: vector loads per operand
// and row, the body's ops on vectors, one vector store per result. The outer
// loops stay loops (the outermost parallel one an scf.parallel, for threads).
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

/// How an operand walks the innermost loop: not at all (read once per
/// row), contiguously or every other element (a pool's stride), or in a way
/// this pass leaves to loops.
enum class Walk { None, Unit, Two, Other };

/// The coefficient of d_inner in `expr` when it is `c * d_inner + (something
/// without d_inner)`, else 0.
int64_t innerCoefficient(AffineExpr expr, unsigned inner) {
  if (auto dim = dyn_cast<AffineDimExpr>(expr))
    return dim.getPosition() == inner ? 1 : 0;
  auto bin = dyn_cast<AffineBinaryOpExpr>(expr);
  if (!bin)
    return 0;
  if (bin.getKind() == AffineExprKind::Mul) {
    auto c = dyn_cast<AffineConstantExpr>(bin.getRHS());
    return c && innerCoefficient(bin.getLHS(), inner) == 1 ? c.getValue() : 0;
  }
  if (bin.getKind() != AffineExprKind::Add)
    return 0;
  if (!bin.getRHS().isFunctionOfDim(inner))
    return innerCoefficient(bin.getLHS(), inner);
  if (!bin.getLHS().isFunctionOfDim(inner))
    return innerCoefficient(bin.getRHS(), inner);
  return 0;
}

Walk walkOf(AffineMap map, unsigned inner, Value memref) {
  bool uses = false;
  for (AffineExpr e : map.getResults())
    uses |= e.isFunctionOfDim(inner);
  if (!uses)
    return Walk::None;
  for (AffineExpr e : map.getResults().drop_back())
    if (e.isFunctionOfDim(inner))
      return Walk::Other;
  int64_t c = innerCoefficient(map.getResults().back(), inner);
  auto type = dyn_cast<MemRefType>(memref.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (!type || failed(getStridesAndOffset(type, strides, offset)) ||
      strides.empty() || strides.back() != 1)
    return Walk::Other;
  return c == 1 ? Walk::Unit : c == 2 ? Walk::Two : Walk::Other;
}

bool vectorElement(Type t) {
  return t.isF32() || t.isInteger(64) || t.isInteger(32);
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
      !isa<math::SqrtOp, math::AbsFOp, math::FmaOp, math::ExpOp, math::FloorOp>(
          op))
    return false;
  return true;
}

/// Whether `op`'s innermost loop runs as vectors: rows of [minWidth,
/// maxWidth] as unrolled chunks; longer or dynamic rows (contiguous in
/// every operand that walks them) as a loop of chunks.
bool matches(linalg::GenericOp op, int64_t minWidth, int64_t maxWidth) {
  if (!op.hasPureBufferSemantics() || op.getNumLoops() == 0)
    return false;
  unsigned inner = op.getNumLoops() - 1;
  if (op.getIteratorTypesArray()[inner] != utils::IteratorType::parallel)
    return false;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t width = ranges[inner];
  bool unrolled = !ShapedType::isDynamic(width) && width <= maxWidth;
  if (unrolled && width < minWidth)
    return false;
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !vectorElement(type.getElementType()))
      return false;
    Walk walk =
        walkOf(op.getMatchingIndexingMap(&operand), inner, operand.get());
    // Long rows run in a loop of chunks: unit strides only.
    if (walk == Walk::Other || (!unrolled && walk == Walk::Two))
      return false;
    if (op.isDpsInit(&operand) && walk != Walk::Unit)
      return false;
  }
  for (Operation &inside : op.getRegion().front().without_terminator())
    if (!vectorizable(inside, inner))
      return false;
  return true;
}

void vectorize(linalg::GenericOp op, int64_t vectorWidth, int64_t maxWidth) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  unsigned inner = op.getNumLoops() - 1;
  int64_t width = op.getStaticLoopRanges()[inner];
  bool unrolled = !ShapedType::isDynamic(width) && width <= maxWidth;
  SmallVector<Range, 4> ranges =
      cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(b, loc);
  auto iters = op.getIteratorTypesArray();

  // The outer loops, in the op's order: the first, when parallel, as an
  // scf.parallel (threads split it), the others as scf.for. Loops that run
  // once (a convolution's single group) go inside the parallel one.
  SmallVector<int64_t> sizes = op.getStaticLoopRanges();
  // The reduction loops just outside the row (a window's rows and
  // columns) run inside each chunk, the chunk's results in registers
  // across them: one load and one store of the result per chunk.
  // Only short ones (a window): a long reduction (a sum over a matrix's
  // rows) would walk memory column by column, one chunk at a time.
  unsigned reduced = inner;
  int64_t steps = 1;
  while (reduced > 0 && iters[reduced - 1] == utils::IteratorType::reduction &&
         !ShapedType::isDynamic(sizes[reduced - 1]) &&
         steps * sizes[reduced - 1] <= 64) {
    steps *= sizes[reduced - 1];
    --reduced;
  }
  unsigned first = 0;
  while (first + 1 < reduced && sizes[first] == 1)
    ++first;
  std::optional<unsigned> parallel;
  if (first < reduced && iters[first] == utils::IteratorType::parallel)
    parallel = first;
  SmallVector<Value> ivs(inner);
  auto makeLoop = [&](unsigned d) {
    Value lb = getValueOrCreateConstantIndexOp(b, loc, ranges[d].offset);
    Value ub = getValueOrCreateConstantIndexOp(b, loc, ranges[d].size);
    Value step = getValueOrCreateConstantIndexOp(b, loc, ranges[d].stride);
    if (parallel && d == *parallel) {
      auto loop = b.create<scf::ParallelOp>(loc, ValueRange{lb}, ValueRange{ub},
                                            ValueRange{step});
      b.setInsertionPointToStart(loop.getBody());
      ivs[d] = loop.getInductionVars()[0];
    } else {
      auto loop = b.create<scf::ForOp>(loc, lb, ub, step);
      b.setInsertionPointToStart(loop.getBody());
      ivs[d] = loop.getInductionVar();
    }
  };
  if (parallel)
    makeLoop(*parallel);
  for (unsigned d = 0; d < reduced; ++d)
    if (!parallel || d != *parallel)
      makeLoop(d);
  // The row in chunks of the host's vector width, the last one masked.
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto vectorOf = [&](Type element) {
    return VectorType::get({vectorWidth}, element);
  };
  auto maskOf = [&](int64_t lanes) {
    return b.create<vector::ConstantMaskOp>(loc, vectorOf(b.getI1Type()),
                                            b.getI64ArrayAttr({lanes}));
  };
  // One chunk of the row from `start`: `lanes` of them (a static count, for
  // stride-2 reads), `mask` null when all lanes are in the row.
  auto chunk = [&](Value start, int64_t lanes, Value mask) {
    SmallVector<Value> dims(ivs);
    dims.push_back(start);
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
    auto load = [&](Value memref, ValueRange at, Value mask) -> Value {
      auto type = vectorOf(cast<MemRefType>(memref.getType()).getElementType());
      if (!mask)
        return b.create<vector::LoadOp>(loc, type, memref, at);
      Value pass = b.create<arith::ConstantOp>(loc, type, b.getZeroAttr(type));
      return b.create<vector::MaskedLoadOp>(loc, type, memref, at, mask, pass);
    };
    // Maps `operand`'s block argument to its chunk (a vector) or its
    // element (a scalar, when it does not vary along the row).
    auto read = [&](OpOperand &operand, IRMapping &mapping,
                    DenseSet<Value> &varying) {
      BlockArgument arg = op.getMatchingBlockArgument(&operand);
      if (arg.use_empty())
        return;
      Walk walk =
          walkOf(op.getMatchingIndexingMap(&operand), inner, operand.get());
      SmallVector<Value> at = indices(operand);
      if (walk == Walk::None) {
        mapping.map(arg, b.create<memref::LoadOp>(loc, operand.get(), at));
        return;
      }
      Value row;
      if (walk == Walk::Unit) {
        row = load(operand.get(), at, mask);
      } else {
        // Every other element: two vectors' worth, then the even lanes.
        int64_t needed = 2 * (lanes - 1) + 1;
        Value first = load(operand.get(), at,
                           needed < vectorWidth ? maskOf(needed) : Value());
        Value second;
        if (needed > vectorWidth) {
          SmallVector<Value> next(at);
          next.back() = b.create<arith::AddIOp>(
              loc, next.back(),
              b.create<arith::ConstantIndexOp>(loc, vectorWidth));
          second = load(operand.get(), next, maskOf(needed - vectorWidth));
        } else {
          second = b.create<arith::ConstantOp>(loc, first.getType(),
                                               b.getZeroAttr(first.getType()));
        }
        SmallVector<int64_t> even;
        for (int64_t i = 0; i < vectorWidth; ++i)
          even.push_back(2 * i);
        row = b.create<vector::ShuffleOp>(loc, first, second, even);
      }
      mapping.map(arg, row);
      varying.insert(arg);
    };
    // The body, its ops on vectors wherever an operand varies along the
    // row; the results as vectors.
    auto compute = [&](IRMapping &mapping, DenseSet<Value> &varying) {
      // A body value as a vector: broadcast when it does not vary.
      auto asVector = [&](Value v) -> Value {
        Value mapped = mapping.lookupOrDefault(v);
        if (varying.contains(v))
          return mapped;
        return b.create<vector::BroadcastOp>(loc, vectorOf(mapped.getType()),
                                             mapped);
      };
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
        for (Value v : inside.getOperands())
          operands.push_back(asVector(v));
        OperationState state(loc, inside.getName(), operands,
                             {vectorOf(inside.getResult(0).getType())},
                             inside.getAttrs());
        Operation *vectorOp = b.create(state);
        mapping.map(inside.getResult(0), vectorOp->getResult(0));
        varying.insert(inside.getResult(0));
      }
      SmallVector<Value> results;
      for (Value value : yield.getOperands())
        results.push_back(asVector(value));
      return results;
    };
    auto store = [&](ValueRange results) {
      for (auto [init, result] : llvm::zip(op.getDpsInitsMutable(), results)) {
        SmallVector<Value> at = indices(init);
        if (mask)
          b.create<vector::MaskedStoreOp>(loc, init.get(), at, mask, result);
        else
          b.create<vector::StoreOp>(loc, result, init.get(), at);
      }
    };
    IRMapping mapping;
    DenseSet<Value> varying;
    if (reduced == inner) {
      for (OpOperand &operand : op->getOpOperands())
        read(operand, mapping, varying);
      store(compute(mapping, varying));
      return;
    }
    // The results' chunks (which the reduction loops do not index) carried
    // through those loops.
    Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
    for (unsigned d = reduced; d < inner; ++d)
      dims[d] = zero;
    SmallVector<Value> carried;
    for (OpOperand &init : op.getDpsInitsMutable())
      carried.push_back(load(init.get(), indices(init), mask));
    SmallVector<scf::ForOp> loops;
    for (unsigned d = reduced; d < inner; ++d) {
      auto loop = b.create<scf::ForOp>(
          loc, getValueOrCreateConstantIndexOp(b, loc, ranges[d].offset),
          getValueOrCreateConstantIndexOp(b, loc, ranges[d].size),
          getValueOrCreateConstantIndexOp(b, loc, ranges[d].stride), carried);
      b.setInsertionPointToStart(loop.getBody());
      dims[d] = ivs[d] = loop.getInductionVar();
      carried.assign(loop.getRegionIterArgs().begin(),
                     loop.getRegionIterArgs().end());
      loops.push_back(loop);
    }
    for (OpOperand *input : op.getDpsInputOperands())
      read(*input, mapping, varying);
    for (auto [init, value] : llvm::zip(op.getDpsInitsMutable(), carried)) {
      BlockArgument arg = op.getMatchingBlockArgument(&init);
      mapping.map(arg, value);
      varying.insert(arg);
    }
    b.create<scf::YieldOp>(loc, compute(mapping, varying));
    for (size_t k = loops.size() - 1; k > 0; --k) {
      b.setInsertionPointAfter(loops[k]);
      b.create<scf::YieldOp>(loc, loops[k].getResults());
    }
    b.setInsertionPointAfter(loops.front());
    store(loops.front().getResults());
  };
  if (unrolled) {
    for (int64_t offset = 0; offset < width; offset += vectorWidth) {
      int64_t lanes = std::min(vectorWidth, width - offset);
      chunk(b.create<arith::ConstantIndexOp>(loc, offset), lanes,
            lanes < vectorWidth ? Value(maskOf(lanes)) : Value());
    }
    op.erase();
    return;
  }
  // A long row: a loop of whole chunks (threads split it when it is the
  // only loop), then one masked chunk for the rest (with a dynamic width,
  // perhaps no lanes: then nothing is read or written).
  Value size = getValueOrCreateConstantIndexOp(b, loc, ranges[inner].size);
  Value step = b.create<arith::ConstantIndexOp>(loc, vectorWidth);
  Value whole = b.create<arith::MulIOp>(
      loc, b.create<arith::DivUIOp>(loc, size, step), step);
  Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
  {
    OpBuilder::InsertionGuard guard(b);
    if (inner == 0) {
      auto loop = b.create<scf::ParallelOp>(
          loc, ValueRange{zero}, ValueRange{whole}, ValueRange{step});
      b.setInsertionPointToStart(loop.getBody());
      chunk(loop.getInductionVars()[0], vectorWidth, Value());
    } else {
      auto loop = b.create<scf::ForOp>(loc, zero, whole, step);
      b.setInsertionPointToStart(loop.getBody());
      chunk(loop.getInductionVar(), vectorWidth, Value());
    }
  }
  if (ShapedType::isDynamic(width)) {
    Value rest = b.create<vector::CreateMaskOp>(
        loc, vectorOf(b.getI1Type()),
        ValueRange{b.create<arith::SubIOp>(loc, size, whole)});
    chunk(whole, vectorWidth, rest);
  } else if (int64_t rest = width % vectorWidth) {
    chunk(whole, rest, maskOf(rest));
  }
  op.erase();
}

/// How many innermost loops of `op` can run as one: parallel loops that
/// every operand (each indexed by loops only) either does not depend on or
/// indexes as its innermost dimensions, in order, in a buffer where they
/// are contiguous. 0 when fewer than two.
int64_t flattenableLoops(linalg::GenericOp op) {
  int64_t loops = op.getNumLoops();
  if (!op.hasPureBufferSemantics() || loops < 2)
    return 0;
  for (Operation &inside : op.getRegion().front())
    if (isa<linalg::IndexOp>(inside))
      return 0;
  SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
  auto fits = [&](int64_t count) {
    int64_t first = loops - count;
    if (!llvm::all_of(ArrayRef(iters).drop_front(first),
                      linalg::isParallelIterator))
      return false;
    for (OpOperand &operand : op->getOpOperands()) {
      AffineMap map = op.getMatchingIndexingMap(&operand);
      auto type = dyn_cast<MemRefType>(operand.get().getType());
      if (!type || !map.isProjectedPermutation())
        return false;
      bool uses = false;
      for (AffineExpr e : map.getResults())
        for (int64_t d = first; d < loops; ++d)
          uses |= e.isFunctionOfDim(d);
      if (!uses)
        continue;
      // The innermost results are exactly those loops, in order.
      int64_t rank = map.getNumResults();
      if (rank < count)
        return false;
      for (int64_t k = 0; k < count; ++k)
        if (map.getResult(rank - count + k) !=
            getAffineDimExpr(first + k, op.getContext()))
          return false;
      for (int64_t r = 0; r < rank - count; ++r)
        for (int64_t d = first; d < loops; ++d)
          if (map.getResult(r).isFunctionOfDim(d))
            return false;
      SmallVector<ReassociationIndices> groups;
      for (int64_t r = 0; r < rank - count; ++r)
        groups.push_back({r});
      groups.push_back(llvm::to_vector(llvm::seq<int64_t>(rank - count, rank)));
      if (!memref::CollapseShapeOp::isGuaranteedCollapsible(type, groups))
        return false;
    }
    return true;
  };
  int64_t count = 1;
  while (count < loops && fits(count + 1))
    ++count;
  return count >= 2 ? count : 0;
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
    // Innermost loops over contiguous memory run as one: a conv weight's
    // optimizer step walks one long row instead of rows of 3, a gradient
    // norm's partial sums rows of I*3*3 instead of rows of 3.
    SmallVector<std::pair<linalg::GenericOp, int64_t>> flat;
    getOperation().walk([&](linalg::GenericOp op) {
      if (int64_t count = flattenableLoops(op))
        flat.emplace_back(op, count);
    });
    for (auto [op, count] : flat) {
      int64_t loops = op.getNumLoops();
      ReassociationIndices inner =
          llvm::to_vector(llvm::seq<int64_t>(loops - count, loops));
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::CollapseResult> collapsed =
          linalg::collapseOpIterationDims(
              cast<linalg::LinalgOp>(op.getOperation()), {inner}, rewriter);
      if (succeeded(collapsed))
        rewriter.replaceOp(op, collapsed->results);
    }
    SmallVector<linalg::GenericOp> ops;
    getOperation().walk([&](linalg::GenericOp op) {
      if (matches(op, minWidth, maxWidth))
        ops.push_back(op);
    });
    for (linalg::GenericOp op : ops)
      vectorize(op, vectorWidth, maxWidth);
  }
};

} // namespace
