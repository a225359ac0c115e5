//===- Stats.cpp - Kernel and buffer counts of lowered functions ----------===//

#include "codegen/Stats.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/Support/Format.h"

using namespace mlir;
namespace abi = mass::abi;

llvm::StringMap<mass::KernelStats> mass::collectKernelStats(ModuleOp module) {
  llvm::StringMap<KernelStats> stats;
  for (auto func : module.getOps<func::FuncOp>()) {
    KernelStats &s = stats[func.getSymName()];
    Operation *ret = func.getBody().front().getTerminator();
    func.walk([&](linalg::LinalgOp op) {
      ++s.kernels;
      for (Value r : op->getResults()) {
        if (llvm::is_contained(ret->getOperands(), r))
          continue;
        auto type = cast<RankedTensorType>(r.getType());
        int64_t elements = 1;
        bool perSample = false;
        for (int64_t d : type.getShape()) {
          if (ShapedType::isDynamic(d))
            perSample = true;
          else
            elements *= d;
        }
        int64_t bytes = elements * type.getElementTypeBitWidth() / 8;
        (perSample ? s.bytesPerSample : s.fixedBytes) += bytes;
      }
    });
  }
  return stats;
}

static std::string formatBytes(const mass::KernelStats &s) {
  std::string out;
  llvm::raw_string_ostream os(out);
  os << s.bytesPerSample << " B/sample + " << s.fixedBytes << " B";
  return out;
}

void mass::printKernelStats(const llvm::StringMap<KernelStats> &before,
                            const llvm::StringMap<KernelStats> &after,
                            llvm::raw_ostream &os) {
  os << llvm::left_justify("entry", 12) << " "
     << llvm::left_justify("loop nests", 18) << " intermediate buffers\n";
  for (llvm::StringRef name : abi::kEntries) {
    auto b = before.find(name), a = after.find(name);
    if (b == before.end() || a == after.end())
      continue;
    std::string nests = std::to_string(b->second.kernels) + " -> " +
                        std::to_string(a->second.kernels);
    os << llvm::left_justify(name, 12) << " " << llvm::left_justify(nests, 18)
       << " " << formatBytes(b->second) << " -> " << formatBytes(a->second)
       << "\n";
  }
}
