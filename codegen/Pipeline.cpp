//===- Pipeline.cpp - From the mass dialect to an executable --------------===//

#include "codegen/Pipeline.h"
#include "codegen/Passes.h"
#include "dialects/Mass/Passes.h"
#include "mass/vocabulary.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/FuncBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/ArchiveWriter.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/Transforms/Scalar/InstSimplifyPass.h"
#include "llvm/Transforms/Utils/SplitModule.h"

#include <mutex>

using namespace mlir;
namespace abi = mass::abi;

void mass::registerCodegen(DialectRegistry &registry) {
  registry
      .insert<affine::AffineDialect, arith::ArithDialect,
              bufferization::BufferizationDialect, cf::ControlFlowDialect,
              func::FuncDialect, linalg::LinalgDialect, LLVM::LLVMDialect,
              math::MathDialect, memref::MemRefDialect, omp::OpenMPDialect,
              scf::SCFDialect, tensor::TensorDialect, vector::VectorDialect>();
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  bufferization::func_ext::registerBufferizableOpInterfaceExternalModels(
      registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferizableOpInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);
  registerKernelCalls(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
}

void mass::addDifferentiate(OpPassManager &pm) {
  pm.addPass(createMassAutodiff());
  pm.addPass(createMassOptimizer());
  pm.addPass(createMassPredict());
}

void mass::addFusion(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(createMassFuse());
}

void mass::addLowerToLinalg(OpPassManager &pm, unsigned optLevel, bool fuse) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  MassLowerToLinalgOptions options;
  options.fastMath = optLevel >= 2;
  pm.addPass(createMassLowerToLinalg(options));
  if (fuse && optLevel >= 1)
    pm.addPass(createMassFuseLoops());
  // mass-gemm's kernels read transposed operands in place.
  if (optLevel >= 1)
    pm.addNestedPass<func::FuncOp>(createMassFoldTransposes());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Read while the arguments and results still carry their names.
  pm.addPass(createMassInPlaceResults());
}

int64_t mass::hostVectorWidth() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  auto has = [&](llvm::StringRef name) { return features.lookup(name); };
  if (has("avx512f"))
    return 16;
  if (has("avx2") && has("fma"))
    return 8;
  return 4;
}

void mass::addBufferization(OpPassManager &pm) {
  pm.addNestedPass<func::FuncOp>(createMassDistinctResults());
  bufferization::OneShotBufferizationOptions bufferization;
  bufferization.bufferizeFunctionBoundaries = true;
  bufferization.setFunctionBoundaryTypeConversion(
      bufferization::LayoutMapOption::IdentityLayoutMap);
  pm.addPass(bufferization::createOneShotBufferizePass(bufferization));
  pm.addPass(createMassConstantGlobals());
  // Canonicalize first, or an extra allocation and copy stay behind.
  pm.addPass(createCanonicalizerPass());
  bufferization::BufferResultsToOutParamsOpts outParams;
  outParams.hoistStaticAllocs = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  // While each gradient's last writer is still one op of the step's block.
  pm.addPass(createMassGradReady());
}

