//===- Pipeline.h - From the mass dialect to an executable ------*- C++ -*-===//
#ifndef MASS_CODEGEN_PIPELINE_H
#define MASS_CODEGEN_PIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

#include <memory>

namespace mass {

/// Registers the dialects, bufferization models and LLVM translations that
/// code generation uses.
void registerCodegen(mlir::DialectRegistry &registry);

/// Makes mass.attention and its gradient bufferize into calls of the
/// runtime's kernels (KernelCalls.cpp); registerCodegen includes it.
void registerKernelCalls(mlir::DialectRegistry &registry);

/// Reverse-mode differentiation, the optimizer step and the predictions'
/// split (`--emit=grad`).
void addDifferentiate(mlir::OpPassManager &pm);

/// Whether the pipeline fuses: `fuse` asks for it, and it runs from -O1.
inline bool fusionEnabled(bool fuse, unsigned optLevel) {
  return fuse && optLevel >= 1;
}

/// Groups elementwise chains and reductions into mass.fusion ops
/// (`--emit=fused`).
void addFusion(mlir::OpPassManager &pm);

/// mass ops to linalg on tensors (`--emit=linalg`); with `fuse`, each
/// fusion group becomes one loop nest and the ops one mass op lowers to
/// are fused; from -O2 on, float arithmetic may be reassociated and
/// contracted.
void addLowerToLinalg(mlir::OpPassManager &pm, unsigned optLevel,
                      bool fuse = true);
/// f32 lanes in the host's widest vector registers (16 with AVX-512, 8
/// with AVX2, else 4).
int64_t hostVectorWidth();

/// One-shot bufferization of the whole module, as both targets run it:
/// every result in its own buffer, returned buffers as out-parameters,
/// constants as named globals, and a call of the runtime after each
/// gradient's last write (mass-grad-ready).
void addBufferization(mlir::OpPassManager &pm);

/// Bufferization and conversion to the LLVM dialect, for the CPU. From -O1
/// on, matmuls become vector kernels `vectorWidth` lanes wide (0: the
/// host's).
void addCpuToLLVM(mlir::OpPassManager &pm, unsigned optLevel,
                  int64_t vectorWidth = 0);

/// The whole CPU pipeline from `--emit=mass` to the LLVM dialect, as
/// massc runs it: differentiate, fuse (from -O1, unless `fuse` is false),
/// lower to linalg, then to LLVM.
void addMassToLLVM(mlir::OpPassManager &pm, unsigned optLevel, bool fuse,
                   int64_t vectorWidth);

/// addCpuToLLVM's last stages: loops, views and math of the host to the LLVM
/// dialect.
void addHostLoopsToLLVM(mlir::OpPassManager &pm);

/// Registers the GPU and NVVM dialects and the NVVM target, for the CUDA
/// target (CudaPipeline.cpp).
void registerCudaCodegen(mlir::DialectRegistry &registry);

/// Registers the upstream GPU passes of addCudaKernels by name, for
/// massc's --mlir-print-ir-after (mass-opt registers every pass).
void registerCudaPassNames();

/// The CUDA target up to its kernel launches: the bufferized program with
/// each loop nest a gpu.launch and the runtime's kernels called by the
/// host.
void addCudaLaunches(mlir::OpPassManager &pm);

/// The CUDA target's program with every launch run as loops on the host,
/// lowered to the LLVM dialect: what `--emulate-gpu` links with the
/// runtime's emulated device, to test the GPU program without a GPU.
void addEmulatedCudaToLLVM(mlir::OpPassManager &pm);

/// From `--emit=linalg` to GPU kernels compiled to PTX for `chip` (such as
/// sm_90): bufferization as for the CPU, each loop nest a kernel launch,
/// the kernels outlined into one module and lowered through NVVM, linked
/// with the libdevice of the CUDA toolkit at `cudaPath`; with `cubin`,
/// assembled by the toolkit's ptxas, so that the program loads machine
/// code instead of compiling PTX when it starts.
void addCudaKernels(mlir::OpPassManager &pm, unsigned optLevel,
                    llvm::StringRef chip, llvm::StringRef cudaPath,
                    bool cubin = false);

/// Whether the toolkit at `cudaPath` has ptxas (bin/ptxas).
bool hasPtxas(llvm::StringRef cudaPath);

/// After addCudaKernels: the host side (sizes, descriptors, launches) to
/// the LLVM dialect, each launch a call of the runtime's mgpu* functions,
/// the kernels' PTX a global string.
void addCudaHostToLLVM(mlir::OpPassManager &pm);

/// The CUDA toolkit whose libdevice the kernels link: `requested` (massc's
/// --cuda-path) when given, else $CUDA_HOME, $CUDA_PATH, $CUDA_ROOT, else
/// the toolkit found when Mass was built. Prints an error when none has
/// libdevice.
mlir::FailureOr<std::string> findCudaToolkit(llvm::StringRef requested);

/// Prints the PTX of every kernel module addCudaKernels produced, each
/// after a line `// ----- kernel module NAME`.
mlir::LogicalResult printPtx(mlir::ModuleOp module, llvm::raw_ostream &os);

/// Registers addMassToLLVM as the pass pipeline `mass-to-llvm` (options
/// opt-level, fuse, vector-width), for mass-opt.
void registerPipelines();

/// The host's triple, CPU and CPU features, which the machine code
/// depends on.
std::string hostTarget();

/// Translates the LLVM-dialect module to LLVM IR for the host, adds the
/// model descriptor and the packed entry points of runtime/include/mass/
/// abi.h, and, with `optimize`, optimises at `optLevel` (-O0: only folds
/// the memref descriptors' plumbing). The translation and each LLVM pass
/// are timed under `timing` (see massc --time-passes).
mlir::FailureOr<std::unique_ptr<llvm::Module>>
translateForHost(mlir::ModuleOp module, llvm::LLVMContext &context,
                 const std::string &descriptor, unsigned optLevel,
                 bool optimize, mlir::TimingScope &timing);

/// Compiles `module` for the host CPU into the bytes of a static archive:
/// an object per part of the module's functions (up to 8, by the module
/// alone), compiled on `threads` threads, each part optimised at
/// `optLevel` first, on its own, with `optimize` (as translateForHost
/// does). The code does not depend on `threads`.
mlir::FailureOr<std::string> emitArchive(llvm::Module &module,
                                         unsigned optLevel, unsigned threads,
                                         bool optimize,
                                         mlir::TimingScope &timing);

/// Links every object of `archive` with the runtime's libraries
/// (libmass_runtime.a, after libmass_cuda.a for the CUDA target) into the
/// executable `output`.
mlir::LogicalResult linkExecutable(llvm::StringRef archive,
                                   llvm::ArrayRef<std::string> libraries,
                                   llvm::StringRef output,
                                   mlir::TimingScope &timing);

} // namespace mass

#endif // MASS_CODEGEN_PIPELINE_H
