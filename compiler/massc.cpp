//===- massc.cpp - The Mass compiler driver
//--------------------------------===//
//
// massc FILE.mass [-o OUT] [--target=cpu|cuda] [--emit=STAGE] [-O0..-O3] [-I
// DIR]
//
//===----------------------------------------------------------------------===//

#include "compiler/Elaborator.h"
#include "compiler/Program.h"
#include "compiler/TrainConfig.h"
#include "dialects/Mass/MassDialect.h"
#include "dialects/Mass/Passes.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

namespace {

enum class Stage { Binary, Ast, Mass, Grad, Fused, Linalg, Llvm, Ptx, Dot };
enum class Target { Cpu, Cuda };

cl::OptionCategory category("massc options");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.mass>"),
                               cl::Required, cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("Output executable"),
                                cl::value_desc("file"), cl::cat(category));
cl::opt<Stage> emit(
    "emit", cl::desc("Print one stage and stop"), cl::init(Stage::Binary),
    cl::values(clEnumValN(Stage::Ast, "ast", "the syntax tree"),
               clEnumValN(Stage::Mass, "mass", "the mass dialect as generated"),
               clEnumValN(Stage::Grad, "grad", "after autodiff"),
               clEnumValN(Stage::Fused, "fused", "after fusion"),
               clEnumValN(Stage::Linalg, "linalg", "after lowering to linalg"),
               clEnumValN(Stage::Llvm, "llvm", "LLVM IR"),
               clEnumValN(Stage::Ptx, "ptx", "PTX (CUDA target)"),
               clEnumValN(Stage::Dot, "dot", "the model graph for Graphviz")),
    cl::cat(category));
cl::opt<Target>
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
cl::list<std::string> includeDirs("I", cl::desc("Import search directory"),
                                  cl::value_desc("dir"), cl::Prefix,
                                  cl::cat(category));

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // MLIR's printing and pass-manager flags (--mlir-print-debuginfo,
  // --mlir-print-ir-after-all, ...) work on every stage.
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "massc: compile a .mass model into a training "
                              "program\n");

  mlir::DialectRegistry registry;
  registry.insert<mass::MassDialect>();
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  mlir::FailureOr<mass::Program> program =
      mass::loadProgram(inputFile, includeDirs, sourceMgr, context);
  if (mlir::failed(program))
    return 1;

  if (emit == Stage::Ast) {
    for (const auto &module : program->modules)
      mass::ast::print(*module, llvm::outs());
    return 0;
  }

  mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> module =
      mass::buildModule(context, *program);
  if (mlir::failed(module) ||
      mlir::failed(mass::attachTrainConfig(**module, *program)))
    return 1;
  if (mlir::failed(mlir::verify(**module)))
    return 1;
  if (emit == Stage::Mass) {
    (*module)->print(llvm::outs());
    return 0;
  }

  mlir::PassManager pm(&context);
  if (mlir::failed(mlir::applyPassManagerCLOptions(pm)))
    return 1;
  pm.addPass(mass::createMassAutodiff());
  pm.addPass(mass::createMassOptimizer());
  if (mlir::failed(pm.run(**module)))
    return 1;
  if (emit == Stage::Grad) {
    (*module)->print(llvm::outs());
    return 0;
  }

  llvm::errs() << "massc: error: stages after --emit=mass are not supported "
                  "yet\n";
  return 1;
}
