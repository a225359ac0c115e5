//===- Program.h - A .mass file and everything it imports -------*- C++ -*-===//
#ifndef MASS_COMPILER_PROGRAM_H
#define MASS_COMPILER_PROGRAM_H

#include "compiler/AST.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/Support/SourceMgr.h"

namespace mass {

/// The parsed files of one compilation, the main file first, then its
/// imports in the order they were first reached.
struct Program {
  std::vector<std::unique_ptr<ast::Module>> modules;
  const ast::Module &main() const { return *modules.front(); }
};

/// Parses `path` and, transitively, the files it imports (relative to the
/// importing file, then to each of `includeDirs`). Reports syntax errors,
/// missing files and import cycles.
mlir::FailureOr<Program> loadProgram(llvm::StringRef path,
                                     llvm::ArrayRef<std::string> includeDirs,
                                     llvm::SourceMgr &sourceMgr,
                                     mlir::MLIRContext &context);

} // namespace mass

#endif // MASS_COMPILER_PROGRAM_H
