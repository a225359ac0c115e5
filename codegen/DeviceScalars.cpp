//===- DeviceScalars.cpp - Scalars read from tensors as 0-d tensors -------===//
//
// On the CUDA target the host only computes sizes and launches kernels: a
// scalar read out of a tensor (a loss sum, a count of labelled rows) lives
// in device memory. Such scalars, and the arithmetic on them, become 0-d
// linalg ops, which run as kernels like every other linalg op; the loop
// nests that used them read them as 0-d inputs.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/MapVector.h"

namespace mass {
#define GEN_PASS_DEF_MASSDEVICESCALARS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// A 0-d linalg.generic applying `op` (pure, one result) to `operands`,
/// where each operand is a 0-d tensor (read as an input) or a host value
/// (captured).
Value scalarGeneric(OpBuilder &b, Operation *op,
                    const DenseMap<Value, Value> &tensorOf) {
  Location loc = op->getLoc();
  SmallVector<Value> inputs;
  SmallVector<unsigned> inputOperand;
  for (auto [i, operand] : llvm::enumerate(op->getOperands()))
    if (Value t = tensorOf.lookup(operand)) {
      inputs.push_back(t);
      inputOperand.push_back(i);
    }
  Type type = op->getResult(0).getType();
  Value init = b.create<tensor::EmptyOp>(loc, ArrayRef<int64_t>{}, type);
  SmallVector<AffineMap> maps(inputs.size() + 1,
                              AffineMap::get(0, 0, b.getContext()));
  auto generic = b.create<linalg::GenericOp>(
      loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
      ArrayRef<utils::IteratorType>{},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        IRMapping map;
        for (auto [k, i] : llvm::enumerate(inputOperand))
          map.map(op->getOperand(i), args[k]);
        Operation *copy = nb.clone(*op, map);
        nb.create<linalg::YieldOp>(nloc, copy->getResult(0));
      });
  return generic.getResult(0);
}

/// `generic` with the device scalars its body captures read as 0-d inputs.
void readAsInputs(linalg::GenericOp generic, ArrayRef<Value> scalars,
                  const DenseMap<Value, Value> &tensorOf) {
  OpBuilder b(generic);
  MLIRContext *ctx = generic.getContext();
  unsigned loops = generic.getNumLoops();
  unsigned numInputs = generic.getNumDpsInputs();
  SmallVector<Value> inputs(generic.getDpsInputs());
  SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
  for (Value s : scalars) {
    inputs.push_back(tensorOf.lookup(s));
    maps.insert(maps.begin() + inputs.size() - 1,
                AffineMap::get(loops, 0, ctx));
  }
  auto result = b.create<linalg::GenericOp>(
      generic.getLoc(), generic.getResultTypes(), inputs, generic.getDpsInits(),
      maps, generic.getIteratorTypesArray());
  result->setDiscardableAttrs(generic->getDiscardableAttrDictionary());
  result.getRegion().takeBody(generic.getRegion());
  Block &body = result.getRegion().front();
  for (auto [k, s] : llvm::enumerate(scalars)) {
    BlockArgument arg =
        body.insertArgument(numInputs + k, s.getType(), s.getLoc());
    replaceAllUsesInRegionWith(s, arg, result.getRegion());
  }
  generic.replaceAllUsesWith(result.getResults());
  generic.erase();
}

class DeviceScalars : public mass::impl::MassDeviceScalarsBase<DeviceScalars> {
  void runOnOperation() override {
    if (getOperation().isExternal())
      return;
    Block &block = getOperation().getBody().front();
    DenseMap<Value, Value> tensorOf;
    SmallVector<Operation *> scalarOps;
    for (Operation &op : block) {
      OpBuilder b(&op);
      b.setInsertionPointAfter(&op);
      if (auto extract = dyn_cast<tensor::ExtractOp>(op)) {
        auto type = extract.getTensor().getType();
        Value t = extract.getTensor();
        if (type.getRank() > 0) {
          SmallVector<OpFoldResult> offsets(extract.getIndices());
          SmallVector<OpFoldResult> ones(type.getRank(), b.getIndexAttr(1));
          t = b.create<tensor::ExtractSliceOp>(
              op.getLoc(), RankedTensorType::get({}, type.getElementType()), t,
              offsets, ones, ones);
        }
        tensorOf[extract.getResult()] = t;
        scalarOps.push_back(&op);
        continue;
      }
      bool fromDevice = llvm::any_of(
          op.getOperands(), [&](Value v) { return tensorOf.count(v); });
      if (fromDevice && op.getNumRegions() == 0 && op.getNumResults() == 1 &&
          isPure(&op) && op.getResult(0).getType().isIntOrIndexOrFloat()) {
        tensorOf[op.getResult(0)] = scalarGeneric(b, &op, tensorOf);
        scalarOps.push_back(&op);
      }
    }
    // The uses: the 0-d tensors stand in for the scalars.
    bool failed = false;
    llvm::MapVector<linalg::GenericOp, SmallVector<Value>> captures;
    SmallVector<Operation *> replaced;
    for (Operation *def : scalarOps) {
      Value v = def->getResult(0);
      for (OpOperand &use : v.getUses()) {
        Operation *user = use.getOwner();
        if (llvm::is_contained(scalarOps, user))
          continue;
        auto elements = dyn_cast<tensor::FromElementsOp>(user);
        if (elements && elements.getType().getRank() == 0) {
          replaced.push_back(user);
          continue;
        }
        if (auto fill = dyn_cast<linalg::FillOp>(user)) {
          replaced.push_back(user);
          continue;
        }
        Operation *top = block.findAncestorOpInBlock(*user);
        auto generic = dyn_cast_or_null<linalg::GenericOp>(top);
        if (generic && generic != user) {
          if (!llvm::is_contained(captures[generic], v))
            captures[generic].push_back(v);
          continue;
        }
        user->emitError("a scalar computed on the device is used here on the "
                        "host; this is not supported yet on the CUDA target");
        failed = true;
      }
    }
    if (failed)
      return signalPassFailure();
    for (Operation *user : replaced) {
      if (auto elements = dyn_cast<tensor::FromElementsOp>(user)) {
        elements.replaceAllUsesWith(tensorOf.lookup(elements.getElements()[0]));
        elements.erase();
        continue;
      }
      // fill(scalar) becomes a generic broadcasting the 0-d tensor.
      auto fill = cast<linalg::FillOp>(user);
      OpBuilder b(fill);
      Value init = fill.getDpsInits()[0];
      auto type = cast<ShapedType>(init.getType());
      MLIRContext *ctx = fill.getContext();
      SmallVector<AffineMap> maps = {
          AffineMap::get(type.getRank(), 0, ctx),
          AffineMap::getMultiDimIdentityMap(type.getRank(), ctx)};
      SmallVector<utils::IteratorType> iterators(type.getRank(),
                                                 utils::IteratorType::parallel);
      auto generic = b.create<linalg::GenericOp>(
          fill.getLoc(), fill->getResultTypes(),
          ValueRange{tensorOf.lookup(fill.getInputs()[0])}, ValueRange{init},
          maps, iterators, [](OpBuilder &nb, Location loc, ValueRange args) {
            nb.create<linalg::YieldOp>(loc, args[0]);
          });
      fill.replaceAllUsesWith(generic->getResults());
      fill.erase();
    }
    for (auto &[generic, scalars] : captures)
      readAsInputs(generic, scalars, tensorOf);
    for (Operation *op : llvm::reverse(scalarOps))
      if (op->use_empty())
        op->erase();
  }
};

} // namespace
