//===- Arena.cpp - One buffer for every intermediate of a call --*- C++ -*-===//
//
// The buffers an entry point allocates for its intermediates are planned at
// compile time into one arena the runtime passes in: each gets an offset,
// and buffers whose lifetimes do not overlap share memory. Sizes are a
// constant or a constant times the batch, so the plan is two pools: bytes,
// and bytes per sample.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"
#include "llvm/Support/MathExtras.h"

#include <limits>

namespace mass {
#define GEN_PASS_DEF_MASSARENA
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

constexpr int64_t kAlignment = 64;
/// Multiples of the batch, and the factors that make them, stay below this:
/// their products cannot overflow.
constexpr int64_t kMaxFactor = int64_t(1) << 31;

int64_t alignUp(int64_t v) {
  return (v + kAlignment - 1) / kAlignment * kAlignment;
}

/// One buffer to place: `size` bytes (per sample when `perSample`; its
/// dynamic size is then `multiple` times the batch), live from top-level op
/// `first` to `last`.
struct Buffer {
  memref::AllocOp alloc;
  int64_t size;
  bool perSample;
  int64_t multiple;
  unsigned first, last;
  int64_t offset = 0;
};

/// The last top-level op that reads `root` or a view of it; nullopt when it
/// escapes through the terminator.
std::optional<unsigned>
lastUse(Value root, Block &block,
        const DenseMap<Operation *, unsigned> &position) {
  unsigned last = position.lookup(root.getDefiningOp());
  SmallVector<Value> work{root};
  DenseSet<Value> seen{root};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    for (OpOperand &use : v.getUses()) {
      Operation *top = block.findAncestorOpInBlock(*use.getOwner());
      if (!top || top->hasTrait<OpTrait::IsTerminator>())
        return std::nullopt;
      last = std::max(last, position.lookup(top));
      // A memref made from this one (a view, a reshape) aliases it.
      for (Value result : use.getOwner()->getResults())
        if (isa<BaseMemRefType>(result.getType()) && seen.insert(result).second)
          work.push_back(result);
    }
  }
  return last;
}

std::optional<int64_t> dimMultiple(Value source, int64_t index, int depth);

/// The multiple of the batch that `expr` of a value k times the batch is:
/// products with constants and exact quotients.
std::optional<int64_t> affineMultiple(AffineExpr expr, int64_t k) {
  if (isa<AffineDimExpr, AffineSymbolExpr>(expr))
    return k;
  auto binary = dyn_cast<AffineBinaryOpExpr>(expr);
  if (!binary)
    return std::nullopt;
  auto c = dyn_cast<AffineConstantExpr>(binary.getRHS());
  if (!c || c.getValue() <= 0 || c.getValue() >= kMaxFactor)
    return std::nullopt;
  std::optional<int64_t> inner = affineMultiple(binary.getLHS(), k);
  if (!inner || *inner >= kMaxFactor)
    return std::nullopt;
  switch (expr.getKind()) {
  case AffineExprKind::Mul:
    return *inner * c.getValue();
  case AffineExprKind::FloorDiv:
  case AffineExprKind::CeilDiv:
    if (*inner % c.getValue() == 0)
      return *inner / c.getValue();
    return std::nullopt;
  default:
    return std::nullopt;
  }
}

