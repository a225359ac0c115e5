//===- CInterfaces.cpp - C interfaces for the entry points ----------------===//

#include "codegen/Passes.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mass {
#define GEN_PASS_DEF_MASSCINTERFACES
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

class CInterfaces : public mass::impl::MassCInterfacesBase<CInterfaces> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                    UnitAttr::get(&getContext()));
      // Bufferization makes each result an out-parameter after the
      // arguments: the gradients' are kept for mass-grad-ready.
      SmallVector<int64_t> grads;
      for (unsigned r = 0; r < func.getNumResults(); ++r)
        if (func.getResultAttr(r, mass::abi::attr(mass::abi::Role::Grad)))
          grads.push_back(func.getNumArguments() + r);
      if (!grads.empty())
        func->setAttr(mass::kGradValuesAttr,
                      DenseI64ArrayAttr::get(&getContext(), grads));
      func.removeArgAttrsAttr();
      func.removeResAttrsAttr();
    }
  }
};

} // namespace
