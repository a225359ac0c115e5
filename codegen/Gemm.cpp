//===- Gemm.cpp - Register-blocked matmul kernels ---------------*- C++ -*-===//
//
// Contractions on buffers become blocked loops over vector registers: the
// classic outer-product micro-kernel (a block of C held in registers while
// k advances), written with the vector dialect so that LLVM only has to
// allocate registers and pick instructions.
//
//===----------------------------------------------------------------------===//

#include "codegen/Contraction.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

#include <numeric>

namespace mass {
#define GEN_PASS_DEF_MASSGEMM
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;
using mass::Contraction;
using mass::isMulAdd;

namespace {

bool isDim(AffineExpr e, unsigned pos) {
  auto d = dyn_cast<AffineDimExpr>(e);
  return d && d.getPosition() == pos;
}

/// Batch results of an operand map: each a batch loop at most `batch` or a
/// constant 0 (a broadcast operand).
bool batchResults(AffineMap map, unsigned count, unsigned batch) {
  for (unsigned i = 0; i < count; ++i) {
    AffineExpr e = map.getResult(i);
    auto d = dyn_cast<AffineDimExpr>(e);
    auto c = dyn_cast<AffineConstantExpr>(e);
    if (!(d && d.getPosition() < batch) && !(c && c.getValue() == 0))
      return false;
  }
  return true;
}

bool unitInnerStride(Value v) {
  auto type = cast<MemRefType>(v.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(getStridesAndOffset(type, strides, offset)) &&
         !strides.empty() && strides.back() == 1;
}

/// The op that fills `c` just before `op` (only pure ops between them).
void findInit(Contraction &c) {
  Operation *prev = c.op->getPrevNode();
  while (prev && isPure(prev))
    prev = prev->getPrevNode();
  if (!prev)
    return;
  if (auto fill = dyn_cast<linalg::FillOp>(prev)) {
    if (fill.hasPureBufferSemantics() && fill.getDpsInits()[0] == c.c) {
      c.init = fill;
      c.initScalar = fill.getDpsInputs()[0];
    }
    return;
  }
  auto generic = dyn_cast<linalg::GenericOp>(prev);
  if (!generic || c.batch != 0 || !generic.hasPureBufferSemantics() ||
      generic.getNumDpsInputs() != 1 || generic.getNumDpsInits() != 1 ||
      generic.getDpsInits()[0] != c.c ||
      generic.getNumParallelLoops() != generic.getNumLoops())
    return;
  Value row = generic.getDpsInputs()[0];
  auto rowType = dyn_cast<MemRefType>(row.getType());
  AffineMap in = generic.getIndexingMapsArray()[0];
  AffineMap out = generic.getIndexingMapsArray()[1];
  Block &body = generic.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (rowType && rowType.getRank() == 1 && unitInnerStride(row) &&
      out.isIdentity() && in.getNumResults() == 1 &&
      isDim(in.getResult(0), 1) && body.getOperations().size() == 1 &&
      yield.getOperand(0) == body.getArgument(0)) {
    c.init = generic;
    c.initRow = row;
  }
}

/// The elementwise op over C's rows and columns just after `c`, when it
/// reads C in place and its other operands are C-shaped, rows of n, columns
/// of m or scalars, and its body maps elements with ops that take vectors.
void findEpilogue(Contraction &c) {
  Operation *next = c.op->getNextNode();
  while (next && isPure(next))
    next = next->getNextNode();
  auto op = dyn_cast_or_null<linalg::GenericOp>(next);
  if (!op || c.batch != 0 || !op.hasPureBufferSemantics() ||
      op.getNumLoops() != 2 || op.getNumParallelLoops() != 2 ||
      op.getNumDpsInits() != 1)
    return;
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  Value out = op.getDpsInits()[0];
  auto outType = dyn_cast<MemRefType>(out.getType());
  Block &body = op.getRegion().front();
  // The epilogue now writes while the matmul still reads A and B.
  if (!outType || !outType.getElementType().isF32() ||
      !maps.back().isIdentity() || !unitInnerStride(out) ||
      !body.getArguments().back().use_empty() || out == c.a || out == c.b ||
      out.getDefiningOp<ViewLikeOpInterface>())
    return;
  bool readsC = false;
  for (OpOperand *in : op.getDpsInputOperands()) {
    AffineMap map = maps[in->getOperandNumber()];
    auto type = dyn_cast<MemRefType>(in->get().getType());
    if (!type || !type.getElementType().isF32())
      return;
    readsC |= in->get() == c.c && map.isIdentity();
    bool row = map.getNumResults() == 1 && isDim(map.getResult(0), 1) &&
               unitInnerStride(in->get());
    bool column = map.getNumResults() == 1 && isDim(map.getResult(0), 0);
    bool full = map.isIdentity() && unitInnerStride(in->get());
    if (!(row || column || full || map.getNumResults() == 0))
      return;
  }
  for (Operation &inner : body.without_terminator())
    if (!inner.hasTrait<OpTrait::Elementwise>() || inner.getNumRegions() != 0)
      return;
  if (readsC)
    c.epilogue = op;
}

} // namespace

std::optional<Contraction> mass::matchContraction(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumLoops() < 3)
    return std::nullopt;
  unsigned loops = op.getNumLoops(), batch = loops - 3;
  auto iters = op.getIteratorTypesArray();
  for (unsigned i = 0; i < loops; ++i)
    if ((iters[i] == utils::IteratorType::reduction) != (i == batch + 1))
      return std::nullopt;
  Contraction c{op,
                batch,
                op.getDpsInputs()[0],
                op.getDpsInputs()[1],
                op.getDpsInits()[0],
                op.getIndexingMapsArray()[0],
                op.getIndexingMapsArray()[1]};
  for (Value v : {c.a, c.b, c.c}) {
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type || !type.getElementType().isF32())
      return std::nullopt;
  }
  if (!isMulAdd(op) || !unitInnerStride(c.c))
    return std::nullopt;
  // C[b..., m, n]
  AffineMap mapC = op.getIndexingMapsArray()[2];
  if (mapC.getNumResults() != batch + 2 || mapC.getNumSymbols() != 0)
    return std::nullopt;
  for (unsigned i = 0; i < batch; ++i)
    if (!isDim(mapC.getResult(i), i))
      return std::nullopt;
  if (!isDim(mapC.getResult(batch), batch) ||
      !isDim(mapC.getResult(batch + 1), batch + 2))
    return std::nullopt;
  // A[b..., m, k] or A[b..., k, m]; B[b..., k, n].
  unsigned ra = c.mapA.getNumResults(), rb = c.mapB.getNumResults();
  if (ra < 2 || rb < 2 || !batchResults(c.mapA, ra - 2, batch) ||
      !batchResults(c.mapB, rb - 2, batch))
    return std::nullopt;
  AffineExpr a0 = c.mapA.getResult(ra - 2), a1 = c.mapA.getResult(ra - 1);
  bool aDirect = isDim(a0, batch) && isDim(a1, batch + 1);
  bool aTransposed = isDim(a0, batch + 1) && isDim(a1, batch);
  AffineExpr b0 = c.mapB.getResult(rb - 2), b1 = c.mapB.getResult(rb - 1);
  bool bDirect = isDim(b0, batch + 1) && isDim(b1, batch + 2);
  c.bTransposed = isDim(b0, batch + 2) && isDim(b1, batch + 1);
  c.bUnitK = unitInnerStride(c.b);
  c.aTransposed = aTransposed;
  c.aUnitInner = unitInnerStride(c.a);
  findInit(c);
  findEpilogue(c);
  if (!(aDirect || aTransposed) || !(bDirect || c.bTransposed) ||
      (bDirect && !unitInnerStride(c.b)))
    return std::nullopt;
  return c;
}

