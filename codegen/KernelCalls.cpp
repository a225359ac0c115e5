//===- KernelCalls.cpp - Ops that bufferize into calls of runtime kernels -===//
//
// mass.attention, mass.self_attention, their gradients,
// mass.layernorm_grad and mass.sum_ranks stay ops until bufferization, which
// gives their results new buffers and calls the runtime's kernels (abi.h):
// from a parallel loop once per sample and head for attention (threads split
// the heads, and each head's sums run in one order), once per chunk of rows
// for layer norm's gradient (a fixed number of chunks, whose sums over rows
// are then added in order); once for a sum over the data-parallel
// processes, on a copy of its input. The kernels take memref descriptors with any
// strides, so views pass without a copy: self-attention's query, key and
// value are column blocks of one projection, and their gradients column
// blocks of one buffer.
//
//===----------------------------------------------------------------------===//

#include "codegen/Pipeline.h"

#include "dialects/Mass/MassDialect.h"
#include "dialects/Mass/MassOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::bufferization;
using namespace mass;

namespace {

/// memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>: what a kernel takes.
MemRefType anyLayout(MLIRContext *context, int64_t rank) {
  SmallVector<int64_t> dynamic(rank, ShapedType::kDynamic);
  return MemRefType::get(
      dynamic, Float32Type::get(context),
      StridedLayoutAttr::get(context, ShapedType::kDynamic, dynamic));
}

/// The declaration of kernel `name` taking buffers of the given `ranks`
/// and `integers` i64, created at the start of the module the first time.
func::FuncOp kernelDecl(Operation *user, RewriterBase &rewriter, StringRef name,
                        ArrayRef<int64_t> ranks, unsigned integers) {
  auto module = user->getParentOfType<ModuleOp>();
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  MLIRContext *context = user->getContext();
  SmallVector<Type> args;
  for (int64_t rank : ranks)
    args.push_back(anyLayout(context, rank));
  args.append(integers, IntegerType::get(context, 64));
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToStart(module.getBody());
  auto f = rewriter.create<func::FuncOp>(user->getLoc(), name,
                                         FunctionType::get(context, args, {}));
  f.setPrivate();
  // Called through MLIR's C interface: one descriptor pointer per buffer.
  f->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
             UnitAttr::get(context));
  return f;
}

/// The buffers of `op`'s operands, in order.
FailureOr<SmallVector<Value>>
operandBuffers(Operation *op, RewriterBase &rewriter,
               const BufferizationOptions &options) {
  SmallVector<Value> buffers;
  for (Value operand : op->getOperands()) {
    FailureOr<Value> buffer = getBuffer(rewriter, operand, options);
    if (failed(buffer))
      return failure();
    buffers.push_back(*buffer);
  }
  return buffers;
}

/// `buffers` cast to the kernels' layout (any strides), in order.
SmallVector<Value> asKernelArgs(RewriterBase &rewriter, Location loc,
                                ValueRange buffers) {
  SmallVector<Value> args;
  for (Value buffer : buffers) {
    auto type = cast<MemRefType>(buffer.getType());
    args.push_back(rewriter.create<memref::CastOp>(
        loc, anyLayout(rewriter.getContext(), type.getRank()), buffer));
  }
  return args;
}

/// New buffers for `op`'s results, their batch (the only size attention's
/// shapes leave dynamic) `batch`.
FailureOr<SmallVector<Value>> allocResults(Operation *op,
                                           RewriterBase &rewriter,
                                           const BufferizationOptions &options,
                                           Value batch) {
  SmallVector<Value> results;
  for (Value result : op->getResults()) {
    auto type = cast<RankedTensorType>(result.getType());
    SmallVector<Value> dynamic;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (type.isDynamicDim(d)) {
        if (d != 0)
          return op->emitOpError("expected static sizes but the batch");
        dynamic.push_back(batch);
      }
    FailureOr<Value> alloc = options.createAlloc(
        rewriter, op->getLoc(),
        MemRefType::get(type.getShape(), type.getElementType()), dynamic);
    if (failed(alloc))
      return failure();
    results.push_back(*alloc);
  }
  return results;
}

