//===- Stats.h - Kernel and buffer counts of lowered functions --*- C++ -*-===//
#ifndef MASS_CODEGEN_STATS_H
#define MASS_CODEGEN_STATS_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

namespace mass {

/// Per function, after lowering to linalg: the loop nests (one per linalg
/// op) and the bytes of the tensors that pass between them (the values no
/// function returns), as bytes per sample of the batch plus fixed bytes.
struct KernelStats {
  unsigned kernels = 0;
  int64_t bytesPerSample = 0;
  int64_t fixedBytes = 0;
};

llvm::StringMap<KernelStats> collectKernelStats(mlir::ModuleOp module);

/// Prints one line per entry point: before -> after.
void printKernelStats(const llvm::StringMap<KernelStats> &before,
                      const llvm::StringMap<KernelStats> &after,
                      llvm::raw_ostream &os);

} // namespace mass

#endif // MASS_CODEGEN_STATS_H
