//===- Diagnostics.h - Source locations for MLIR's diagnostic engine ------===//
#ifndef MASS_COMPILER_DIAGNOSTICS_H
#define MASS_COMPILER_DIAGNOSTICS_H

#include "compiler/AST.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"

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

} // namespace mass

#endif // MASS_COMPILER_DIAGNOSTICS_H