/// The three column blocks [B, T, D] of a buffer [B, T, 3D] (the packed
/// query, key and value of self-attention): strided views, no copy.
SmallVector<Value> columnBlocks(RewriterBase &rewriter, Location loc,
                                Value packed) {
  auto type = cast<MemRefType>(packed.getType());
  int64_t d = type.getShape()[2] / 3;
  OpFoldResult batch =
      rewriter.create<memref::DimOp>(loc, packed, 0).getResult();
  SmallVector<Value> blocks;
  for (int64_t i = 0; i < 3; ++i)
    blocks.push_back(rewriter.create<memref::SubViewOp>(
        loc, packed,
        SmallVector<OpFoldResult>{rewriter.getIndexAttr(0),
                                  rewriter.getIndexAttr(0),
                                  rewriter.getIndexAttr(i * d)},
        SmallVector<OpFoldResult>{batch,
                                  rewriter.getIndexAttr(type.getShape()[1]),
                                  rewriter.getIndexAttr(d)},
        SmallVector<OpFoldResult>(3, rewriter.getIndexAttr(1))));
  return blocks;
}

/// `kernel(buffers..., head, heads, causal)` for each sample and head of a
/// batch of `batch` samples, from a parallel loop.
void callPerHead(Operation *op, RewriterBase &rewriter, StringRef kernel,
                 ValueRange buffers, Value batch, int64_t heads, bool causal) {
  Location loc = op->getLoc();
  SmallVector<Value> args = asKernelArgs(rewriter, loc, buffers);
  func::FuncOp callee =
      kernelDecl(op, rewriter, kernel, SmallVector<int64_t>(args.size(), 3), 3);
  Value count = rewriter.create<arith::MulIOp>(
      loc, batch, rewriter.create<arith::ConstantIndexOp>(loc, heads));
  auto i64 = [&](OpBuilder &b, int64_t v) -> Value {
    return b.create<arith::ConstantIntOp>(loc, v, 64);
  };
  rewriter.create<scf::ParallelOp>(
      loc, ValueRange{rewriter.create<arith::ConstantIndexOp>(loc, 0)},
      ValueRange{count},
      ValueRange{rewriter.create<arith::ConstantIndexOp>(loc, 1)},
      [&](OpBuilder &b, Location l, ValueRange ivs) {
        SmallVector<Value> callArgs(args);
        callArgs.push_back(
            b.create<arith::IndexCastOp>(l, b.getI64Type(), ivs[0]));
        callArgs.push_back(i64(b, heads));
        callArgs.push_back(i64(b, causal ? 1 : 0));
        b.create<func::CallOp>(l, callee, callArgs);
      });
}

/// An attention op bufferized: its operands' buffers (`unpack` rewrites
/// them into the kernel's q, k, v, ... operands), new buffers for its
/// results (`views` gives what the kernel writes into them), and the
/// kernel called per sample and head.
template <typename Unpack, typename Views>
LogicalResult bufferizeAttention(Operation *op, RewriterBase &rewriter,
                                 const BufferizationOptions &options,
                                 StringRef kernel, int64_t heads, bool causal,
                                 Unpack unpack, Views views) {
  Location loc = op->getLoc();
  FailureOr<SmallVector<Value>> operands =
      operandBuffers(op, rewriter, options);
  if (failed(operands))
    return failure();
  Value batch = rewriter.create<memref::DimOp>(loc, (*operands)[0], 0);
  FailureOr<SmallVector<Value>> results =
      allocResults(op, rewriter, options, batch);
  if (failed(results))
    return failure();
  SmallVector<Value> buffers = unpack(*operands);
  buffers.append(views(*results));
  callPerHead(op, rewriter, kernel, buffers, batch, heads, causal);
  replaceOpWithBufferizedValues(rewriter, op, *results);
  return success();
}

/// Reads every operand, writes only new buffers.
template <typename Model, typename Op>
struct KernelModel : public BufferizableOpInterface::ExternalModel<Model, Op> {
  bool bufferizesToMemoryRead(Operation *, OpOperand &,
                              const AnalysisState &) const {
    return true;
  }
  bool bufferizesToMemoryWrite(Operation *, OpOperand &,
                               const AnalysisState &) const {
    return false;
  }
  AliasingValueList getAliasingValues(Operation *, OpOperand &,
                                      const AnalysisState &) const {
    return {};
  }
  bool bufferizesToAllocation(Operation *, Value) const { return true; }
  FailureOr<BaseMemRefType> getBufferType(Operation *, Value value,
                                          const BufferizationOptions &,
                                          SmallVector<Value> &) const {
    auto type = cast<RankedTensorType>(value.getType());
    return cast<BaseMemRefType>(
        MemRefType::get(type.getShape(), type.getElementType()));
  }
};

