//===- CInterfaces.cpp - C interfaces for the entry points ----------------===//

#include "codegen/Passes.h"

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
      func.removeArgAttrsAttr();
      func.removeResAttrsAttr();
    }
  }
};

} // namespace
