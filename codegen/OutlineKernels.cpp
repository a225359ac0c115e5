//===- OutlineKernels.cpp - Each loop nest a function of its own ----------===//
//
// An entry point (train_step, update, ...) is one long function of loop
// nests, a few hundred for ResNet-18. Compiled as one function its cost
// grows faster than its size: the OpenMP translation extracts every
// parallel region from the whole function, and LLVM's passes see one huge
// body. This pass moves each outermost loop nest into a private function
// of its own, called where the nest was, and lets nests that came out the
// same (a residual stage's repeated blocks, a layer's forward in train_step
// and in predict) share one function. The functions are never inlined:
// a call per nest and step costs nothing next to the nest.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/StringMap.h"

namespace mass {
#define GEN_PASS_DEF_MASSOUTLINEKERNELS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// Whether `op` is a loop nest worth a function of its own.
bool isNest(Operation *op) { return isa<scf::ForOp, scf::ParallelOp>(op); }

/// Whether `v`'s defining op can be copied into the kernel instead of
/// passed in.
bool isCopyable(Value v) {
  Operation *def = v.getDefiningOp();
  return def && def->hasTrait<OpTrait::ConstantLike>() &&
         def->getNumOperands() == 0 && def->getNumRegions() == 0;
}

/// The function's text but for its name: equal for nests that compute the
/// same thing from the same kinds of arguments. (A local scope: printing
/// an op with the module's numbering would cost a pass over the module.)
std::string bodyKey(func::FuncOp fn) {
  std::string name = fn.getSymName().str(), text;
  fn.setSymName("kernel");
  llvm::raw_string_ostream os(text);
  fn->print(os, OpPrintingFlags().printGenericOpForm().useLocalScope());
  fn.setSymName(name);
  return text;
}

/// Whether LLVM may optimise kernel `fn` for size: it only moves data
/// (no arithmetic on floats), or mass-vectorize-rows made its loops vector
/// code already. Unrolling and vectorising those again multiplies their
/// size for nothing; scalar arithmetic (a max pool's gradient, whose index
/// tests unrolling folds away) runs many times slower without them.
bool optimizeForSize(func::FuncOp fn) {
  bool vectors = false;
  WalkResult arithmetic = fn.walk([&](Operation *op) {
    if (isa_and_nonnull<vector::VectorDialect>(op->getDialect()))
      vectors = true;
    if (!isa_and_nonnull<arith::ArithDialect>(op->getDialect()) ||
        isa<arith::ConstantOp>(op))
      return WalkResult::advance();
    for (Type t : op->getResultTypes())
      if (isa<FloatType>(getElementTypeOrSelf(t)))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return vectors || !arithmetic.wasInterrupted();
}

class OutlineKernels
    : public mass::impl::MassOutlineKernelsBase<OutlineKernels> {
public:
  using MassOutlineKernelsBase::MassOutlineKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> entries;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && !fn->hasAttr(mass::kKernelAttr))
        entries.push_back(fn);
    for (func::FuncOp fn : entries) {
      SmallVector<Operation *> nests;
      for (Operation &op : fn.getBody().getOps())
        if (isNest(&op))
          nests.push_back(&op);
      unsigned count = 0;
      Operation *previous = fn;
      for (Operation *nest : nests)
        previous = outline(nest, fn, previous, count++, symbols);
    }
    SmallVector<func::FuncOp> kernels(llvm::make_filter_range(
        module.getOps<func::FuncOp>(),
        [](func::FuncOp fn) { return fn->hasAttr(mass::kKernelAttr); }));
    mass::mergeEqualKernels(module, symbols, kernels);
  }

private:
  /// Moves `nest` into a kernel placed after `previous`; returns it.
  func::FuncOp outline(Operation *nest, func::FuncOp parent,
                       Operation *previous, unsigned index,
                       SymbolTable &symbols) {
    IRMapping map;
    func::FuncOp kernel = mass::outlineOps(
        nest, (parent.getSymName() + "_kernel" + llvm::Twine(index)).str(),
        previous, symbols, /*extra=*/{}, [](Value v) { return v.getType(); },
        map);
    if (optimizeForSize && ::optimizeForSize(kernel)) {
      OpBuilder b(kernel);
      kernel->setAttr("passthrough",
                      b.getArrayAttr({b.getStringAttr("optsize")}));
    }
    return kernel;
  }
};

} // namespace