/// Attention and self-attention, forward or backward: one runtime kernel
/// per direction. A packed operand [B, T, 3D] (self-attention's q, k, v)
/// passes as its three column blocks, and so does the packed gradient.
template <typename Op, bool Backward, bool Packed>
struct AttentionModel
    : public KernelModel<AttentionModel<Op, Backward, Packed>, Op> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options) const {
    auto attention = cast<Op>(op);
    Location loc = op->getLoc();
    auto unpack = [&](ArrayRef<Value> buffers) {
      if (!Packed)
        return SmallVector<Value>(buffers);
      SmallVector<Value> blocks = columnBlocks(rewriter, loc, buffers[0]);
      blocks.append(buffers.begin() + 1, buffers.end());
      return blocks;
    };
    return bufferizeAttention(
        op, rewriter, options,
        Backward ? "mass_attention_backward" : "mass_attention_forward",
        attention.getHeads(), attention.getCausal(), unpack,
        [&](ArrayRef<Value> results) {
          return Backward ? unpack(results) : SmallVector<Value>(results);
        });
  }
};

/// Chunks of rows of layer norm's gradient: each adds its rows' terms of
/// dweight and dbias, then the chunks are added in order. A fixed number,
/// so that the sums do not depend on the number of threads.
constexpr int64_t kLayerNormChunks = 64;

/// `buffer` with its leading axes collapsed into one: rows [R, D] when
/// `keepLast`, else [R]. Copied first when its layout cannot collapse.
FailureOr<Value> asRows(RewriterBase &rewriter, Location loc, Value buffer,
                        bool keepLast, const BufferizationOptions &options) {
  auto type = cast<MemRefType>(buffer.getType());
  int64_t rank = type.getRank();
  ReassociationIndices leading;
  for (int64_t i = 0; i + (keepLast ? 1 : 0) < rank; ++i)
    leading.push_back(i);
  SmallVector<ReassociationIndices> groups = {leading};
  if (keepLast)
    groups.push_back({rank - 1});
  if (groups.size() == static_cast<size_t>(rank))
    return buffer;
  if (!memref::CollapseShapeOp::isGuaranteedCollapsible(type, groups)) {
    SmallVector<Value> dynamic;
    for (int64_t i = 0; i < rank; ++i)
      if (type.isDynamicDim(i))
        dynamic.push_back(rewriter.create<memref::DimOp>(loc, buffer, i));
    FailureOr<Value> copy = options.createAlloc(
        rewriter, loc, MemRefType::get(type.getShape(), type.getElementType()),
        dynamic);
    if (failed(copy))
      return failure();
    rewriter.create<memref::CopyOp>(loc, buffer, *copy);
    buffer = *copy;
  }
  return rewriter.create<memref::CollapseShapeOp>(loc, buffer, groups)
      .getResult();
}