namespace {

/// The static size of a contraction's k (A's dimension read by the k loop),
/// or -1.
int64_t staticK(const Contraction &c) {
  unsigned ra = c.mapA.getNumResults();
  unsigned kPos =
      isDim(c.mapA.getResult(ra - 1), c.batch + 1) ? ra - 1 : ra - 2;
  auto type = cast<MemRefType>(c.a.getType());
  return type.isDynamicDim(kPos) ? -1 : type.getDimSize(kPos);
}

/// The static number of rows of C, or -1.
int64_t staticM(const Contraction &c) {
  auto type = cast<MemRefType>(c.c.getType());
  return type.isDynamicDim(c.batch) ? -1 : type.getDimSize(c.batch);
}

/// Whether the kernel reads A in place: rows A[m, k] with unit stride
/// along k that a group of `rows` rows can keep in L1 across the steps
/// of k sharing their cache lines, next to the panel of B; the copy of A
/// is then saved (spec 09's step: 5 ms of 200). That holds when the
/// group's rows fall into as many different sets of a 64-set L1 cache,
/// or into at least 4 (3 rows a set, with the panel's 8 lines: 11 of 12
/// ways) when rows are 3 KiB or more apart: a 768-wide A runs 157 -> 167
/// GFLOP/s in place. Rows 1 KiB apart (4 to a page, where the L2's
/// streams get mixed) drop from 151 to 117 and rows 2 or 4 KiB apart
/// share 2 sets or 1 (square GEMMs slow down by a third): packed.
bool readsAInPlace(const Contraction &c, int64_t rows) {
  if (c.aTransposed || !c.aUnitInner)
    return false;
  auto type = cast<MemRefType>(c.a.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(getStridesAndOffset(type, strides, offset)) ||
      strides.size() < 2 || ShapedType::isDynamic(strides[strides.size() - 2]))
    return false;
  int64_t bytes = strides[strides.size() - 2] * 4;
  if (bytes % 64 != 0)
    return true;
  int64_t sets = 64 / std::gcd<int64_t>(bytes / 64, 64);
  return sets >= rows || (sets >= 4 && bytes >= 3072);
}

/// A's block of rows and of k, copied once for all threads into row groups
/// of the kernel's height, k-major: the kernel's broadcasts read
/// consecutive addresses. Its size is fixed: the arena plans it.
Value allocatePackedA(OpBuilder &b, Location loc, int64_t tileM, int64_t tileK,
                      int64_t rows) {
  int64_t groups = (tileM + rows - 1) / rows;
  return b.create<memref::AllocOp>(
      loc, MemRefType::get({groups, tileK, rows}, b.getF32Type()),
      b.getI64IntegerAttr(64));
}

/// `type` with every size, stride and offset dynamic but a unit innermost
/// stride: the type a shared kernel takes a buffer as.
Type generalType(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  SmallVector<int64_t> strides;
  int64_t offset;
  if (!memref || failed(getStridesAndOffset(memref, strides, offset)))
    return type;
  SmallVector<int64_t> shape(memref.getRank(), ShapedType::kDynamic);
  SmallVector<int64_t> general(memref.getRank(), ShapedType::kDynamic);
  if (!strides.empty() && strides.back() == 1)
    general.back() = 1;
  auto layout =
      StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic, general);
  return MemRefType::get(shape, memref.getElementType(), layout,
                         memref.getMemorySpace());
}

