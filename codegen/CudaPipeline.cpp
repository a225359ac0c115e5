//===- CudaPipeline.cpp - From linalg to GPU kernels in PTX ---------------===//
//
// The CUDA target: the same bufferized program as the CPU's, each loop nest
// launched as a GPU kernel (mass-gpu-launch), the kernels outlined and
// compiled to PTX by LLVM's NVPTX backend, the host's half lowered to calls
// of the runtime's driver-API half (Cuda.cpp). For the tests on machines
// without a GPU, the same launches can run as loops on the host instead
// (mass-emulate-launches).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/Pipeline.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/GPUCommon/GPUCommonPass.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cstdlib>

using namespace mlir;

void mass::registerCudaCodegen(DialectRegistry &registry) {
  registry.insert<gpu::GPUDialect, NVVM::NVVMDialect>();
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerGPUDialectTranslation(registry);
  gpu::registerOffloadingLLVMTranslationInterfaceExternalModels(registry);
  registerNVVMDialectTranslation(registry);
}

void mass::registerCudaPassNames() {
  registerGpuLaunchSinkIndexComputations();
  registerGpuKernelOutlining();
  registerGpuNVVMAttachTarget();
  registerGpuModuleToBinaryPass();
  // Registered by hand: the generated registration lives in
  // Conversion/Passes.h, which includes every conversion.
  registerPass([] { return createGpuToLLVMConversionPass(); });
}

void mass::addCudaLaunches(OpPassManager &pm) {
  pm.addPass(createMassCInterfaces());
  pm.addNestedPass<func::FuncOp>(createMassDeviceScalars());
  addBufferization(pm);
  pm.addNestedPass<func::FuncOp>(createMassHostShapes());
  pm.addNestedPass<func::FuncOp>(createMassDeviceActivations());
  pm.addPass(createMassArena());
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  MassStridedCopiesOptions copies;
  copies.all = true;
  pm.addNestedPass<func::FuncOp>(createMassStridedCopies(copies));
  // Matrix products through cuBLAS.
  pm.addPass(createMassDeviceGemm());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createMassDeviceKernelCalls());
  pm.addNestedPass<func::FuncOp>(createMassGpuLaunch());
  pm.addPass(createCanonicalizerPass());
}

void mass::addCudaKernels(OpPassManager &pm, unsigned optLevel,
                          llvm::StringRef chip, llvm::StringRef cudaPath,
                          bool cubin) {
  addCudaLaunches(pm);
  pm.addPass(createGpuLauchSinkIndexComputationsPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createMassMergeKernelModules());
  // The kernels, in one gpu.module, through NVVM to PTX (and with `cubin`
  // on to a cubin by the toolkit's ptxas). The host side stays in the gpu
  // dialect (gpu.launch_func of gpu.binary).
  GpuNVVMAttachTargetOptions target;
  target.chip = chip.str();
  // PTX 8.0 is the first with sm_90.
  target.features = "+ptx80";
  target.optLevel = optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createConvertSCFToCFPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createConvertGpuOpsToNVVMOps());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());
  // libdevice (exp, log, tanh, ...) comes from the toolkit named here, not
  // from whatever CUDA_HOME the environment has.
  GpuModuleToBinaryPassOptions binary;
  binary.toolkitPath = cudaPath.str();
  binary.compilationTarget = cubin ? "bin" : "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void mass::addCudaHostToLLVM(OpPassManager &pm) {
  // The host's arithmetic and functions first, then the launches: calls of
  // the mgpu* functions (the runtime's Cuda.cpp defines them), the PTX a
  // global string; the order of MLIR's own gpu-lower-to-nvvm-pipeline.
  // The grid sizes divide rounding up (arith.ceildivsi), which
  // arith-to-llvm leaves to arith-expand.
  pm.addPass(arith::createArithExpandOpsPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mass::addEmulatedCudaToLLVM(OpPassManager &pm) {
  addCudaLaunches(pm);
  pm.addNestedPass<func::FuncOp>(createMassEmulateLaunches());
  // The grid sizes divide rounding up (arith.ceildivsi), which
  // arith-to-llvm leaves to arith-expand.
  pm.addPass(arith::createArithExpandOpsPass());
  addHostLoopsToLLVM(pm);
}

bool mass::hasPtxas(llvm::StringRef cudaPath) {
  llvm::SmallString<256> path(cudaPath);
  llvm::sys::path::append(path, "bin", "ptxas");
  return llvm::sys::fs::can_execute(path);
}

FailureOr<std::string> mass::findCudaToolkit(llvm::StringRef requested) {
  SmallVector<std::string> tried;
  auto hasLibdevice = [&](llvm::StringRef root) {
    if (root.empty())
      return false;
    llvm::SmallString<256> path(root);
    llvm::sys::path::append(path, "nvvm", "libdevice", "libdevice.10.bc");
    tried.push_back(root.str());
    return llvm::sys::fs::exists(path);
  };
  if (!requested.empty()) {
    if (hasLibdevice(requested))
      return requested.str();
  } else {
    for (const char *name : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
      if (const char *root = std::getenv(name);
          root && *root && hasLibdevice(root))
        return std::string(root);
#ifdef MASS_CUDA_TOOLKIT_DIR
    if (hasLibdevice(MASS_CUDA_TOOLKIT_DIR))
      return std::string(MASS_CUDA_TOOLKIT_DIR);
#endif
  }
  std::string message = "no CUDA toolkit with nvvm/libdevice/libdevice.10.bc";
  if (!tried.empty())
    message += " (looked in " + llvm::join(tried, ", ") + ")";
  llvm::errs() << "massc: error: " << message
               << "; --cuda-path names the toolkit\n";
  return failure();
}

LogicalResult mass::printPtx(ModuleOp module, llvm::raw_ostream &os) {
  bool any = false;
  WalkResult walk = module.walk([&](gpu::BinaryOp binary) {
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly) {
        binary.emitError("expected the kernels as PTX");
        return WalkResult::interrupt();
      }
      // MLIR 19 ends the PTX with a NUL byte, which ptxas rejects.
      llvm::StringRef ptx = object.getObject().getValue();
      ptx = ptx.take_until([](char c) { return c == '\0'; });
      os << "// ----- kernel module " << binary.getSymName() << "\n" << ptx;
      if (!ptx.ends_with("\n"))
        os << "\n";
      any = true;
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  if (!any)
    os << "// no kernels\n";
  return success();
}
