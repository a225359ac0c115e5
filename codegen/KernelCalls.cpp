//===- KernelCalls.cpp - Ops that bufferize into calls of runtime kernels -===//
//
// mass.attention and mass.attention_grad stay ops until bufferization,
// which gives their results new buffers and calls the runtime's kernel
// (abi.h) once per sample and head, from a parallel loop: threads split
// the heads, and each head's sums run in one order. The kernels take
// memref descriptors with any strides, so views (a fused projection's
// columns) pass without a copy.
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

/// The declaration of kernel `name` taking `memrefs` rank-3 buffers and
/// three i64 (the head's index, the number of heads, causal), created at
/// the start of the module the first time.
func::FuncOp kernelDecl(Operation *user, RewriterBase &rewriter, StringRef name,
                        unsigned memrefs) {
  auto module = user->getParentOfType<ModuleOp>();
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  MLIRContext *context = user->getContext();
  SmallVector<Type> args(memrefs, anyLayout(context, 3));
  args.append(3, IntegerType::get(context, 64));
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

/// Buffers for `op`'s operands and new buffers for its results (each
/// shaped as `like[i]`'s buffer, the batch read from it), then
/// `kernel(operands..., results..., head, heads, causal)` for each sample
/// and head in a parallel loop.
LogicalResult callPerHead(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options, StringRef kernel,
                          ArrayRef<Value> like, Value query, int64_t heads,
                          bool causal) {
  Location loc = op->getLoc();
  SmallVector<Value> buffers;
  for (Value operand : op->getOperands()) {
    FailureOr<Value> buffer = getBuffer(rewriter, operand, options);
    if (failed(buffer))
      return failure();
    buffers.push_back(*buffer);
  }
  auto bufferOf = [&](Value v) {
    for (auto [operand, buffer] : llvm::zip(op->getOperands(), buffers))
      if (operand == v)
        return buffer;
    return Value();
  };
  Value c0 = rewriter.create<arith::ConstantIndexOp>(loc, 0);
  Value batch = rewriter.create<memref::DimOp>(loc, bufferOf(query), c0);
  SmallVector<Value> results;
  for (auto [result, from] : llvm::zip(op->getResults(), like)) {
    auto type = cast<RankedTensorType>(result.getType());
    SmallVector<Value> dynamic;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (type.isDynamicDim(d))
        dynamic.push_back(
            d == 0 ? batch
                   : rewriter.create<memref::DimOp>(loc, bufferOf(from), d));
    FailureOr<Value> alloc = options.createAlloc(
        rewriter, loc, MemRefType::get(type.getShape(), type.getElementType()),
        dynamic);
    if (failed(alloc))
      return failure();
    results.push_back(*alloc);
  }
  SmallVector<Value> args;
  MemRefType any = anyLayout(rewriter.getContext(), 3);
  for (Value buffer : llvm::concat<Value>(buffers, results))
    args.push_back(rewriter.create<memref::CastOp>(loc, any, buffer));
  func::FuncOp callee = kernelDecl(op, rewriter, kernel, args.size());
  Value count = rewriter.create<arith::MulIOp>(
      loc, batch, rewriter.create<arith::ConstantIndexOp>(loc, heads));
  auto i64 = [&](OpBuilder &b, int64_t v) -> Value {
    return b.create<arith::ConstantIntOp>(loc, v, 64);
  };
  rewriter.create<scf::ParallelOp>(
      loc, ValueRange{c0}, ValueRange{count},
      ValueRange{rewriter.create<arith::ConstantIndexOp>(loc, 1)},
      [&](OpBuilder &b, Location l, ValueRange ivs) {
        SmallVector<Value> callArgs(args);
        callArgs.push_back(
            b.create<arith::IndexCastOp>(l, b.getI64Type(), ivs[0]));
        callArgs.push_back(i64(b, heads));
        callArgs.push_back(i64(b, causal ? 1 : 0));
        b.create<func::CallOp>(l, callee, callArgs);
      });
  replaceOpWithBufferizedValues(rewriter, op, results);
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

struct AttentionModel : public KernelModel<AttentionModel, AttentionOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options) const {
    auto attention = cast<AttentionOp>(op);
    Value q = attention.getQuery();
    return callPerHead(op, rewriter, options, "mass_attention_forward", {q, q},
                       q, attention.getHeads(), attention.getCausal());
  }
};

struct AttentionGradModel
    : public KernelModel<AttentionGradModel, AttentionGradOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options) const {
    auto grad = cast<AttentionGradOp>(op);
    return callPerHead(op, rewriter, options, "mass_attention_backward",
                       {grad.getQuery(), grad.getKey(), grad.getValue()},
                       grad.getQuery(), grad.getHeads(), grad.getCausal());
  }
};

} // namespace

void mass::registerKernelCalls(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, MassDialect *) {
    AttentionOp::attachInterface<AttentionModel>(*context);
    AttentionGradOp::attachInterface<AttentionGradModel>(*context);
  });
}
