//===- massc.cpp - The Mass compiler driver -------------------------------===//
//
// massc FILE.mass [-o OUT] [--target=cpu|cuda] [--emit=STAGE] [-O0..-O3] [-I
// DIR]
//
//===----------------------------------------------------------------------===//

#include "codegen/Descriptor.h"
#include "codegen/ObjectCache.h"
#include "codegen/Passes.h"
#include "codegen/Pipeline.h"
#include "codegen/Stats.h"
#include "compiler/Diagnostics.h"
#include "compiler/Elaborator.h"
#include "compiler/Program.h"
#include "compiler/TrainConfig.h"
#include "dialects/Mass/MassDialect.h"
#include "dialects/Mass/Passes.h"

#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/Statistic.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

namespace {

enum class Stage { Binary, Ast, Mass, Grad, Fused, Linalg, Llvm, Ptx, Dot };
enum class Target { Cpu, Cuda };

cl::OptionCategory category("massc options");

/// An option's value among named choices; a misspelled one gets the
/// choices and the nearest ("did you mean"), as a misspelled flag does.
template <typename T> class ChoiceParser : public cl::parser<T> {
public:
  using cl::parser<T>::parser;
  bool parse(cl::Option &option, llvm::StringRef name, llvm::StringRef arg,
             T &value) {
    std::vector<llvm::StringRef> choices;
    for (unsigned i = 0, e = this->getNumOptions(); i < e; ++i) {
      if (this->getOption(i) == arg)
        return cl::parser<T>::parse(option, name, arg, value);
      choices.push_back(this->getOption(i));
    }
    std::string message =
        "'" + arg.str() + "' is not one of " + llvm::join(choices, ", ");
    llvm::StringRef best = mass::nearest(arg, choices);
    if (!best.empty())
      message += "; did you mean '" + best.str() + "'?";
    return option.error(message);
  }
};

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.mass>"),
                               cl::Required, cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("Output executable"),
                                cl::value_desc("file"), cl::cat(category));
cl::opt<Stage, false, ChoiceParser<Stage>> emit(
    "emit", cl::desc("Print one stage and stop"), cl::init(Stage::Binary),
    cl::values(clEnumValN(Stage::Ast, "ast", "the syntax tree"),
               clEnumValN(Stage::Mass, "mass", "the mass dialect as generated"),
               clEnumValN(Stage::Grad, "grad", "after autodiff"),
               clEnumValN(Stage::Fused, "fused",
                          "after fusion (mass.fusion groups, from -O1)"),
               clEnumValN(Stage::Linalg, "linalg", "after lowering to linalg"),
               clEnumValN(Stage::Llvm, "llvm", "LLVM IR"),
               clEnumValN(Stage::Ptx, "ptx", "PTX (CUDA target)"),
               clEnumValN(Stage::Dot, "dot", "the model graph for Graphviz")),
    cl::cat(category));
cl::opt<Target, false, ChoiceParser<Target>>
    target("target", cl::desc("Code generation target"), cl::init(Target::Cpu),
           cl::values(clEnumValN(Target::Cpu, "cpu", "host CPU"),
                      clEnumValN(Target::Cuda, "cuda", "NVIDIA GPU")),
           cl::cat(category));
enum OptLevel { O0, O1, O2, O3 };
cl::opt<OptLevel> optLevel(cl::desc("Optimization level"), cl::init(O2),
                           cl::values(clEnumVal(O0, "no optimization"),
                                      clEnumVal(O1, "light"),
                                      clEnumVal(O2, "default"),
                                      clEnumVal(O3, "aggressive")),
                           cl::cat(category));
cl::opt<bool> fuse("fuse",
                   cl::desc("Fuse elementwise chains and reductions into one "
                            "loop nest each (from -O1; --fuse=false turns "
                            "it off)"),
                   cl::init(true), cl::cat(category));
cl::opt<int64_t> vectorWidth(
    "vector-width",
    cl::desc("f32 lanes per vector in the matmul kernels (16 for AVX-512, 8 "
             "for AVX2; default: the host's widest)"),
    cl::init(0), cl::cat(category));
cl::opt<std::string> cudaArch("cuda-arch",
                              cl::desc("GPU architecture of the CUDA target"),
                              cl::init("sm_90"), cl::cat(category));