void mass::addCpuToLLVM(OpPassManager &pm, unsigned optLevel,
                        int64_t vectorWidth) {
  pm.addPass(createMassCInterfaces());
  addBufferization(pm);
  // Matmuls become register-blocked vector kernels; at -O0 they stay the
  // plain loop nests they are in linalg.
  if (optLevel >= 1) {
    MassGemmOptions gemm;
    gemm.vectorWidth = vectorWidth > 0 ? vectorWidth : hostVectorWidth();
    // Two vectors per row: 12 rows use 24 of AVX-512's 32 registers for
    // the block of C, 6 rows 12 of AVX2's 16 (measured best at 1024 here:
    // 8 and 12 rows, blocks of k of 128, 192 and 256).
    gemm.rows = gemm.vectorWidth >= 16 ? 12 : 6;
    pm.addPass(createMassGemm(gemm));
  }
  // Intermediates live in one arena the caller provides: no allocation
  // inside a call.
  pm.addPass(createMassArena());
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  // Threads split the outermost loop of each nest (OpenMP, sized at run
  // time by the program's --threads); the inner loops stay plain loops.
  pm.addNestedPass<func::FuncOp>(createMassStridedCopies());
  // From -O2 (fast math), tanh, erf, exp, log and the like become
  // polynomials: arith ops that mass-vectorize-rows turns into vector code
  // like any other.
  if (optLevel >= 2)
    pm.addPass(createMassApproximateMath());
  // Short image rows run as vectors (from -O1).
  if (optLevel >= 1) {
    MassVectorizeRowsOptions rows;
    rows.vectorWidth = vectorWidth > 0 ? vectorWidth : hostVectorWidth();
    pm.addNestedPass<func::FuncOp>(createMassVectorizeRows(rows));
  }
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addNestedPass<func::FuncOp>(createMassOuterParallel());
  // A function per loop nest, equal nests sharing one: LLVM's time grows
  // faster than a function's size.
  MassOutlineKernelsOptions outline;
  outline.optimizeForSize = optLevel >= 1;
  pm.addPass(createMassOutlineKernels(outline));
  pm.addPass(createConvertSCFToOpenMPPass());
  // Inlines the alloca scopes around loop bodies that allocate nothing.
  pm.addPass(createCanonicalizerPass());
  // The loops that allocate on the stack release it per iteration.
  pm.addNestedPass<func::FuncOp>(createMassAllocaScopes());
  addHostLoopsToLLVM(pm);
}

void mass::addHostLoopsToLLVM(OpPassManager &pm) {
  // Views (slices) become offsets and strides computed explicitly.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertSCFToCFPass());
  pm.addPass(createCanonicalizerPass());
  // Math ops with LLVM intrinsics (sqrt on vectors stays one instruction);
  // the rest call libm.
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mass::addMassToLLVM(OpPassManager &pm, unsigned optLevel, bool fuse,
                         int64_t vectorWidth) {
  addDifferentiate(pm);
  bool fusing = fusionEnabled(fuse, optLevel);
  if (fusing)
    addFusion(pm);
  addLowerToLinalg(pm, optLevel, fusing);
  addCpuToLLVM(pm, optLevel, vectorWidth);
}

namespace {
struct MassToLLVMOptions : public PassPipelineOptions<MassToLLVMOptions> {
  Option<unsigned> optLevel{*this, "opt-level",
                            llvm::cl::desc("Optimisation level, 0 to 3"),
                            llvm::cl::init(2)};
  Option<bool> fuse{*this, "fuse", llvm::cl::desc("Fusion groups (from -O1)"),
                    llvm::cl::init(true)};
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of the matmul kernels (0: the host's)"),
      llvm::cl::init(0)};
};
} // namespace

void mass::registerPipelines() {
  PassPipelineRegistration<MassToLLVMOptions>(
      "mass-to-llvm",
      "The CPU pipeline of massc, from the mass dialect as generated to the "
      "LLVM dialect",
      [](OpPassManager &pm, const MassToLLVMOptions &options) {
        addMassToLLVM(pm, options.optLevel, options.fuse, options.vectorWidth);
      });
}

namespace {

/// The host CPU's features, as a target machine takes them.
std::string hostFeatures() {
  std::string features;
  for (const auto &f : llvm::sys::getHostCPUFeatures())
    features += (features.empty() ? "" : ",") +
                std::string(f.getValue() ? "+" : "-") + f.getKey().str();
  return features;
}

std::unique_ptr<llvm::TargetMachine> hostMachine(unsigned optLevel,
                                                 std::string &error) {
  // Once for all threads: registration is not thread-safe.
  static std::once_flag initialized;
  std::call_once(initialized, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  std::string triple = llvm::sys::getDefaultTargetTriple();
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;
  std::string features = hostFeatures();
  llvm::TargetOptions options;
  auto level = optLevel == 0   ? llvm::CodeGenOptLevel::None
               : optLevel == 1 ? llvm::CodeGenOptLevel::Less
               : optLevel == 2 ? llvm::CodeGenOptLevel::Default
                               : llvm::CodeGenOptLevel::Aggressive;
  return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
      triple, llvm::sys::getHostCPUName(), features, options, llvm::Reloc::PIC_,
      std::nullopt, level));
}

/// The new pass manager's own wrappers, which --time-passes leaves out.
const std::vector<llvm::StringRef> kPassManagerNames = {
    "PassManager", "PassAdaptor", "AnalysisManagerProxy",
    "DevirtSCCRepeatedPass", "ModuleInlinerWrapperPass"};

/// `void mass_NAME(void **args)` calls `_mlir_ciface_NAME(args[0], ...)`:
/// one symbol with one signature for every model.
void addPackedEntry(llvm::Module &module, llvm::StringRef name) {
  llvm::Function *ciface = module.getFunction(("_mlir_ciface_" + name).str());
  if (!ciface)
    return;
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptr = llvm::PointerType::getUnqual(ctx);
  auto *type =
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr}, false);
  auto *packed = llvm::Function::Create(type, llvm::Function::ExternalLinkage,
                                        ("mass_" + name).str(), module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", packed));
  llvm::SmallVector<llvm::Value *> args;
  for (unsigned i = 0; i < ciface->arg_size(); ++i) {
    llvm::Value *slot = b.CreateConstGEP1_64(ptr, packed->getArg(0), i);
    args.push_back(b.CreateLoad(ptr, slot));
  }
  b.CreateCall(ciface, args);
  b.CreateRetVoid();
}

