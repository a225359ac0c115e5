//===- DeviceGemm.cpp - Matrix products as cuBLAS calls -------------------===//
//
// On the CUDA target a matrix product as a loop nest is one thread per
// element of C reading its row and column from global memory. cuBLAS's
// kernels tile it through shared memory and registers: here each
// contraction becomes a host call of the runtime's `mass_cuda_gemm`, which
// calls cuBLAS (runtime/lib/DeviceCalls.cpp).
//
//===----------------------------------------------------------------------===//

#include "codegen/Contraction.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"

namespace mass {
#define GEN_PASS_DEF_MASSDEVICEGEMM
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

constexpr llvm::StringLiteral kGemm = "mass_cuda_gemm";
constexpr llvm::StringLiteral kGemmBias = "mass_cuda_gemm_bias";

/// The runtime's operand type: a rank-3 view of any strides.
MemRefType viewType(MLIRContext *context) {
  int64_t d = ShapedType::kDynamic;
  return MemRefType::get(
      {d, d, d}, Float32Type::get(context),
      StridedLayoutAttr::get(context, d, ArrayRef<int64_t>{d, d, d}));
}

/// Whether `v` has a unit stride in one of its last two dimensions, known
/// at compile time: cuBLAS reads it as a column-major matrix either way.
bool cublasLayout(Value v) {
  auto type = cast<MemRefType>(v.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(getStridesAndOffset(type, strides, offset)) || strides.size() < 2)
    return false;
  return strides.back() == 1 || strides[strides.size() - 2] == 1;
}

/// `operand` (read through `map` in a contraction with `batch` batch
/// loops) as a rank-3 view whose leading dimension is the batch, or 1 when
/// every batch reads the same matrix; null if it is neither.
Value batchView(OpBuilder &b, Location loc, Value operand, AffineMap map,
                unsigned batch) {
  auto type = cast<MemRefType>(operand.getType());
  int64_t rank = type.getRank();
  if (rank == 2) {
    // A leading dimension of 1: [[0, 1], [2]].
    SmallVector<ReassociationIndices> groups = {{0, 1}, {2}};
    SmallVector<int64_t> shape = {1, type.getDimSize(0), type.getDimSize(1)};
    auto expandedType =
        memref::ExpandShapeOp::computeExpandedType(type, shape, groups);
    if (failed(expandedType))
      return {};
    return b.create<memref::ExpandShapeOp>(loc, *expandedType, operand, groups);
  }
  if (rank != 3 || batch != 1)
    return {};
  AffineExpr lead = map.getResult(0);
  if (auto dim = dyn_cast<AffineDimExpr>(lead); dim && dim.getPosition() == 0)
    return operand;
  auto zero = dyn_cast<AffineConstantExpr>(lead);
  if (!zero || zero.getValue() != 0)
    return {};
  // Every batch reads the first matrix: a view of it alone.
  SmallVector<OpFoldResult> offsets(3, b.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)};
  for (int64_t i = 1; i < 3; ++i)
    sizes.push_back(memref::getMixedSize(b, loc, operand, i));
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  return b.create<memref::SubViewOp>(loc, operand, offsets, sizes, strides);
}

/// The declaration of the runtime's product `name` with `types`, created
/// the first time.
func::FuncOp declaration(ModuleOp module, StringRef name,
                         ArrayRef<Type> types) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  auto func = b.create<func::FuncOp>(module.getLoc(), name,
                                     b.getFunctionType(types, {}));
  func.setPrivate();
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(), b.getUnitAttr());
  return func;
}

/// Whether `c`'s result starts as zeros (a fill of 0.0 just before it).
bool zeroInit(const mass::Contraction &c) {
  return c.init && isa<linalg::FillOp>(c.init) &&
         matchPattern(c.initScalar, m_AnyZeroFloat());
}

struct DeviceGemm : mass::impl::MassDeviceGemmBase<DeviceGemm> {
  void runOnOperation() override {
    SmallVector<mass::Contraction> found;
    getOperation().walk([&](linalg::GenericOp op) {
      std::optional<mass::Contraction> c = mass::matchContraction(op);
      if (c && c->batch <= 1 && cublasLayout(c->a) && cublasLayout(c->b) &&
          cast<MemRefType>(c->c.getType()).getRank() == c->batch + 2)
        found.push_back(*c);
    });
    if (found.empty())
      return;
    Type view = viewType(&getContext());
    Type i64 = IntegerType::get(&getContext(), 64);
    int64_t d = ShapedType::kDynamic;
    Type vector =
        MemRefType::get({d}, Float32Type::get(&getContext()),
                        StridedLayoutAttr::get(&getContext(), d, {d}));
    for (mass::Contraction &c : found) {
      OpBuilder b(c.op);
      Location loc = c.op.getLoc();
      Value a = batchView(b, loc, c.a, c.mapA, c.batch);
      Value bm = batchView(b, loc, c.b, c.mapB, c.batch);
      Value out = c.batch == 0 ? batchView(b, loc, c.c, {}, 0) : c.c;
      if (!a || !bm || !out) {
        // Left as a loop nest; nothing was used.
        for (Value v : {a, bm, out})
          if (v && v.getDefiningOp() && v.use_empty())
            v.getDefiningOp()->erase();
        continue;
      }
      SmallVector<Value> args;
      for (Value v : {a, bm, out})
        args.push_back(b.create<memref::CastOp>(loc, view, v));
      // A bias broadcast into C before the product is cuBLASLt's bias
      // epilogue; a fill of zeros is a product that overwrites C. Either
      // way the op that wrote C first goes.
      bool bias = c.initRow && c.batch == 0;
      if (bias)
        args.push_back(b.create<memref::CastOp>(loc, vector, c.initRow));
      args.push_back(b.create<arith::ConstantIntOp>(loc, c.aTransposed, 64));
      args.push_back(b.create<arith::ConstantIntOp>(loc, c.bTransposed, 64));
      bool overwrite = bias || zeroInit(c);
      if (!bias)
        args.push_back(b.create<arith::ConstantIntOp>(loc, !overwrite, 64));
      func::FuncOp callee =
          bias ? declaration(getOperation(), kGemmBias,
                             {view, view, view, vector, i64, i64})
               : declaration(getOperation(), kGemm,
                             {view, view, view, i64, i64, i64});
      b.create<func::CallOp>(loc, callee, args);
      c.op.erase();
      if (overwrite)
        c.init->erase();
    }
  }
};

} // namespace
