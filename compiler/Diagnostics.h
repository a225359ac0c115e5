//===- Diagnostics.h - Source locations for MLIR's diagnostic engine ------===//
#ifndef MASS_COMPILER_DIAGNOSTICS_H
#define MASS_COMPILER_DIAGNOSTICS_H

#include "compiler/AST.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "llvm/ADT/StringSet.h"

namespace mass {

inline mlir::Location toLocation(const ast::Loc &loc,
                                 mlir::MLIRContext *context) {
  return mlir::FileLineColLoc::get(context, loc.file, loc.line, loc.col);
}

/// Starts an error at `loc`; the message is streamed into the result.
inline mlir::InFlightDiagnostic emitError(const ast::Loc &loc,
                                          mlir::MLIRContext *context) {
  return mlir::emitError(toLocation(loc, context));
}

/// The candidate nearest to `name` (within two edits, case aside), or "".
llvm::StringRef nearest(llvm::StringRef name,
                        llvm::ArrayRef<llvm::StringRef> candidates);

/// Appends "; did you mean 'x'?" when a candidate is near `name`.
void suggest(mlir::InFlightDiagnostic &diag, llvm::StringRef name,
             llvm::ArrayRef<llvm::StringRef> candidates);

/// Stands in front of the handler that prints diagnostics, as a C
/// compiler's error limit does: after `maxErrors` errors (0: no limit) it
/// says so once and drops the rest, and an error repeated at the same place
/// with the same words (a block called twice) is dropped with its notes.
class ErrorLimiter : public mlir::ScopedDiagnosticHandler {
public:
  ErrorLimiter(mlir::MLIRContext *context, unsigned maxErrors,
               llvm::StringRef tool);
  /// The errors let through.
  unsigned errors() const { return count; }
  /// Whether the limit cut the report short.
  bool stopped() const { return limitReached; }

private:
  mlir::LogicalResult handle(mlir::Diagnostic &diag);

  unsigned maxErrors;
  std::string tool;
  unsigned count = 0;
  bool limitReached = false;
  bool droppingNotes = false;
  llvm::StringSet<> seen;
};

} // namespace mass

#endif // MASS_COMPILER_DIAGNOSTICS_H