/// Runs LLVM's optimisation pipeline for `optLevel` on `module`, each pass
/// timed under `timing` when given, nested as the passes nest (pass
/// managers and adaptors are not passes of their own).
void optimizeModule(llvm::Module &module, llvm::TargetMachine &machine,
                    unsigned optLevel, TimingScope *timing) {
  llvm::PassInstrumentationCallbacks callbacks;
  std::vector<TimingScope> running;
  if (timing) {
    callbacks.registerBeforeNonSkippedPassCallback(
        [&](llvm::StringRef pass, llvm::Any) {
          if (llvm::isSpecialPass(pass, kPassManagerNames))
            return;
          TimingScope &parent = running.empty() ? *timing : running.back();
          running.push_back(parent.nest(pass));
        });
    auto after = [&](llvm::StringRef pass) {
      if (!llvm::isSpecialPass(pass, kPassManagerNames) && !running.empty())
        running.pop_back();
    };
    callbacks.registerAfterPassCallback(
        [=](llvm::StringRef pass, llvm::Any, const llvm::PreservedAnalyses &) {
          after(pass);
        });
    callbacks.registerAfterPassInvalidatedCallback(
        [=](llvm::StringRef pass, const llvm::PreservedAnalyses &) {
          after(pass);
        });
  }
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&machine, llvm::PipelineTuningOptions(), std::nullopt,
                       &callbacks);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  if (optLevel == 0) {
    // Only what folds away the memref descriptors' plumbing (a value
    // inserted into a struct and extracted again): the fast instruction
    // selector gives up on aggregates, and code generation takes 3.6
    // times as long without it (ResNet-18: 2.9 s against 0.8 s).
    mpm.addPass(
        llvm::createModuleToFunctionPassAdaptor(llvm::InstSimplifyPass()));
  } else {
    llvm::OptimizationLevel level = optLevel == 1 ? llvm::OptimizationLevel::O1
                                    : optLevel == 2
                                        ? llvm::OptimizationLevel::O2
                                        : llvm::OptimizationLevel::O3;
    mpm = pb.buildPerModuleDefaultPipeline(level);
  }
  mpm.run(module, mam);
}

} // namespace

