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

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"

namespace mass {
#define GEN_PASS_DEF_MASSARENA
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

constexpr int64_t kAlignment = 64;

int64_t alignUp(int64_t v) {
  return (v + kAlignment - 1) / kAlignment * kAlignment;
}

/// One buffer to place: `size` bytes (per sample when `perSample`), live
/// from top-level op `first` to `last`.
struct Buffer {
  memref::AllocOp alloc;
  int64_t size;
  bool perSample;
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

/// Whether `size` is the batch: a dynamic dimension of an argument (the
/// language's only dynamic dimension is the batch), or of a buffer whose
/// own size there is the batch.
bool isBatch(Value size, int depth = 0) {
  auto dim = size.getDefiningOp<memref::DimOp>();
  std::optional<int64_t> index = dim ? dim.getConstantIndex() : std::nullopt;
  if (!index || depth > 8)
    return false;
  Value source = dim.getSource();
  auto type = dyn_cast<MemRefType>(source.getType());
  if (!type || !type.isDynamicDim(*index))
    return false;
  if (isa<BlockArgument>(source))
    return isa<func::FuncOp>(source.getParentRegion()->getParentOp());
  Operation *def = source.getDefiningOp();
  if (!isa<memref::AllocOp, memref::ViewOp>(def))
    return false;
  auto sizes = isa<memref::AllocOp>(def)
                   ? cast<memref::AllocOp>(def).getDynamicSizes()
                   : cast<memref::ViewOp>(def).getSizes();
  return isBatch(sizes[type.getDynamicDimIndex(*index)], depth + 1);
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
          type.getMemorySpace() || bits == 0 || bits % 8 != 0 ||
          (type.getNumDynamicDims() == 1 &&
           !isBatch(alloc.getDynamicSizes().front())))
        continue;
      std::optional<unsigned> last = lastUse(alloc, block, position);
      if (!last)
        continue;
      int64_t size = static_cast<int64_t>(bits / 8);
      for (int64_t d : type.getShape())
        size *= ShapedType::isDynamic(d) ? 1 : d;
      buffers.push_back({alloc, alignUp(size), type.getNumDynamicDims() == 1,
                         position.lookup(alloc), *last});
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