/// Emits the kernels for one contraction in place of its op.
class GemmEmitter {
public:
  /// `packedA`: the buffer for A's blocks (allocatePackedA's), or null to
  /// allocate it here; `directA`: A is read in place (readsAInPlace).
  GemmEmitter(Contraction c, int64_t width, int64_t rows, int64_t tileM,
              int64_t tileK, bool directA, Value packedA)
      : c(c), b(c.op), loc(c.op.getLoc()), width(width), rows(rows),
        tileM(tileM), tileK(tileK),
        vecType(VectorType::get({width}, b.getF32Type())), packedA(packedA),
        directA(directA) {}

  void emit() {
    unsigned nb = c.batch;
    m = size(c.c, nb);
    n = size(c.c, nb + 1);
    // The position of k among A's results.
    unsigned ra = c.mapA.getNumResults();
    unsigned kPos = isDim(c.mapA.getResult(ra - 1), nb + 1) ? ra - 1 : ra - 2;
    k = size(c.a, kPos);
    if (c.init) {
      // The kernel starts from the init in its first block of k instead of
      // reading C; the fill itself only runs when there is no k at all.
      Value none =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, k, index(0));
      auto branch = b.create<scf::IfOp>(loc, none, /*withElseRegion=*/false);
      c.init->moveBefore(branch.thenBlock()->getTerminator());
    }
    int64_t groups = (tileM + rows - 1) / rows;
    // Rows of A with unit stride along k may be read in place instead.
    if (!directA && !packedA)
      packedA = allocatePackedA(b, loc, tileM, tileK, rows);
    for (unsigned i = 0; i < nb; ++i) {
      auto loop = b.create<scf::ForOp>(loc, index(0), size(c.c, i), index(1));
      b.setInsertionPointToStart(loop.getBody());
      batchIvs.push_back(loop.getInductionVar());
    }
    // Blocks of rows of C, so that A's block stays in L2 while every panel
    // passes over it.
    auto rowBlocks =
        b.create<scf::ForOp>(loc, index(0), m, index(groups * rows));
    b.setInsertionPointToStart(rowBlocks.getBody());
    m0 = rowBlocks.getInductionVar();
    m1 = b.create<arith::MinSIOp>(
        loc, b.create<arith::AddIOp>(loc, m0, index(groups * rows)), m);
    last = b.create<arith::SubIOp>(loc, m1, index(1));
    auto kLoop = b.create<scf::ForOp>(loc, index(0), k, index(tileK));
    b.setInsertionPointToStart(kLoop.getBody());
    Value k0 = kLoop.getInductionVar();
    Value k1 = b.create<arith::MinSIOp>(
        loc, b.create<arith::AddIOp>(loc, k0, index(tileK)), k);
    if (!directA)
      packA(k0, k1);
    // Threads split the panels of C; with fewer than four (ResNet's last
    // layers have 32 columns), they also split the block's row groups into
    // chunks, each packing its panel of B (small next to the rows' work).
    Value panels = ceilDiv(n, 2 * width);
    Value groupCount = ceilDiv(b.create<arith::SubIOp>(loc, m1, m0), rows);
    Value chunks = b.create<arith::MinSIOp>(
        loc,
        b.create<arith::DivUIOp>(
            loc, b.create<arith::AddIOp>(loc, panels, index(3)), panels),
        b.create<arith::MaxSIOp>(loc, groupCount, index(1)));
    auto par = b.create<scf::ParallelOp>(
        loc, ValueRange{index(0)},
        ValueRange{b.create<arith::MulIOp>(loc, panels, chunks)},
        ValueRange{index(1)});
    par->setAttr(mass::kParallelKernelAttr, b.getUnitAttr());
    b.setInsertionPointToStart(par.getBody());
    Value item = par.getInductionVars()[0];
    Value j0 = b.create<arith::MulIOp>(
        loc, b.create<arith::DivUIOp>(loc, item, chunks), index(2 * width));
    Value chunk = b.create<arith::RemUIOp>(loc, item, chunks);
    auto groupBound = [&](Value ch) {
      Value g = b.create<arith::DivUIOp>(
          loc, b.create<arith::MulIOp>(loc, ch, groupCount), chunks);
      return b.create<arith::MinSIOp>(
          loc,
          b.create<arith::AddIOp>(loc, m0,
                                  b.create<arith::MulIOp>(loc, g, index(rows))),
          m1);
    };
    rowBegin = groupBound(chunk);
    rowEnd = groupBound(b.create<arith::AddIOp>(loc, chunk, index(1)));
    // The panel's block of B, copied row by row (k) into contiguous,
    // aligned memory on the thread's stack, zero past the edge of C.
    packedB = b.create<memref::AllocaOp>(
        loc, MemRefType::get({tileK, 2 * width}, b.getF32Type()),
        b.getI64IntegerAttr(64));
    Value left = b.create<arith::SubIOp>(loc, n, j0);
    Value full = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::sge, left,
                                         index(2 * width));
    auto branch = b.create<scf::IfOp>(loc, full, /*withElseRegion=*/true);
    b.setInsertionPointToStart(branch.thenBlock());
    panelBody(j0, {}, k0, k1);
    b.setInsertionPointToStart(branch.elseBlock());
    SmallVector<Value> masks;
    for (int64_t v = 0; v < 2; ++v) {
      Value lanes = b.create<arith::SubIOp>(loc, left, index(v * width));
      lanes = b.create<arith::MaxSIOp>(
          loc, b.create<arith::MinSIOp>(loc, lanes, index(width)), index(0));
      masks.push_back(b.create<vector::CreateMaskOp>(
          loc, VectorType::get({width}, b.getI1Type()), ValueRange{lanes}));
    }
    panelBody(j0, masks, k0, k1);
    c.op.erase();
    if (c.epilogue)
      c.epilogue.erase();
  }