std::string mass::hostTarget() {
  return llvm::sys::getDefaultTargetTriple() + ";" +
         llvm::sys::getHostCPUName().str() + ";" + hostFeatures();
}

FailureOr<std::unique_ptr<llvm::Module>>
mass::translateForHost(ModuleOp module, llvm::LLVMContext &context,
                       const std::string &descriptor, unsigned optLevel,
                       bool optimize, TimingScope &timing) {
  TimingScope translation = timing.nest("LLVM IR translation");
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, context, "mass_model");
  if (!llvmModule)
    return module.emitError("translation to LLVM IR failed");
  std::string error;
  std::unique_ptr<llvm::TargetMachine> machine = hostMachine(optLevel, error);
  if (!machine)
    return module.emitError("no target for the host: ") << error;
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(machine->getTargetTriple().str());

  for (llvm::StringRef name : abi::kEntries)
    addPackedEntry(*llvmModule, name);
  auto *text = llvm::ConstantDataArray::getString(context, descriptor, true);
  new llvm::GlobalVariable(*llvmModule, text->getType(), /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage, text,
                           "mass_model_descriptor");
  translation.stop();

  if (optimize) {
    TimingScope optimisation = timing.nest("LLVM optimisation");
    optimizeModule(*llvmModule, *machine, optLevel, &optimisation);
  }
  return llvmModule;
}

namespace {

/// Machine code for `module`, optimised first when `optimize`: an object
/// file's bytes, or a message. The stages are timed under `timing` when
/// given (summed over the threads that run them), and each LLVM pass too
/// with `perPass` (one thread only).
FailureOr<llvm::SmallString<0>> machineCode(llvm::Module &module,
                                            unsigned optLevel, bool optimize,
                                            TimingScope *timing, bool perPass,
                                            std::string &error) {
  std::unique_ptr<llvm::TargetMachine> machine = hostMachine(optLevel, error);
  if (!machine) {
    error = "no target for the host: " + error;
    return failure();
  }
  if (optimize) {
    TimingScope optimisation =
        timing ? timing->nest("optimisation") : TimingScope();
    optimizeModule(module, *machine, optLevel,
                   timing && perPass ? &optimisation : nullptr);
  }
  TimingScope generation =
      timing ? timing->nest("code generation") : TimingScope();
  llvm::SmallString<0> bytes;
  llvm::raw_svector_ostream os(bytes);
  llvm::legacy::PassManager pm;
  if (machine->addPassesToEmitFile(pm, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile)) {
    error = "the host target cannot emit objects";
    return failure();
  }
  pm.run(module);
  return bytes;
}

/// The parts LLVM optimises and compiles a module in: a number fixed by
/// the module alone, so that the machine code does not depend on the
/// threads that compile it (each part is optimised on its own, inlining
/// and constant propagation within it), and enough to keep 8 cores busy.
constexpr size_t kParts = 8;

} // namespace