/// The constant k with `size` = k * batch, when the IR shows it: a dynamic
/// dimension of an argument (the language's only dynamic dimension is the
/// batch) is the batch; a dimension of a buffer is what its size there is;
/// products with a constant and exact quotients by one (what a reshape's
/// sizes are built from) scale k.
std::optional<int64_t> batchMultiple(Value size, int depth = 0) {
  if (depth > 16)
    return std::nullopt;
  auto constant = [](Value v) -> std::optional<int64_t> {
    APInt value;
    if (matchPattern(v, m_ConstantInt(&value)) && value.isStrictlyPositive() &&
        value.slt(kMaxFactor))
      return value.getSExtValue();
    return std::nullopt;
  };
  if (auto mul = size.getDefiningOp<arith::MulIOp>()) {
    for (auto [x, c] : {std::pair(mul.getLhs(), mul.getRhs()),
                        std::pair(mul.getRhs(), mul.getLhs())})
      if (std::optional<int64_t> factor = constant(c))
        if (std::optional<int64_t> k = batchMultiple(x, depth + 1))
          if (*k < kMaxFactor)
            return *k * *factor;
    return std::nullopt;
  }
  if (auto div = size.getDefiningOp<arith::DivUIOp>()) {
    std::optional<int64_t> divisor = constant(div.getRhs());
    std::optional<int64_t> k = batchMultiple(div.getLhs(), depth + 1);
    if (divisor && k && *k % *divisor == 0)
      return *k / *divisor;
    return std::nullopt;
  }
  // The same as an affine map of one operand (a canonicalized size).
  if (auto apply = size.getDefiningOp<affine::AffineApplyOp>()) {
    if (apply.getMapOperands().size() != 1)
      return std::nullopt;
    std::optional<int64_t> k =
        batchMultiple(apply.getMapOperands()[0], depth + 1);
    return k ? affineMultiple(apply.getAffineMap().getResult(0), *k)
             : std::nullopt;
  }
  auto dim = size.getDefiningOp<memref::DimOp>();
  std::optional<int64_t> index = dim ? dim.getConstantIndex() : std::nullopt;
  if (!index)
    return std::nullopt;
  return dimMultiple(dim.getSource(), *index, depth + 1);
}

/// batchMultiple of the size of `source` along dynamic axis `index`.
std::optional<int64_t> dimMultiple(Value source, int64_t index, int depth) {
  auto type = dyn_cast<MemRefType>(source.getType());
  if (!type || !type.isDynamicDim(index) || depth > 16)
    return std::nullopt;
  if (isa<BlockArgument>(source))
    return isa<func::FuncOp>(source.getParentRegion()->getParentOp())
               ? std::optional<int64_t>(1)
               : std::nullopt;
  Operation *def = source.getDefiningOp();
  if (auto alloc = dyn_cast<memref::AllocOp>(def))
    return batchMultiple(
        alloc.getDynamicSizes()[type.getDynamicDimIndex(index)], depth + 1);
  if (auto view = dyn_cast<memref::ViewOp>(def))
    return batchMultiple(view.getSizes()[type.getDynamicDimIndex(index)],
                         depth + 1);
  // Rows expanded: the size given for the axis.
  if (auto expand = dyn_cast<memref::ExpandShapeOp>(def)) {
    unsigned position = type.getDynamicDimIndex(index);
    if (position >= expand.getOutputShape().size())
      return std::nullopt;
    return batchMultiple(expand.getOutputShape()[position], depth + 1);
  }
  // Axes collapsed: their product, when one of them is dynamic.
  if (auto collapse = dyn_cast<memref::CollapseShapeOp>(def)) {
    MemRefType from = collapse.getSrcType();
    std::optional<int64_t> k;
    int64_t known = 1;
    // getReassociationIndices() returns a new vector: keep it alive.
    SmallVector<ReassociationIndices> groups =
        collapse.getReassociationIndices();
    for (int64_t axis : groups[index]) {
      if (!from.isDynamicDim(axis)) {
        known *= from.getDimSize(axis);
        continue;
      }
      if (k)
        return std::nullopt;
      k = dimMultiple(collapse.getSrc(), axis, depth + 1);
      if (!k)
        return std::nullopt;
    }
    if (!k || known >= kMaxFactor || *k >= kMaxFactor)
      return std::nullopt;
    return *k * known;
  }
  return std::nullopt;
}

/// First fit, largest first: each buffer takes the lowest offset where it
/// overlaps no placed buffer that is live at the same time. Returns the
/// pool's size.
int64_t place(MutableArrayRef<Buffer *> buffers) {
  llvm::stable_sort(buffers,
                    [](Buffer *a, Buffer *b) { return a->size > b->size; });
  SmallVector<Buffer *> placed;
  int64_t total = 0;
  for (Buffer *buf : buffers) {
    SmallVector<Buffer *> live;
    for (Buffer *other : placed)
      if (other->first <= buf->last && buf->first <= other->last)
        live.push_back(other);
    llvm::sort(live,
               [](Buffer *a, Buffer *b) { return a->offset < b->offset; });
    int64_t offset = 0;
    for (Buffer *other : live) {
      if (offset + buf->size <= other->offset)
        break;
      offset = std::max(offset, other->offset + other->size);
    }
    buf->offset = offset;
    placed.push_back(buf);
    total = std::max(total, offset + buf->size);
  }
  return total;
}