cl::opt<std::string>
    cudaPath("cuda-path",
             cl::desc("CUDA toolkit whose libdevice the GPU kernels link "
                      "(default: $CUDA_HOME, $CUDA_PATH, $CUDA_ROOT, then the "
                      "toolkit found when massc was built)"),
             cl::value_desc("dir"), cl::cat(category));
cl::opt<bool> emulateGpu(
    "emulate-gpu",
    cl::desc("With --target=cuda: run the GPU program's kernels on this CPU, "
             "each launch a loop over its threads, on host memory that "
             "follows the GPU's copy rules (for testing without a GPU)"),
    cl::Hidden, cl::cat(category));
cl::opt<bool> noCache(
    "no-cache",
    cl::desc("Compile afresh and leave the object cache ($MASS_CACHE_DIR, "
             "else ~/.cache/mass) alone"),
    cl::cat(category));
cl::opt<unsigned> jobs("j",
                       cl::desc("Threads for LLVM's code generation "
                                "(default: the cores this process may use)"),
                       cl::value_desc("N"), cl::Prefix, cl::cat(category));
cl::opt<unsigned>
    maxErrors("max-errors",
              cl::desc("Stop reporting after N errors (0: report every one)"),
              cl::value_desc("N"), cl::init(20), cl::cat(category));
cl::list<std::string> includeDirs("I", cl::desc("Import search directory"),
                                  cl::value_desc("dir"), cl::Prefix,
                                  cl::cat(category));

/// Whether a flag asks to see the compile's insides (IR after a pass,
/// statistics): a compile from the cache would show nothing.
bool watchingInsides() {
  for (const auto &entry : cl::getRegisteredOptions()) {
    llvm::StringRef name = entry.getKey();
    if ((name.starts_with("mlir-print-ir") || name.starts_with("print-") ||
         name.starts_with("llvm-") || name == "mlir-pass-statistics") &&
        entry.getValue()->getNumOccurrences() > 0)
      return true;
  }
  return false;
}

/// The runtime's libraries for the target, found next to massc
/// (BIN/../lib), in link order; prints an error when one is missing.
mlir::FailureOr<llvm::SmallVector<std::string>>
runtimeLibraries(llvm::StringRef self, bool cuda) {
  llvm::SmallString<256> dir(
      llvm::sys::path::parent_path(llvm::sys::path::parent_path(self)));
  llvm::sys::path::append(dir, "lib");
  llvm::SmallVector<std::string> libraries;
  // Nothing in an emulated program calls into the device half but the
  // runtime's weak reference: the linker must take it from the archive.
  if (emulateGpu)
    libraries.push_back("-Wl,--undefined=mass_cuda_device");
  // The CUDA target's programs also link the runtime's driver-API half.
  llvm::SmallVector<llvm::StringRef, 2> names;
  if (emulateGpu)
    names.push_back("libmass_cuda_emulated.a");
  else if (cuda)
    names.push_back("libmass_cuda.a");
  names.push_back("libmass_runtime.a");
  for (llvm::StringRef name : names) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, name);
    if (!llvm::sys::fs::exists(path)) {
      llvm::errs() << "massc: error: the runtime library is missing: " << path
                   << (cuda && name == "libmass_cuda.a"
                           ? " (Mass was built without the CUDA toolkit)"
                           : "")
                   << "\n";
      return mlir::failure();
    }
    libraries.push_back(path.str().str());
  }
  return libraries;
}