FailureOr<std::string> mass::emitArchive(llvm::Module &module,
                                         unsigned optLevel, unsigned threads,
                                         bool optimize, TimingScope &timing) {
  TimingScope stage =
      timing.nest(optimize ? "LLVM optimisation and code generation"
                           : "LLVM code generation");
  // Each part travels as bitcode into a context of its own: LLVM contexts
  // are not shared between threads.
  std::vector<llvm::SmallString<0>> parts;
  {
    TimingScope split = stage.nest("split into parts");
    size_t functions = llvm::count_if(
        module, [](const llvm::Function &f) { return !f.isDeclaration(); });
    auto keep = [&](const llvm::Module &part) {
      llvm::SmallString<0> bitcode;
      llvm::raw_svector_ostream os(bitcode);
      llvm::WriteBitcodeToFile(part, os);
      parts.push_back(std::move(bitcode));
    };
    if (functions < 2)
      keep(module);
    else
      llvm::SplitModule(
          module, std::min(kParts, functions),
          [&](std::unique_ptr<llvm::Module> part) { keep(*part); });
  }
  std::vector<llvm::SmallString<0>> objects(parts.size());
  std::vector<std::string> errors(parts.size());
  auto compile = [&](size_t i, bool perPass) {
    llvm::LLVMContext context;
    llvm::Expected<std::unique_ptr<llvm::Module>> part = llvm::parseBitcodeFile(
        llvm::MemoryBufferRef(llvm::StringRef(parts[i]), "part"), context);
    if (!part) {
      errors[i] = llvm::toString(part.takeError());
      return;
    }
    FailureOr<llvm::SmallString<0>> object =
        machineCode(**part, optLevel, optimize, &stage, perPass, errors[i]);
    if (succeeded(object))
      objects[i] = std::move(*object);
  };
  if (threads <= 1) {
    for (size_t i = 0; i < parts.size(); ++i)
      compile(i, /*perPass=*/true);
  } else {
    llvm::DefaultThreadPool pool(llvm::hardware_concurrency(threads));
    for (size_t i = 0; i < parts.size(); ++i)
      pool.async([&, i] { compile(i, /*perPass=*/false); });
    pool.wait();
  }
  for (const std::string &e : errors)
    if (!e.empty()) {
      llvm::errs() << "massc: error: " << e << "\n";
      return failure();
    }
  std::vector<std::string> names;
  std::vector<llvm::NewArchiveMember> members;
  for (size_t i = 0; i < objects.size(); ++i)
    names.push_back("part" + std::to_string(i) + ".o");
  for (size_t i = 0; i < objects.size(); ++i) {
    llvm::NewArchiveMember member;
    member.Buf = llvm::MemoryBuffer::getMemBuffer(llvm::StringRef(objects[i]),
                                                  names[i], false);
    member.MemberName = names[i];
    members.push_back(std::move(member));
  }
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> archive =
      llvm::writeArchiveToBuffer(members, llvm::SymtabWritingMode::NormalSymtab,
                                 llvm::object::Archive::K_GNU,
                                 /*Deterministic=*/true, /*Thin=*/false);
  if (!archive) {
    llvm::errs() << "massc: error: cannot write the objects' archive: "
                 << llvm::toString(archive.takeError()) << "\n";
    return failure();
  }
  return (*archive)->getBuffer().str();
}

LogicalResult mass::linkExecutable(llvm::StringRef archive,
                                   llvm::ArrayRef<std::string> libraries,
                                   llvm::StringRef output,
                                   TimingScope &timing) {
  TimingScope link = timing.nest("link");
  llvm::ErrorOr<std::string> driver = llvm::sys::findProgramByName("c++");
  if (!driver)
    driver = llvm::sys::findProgramByName("g++");
  if (!driver) {
    llvm::errs() << "massc: error: no C++ compiler driver (c++) to link with\n";
    return failure();
  }
  // The generated loops call LLVM's OpenMP runtime (libomp).
  std::string ompDir = "-L" MASS_LLVM_LIBRARY_DIR;
  std::string rpath = "-Wl,-rpath," MASS_LLVM_LIBRARY_DIR;
  // Every member of the model's archive, whether the runtime refers to it
  // or not (the linker reads the runtime after it).
  llvm::SmallVector<llvm::StringRef> args = {*driver, "-Wl,--whole-archive",
                                             archive, "-Wl,--no-whole-archive"};
  args.append(libraries.begin(), libraries.end());
  // -ldl: the CUDA runtime opens the driver (libcuda) when it starts.
  args.append(
      {"-o", output, ompDir, rpath, "-lomp", "-lm", "-lpthread", "-ldl"});
  std::string error;
  int rc =
      llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0, &error);
  if (rc != 0) {
    llvm::errs() << "massc: error: linking failed"
                 << (error.empty() ? "" : ": " + error) << "\n";
    return failure();
  }
  return success();
}
