//===- DeviceKernelCalls.cpp - The GPU runtime's kernels, called once -----===//
//
// KernelCalls.cpp bufferizes attention and layer norm's gradient into calls
// of the CPU runtime's kernels from a parallel loop, one call per sample
// and head or per chunk of rows. On the CUDA target the host calls the GPU
// runtime's counterpart once, with the loop's trip count where the CPU
// kernel took the loop's index, and it launches its kernels over all of
// them (runtime/lib/DeviceKernels.h).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/SymbolTable.h"

namespace mass {
#define GEN_PASS_DEF_MASSDEVICEKERNELCALLS
#include "codegen/Passes.h.inc"
} // namespace mass

using namespace mlir;

namespace {

/// The declaration of `mass_cuda_NAME`, a copy of `cpu`'s (`mass_NAME`),
/// created next to it the first time.
func::FuncOp deviceKernel(func::FuncOp cpu) {
  std::string name =
      "mass_cuda_" + cpu.getSymName().drop_front(strlen("mass_")).str();
  auto module = cpu->getParentOfType<ModuleOp>();
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder b(cpu);
  auto device = cast<func::FuncOp>(b.clone(*cpu));
  device.setSymName(name);
  return device;
}

/// The loop `call` is the whole body of, with the argument that is its
/// index: `scf.parallel (%i) = (0) to (%n) step (1) { call(..., %i ...) }`.
std::optional<std::pair<scf::ParallelOp, unsigned>>
perIterationCall(func::CallOp call) {
  auto loop = dyn_cast<scf::ParallelOp>(call->getParentOp());
  if (!loop || loop.getNumLoops() != 1 ||
      !matchPattern(loop.getLowerBound()[0], m_Zero()) ||
      !matchPattern(loop.getStep()[0], m_One()))
    return std::nullopt;
  std::optional<unsigned> position;
  for (auto [i, arg] : llvm::enumerate(call.getOperands())) {
    auto cast = arg.getDefiningOp<arith::IndexCastOp>();
    if (cast && cast.getIn() == loop.getInductionVars()[0])
      position = i;
  }
  if (!position)
    return std::nullopt;
  // Nothing else in the body but the call's operands: the index's cast
  // and constants.
  for (Operation &op : loop.getBody()->without_terminator())
    if (&op != call.getOperation() &&
        op.getResult(0) != call.getOperand(*position) &&
        !op.hasTrait<OpTrait::ConstantLike>())
      return std::nullopt;
  return std::make_pair(loop, *position);
}

class DeviceKernelCalls
    : public mass::impl::MassDeviceKernelCallsBase<DeviceKernelCalls> {
  void runOnOperation() override {
    SmallVector<func::CallOp> calls;
    getOperation().walk([&](func::CallOp call) {
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      if (callee && callee.isExternal() &&
          callee.getSymName().starts_with("mass_") &&
          !callee.getSymName().starts_with("mass_cuda_"))
        calls.push_back(call);
    });
    llvm::SetVector<func::FuncOp> cpuKernels;
    for (func::CallOp call : calls) {
      auto cpu = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      cpuKernels.insert(cpu);
      func::FuncOp device = deviceKernel(cpu);
      if (!isa<scf::ParallelOp>(call->getParentOp())) {
        call.setCallee(device.getSymName());
        continue;
      }
      auto loop = perIterationCall(call);
      if (!loop) {
        call.emitError() << "the runtime kernel '" << call.getCallee()
                         << "' is called from a loop the CUDA target cannot "
                            "launch as one call";
        return signalPassFailure();
      }
      auto [parallel, position] = *loop;
      OpBuilder b(parallel);
      Location loc = call.getLoc();
      IRMapping mapping;
      Value count = b.create<arith::IndexCastOp>(loc, b.getI64Type(),
                                                 parallel.getUpperBound()[0]);
      SmallVector<Value> args;
      for (auto [i, arg] : llvm::enumerate(call.getOperands())) {
        if (i == position) {
          args.push_back(count);
          continue;
        }
        // Constants made in the body move out with the call.
        Operation *def = arg.getDefiningOp();
        if (def && def->getParentOp() == parallel) {
          args.push_back(b.clone(*def)->getResult(0));
          continue;
        }
        args.push_back(arg);
      }
      b.create<func::CallOp>(loc, device, args);
      parallel.erase();
    }
    for (func::FuncOp cpu : cpuKernels)
      if (SymbolTable::symbolKnownUseEmpty(cpu, getOperation()))
        cpu.erase();
  }
};

} // namespace
