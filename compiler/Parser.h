//===- Parser.h - From Mass source text to the AST --------------*- C++ -*-===//
#ifndef MASS_COMPILER_PARSER_H
#define MASS_COMPILER_PARSER_H

#include "compiler/AST.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/Support/SourceMgr.h"

namespace mass {

/// Parses the buffer `bufferId` of `sourceMgr`. Syntax errors are reported
/// through the context's diagnostic engine at their source location.
mlir::FailureOr<std::unique_ptr<ast::Module>>
parseFile(llvm::SourceMgr &sourceMgr, unsigned bufferId,
          mlir::MLIRContext &context);

} // namespace mass

#endif // MASS_COMPILER_PARSER_H
