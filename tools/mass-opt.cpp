//===- mass-opt.cpp - mlir-opt with the mass dialect ----------------------===//
//
// Registers the upstream dialects and passes that Mass's pipelines use, plus
// Mass's own, and runs MLIR's standard opt driver.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/Pipeline.h"
#include "dialects/Mass/MassDialect.h"
#include "dialects/Mass/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllPasses();
  registry.insert<mass::MassDialect>();
  mass::registerKernelCalls(registry);
  mass::registerCudaCodegen(registry);
  mass::registerMassPasses();
  mass::registerMassCodegenPasses();
  mass::registerPipelines();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Mass optimizer driver\n", registry));
}
