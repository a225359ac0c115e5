//===- InPlaceResults.cpp - Results that may overwrite their arguments ----===//

#include "codegen/Passes.h"
#include "mass/vocabulary.h"

namespace mass {
#define GEN_PASS_DEF_MASSINPLACERESULTS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;
namespace abi = mass::abi;

namespace {

/// The roles whose results replace the argument of the same role and name.
constexpr abi::Role kTiedRoles[] = {abi::Role::Param, abi::Role::State};

/// Whether `result`, which replaces `arg`, can be written into `arg`'s
/// buffer: every read of `arg` happens before, or in the same iteration
/// of the loop that writes the element it reads.
bool writableOver(Value result, BlockArgument arg) {
  if (result == arg)
    return true;
  auto generic = result.getDefiningOp<linalg::GenericOp>();
  if (!generic || generic->getBlock() != arg.getOwner() ||
      generic.getNumParallelLoops() != generic.getNumLoops())
    return false;
  OpOperand *init =
      generic.getDpsInitOperand(cast<OpResult>(result).getResultNumber());
  if (!generic.getMatchingIndexingMap(init).isIdentity() ||
      generic.payloadUsesValueFromOperand(init))
    return false;
  for (OpOperand &use : arg.getUses()) {
    Operation *user = use.getOwner();
    auto reader = dyn_cast<linalg::LinalgOp>(user);
    // Read as an input only: an init's buffer is written.
    if (!reader || !reader.isDpsInput(&use))
      return false;
    if (user == generic.getOperation()) {
      if (!generic.getMatchingIndexingMap(&use).isIdentity())
        return false;
    } else if (user->getBlock() != generic->getBlock() ||
               !user->isBeforeInBlock(generic)) {
      return false;
    }
  }
  return true;
}

/// Whether every tied result of `func` can overwrite its argument (false
/// when it has none).
bool resultsInPlace(func::FuncOp func) {
  if (func.isExternal())
    return false;
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  bool any = false;
  for (auto [index, value] : llvm::enumerate(ret.getOperands())) {
    for (abi::Role tiedRole : kTiedRoles) {
      StringRef role = abi::attr(tiedRole);
      auto name = func.getResultAttrOfType<StringAttr>(index, role);
      if (!name)
        continue;
      std::optional<unsigned> tied;
      for (unsigned a = 0; a < func.getNumArguments(); ++a)
        if (func.getArgAttrOfType<StringAttr>(a, role) == name)
          tied = a;
      if (!tied || !writableOver(value, func.getArgument(*tied)))
        return false;
      any = true;
    }
  }
  return any;
}

class InPlaceResults
    : public mass::impl::MassInPlaceResultsBase<InPlaceResults> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<Attribute> names;
    for (auto func : module.getOps<func::FuncOp>())
      if (resultsInPlace(func))
        names.push_back(func.getSymNameAttr());
    if (names.empty())
      module->removeAttr("mass.in_place");
    else
      module->setAttr("mass.in_place",
                      ArrayAttr::get(module.getContext(), names));
  }
};

} // namespace