private:
  Contraction c;
  OpBuilder b;
  Location loc;
  int64_t width, rows, tileM, tileK;
  VectorType vecType;
  Value packedA, m, n, k, packedB, m0, m1, last;
  /// Whether the kernel reads A in place (readsAInPlace), not packed.
  bool directA;
  /// The rows of the block this panel's thread runs the kernel on.
  Value rowBegin, rowEnd;
  SmallVector<Value> batchIvs;

  Value index(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }

  /// Where the whole tiles of the vector width from k0 towards k1 end:
  /// k0 + (k1 - k0) / width * width.
  Value wholeTiles(Value k0, Value k1) {
    Value span = b.create<arith::SubIOp>(loc, k1, k0);
    return b.create<arith::AddIOp>(
        loc, k0,
        b.create<arith::MulIOp>(
            loc, b.create<arith::DivUIOp>(loc, span, index(width)),
            index(width)));
  }

  /// (x + d - 1) / d, with ops the LLVM lowering knows.
  Value ceilDiv(Value x, int64_t d) {
    return b.create<arith::DivUIOp>(
        loc, b.create<arith::AddIOp>(loc, x, index(d - 1)), index(d));
  }

  /// The size of `memref` along `dim`: a constant when the type knows it.
  Value size(Value memref, unsigned dim) {
    auto type = cast<MemRefType>(memref.getType());
    if (!type.isDynamicDim(dim))
      return index(type.getDimSize(dim));
    return b.create<memref::DimOp>(loc, memref, dim);
  }

  /// Indices into an operand through its map, given the loop values.
  SmallVector<Value> indices(AffineMap map, Value mv, Value kv, Value nv) {
    SmallVector<Value> out;
    unsigned nb = c.batch;
    for (AffineExpr e : map.getResults()) {
      if (auto cst = dyn_cast<AffineConstantExpr>(e)) {
        out.push_back(index(cst.getValue()));
        continue;
      }
      unsigned pos = cast<AffineDimExpr>(e).getPosition();
      out.push_back(pos < nb        ? batchIvs[pos]
                    : pos == nb     ? mv
                    : pos == nb + 1 ? kv
                                    : nv);
    }
    return out;
  }

  SmallVector<Value> cIndices(Value row, Value col) {
    SmallVector<Value> out(batchIvs.begin(), batchIvs.end());
    out.push_back(row);
    out.push_back(col);
    return out;
  }

  Value load(Value base, ValueRange idx, Value mask) {
    if (!mask)
      return b.create<vector::LoadOp>(loc, vecType, base, idx);
    Value pass = b.create<arith::ConstantOp>(
        loc, vecType, DenseElementsAttr::get(vecType, 0.0f));
    return b.create<vector::MaskedLoadOp>(loc, vecType, base, idx, mask, pass);
  }

  void store(Value value, Value base, ValueRange idx, Value mask) {
    if (!mask)
      b.create<vector::StoreOp>(loc, value, base, idx);
    else
      b.create<vector::MaskedStoreOp>(loc, base, idx, mask, value);
  }

  /// packedA[g, kv - k0, r] = A[m0 + g * rows + r, kv] for the row groups
  /// of the block, threads splitting the groups; rows past the block's end
  /// are zero.
  void packA(Value k0, Value k1) {
    OpBuilder::InsertionGuard guard(b);
    Value count = ceilDiv(b.create<arith::SubIOp>(loc, m1, m0), rows);
    auto par = b.create<scf::ParallelOp>(
        loc, ValueRange{index(0)}, ValueRange{count}, ValueRange{index(1)});
    par->setAttr(mass::kParallelKernelAttr, b.getUnitAttr());
    b.setInsertionPointToStart(par.getBody());
    Value g = par.getInductionVars()[0];
    Value first = b.create<arith::AddIOp>(
        loc, m0, b.create<arith::MulIOp>(loc, g, index(rows)));
    Value zero = b.create<arith::ConstantOp>(loc, b.getF32FloatAttr(0.0f));
    Value start = k0;
    if (c.aUnitInner && rows <= width) {
      // The group's rows that exist, and the lanes of a packed row.
      Value valid = b.create<arith::MinSIOp>(
          loc, b.create<arith::SubIOp>(loc, m1, first), index(rows));
      auto maskType = VectorType::get({width}, b.getI1Type());
      Value packedLanes = b.create<vector::ConstantMaskOp>(
          loc, maskType, b.getI64ArrayAttr({rows}));
      auto storeRow = [&](Value x, Value kv) {
        b.create<vector::MaskedStoreOp>(
            loc, packedA,
            ValueRange{g, b.create<arith::SubIOp>(loc, kv, k0), index(0)},
            packedLanes, x);
      };
      if (c.aTransposed) {
        // A[k, m]: the group's rows are contiguous at each step of k.
        Value lanes =
            b.create<vector::CreateMaskOp>(loc, maskType, ValueRange{valid});
        auto loop = b.create<scf::ForOp>(loc, k0, k1, index(1));
        b.setInsertionPointToStart(loop.getBody());
        Value kv = loop.getInductionVar();
        storeRow(load(c.a, indices(c.mapA, first, kv, Value()), lanes), kv);
        return;
      }
      // A[m, k]: tiles of width steps of k, one vector per row of the
      // group (zero past its end and up to the width), transposed in
      // registers into one packed row per step.
      start = wholeTiles(k0, k1);
      auto tiles = b.create<scf::ForOp>(loc, k0, start, index(width));
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(tiles.getBody());
      Value kv = tiles.getInductionVar();
      Value zeros = b.create<arith::ConstantOp>(
          loc, vecType, DenseElementsAttr::get(vecType, 0.0f));
      SmallVector<Value> tile;
      for (int64_t r = 0; r < width; ++r) {
        if (r >= rows) {
          tile.push_back(zeros);
          continue;
        }
        Value row = b.create<arith::MinSIOp>(
            loc, b.create<arith::AddIOp>(loc, first, index(r)), last);
        Value x = load(c.a, indices(c.mapA, row, kv, Value()), Value());
        Value inside = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt,
                                               index(r), valid);
        tile.push_back(b.create<arith::SelectOp>(loc, inside, x, zeros));
      }
      transposeTile(tile);
      for (int64_t i = 0; i < width; ++i)
        storeRow(tile[i], b.create<arith::AddIOp>(loc, kv, index(i)));
      b.setInsertionPointAfter(tiles);
    }
    // Element by element (the steps of k left after the tiles).
    auto loop = b.create<scf::ForOp>(loc, start, k1, index(1));
    b.setInsertionPointToStart(loop.getBody());
    Value kv = loop.getInductionVar();
    Value at = b.create<arith::SubIOp>(loc, kv, k0);
    for (int64_t r = 0; r < rows; ++r) {
      Value row = b.create<arith::AddIOp>(loc, first, index(r));
      Value inside =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, row, m1);
      // Read a row that exists, then keep the value only for a real row.
      Value x = b.create<memref::LoadOp>(
          loc, c.a,
          indices(c.mapA, b.create<arith::MinSIOp>(loc, row, last), kv,
                  Value()));
      x = b.create<arith::SelectOp>(loc, inside, x, zero);
      b.create<memref::StoreOp>(loc, x, packedA, ValueRange{g, at, index(r)});
    }
  }

  /// One panel of C starting at column j0, for one block of k: its block of
  /// B packed, then the kernel on each group of rows of its chunk.
  void panelBody(Value j0, ArrayRef<Value> masks, Value k0, Value k1) {
    OpBuilder::InsertionGuard guard(b);
    pack(j0, masks, k0, k1);
    auto blocks = b.create<scf::ForOp>(loc, rowBegin, rowEnd, index(rows));
    b.setInsertionPointToStart(blocks.getBody());
    Value i = blocks.getInductionVar();
    Value g = b.create<arith::DivUIOp>(loc, b.create<arith::SubIOp>(loc, i, m0),
                                       index(rows));
    kernel(i, g, j0, masks, k0, k1);
  }

  /// packed[kv - k0, 0 : 2 * width] = B[kv, j0 : j0 + 2 * width] for kv in
  /// [k0, k1), with zeros past the edge of C.
  void pack(Value j0, ArrayRef<Value> masks, Value k0, Value k1) {
    OpBuilder::InsertionGuard guard(b);
    if (!c.bTransposed) {
      // Rows of B are contiguous along n: copy them a vector at a time.
      auto rowsLoop = b.create<scf::ForOp>(loc, k0, k1, index(1));
      b.setInsertionPointToStart(rowsLoop.getBody());
      Value kv = rowsLoop.getInductionVar();
      Value row = b.create<arith::SubIOp>(loc, kv, k0);
      for (int64_t v = 0; v < 2; ++v) {
        Value col = b.create<arith::AddIOp>(loc, j0, index(v * width));
        Value x = load(c.b, indices(c.mapB, Value(), kv, col),
                       masks.empty() ? Value() : masks[v]);
        b.create<vector::StoreOp>(loc, x, packedB,
                                  ValueRange{row, index(v * width)});
      }
      return;
    }
    // B[n, k] (W as stored): each column of the panel is a row of B.
    if (masks.empty()) {
      // A full panel. With B contiguous along k, square tiles of the
      // vector width are loaded row by row, transposed in registers and
      // stored as rows of the packed block.
      Value kTiles = k0;
      if (c.bUnitK) {
        kTiles = wholeTiles(k0, k1);
        auto tiles = b.create<scf::ForOp>(loc, k0, kTiles, index(width));
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(tiles.getBody());
        Value kv = tiles.getInductionVar();
        Value row = b.create<arith::SubIOp>(loc, kv, k0);
        for (int64_t half = 0; half < 2; ++half) {
          SmallVector<Value> tile;
          for (int64_t i = 0; i < width; ++i) {
            Value col =
                b.create<arith::AddIOp>(loc, j0, index(half * width + i));
            tile.push_back(b.create<vector::LoadOp>(
                loc, vecType, c.b, indices(c.mapB, Value(), kv, col)));
          }
          transposeTile(tile);
          for (int64_t i = 0; i < width; ++i)
            b.create<vector::StoreOp>(
                loc, tile[i], packedB,
                ValueRange{b.create<arith::AddIOp>(loc, row, index(i)),
                           index(half * width)});
        }
      }
      // The steps left (or all of them): k outermost, so that each step
      // writes one contiguous row of the packed block and reads one element
      // of each of the panel's rows of B, whose cache lines the next steps
      // reuse.
      auto loop = b.create<scf::ForOp>(loc, kTiles, k1, index(1));
      b.setInsertionPointToStart(loop.getBody());
      Value kv = loop.getInductionVar();
      Value row = b.create<arith::SubIOp>(loc, kv, k0);
      for (int64_t slot = 0; slot < 2 * width; ++slot) {
        Value col = b.create<arith::AddIOp>(loc, j0, index(slot));
        Value x = b.create<memref::LoadOp>(loc, c.b,
                                           indices(c.mapB, Value(), kv, col));
        b.create<memref::StoreOp>(loc, x, packedB,
                                  ValueRange{row, index(slot)});
      }
      return;
    }
    // The last panel: rows of zeros (two vector stores per step of k),
    // then the columns inside C, one by one.
    {
      OpBuilder::InsertionGuard inner(b);
      Value zeros = b.create<arith::ConstantOp>(
          loc, vecType, DenseElementsAttr::get(vecType, 0.0f));
      auto rowsLoop = b.create<scf::ForOp>(loc, k0, k1, index(1));
      b.setInsertionPointToStart(rowsLoop.getBody());
      Value row = b.create<arith::SubIOp>(loc, rowsLoop.getInductionVar(), k0);
      for (int64_t v = 0; v < 2; ++v)
        b.create<vector::StoreOp>(loc, zeros, packedB,
                                  ValueRange{row, index(v * width)});
    }
    Value columns = b.create<arith::MinSIOp>(
        loc, b.create<arith::SubIOp>(loc, n, j0), index(2 * width));
    auto cols = b.create<scf::ForOp>(loc, index(0), columns, index(1));
    b.setInsertionPointToStart(cols.getBody());
    Value slot = cols.getInductionVar();
    Value col = b.create<arith::AddIOp>(loc, j0, slot);
    auto loop = b.create<scf::ForOp>(loc, k0, k1, index(1));
    b.setInsertionPointToStart(loop.getBody());
    Value kv = loop.getInductionVar();
    Value x =
        b.create<memref::LoadOp>(loc, c.b, indices(c.mapB, Value(), kv, col));
    b.create<memref::StoreOp>(
        loc, x, packedB,
        ValueRange{b.create<arith::SubIOp>(loc, kv, k0), slot});
  }

  /// Transposes the square tile whose rows are `rows` (width vectors of
  /// width lanes) in place: at each level the off-diagonal blocks of every
  /// diagonal block swap, two rows at a time, one two-source shuffle each.
  void transposeTile(SmallVectorImpl<Value> &rows) {
    for (int64_t h = width / 2; h >= 1; h /= 2) {
      SmallVector<int64_t> low, high;
      for (int64_t j = 0; j < width; ++j) {
        bool second = (j & h) != 0;
        low.push_back(second ? width + j - h : j);
        high.push_back(second ? width + j : j + h);
      }
      for (int64_t i = 0; i < width; ++i) {
        if (i & h)
          continue;
        Value a = rows[i], c2 = rows[i + h];
        rows[i] = b.create<vector::ShuffleOp>(loc, a, c2, low);
        rows[i + h] = b.create<vector::ShuffleOp>(loc, a, c2, high);
      }
    }
  }

  /// C[i : i + rows, j0 : j0 + 2 * width] += A[i.., k0 : k1] * B[k0 : k1,
  /// j0..] with the block of C in registers. In the last group, rows past
  /// the end of the block read and write the block's last row instead:
  /// their packed A is zero, so they carry that row's old value, and they
  /// are stored first, before the row's own result.
  void kernel(Value i, Value group, Value j0, ArrayRef<Value> masks, Value k0,
              Value k1) {
    OpBuilder::InsertionGuard guard(b);
    SmallVector<Value> rowIdx, colIdx;
    for (int64_t r = 0; r < rows; ++r)
      rowIdx.push_back(b.create<arith::MinSIOp>(
          loc, r == 0 ? i : b.create<arith::AddIOp>(loc, i, index(r)), last));
    for (int64_t v = 0; v < 2; ++v)
      colIdx.push_back(
          v == 0 ? j0 : b.create<arith::AddIOp>(loc, j0, index(v * width)));
    auto mask = [&](int64_t v) { return masks.empty() ? Value() : masks[v]; };
    auto loadC = [&] {
      SmallVector<Value> values;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t v = 0; v < 2; ++v)
          values.push_back(load(c.c, cIndices(rowIdx[r], colIdx[v]), mask(v)));
      return values;
    };
    SmallVector<Value> acc;
    if (!c.init) {
      acc = loadC();
    } else {
      // The first block of k starts from the init (the fill's constant, or
      // the bias row), later ones from C.
      Value first =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, k0, index(0));
      SmallVector<Type> types(rows * 2, vecType);
      auto branch = b.create<scf::IfOp>(loc, types, first,
                                        /*withElseRegion=*/true);
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(branch.thenBlock());
      SmallVector<Value> start;
      for (int64_t v = 0; v < 2; ++v)
        start.push_back(
            c.initScalar
                ? b.create<vector::BroadcastOp>(loc, vecType, c.initScalar)
                      .getResult()
                : load(c.initRow, ValueRange{colIdx[v]}, mask(v)));
      SmallVector<Value> values;
      for (int64_t r = 0; r < rows; ++r)
        values.append(start.begin(), start.end());
      b.create<scf::YieldOp>(loc, values);
      b.setInsertionPointToStart(branch.elseBlock());
      b.create<scf::YieldOp>(loc, loadC());
      acc.assign(branch.getResults().begin(), branch.getResults().end());
    }
    auto loop = b.create<scf::ForOp>(
        loc, k0, k1, index(1), acc,
        [&](OpBuilder &nb, Location, Value kv, ValueRange carried) {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          SmallVector<Value> bRow, next;
          Value row = b.create<arith::SubIOp>(loc, kv, k0);
          for (int64_t v = 0; v < 2; ++v)
            bRow.push_back(b.create<vector::LoadOp>(
                loc, vecType, packedB, ValueRange{row, index(v * width)}));
          for (int64_t r = 0; r < rows; ++r) {
            // Read in place, a row past the block's end reads its last
            // row (rowIdx is clamped): it computes that row's result
            // again, and its store comes before the row's own.
            Value a = directA
                          ? b.create<memref::LoadOp>(
                                loc, c.a, indices(c.mapA, rowIdx[r], kv, {}))
                          : b.create<memref::LoadOp>(
                                loc, packedA, ValueRange{group, row, index(r)});
            Value splat = b.create<vector::BroadcastOp>(loc, vecType, a);
            for (int64_t v = 0; v < 2; ++v)
              next.push_back(b.create<vector::FMAOp>(loc, splat, bRow[v],
                                                     carried[r * 2 + v]));
          }
          b.create<scf::YieldOp>(loc, next);
        });
    for (int64_t r = rows; r-- > 0;)
      for (int64_t v = 0; v < 2; ++v)
        store(loop.getResult(r * 2 + v), c.c, cIndices(rowIdx[r], colIdx[v]),
              mask(v));
    if (!c.epilogue)
      return;
    // After the last block of k, the epilogue maps the block of C, still in
    // registers, into its own output.
    Value lastBlock =
        b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, k1, k);
    auto branch = b.create<scf::IfOp>(loc, lastBlock, /*withElseRegion=*/false);
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
    // Every value first, then the stores: the output may be one of the
    // epilogue's inputs (an add in place), and a row past the end of the
    // block, which reads and writes the last row, must not write it before
    // the last row has read it.
    Value out = c.epilogue.getDpsInits()[0];
    SmallVector<Value> values;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t v = 0; v < 2; ++v)
        values.push_back(applyEpilogue(loop.getResult(r * 2 + v), rowIdx[r],
                                       colIdx[v], mask(v)));
    for (int64_t r = rows; r-- > 0;)
      for (int64_t v = 0; v < 2; ++v)
        store(values[r * 2 + v], out, ValueRange{rowIdx[r], colIdx[v]},
              mask(v));
  }

  /// The epilogue's body on one vector of C at (row, col), its other
  /// operands loaded or broadcast to match.
  Value applyEpilogue(Value acc, Value row, Value col, Value mask) {
    linalg::GenericOp op = c.epilogue;
    Block &body = op.getRegion().front();
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    IRMapping mapping;
    for (OpOperand *in : op.getDpsInputOperands()) {
      Value arg = body.getArgument(in->getOperandNumber());
      AffineMap map = maps[in->getOperandNumber()];
      Value x;
      if (in->get() == c.c && map.isIdentity())
        x = acc;
      else if (map.isIdentity())
        x = load(in->get(), ValueRange{row, col}, mask);
      else if (map.getNumResults() == 1 && isDim(map.getResult(0), 1))
        x = load(in->get(), ValueRange{col}, mask);
      else
        x = b.create<vector::BroadcastOp>(
            loc, vecType,
            b.create<memref::LoadOp>(loc, in->get(),
                                     map.getNumResults() ? ValueRange{row}
                                                         : ValueRange{}));
      mapping.map(arg, x);
    }
    for (Operation &inner : body.without_terminator()) {
      // Scalars from outside the body become splats.
      for (Value operand : inner.getOperands())
        if (!mapping.contains(operand))
          mapping.map(
              operand,
              b.create<vector::BroadcastOp>(
                  loc, VectorType::get({width}, operand.getType()), operand));
      Operation *clone = b.clone(inner, mapping);
      for (Value result : clone->getResults())
        result.setType(VectorType::get({width}, result.getType()));
    }
    return mapping.lookup(body.getTerminator()->getOperand(0));
  }
};

