//===- DeviceGemm.cpp - Matrix products as cuBLAS calls -------------------===//
//
// On the CUDA target a matrix product as a loop nest is one thread per
// element of C reading its row and column from global memory. cuBLAS's
// kernels tile it through shared memory and registers: here each
// contraction becomes a host call of the runtime's `mass_cuda_gemm`, which
// calls cuBLAS (runtime/lib/DeviceCalls.cpp); a dense layer's bias and ReLU
// become cuBLASLt's epilogue.
//
//===----------------------------------------------------------------------===//

#include "codegen/Contraction.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"

namespace mass {
#define GEN_PASS_DEF_MASSDEVICEACTIVATIONS
#define GEN_PASS_DEF_MASSDEVICEGEMM
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

constexpr llvm::StringLiteral kGemm = "mass_cuda_gemm";
constexpr llvm::StringLiteral kGemmBias = "mass_cuda_gemm_bias";
constexpr llvm::StringLiteral kGemmGelu = "mass_cuda_gemm_bias_gelu";

/// Whether `op` is elementwise over all its loops (identity maps) and
/// yields max(x, 0) of the element x of its operand `x` and nothing else.
bool isRelu(linalg::GenericOp op, OpOperand &x) {
  if (op.getNumParallelLoops() != op.getNumLoops() ||
      !llvm::all_of(op.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return false;
  Block &body = op.getRegion().front();
  if (body.getOperations().size() != 2)
    return false;
  auto max = dyn_cast<arith::MaximumFOp>(body.front());
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (!max || yield.getNumOperands() != 1 || yield.getOperand(0) != max)
    return false;
  Value element = op.getMatchingBlockArgument(&x);
  Value lhs = max.getLhs(), rhs = max.getRhs();
  return (lhs == element && matchPattern(rhs, m_AnyZeroFloat())) ||
         (rhs == element && matchPattern(lhs, m_AnyZeroFloat()));
}

/// The ReLU that alone reads the product `c` writes into a buffer of its
/// own, whose readers all come after it: null if there is none.
linalg::GenericOp soleRelu(mass::Contraction &c) {
  auto alloc = c.c.getDefiningOp<memref::AllocOp>();
  if (!alloc || !c.initRow || c.batch != 0)
    return {};
  linalg::GenericOp relu;
  for (Operation *user : c.c.getUsers()) {
    if (user == c.op.getOperation() || user == c.init)
      continue;
    auto g = dyn_cast<linalg::GenericOp>(user);
    if (relu || !g || !g.hasPureBufferSemantics() || g.getNumDpsInputs() != 1 ||
        g.getNumDpsInits() != 1 || g.getDpsInputs()[0] != c.c ||
        !isRelu(g, *g.getDpsInputOperand(0)) ||
        !g.getMatchingBlockArgument(g.getDpsInitOperand(0)).use_empty())
      return {};
    relu = g;
  }
  if (!relu || relu->getBlock() != c.op->getBlock() ||
      !c.op->isBeforeInBlock(relu))
    return {};
  Value y = relu.getDpsInits()[0];
  auto yAlloc = y.getDefiningOp<memref::AllocOp>();
  if (!yAlloc || y.getType() != c.c.getType() ||
      yAlloc->getBlock() != alloc->getBlock() ||
      !alloc->isBeforeInBlock(yAlloc))
    return {};
  for (Operation *user : y.getUsers()) {
    Operation *at = relu->getBlock()->findAncestorOpInBlock(*user);
    if (!at || (at != relu && !relu->isBeforeInBlock(at)))
      return {};
  }
  return relu;
}

struct DeviceActivations
    : mass::impl::MassDeviceActivationsBase<DeviceActivations> {
  void runOnOperation() override {
    SmallVector<std::pair<linalg::GenericOp, Value>> found;
    getOperation().walk([&](linalg::GenericOp op) {
      std::optional<mass::Contraction> c = mass::matchContraction(op);
      if (!c)
        return;
      if (linalg::GenericOp relu = soleRelu(*c))
        found.push_back({relu, c->c});
    });
    for (auto [relu, c] : found) {
      OpBuilder b(relu);
      Location loc = relu.getLoc();
      auto type = cast<MemRefType>(c.getType());
      AffineMap identity = b.getMultiDimIdentityMap(type.getRank());
      SmallVector<utils::IteratorType> parallel(type.getRank(),
                                                utils::IteratorType::parallel);
      Value zero = b.create<arith::ConstantOp>(loc, b.getF32FloatAttr(0.0f));
      auto inPlace = b.create<linalg::GenericOp>(
          loc, TypeRange{}, ValueRange{}, ValueRange{c},
          ArrayRef<AffineMap>{identity}, parallel,
          [&](OpBuilder &nested, Location at, ValueRange args) {
            Value max = nested.create<arith::MaximumFOp>(at, args[0], zero);
            nested.create<linalg::YieldOp>(at, max);
          });
      inPlace->setDiscardableAttrs(relu->getDiscardableAttrDictionary());
      Value y = relu.getDpsInits()[0];
      Operation *yAlloc = y.getDefiningOp();
      relu.erase();
      y.replaceAllUsesWith(c);
      yAlloc->erase();
    }
  }
};

/// The linalg.generic on buffers just after the product `c`, only ops
/// without memory effects between them, or null.
linalg::GenericOp genericAfter(mass::Contraction &c) {
  Operation *next = c.op->getNextNode();
  while (next && isMemoryEffectFree(next))
    next = next->getNextNode();
  auto op = dyn_cast_or_null<linalg::GenericOp>(next);
  return op && op.hasPureBufferSemantics() ? op : linalg::GenericOp();
}

/// The ReLU of `c`'s result in place just after it, or null.
linalg::GenericOp inPlaceRelu(mass::Contraction &c) {
  linalg::GenericOp op = genericAfter(c);
  if (!op || op.getNumDpsInputs() != 0 || op.getNumDpsInits() != 1 ||
      op.getDpsInits()[0] != c.c || !isRelu(op, *op.getDpsInitOperand(0)))
    return {};
  return op;
}

/// Whether `v` is the f32 constant `c`.
bool isConstant(Value v, double c) {
  FloatAttr attr;
  return matchPattern(v, m_Constant(&attr)) &&
         attr.getValueAsDouble() == static_cast<double>(static_cast<float>(c));
}

/// `v` = x op y or y op x (op an OpTy): y; else null.
template <typename OpTy> Value otherOperand(Value v, Value x) {
  auto op = v.getDefiningOp<OpTy>();
  if (!op)
    return {};
  if (op.getLhs() == x)
    return op.getRhs();
  return op.getRhs() == x ? op.getLhs() : Value();
}

/// `v` = y * c or c * y: y; else null.
Value scaledBy(Value v, double c) {
  auto op = v.getDefiningOp<arith::MulFOp>();
  if (!op)
    return {};
  if (isConstant(op.getRhs(), c))
    return op.getLhs();
  return isConstant(op.getLhs(), c) ? op.getRhs() : Value();
}

/// Whether `v` is GPT-2's GELU of `x` as the mass dialect writes it
/// (MassScalar.cpp), up to the order of commutative operands:
/// (0.5 x) (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). cuBLASLt's GELU
/// epilogue is that approximation.
bool isTanhGelu(Value v, Value x) {
  auto mul = v.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  Value lhs = mul.getLhs(), rhs = mul.getRhs();
  Value sum = scaledBy(lhs, 0.5) == x   ? rhs
              : scaledBy(rhs, 0.5) == x ? lhs
                                        : Value();
  auto add = sum ? sum.getDefiningOp<arith::AddFOp>() : arith::AddFOp();
  if (!add)
    return false;
  Value t = isConstant(add.getRhs(), 1.0)   ? add.getLhs()
            : isConstant(add.getLhs(), 1.0) ? add.getRhs()
                                            : Value();
  auto tanh = t ? t.getDefiningOp<math::TanhOp>() : math::TanhOp();
  if (!tanh)
    return false;
  Value inner = scaledBy(tanh.getOperand(), 0.7978845608028654);
  Value cubic = inner ? otherOperand<arith::AddFOp>(inner, x) : Value();
  Value cube = cubic ? scaledBy(cubic, 0.044715) : Value();
  Value square = cube ? otherOperand<arith::MulFOp>(cube, x) : Value();
  return square && otherOperand<arith::MulFOp>(square, x) == x;
}

/// The tanh GELU just after the product `c` (only ops without memory
/// effects between them) that reads C, or C as [rows / T, T, n], into a
/// buffer of its own: cuBLASLt's GELU epilogue can write it while C gets
/// the pre-activation (its gradient reads it). Null if there is none.
linalg::GenericOp geluAfter(mass::Contraction &c) {
  linalg::GenericOp op = genericAfter(c);
  if (!op || op.getNumDpsInputs() != 1 || op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !llvm::all_of(op.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }) ||
      !op.getMatchingBlockArgument(op.getDpsInitOperand(0)).use_empty())
    return {};
  Value in = op.getDpsInputs()[0], out = op.getDpsInits()[0];
  if (in != c.c) {
    auto expand = in.getDefiningOp<memref::ExpandShapeOp>();
    if (!expand || expand.getSrc() != c.c ||
        expand.getResultType().getRank() != 3 ||
        expand.getReassociationIndices() !=
            SmallVector<ReassociationIndices>{{0, 1}, {2}})
      return {};
  }
  if (out == in || out == c.c || out == c.a || out == c.b ||
      !cast<MemRefType>(out.getType()).getLayout().isIdentity())
    return {};
  auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
  Value x = op.getMatchingBlockArgument(op.getDpsInputOperand(0));
  return isTanhGelu(yield.getOperand(0), x) ? op : linalg::GenericOp();
}

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
      // epilogue, and a ReLU of C in place or a GELU of C after it its
      // ReLU or GELU epilogue; a fill of zeros is a product that
      // overwrites C. Either way the op that wrote C first goes.
      bool bias = c.initRow && c.batch == 0;
      linalg::GenericOp relu = bias ? inPlaceRelu(c) : linalg::GenericOp();
      linalg::GenericOp gelu =
          bias && !relu ? geluAfter(c) : linalg::GenericOp();
      if (bias)
        args.push_back(b.create<memref::CastOp>(loc, vector, c.initRow));
      args.push_back(b.create<arith::ConstantIntOp>(loc, c.aTransposed, 64));
      args.push_back(b.create<arith::ConstantIntOp>(loc, c.bTransposed, 64));
      bool overwrite = bias || zeroInit(c);
      func::FuncOp callee;
      if (gelu) {
        // The GELU's output, as C's rank-3 view: the call goes where the
        // GELU was (only ops without memory effects came between).
        b.setInsertionPoint(gelu);
        Value out = gelu.getDpsInits()[0];
        if (cast<MemRefType>(out.getType()).getRank() == 3)
          out = b.create<memref::CollapseShapeOp>(
              loc, out, SmallVector<ReassociationIndices>{{0, 1}, {2}});
        out = batchView(b, loc, out, {}, 0);
        args.insert(args.begin() + 4, b.create<memref::CastOp>(loc, view, out));
        callee = declaration(getOperation(), kGemmGelu,
                             {view, view, view, vector, view, i64, i64});
      } else if (bias) {
        args.push_back(b.create<arith::ConstantIntOp>(loc, relu ? 1 : 0, 64));
        callee = declaration(getOperation(), kGemmBias,
                             {view, view, view, vector, i64, i64, i64});
      } else {
        args.push_back(b.create<arith::ConstantIntOp>(loc, !overwrite, 64));
        callee = declaration(getOperation(), kGemm,
                             {view, view, view, i64, i64, i64});
      }
      b.create<func::CallOp>(loc, callee, args);
      c.op.erase();
      if (overwrite)
        c.init->erase();
      if (relu)
        relu.erase();
      if (gelu)
        gelu.erase();
    }
  }
};

} // namespace