/// Everything the compiled archive depends on but the runtime it links
/// with: this massc (its path, size and time), LLVM, the host CPU, the
/// options that change code, and the module as generated, locations
/// included.
std::string cacheKey(llvm::StringRef self, mlir::ModuleOp module, bool cuda,
                     llvm::StringRef toolkit) {
  std::string compiler = self.str();
  llvm::sys::fs::file_status status;
  if (!llvm::sys::fs::status(self, status))
    compiler +=
        ";" + std::to_string(status.getSize()) + ";" +
        std::to_string(
            status.getLastModificationTime().time_since_epoch().count());
  std::string options;
  llvm::raw_string_ostream(options)
      << "target=" << (cuda ? "cuda" : "cpu") << ";O=" << int(optLevel)
      << ";fuse=" << fuse << ";vector-width=" << vectorWidth
      << ";emulate-gpu=" << emulateGpu
      << ";cuda-arch=" << (cuda ? cudaArch.getValue() : "")
      << ";cuda-path=" << toolkit;
  std::string ir;
  llvm::raw_string_ostream os(ir);
  module->print(os, mlir::OpPrintingFlags().enableDebugInfo());
  return mass::ObjectCache::key({"mass object cache 1", compiler,
                                 LLVM_VERSION_STRING, mass::hostTarget(),
                                 options, ir});
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // LLVM's own -stats (pass statistics) becomes -llvm-stats, so that
  // massc --stats can report kernels and buffers.
  (void)llvm::AreStatisticsEnabled(); // registers LLVM's option
  if (cl::Option *llvmStats = cl::getRegisteredOptions().lookup("stats"))
    llvmStats->setArgStr("llvm-stats");
  static cl::opt<bool> stats(
      "stats",
      cl::desc("Print, per entry point, the loop nests and the bytes of "
               "intermediate buffers before and after fusion"),
      cl::cat(category));
  // LLVM's -time-passes (its passes only, in reports of its own) becomes
  // -llvm-time-passes: massc --time-passes reports every stage in one.
  if (cl::Option *llvmTiming = cl::getRegisteredOptions().lookup("time-passes"))
    llvmTiming->setArgStr("llvm-time-passes");
  static cl::opt<bool> timePasses(
      "time-passes",
      cl::desc("Print where the compile's time goes, as one report on "
               "stderr: parsing, each MLIR pass, LLVM's translation, each "
               "LLVM optimisation pass, code generation and the link"),
      cl::cat(category));
  // MLIR's printing and pass-manager flags (--mlir-print-debuginfo,
  // --mlir-print-ir-after-all, ...) work on every stage.
  mlir::registerAsmPrinterCLOptions();
  // By name for --mlir-print-ir-after=mass-gemm and the like.
  mass::registerMassPasses();
  mass::registerMassCodegenPasses();
  // The pipeline's last pass: --mlir-print-ir-after=reconcile-unrealized-casts
  // prints the LLVM-dialect module that massc translates (and that
  // `mass-opt --mass-to-llvm` gives).
  mlir::registerPass([] { return mlir::createReconcileUnrealizedCastsPass(); });
  // And the CUDA pipeline's GPU stages (--mlir-print-ir-after=
  // gpu-kernel-outlining).
  mass::registerCudaPassNames();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "massc: compile a .mass model into a training "
                              "program\n");
  if (emulateGpu && (target != Target::Cuda || emit == Stage::Ptx)) {
    llvm::errs() << "massc: error: --emulate-gpu needs --target=cuda and "
                    "has no PTX\n";
    return 1;
  }
  if (vectorWidth < 0 || (vectorWidth & (vectorWidth - 1)) != 0) {
    llvm::errs() << "massc: error: --vector-width must be a power of two\n";
    return 1;
  }

  mlir::DialectRegistry registry;
  registry.insert<mass::MassDialect>();
  mass::registerCodegen(registry);
  mass::registerCudaCodegen(registry);
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  context.disableMultithreading();
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  mass::ErrorLimiter limiter(&context, maxErrors, "massc");
  auto summary = llvm::make_scope_exit([&] {
    if (limiter.errors() > 1)
      llvm::errs() << limiter.errors() << " errors generated.\n";
  });

  // --time-passes and --mlir-timing report each stage's time.
  mlir::DefaultTimingManager timing;
  mlir::applyDefaultTimingManagerCLOptions(timing);
  if (timePasses) {
    timing.setEnabled(true);
    cl::Option *display =
        cl::getRegisteredOptions().lookup("mlir-timing-display");
    if (!display || display->getNumOccurrences() == 0)
      timing.setDisplayMode(mlir::DefaultTimingManager::DisplayMode::Tree);
  }
  mlir::TimingScope timingRoot = timing.getRootScope();

  mlir::TimingScope frontend = timingRoot.nest("parse and elaborate");
  mlir::FailureOr<mass::Program> program =
      mass::loadProgram(inputFile, includeDirs, sourceMgr, context);
  if (mlir::failed(program))
    return 1;
  frontend.stop();

  if (emit == Stage::Ast) {
    for (const auto &module : program->modules)
      mass::ast::print(*module, llvm::outs());
    return 0;
  }

  mlir::TimingScope generation = timingRoot.nest("MLIR generation");
  mass::ModelGraph graph;
  mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> module = mass::buildModule(
      context, *program, emit == Stage::Dot ? &graph : nullptr);
  if (mlir::failed(module)) {
    // The train block's own errors are independent of the model's.
    (void)mass::checkTrainBlocks(context, *program);
    return 1;
  }
  if (mlir::failed(mass::attachTrainConfig(**module, *program)))
    return 1;
  if (mlir::failed(mlir::verify(**module)))
    return 1;
  generation.stop();
  if (emit == Stage::Mass) {
    (*module)->print(llvm::outs());
    return 0;
  }
  if (emit == Stage::Dot)
    return mlir::failed(mass::printDot(**module, graph, llvm::outs()));

  // What the program links with, and the object cache: a model compiled
  // before with the same options only links.
  std::string output = outputFile;
  if (output.empty())
    output = llvm::sys::path::stem(inputFile).str();
  std::string self = llvm::sys::fs::getMainExecutable(
      argv[0], reinterpret_cast<void *>(&inputFile));
  bool cudaProgram = target == Target::Cuda;
  mlir::FailureOr<llvm::SmallVector<std::string>> libraries;
  std::optional<mass::ObjectCache> cache;
  std::string key;
  unsigned threads =
      jobs > 0
          ? jobs
          : std::min(16u, llvm::hardware_concurrency().compute_thread_count());
  if (emit == Stage::Binary) {
    libraries = runtimeLibraries(self, cudaProgram);
    if (mlir::failed(libraries))
      return 1;
    std::string directory = mass::ObjectCache::defaultDirectory();
    if (!noCache && !stats && !watchingInsides() && !directory.empty()) {
      mlir::TimingScope lookup = timingRoot.nest("object cache lookup");
      std::string toolkit;
      if (cudaProgram && !emulateGpu) {
        mlir::FailureOr<std::string> found = mass::findCudaToolkit(cudaPath);
        if (mlir::failed(found))
          return 1;
        toolkit = *found;
      }
      cache.emplace(directory);
      key = cacheKey(self, **module, cudaProgram, toolkit);
      std::string damaged;
      std::optional<std::string> hit = cache->lookup(key, damaged);
      if (!damaged.empty())
        llvm::errs() << "massc: note: the cached '" << damaged
                     << "' was damaged; it is removed and the model compiled "
                        "afresh\n";
      if (hit) {
        lookup.stop();
        if (mlir::succeeded(
                mass::linkExecutable(*hit, *libraries, output, timingRoot)))
          return 0;
        llvm::errs() << "massc: note: the cached '" << *hit
                     << "' did not link; it is removed and the model "
                        "compiled afresh\n";
        cache->remove(key);
      }
    }
  }

  auto runPasses = [&](auto addPasses) {
    mlir::PassManager pm(&context);
    if (mlir::failed(mlir::applyPassManagerCLOptions(pm)))
      return mlir::failure();
    pm.enableTiming(timingRoot);
    addPasses(pm);
    return pm.run(**module);
  };
  auto print = [&] {
    (*module)->print(llvm::outs());
    return 0;
  };

  if (mlir::failed(runPasses(mass::addDifferentiate)))
    return 1;
  if (emit == Stage::Grad)
    return print();
  bool cuda = target == Target::Cuda || emit == Stage::Ptx;
  if (cuda) {
    // sm_NN or sm_NNa, from Maxwell (sm_50) to Hopper (sm_90a): the
    // architectures LLVM 19's NVPTX backend knows.
    llvm::StringRef arch(cudaArch), digits;
    unsigned number = 0;
    bool named = arch.consume_front("sm_");
    digits = arch.take_while(llvm::isDigit);
    llvm::StringRef suffix = arch.drop_front(digits.size());
    if (!named || digits.getAsInteger(10, number) ||
        !(suffix.empty() || (suffix == "a" && number == 90))) {
      llvm::errs() << "massc: error: --cuda-arch must name an architecture "
                      "such as sm_90, not '"
                   << cudaArch << "'\n";
      return 1;
    }
    if (number < 50 || number > 90) {
      llvm::errs() << "massc: error: --cuda-arch=" << cudaArch
                   << " is not supported: LLVM 19's NVPTX backend knows sm_50 "
                      "to sm_90a\n";
      return 1;
    }
  }
  std::string descriptor = mass::buildDescriptor(**module);
  llvm::StringMap<mass::KernelStats> unfused;
  if (stats) {
    mlir::OwningOpRef<mlir::ModuleOp> copy((*module)->clone());
    mlir::PassManager pm(&context);
    mass::addLowerToLinalg(pm, optLevel, /*fuse=*/false);
    if (mlir::failed(pm.run(*copy)))
      return 1;
    unfused = mass::collectKernelStats(*copy);
  }
  bool fusing = mass::fusionEnabled(fuse, optLevel);
  if (fusing && mlir::failed(runPasses(mass::addFusion)))
    return 1;
  if (emit == Stage::Fused)
    return print();
  if (mlir::failed(runPasses([&](mlir::PassManager &pm) {
        mass::addLowerToLinalg(pm, optLevel, fusing);
      })))
    return 1;
  if (stats)
    mass::printKernelStats(unfused, mass::collectKernelStats(**module),
                           llvm::outs());
  if (emit == Stage::Linalg)
    return print();
  if (emulateGpu) {
    if (mlir::failed(runPasses(mass::addEmulatedCudaToLLVM)))
      return 1;
  } else if (cuda) {
    mlir::FailureOr<std::string> toolkit = mass::findCudaToolkit(cudaPath);
    if (mlir::failed(toolkit))
      return 1;
    if (mlir::failed(runPasses([&](mlir::PassManager &pm) {
          // The program embeds a cubin where the toolkit can assemble
          // one, else the PTX (which the driver compiles at start-up).
          bool cubin = emit != Stage::Ptx && mass::hasPtxas(*toolkit);
          mass::addCudaKernels(pm, optLevel, cudaArch, *toolkit, cubin);
        })))
      return 1;
    if (emit == Stage::Ptx)
      return mlir::failed(mass::printPtx(**module, llvm::outs())) ? 1 : 0;
    if (mlir::failed(runPasses(mass::addCudaHostToLLVM)))
      return 1;
  } else if (mlir::failed(runPasses([](mlir::PassManager &pm) {
               mass::addCpuToLLVM(pm, optLevel, vectorWidth);
             }))) {
    return 1;
  }
  descriptor = mass::addCodegenPlans(descriptor, **module, cuda);
  llvm::LLVMContext llvmContext;
  // LLVM optimises the parts of the module that code generation splits it
  // into, each on its own (on every thread); --emit=llvm prints the whole
  // module optimised as one.
  bool optimizeWhole = emit == Stage::Llvm;
  auto llvmModule = mass::translateForHost(**module, llvmContext, descriptor,
                                           optLevel, optimizeWhole, timingRoot);
  if (mlir::failed(llvmModule))
    return 1;
  if (emit == Stage::Llvm) {
    (*llvmModule)->print(llvm::outs(), nullptr);
    return 0;
  }

  mlir::FailureOr<std::string> archive =
      mass::emitArchive(**llvmModule, optLevel, threads,
                        /*optimize=*/!optimizeWhole, timingRoot);
  if (mlir::failed(archive))
    return 1;
  if (cache) {
    mlir::TimingScope storing = timingRoot.nest("object cache store");
    std::string error;
    if (std::optional<std::string> path = cache->store(key, *archive, error)) {
      storing.stop();
      return mlir::failed(
                 mass::linkExecutable(*path, *libraries, output, timingRoot))
                 ? 1
                 : 0;
    }
    llvm::errs() << "massc: warning: the object cache is not written: " << error
                 << " (--no-cache leaves it alone)\n";
  }
  llvm::SmallString<128> object;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("mass", "a", object)) {
    llvm::errs() << "massc: error: cannot create a temporary file: "
                 << ec.message() << "\n";
    return 1;
  }
  llvm::FileRemover removeObject(object);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(object, ec);
    os << *archive;
    os.close();
    if (ec || os.has_error()) {
      llvm::errs() << "massc: error: cannot write '" << object << "'\n";
      os.clear_error();
      return 1;
    }
  }
  return mlir::failed(
             mass::linkExecutable(object, *libraries, output, timingRoot))
             ? 1
             : 0;
}
