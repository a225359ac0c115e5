//===- Diagnostics.cpp - Suggestions and the error limit ------------------===//

#include "compiler/Diagnostics.h"

#include "mass/nearest.h"

#include "llvm/Support/raw_ostream.h"

using namespace mass;

llvm::StringRef mass::nearest(llvm::StringRef name,
                              llvm::ArrayRef<llvm::StringRef> candidates) {
  std::vector<std::string_view> views(candidates.begin(), candidates.end());
  std::string_view best = nearestName(std::string_view(name), views);
  return llvm::StringRef(best.data(), best.size());
}

void mass::suggest(mlir::InFlightDiagnostic &diag, llvm::StringRef name,
                   llvm::ArrayRef<llvm::StringRef> candidates) {
  llvm::StringRef best = nearest(name, candidates);
  if (!best.empty())
    diag << "; did you mean '" << best << "'?";
}

ErrorLimiter::ErrorLimiter(mlir::MLIRContext *context, unsigned maxErrors,
                           llvm::StringRef tool)
    : mlir::ScopedDiagnosticHandler(context), maxErrors(maxErrors),
      tool(tool.str()) {
  setHandler([this](mlir::Diagnostic &diag) { return handle(diag); });
}

mlir::LogicalResult ErrorLimiter::handle(mlir::Diagnostic &diag) {
  // Success: the diagnostic stops here. Failure: the printer shows it.
  if (diag.getSeverity() == mlir::DiagnosticSeverity::Note)
    return mlir::success(limitReached || droppingNotes);
  if (diag.getSeverity() != mlir::DiagnosticSeverity::Error) {
    droppingNotes = false;
    return mlir::success(limitReached);
  }
  if (limitReached)
    return mlir::success();
  std::string key;
  llvm::raw_string_ostream os(key);
  os << diag.getLocation() << '\n' << diag.str();
  droppingNotes = !seen.insert(key).second;
  if (droppingNotes)
    return mlir::success();
  if (maxErrors && count == maxErrors) {
    limitReached = true;
    llvm::errs() << tool << ": error: too many errors emitted, stopping now "
                 << "(--max-errors=" << maxErrors << ")\n";
    return mlir::success();
  }
  ++count;
  return mlir::failure();
}
