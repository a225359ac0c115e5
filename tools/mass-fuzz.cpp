//===- mass-fuzz.cpp - libFuzzer target over the Mass frontend ------------===//
//
// Feeds arbitrary bytes to the frontend as a `.mass` file: encoding check,
// lexer, parser, AST builder, elaborator (MLIRGen), train-block checker and
// MLIR's verifier. Any input may be rejected with diagnostics; none may
// crash, assert, hang or leak. Imports are not followed (the fuzzer's input
// is one file), so that a run never reads the disk.
//
// Built by the `sanitize` preset (clang with libFuzzer, AddressSanitizer and
// UndefinedBehaviorSanitizer); test/fuzz runs it over the repository's
// `.mass` files as seeds.
//
//===----------------------------------------------------------------------===//

#include "compiler/Elaborator.h"
#include "compiler/Parser.h"
#include "compiler/Program.h"
#include "compiler/TrainConfig.h"
#include "dialects/Mass/MassDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdint>
#include <cstdlib>

namespace {

mlir::MLIRContext &fuzzContext() {
  static mlir::MLIRContext *context = [] {
    mlir::DialectRegistry registry;
    registry.insert<mass::MassDialect, mlir::func::FuncDialect,
                    mlir::arith::ArithDialect>();
    auto *c = new mlir::MLIRContext(registry);
    c->loadAllAvailableDialects();
    c->disableMultithreading();
    return c;
  }();
  return *context;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlir::MLIRContext &context = fuzzContext();
  // Diagnostics are the expected answer to most inputs: count, don't print.
  // MASS_FUZZ_VERBOSE=1 prints them (to see why a seed is rejected).
  static const bool verbose = std::getenv("MASS_FUZZ_VERBOSE") != nullptr;
  mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &d) {
    if (verbose)
      llvm::errs() << d.getLocation() << ": " << d.str() << "\n";
    return mlir::success();
  });

  llvm::SourceMgr sourceMgr;
  unsigned id = sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(data), size),
          "fuzz.mass"),
      llvm::SMLoc());
  mlir::FailureOr<std::unique_ptr<mass::ast::Module>> parsed =
      mass::parseFile(sourceMgr, id, context);
  if (mlir::failed(parsed))
    return 0;
  mass::Program program;
  program.modules.push_back(std::move(*parsed));

  // The graph view's record rides along, and a verified model is drawn.
  mass::ModelGraph graph;
  mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> module =
      mass::buildModule(context, program, &graph);
  if (mlir::failed(module) ||
      mlir::failed(mass::attachTrainConfig(**module, program)))
    return 0;
  if (mlir::succeeded(mlir::verify(**module)))
    (void)mass::printDot(**module, graph, llvm::nulls());
  return 0;
}