func::FuncOp mass::createKernel(OpBuilder &b, Location loc, StringRef name,
                                FunctionType type) {
  auto kernel = b.create<func::FuncOp>(loc, name, type);
  kernel.setPrivate();
  kernel->setAttr(kKernelAttr, b.getUnitAttr());
  // Internal, and never inlined: as LLVM's function attributes.
  kernel->setAttr("llvm.linkage", LLVM::LinkageAttr::get(
                                      b.getContext(), LLVM::Linkage::Internal));
  kernel->setAttr("no_inline", b.getUnitAttr());
  return kernel;
}

void mass::mergeEqualKernels(ModuleOp module, SymbolTable &symbols,
                             ArrayRef<func::FuncOp> kernels) {
  // One function for every group of equal kernels, the first created.
  llvm::StringMap<func::FuncOp> canonical;
  llvm::DenseMap<Operation *, func::FuncOp> replacement;
  for (func::FuncOp kernel : kernels) {
    auto [it, fresh] = canonical.try_emplace(bodyKey(kernel), kernel);
    if (!fresh)
      replacement[kernel] = it->second;
  }
  if (replacement.empty())
    return;
  module.walk([&](func::CallOp call) {
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    auto it = replacement.find(callee);
    if (it != replacement.end())
      call.setCallee(it->second.getSymName());
  });
  for (auto &[kernel, kept] : replacement)
    symbols.erase(kernel);
}

func::FuncOp mass::outlineOps(ArrayRef<Operation *> ops, StringRef name,
                              Operation *previous, SymbolTable &symbols,
                              ValueRange extra,
                              function_ref<Type(Value)> argumentType,
                              IRMapping &map) {
  // The values the ops read from outside them, in a fixed order; the
  // constants among them are copied in.
  llvm::SetVector<Value> captured(extra.begin(), extra.end());
  for (Operation *op : ops) {
    for (Value operand : op->getOperands())
      captured.insert(operand);
    for (Region &region : op->getRegions())
      getUsedValuesDefinedAbove(region, captured);
  }
  SmallVector<Value> arguments, constants;
  SmallVector<Type> types, results;
  for (Value v : captured) {
    if (isCopyable(v)) {
      constants.push_back(v);
      continue;
    }
    arguments.push_back(v);
    types.push_back(argumentType(v));
  }
  for (Operation *op : ops)
    llvm::append_range(results, op->getResultTypes());

  Operation *last = ops.back();
  OpBuilder b(previous);
  b.setInsertionPointAfter(previous);
  auto kernel =
      createKernel(b, last->getLoc(), name, b.getFunctionType(types, results));
  symbols.insert(kernel);
  Block *body = kernel.addEntryBlock();
  b.setInsertionPointToStart(body);
  for (auto [value, argument] : llvm::zip(arguments, body->getArguments()))
    map.map(value, argument);
  for (Value v : constants)
    map.map(v, b.clone(*v.getDefiningOp())->getResult(0));
  SmallVector<Value> returned;
  for (Operation *op : ops)
    llvm::append_range(returned, b.clone(*op, map)->getResults());
  b.create<func::ReturnOp>(last->getLoc(), returned);

  b.setInsertionPoint(last);
  SmallVector<Value> operands;
  for (auto [value, type] : llvm::zip(arguments, types))
    operands.push_back(
        value.getType() == type
            ? value
            : b.create<memref::CastOp>(last->getLoc(), type, value));
  auto call = b.create<func::CallOp>(last->getLoc(), kernel, operands);
  unsigned next = 0;
  for (Operation *op : ops)
    for (Value result : op->getResults())
      result.replaceAllUsesWith(call.getResult(next++));
  for (Operation *op : llvm::reverse(ops))
    op->erase();
  return kernel;
}