class Gemm : public mass::impl::MassGemmBase<Gemm> {
  using MassGemmBase::MassGemmBase;

  void runOnOperation() override {
    if (vectorWidth < 1 || rows < 1 || tileM < 1 || tileK < 1) {
      getOperation().emitError(
          "mass-gemm: vector-width, rows, tile-m and tile-k must be positive");
      return signalPassFailure();
    }
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> kernels;
    SmallVector<func::FuncOp> functions(llvm::make_filter_range(
        module.getOps<func::FuncOp>(), [](func::FuncOp fn) {
          return !fn.isExternal() && !fn->hasAttr(mass::kKernelAttr);
        }));
    for (func::FuncOp fn : functions) {
      SmallVector<Contraction> found;
      fn.walk([&](linalg::GenericOp op) {
        if (auto c = mass::matchContraction(op))
          found.push_back(*c);
      });
      for (Contraction &c : found) {
        // A static k a little over one block runs as one (a 3x3
        // convolution over 32 channels has k = 288): C is read and
        // written once.
        int64_t k = staticK(c);
        int64_t blockK = k > 0 && k <= tileK + tileK / 2 ? k : tileK;
        // A static m that the kernel's rows leave more than 5% idle in (64
        // output channels: 6 groups of 12 for 64 rows) takes groups of 8
        // when 8 divides it.
        int64_t m = staticM(c), height = rows;
        if (m > 0 && rows > 8 && m % 8 == 0) {
          int64_t slots = (m + rows - 1) / rows * rows;
          if ((slots - m) * 20 > m)
            height = 8;
        }
        bool directA = readsAInPlace(c, height);
        if (!shareKernels) {
          GemmEmitter(c, vectorWidth, height, tileM, blockK, directA, {})
              .emit();
          continue;
        }
        kernels.push_back(
            share(c, fn, kernels.size(), symbols, height, blockK, directA));
      }
    }
    mass::mergeEqualKernels(module, symbols, kernels);
  }

