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

class OutlineKernels
    : public mass::impl::MassOutlineKernelsBase<OutlineKernels> {
public:
  using MassOutlineKernelsBase::MassOutlineKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> entries;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal())
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
    // One function for every group of equal kernels, the first created.
    llvm::StringMap<func::FuncOp> canonical;
    SmallVector<func::FuncOp> kernels(llvm::make_filter_range(
        module.getOps<func::FuncOp>(),
        [](func::FuncOp fn) { return fn->hasAttr(kKernelAttr); }));
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

private:
  static constexpr llvm::StringLiteral kKernelAttr = "mass.kernel";

  /// Moves `nest` into a kernel placed after `previous`; returns it.
  func::FuncOp outline(Operation *nest, func::FuncOp parent,
                       Operation *previous, unsigned index,
                       SymbolTable &symbols) {
    // The values the nest reads from outside it, in a fixed order; the
    // constants among them are copied in.
    llvm::SetVector<Value> captured;
    for (Region &region : nest->getRegions())
      getUsedValuesDefinedAbove(region, captured);
    for (Value operand : nest->getOperands())
      captured.insert(operand);
    SmallVector<Value> arguments, constants;
    for (Value v : captured)
      (isCopyable(v) ? constants : arguments).push_back(v);

    OpBuilder b(parent);
    b.setInsertionPointAfter(previous);
    auto type = b.getFunctionType(ValueRange(arguments).getTypes(),
                                  nest->getResultTypes());
    auto kernel = b.create<func::FuncOp>(
        nest->getLoc(),
        (parent.getSymName() + "_kernel" + llvm::Twine(index)).str(), type);
    kernel.setPrivate();
    kernel->setAttr(kKernelAttr, b.getUnitAttr());
    // Internal, and never inlined: as LLVM's function attributes.
    kernel->setAttr(
        "llvm.linkage",
        LLVM::LinkageAttr::get(b.getContext(), LLVM::Linkage::Internal));
    kernel->setAttr("no_inline", b.getUnitAttr());
    symbols.insert(kernel);
    Block *body = kernel.addEntryBlock();
    b.setInsertionPointToStart(body);
    IRMapping map;
    for (auto [value, argument] : llvm::zip(arguments, body->getArguments()))
      map.map(value, argument);
    for (Value v : constants)
      map.map(v, b.clone(*v.getDefiningOp())->getResult(0));
    Operation *copy = b.clone(*nest, map);
    b.create<func::ReturnOp>(nest->getLoc(), copy->getResults());

    b.setInsertionPoint(nest);
    auto call = b.create<func::CallOp>(nest->getLoc(), kernel, arguments);
    nest->replaceAllUsesWith(call.getResults());
    nest->erase();
    return kernel;
  }
};

} // namespace