class Arena : public mass::impl::MassArenaBase<Arena> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<NamedAttribute> plans;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      auto [bytes, perSample] = plan(func);
      if (bytes == 0 && perSample == 0)
        continue;
      Builder b(&getContext());
      plans.push_back(b.getNamedAttr(
          func.getName(), b.getDenseI64ArrayAttr({bytes, perSample})));
    }
    module->setAttr("mass.arena", DictionaryAttr::get(&getContext(), plans));
  }

  /// Places the top-level allocations of `func` in an arena argument
  /// appended to it; returns the arena's bytes and bytes per sample.
  std::pair<int64_t, int64_t> plan(func::FuncOp func) {
    Block &block = func.getBody().front();
    DenseMap<Operation *, unsigned> position;
    for (Operation &op : block)
      position[&op] = position.size();
    std::vector<Buffer> buffers;
    for (auto alloc : block.getOps<memref::AllocOp>()) {
      MemRefType type = alloc.getType();
      // A size may hold the batch once (the one dynamic dimension of the
      // language); a layout or a memory space keeps the allocation.
      uint64_t bits =
          DataLayout::closest(alloc).getTypeSizeInBits(type.getElementType());
      if (type.getNumDynamicDims() > 1 || !type.getLayout().isIdentity() ||
          type.getMemorySpace() || bits == 0 || (bits > 8 && bits % 8 != 0))
        continue;
      std::optional<int64_t> multiple = 1;
      if (type.getNumDynamicDims() == 1)
        multiple = batchMultiple(alloc.getDynamicSizes().front());
      std::optional<unsigned> last = lastUse(alloc, block, position);
      if (!multiple || !last)
        continue;
      // A size that overflows keeps its allocation (and fails there).
      // An i1 takes a byte, as LLVM stores it.
      int64_t size = static_cast<int64_t>((bits + 7) / 8);
      bool overflow = llvm::MulOverflow(size, *multiple, size);
      for (int64_t d : type.getShape())
        if (!ShapedType::isDynamic(d))
          overflow |= llvm::MulOverflow(size, d, size);
      if (overflow || size > std::numeric_limits<int64_t>::max() / 2)
        continue;
      buffers.push_back({alloc, alignUp(size), type.getNumDynamicDims() == 1,
                         *multiple, position.lookup(alloc), *last});
    }
    if (buffers.empty())
      return {0, 0};
    SmallVector<Buffer *> fixed, scaled;
    for (Buffer &buf : buffers)
      (buf.perSample ? scaled : fixed).push_back(&buf);
    int64_t bytes = place(fixed), perSample = place(scaled);

    // memref.view carves each buffer out of the arena: fixed ones at their
    // offset, per-sample ones after the fixed pool at offset * batch.
    auto arenaType = MemRefType::get({ShapedType::kDynamic},
                                     IntegerType::get(&getContext(), 8));
    unsigned index = func.getNumArguments();
    func.insertArgument(index, arenaType, DictionaryAttr::get(&getContext()),
                        func.getLoc());
    Value arena = func.getArgument(index);
    for (Buffer &buf : buffers) {
      OpBuilder b(buf.alloc);
      Location loc = buf.alloc.getLoc();
      Value offset;
      if (buf.perSample) {
        Value batch = buf.alloc.getDynamicSizes().front();
        if (buf.multiple != 1)
          batch = b.create<arith::DivUIOp>(
              loc, batch, b.create<arith::ConstantIndexOp>(loc, buf.multiple));
        offset = b.create<arith::AddIOp>(
            loc, b.create<arith::ConstantIndexOp>(loc, bytes),
            b.create<arith::MulIOp>(
                loc, batch, b.create<arith::ConstantIndexOp>(loc, buf.offset)));
      } else {
        offset = b.create<arith::ConstantIndexOp>(loc, buf.offset);
      }
      auto view = b.create<memref::ViewOp>(loc, buf.alloc.getType(), arena,
                                           offset, buf.alloc.getDynamicSizes());
      buf.alloc.replaceAllUsesWith(view.getResult());
      buf.alloc.erase();
    }
    return {bytes, perSample};
  }
};

} // namespace