  /// Moves the contraction with its init and epilogue into a kernel that
  /// takes its buffers with dynamic sizes and strides, so that every
  /// product of the same kind and blocking calls one function, and emits
  /// the blocked loops there. The caller allocates the packed A.
  func::FuncOp share(Contraction c, func::FuncOp parent, unsigned index,
                     SymbolTable &symbols, int64_t height, int64_t blockK,
                     bool directA) {
    SmallVector<Operation *> ops;
    if (c.init)
      ops.push_back(c.init);
    ops.push_back(c.op);
    if (c.epilogue)
      ops.push_back(c.epilogue);
    Value packedA;
    if (!directA) {
      OpBuilder b(ops.back());
      packedA = allocatePackedA(b, c.op.getLoc(), tileM, blockK, height);
    }
    IRMapping map;
    func::FuncOp kernel = mass::outlineOps(
        ops, (parent.getSymName() + "_gemm" + llvm::Twine(index)).str(), parent,
        symbols, packedA ? ValueRange{packedA} : ValueRange{},
        [&](Value v) {
          return v == packedA ? v.getType() : generalType(v.getType());
        },
        map);
    Contraction inner = c;
    inner.op = cast<linalg::GenericOp>(map.lookup(c.op.getOperation()));
    inner.a = map.lookup(c.a);
    inner.b = map.lookup(c.b);
    inner.c = map.lookup(c.c);
    if (c.init)
      inner.init = map.lookup(c.init);
    if (c.initScalar)
      inner.initScalar = map.lookup(c.initScalar);
    if (c.initRow)
      inner.initRow = map.lookup(c.initRow);
    if (c.epilogue)
      inner.epilogue =
          cast<linalg::GenericOp>(map.lookup(c.epilogue.getOperation()));
    GemmEmitter(inner, vectorWidth, height, tileM, blockK, directA,
                packedA ? map.lookup(packedA) : Value())
        .emit();
    return kernel;
  }
};

} // namespace

/// The body yields out + in0 * in1 (in either order).
bool mass::isMulAdd(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (body.getOperations().size() != 3 || yield.getNumOperands() != 1)
    return false;
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value acc = body.getArgument(2);
  Value other = add.getLhs() == acc   ? add.getRhs()
                : add.getRhs() == acc ? add.getLhs()
                                      : Value();
  auto mul = other ? other.getDefiningOp<arith::MulFOp>() : nullptr;
  if (!mul)
    return false;
  Value x = body.getArgument(0), y = body.getArgument(1);
  return (mul.getLhs() == x && mul.getRhs() == y) ||
         (mul.getLhs() == y && mul.getRhs() == x);
}