struct LayerNormGradModel
    : public KernelModel<LayerNormGradModel, LayerNormGradOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options) const {
    auto grad = cast<LayerNormGradOp>(op);
    Location loc = op->getLoc();
    FailureOr<SmallVector<Value>> operands =
        operandBuffers(op, rewriter, options);
    if (failed(operands))
      return failure();
    Value x = (*operands)[0];
    auto f32 = rewriter.getF32Type();
    auto inputType = cast<RankedTensorType>(grad.getInput().getType());
    int64_t width = inputType.getShape().back();
    auto index = [&](int64_t v) -> Value {
      return rewriter.create<arith::ConstantIndexOp>(loc, v);
    };
    SmallVector<Value> dynamic;
    for (int64_t i = 0; i < inputType.getRank(); ++i)
      if (inputType.isDynamicDim(i))
        dynamic.push_back(rewriter.create<memref::DimOp>(loc, x, index(i)));
    auto alloc = [&](ArrayRef<int64_t> shape, ValueRange sizes) {
      return options.createAlloc(rewriter, loc, MemRefType::get(shape, f32),
                                 sizes);
    };
    auto wShape = cast<RankedTensorType>(grad.getWeight().getType()).getShape();
    FailureOr<Value> dx = alloc(inputType.getShape(), dynamic);
    FailureOr<Value> dw = alloc(wShape, {});
    FailureOr<Value> db = alloc(wShape, {});
    // Each chunk's sums: [chunk, 0] for dweight, [chunk, 1] for dbias.
    FailureOr<Value> partial = alloc({kLayerNormChunks, 2, width}, {});
    if (failed(dx) || failed(dw) || failed(db) || failed(partial))
      return failure();
    // x, mean, rstd, weight, dy, dx as rows; then partial.
    SmallVector<Value> buffers;
    SmallVector<Value> all(*operands);
    all.push_back(*dx);
    for (auto [i, buffer] : llvm::enumerate(all)) {
      FailureOr<Value> rows =
          i == 3 ? FailureOr<Value>(buffer)
                 : asRows(rewriter, loc, buffer,
                          /*keepLast=*/i == 0 || i == 4 || i == 5, options);
      if (failed(rows))
        return failure();
      buffers.push_back(*rows);
    }
    buffers.push_back(*partial);
    SmallVector<Value> args = asKernelArgs(rewriter, loc, buffers);
    func::FuncOp rows = kernelDecl(op, rewriter, "mass_layernorm_backward",
                                   {2, 1, 1, 1, 2, 2, 3}, 2);
    rewriter.create<scf::ParallelOp>(
        loc, ValueRange{index(0)}, ValueRange{index(kLayerNormChunks)},
        ValueRange{index(1)}, [&](OpBuilder &b, Location l, ValueRange ivs) {
          SmallVector<Value> callArgs(args);
          callArgs.push_back(
              b.create<arith::IndexCastOp>(l, b.getI64Type(), ivs[0]));
          callArgs.push_back(
              b.create<arith::ConstantIntOp>(l, kLayerNormChunks, 64));
          b.create<func::CallOp>(l, rows, callArgs);
        });
    func::FuncOp sums =
        kernelDecl(op, rewriter, "mass_layernorm_backward_sums", {3, 1, 1}, 0);
    rewriter.create<func::CallOp>(
        loc, sums, asKernelArgs(rewriter, loc, ValueRange{*partial, *dw, *db}));
    replaceOpWithBufferizedValues(rewriter, op, ValueRange{*dx, *dw, *db});
    return success();
  }
};

/// A sum over the processes: the input copied into a new buffer, which the
/// runtime sums in place.
struct SumRanksModel : public KernelModel<SumRanksModel, SumRanksOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options) const {
    Location loc = op->getLoc();
    FailureOr<SmallVector<Value>> operands =
        operandBuffers(op, rewriter, options);
    if (failed(operands))
      return failure();
    auto type = cast<RankedTensorType>(op->getResult(0).getType());
    FailureOr<Value> sums = options.createAlloc(
        rewriter, loc, MemRefType::get(type.getShape(), type.getElementType()),
        {});
    if (failed(sums))
      return failure();
    rewriter.create<memref::CopyOp>(loc, (*operands)[0], *sums);
    func::FuncOp kernel = kernelDecl(op, rewriter, "mass_sum_ranks", {1}, 0);
    rewriter.create<func::CallOp>(loc, kernel,
                                  asKernelArgs(rewriter, loc, *sums));
    replaceOpWithBufferizedValues(rewriter, op, *sums);
    return success();
  }
};

} // namespace

void mass::registerKernelCalls(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, MassDialect *) {
    AttentionOp::attachInterface<AttentionModel<AttentionOp, false, false>>(
        *context);
    AttentionGradOp::attachInterface<
        AttentionModel<AttentionGradOp, true, false>>(*context);
    SelfAttentionOp::attachInterface<
        AttentionModel<SelfAttentionOp, false, true>>(*context);
    SelfAttentionGradOp::attachInterface<
        AttentionModel<SelfAttentionGradOp, true, true>>(*context);
    LayerNormGradOp::attachInterface<LayerNormGradModel>(*context);
    SumRanksOp::attachInterface<SumRanksModel>(*context);
  });
}
