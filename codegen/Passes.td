//===- Passes.td - Code generation passes ------------------*- tablegen -*-===//
#ifndef MASS_CODEGEN_PASSES_TD
#define MASS_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

def MassLowerToLinalg : Pass<"mass-lower-to-linalg", "::mlir::ModuleOp"> {
  let summary = "Lowers mass ops to linalg, tensor, arith and math on tensors";
  let description = [{
    Every mass op becomes linalg structured ops (generic, matmul, transpose,
    fill) on tensors, with tensor.empty destinations sized from the operands'
    dynamic dimensions, ready for one-shot bufferization.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect"
  ];
  let options = [
    Option<"fastMath", "fast-math", "bool", /*default=*/"false",
           "Let float arithmetic be reassociated and contracted into FMAs, "
           "as BLAS kernels do (vectorised reductions)">
  ];
}

def MassCInterfaces : Pass<"mass-c-interfaces", "::mlir::ModuleOp"> {
  let summary = "Gives the entry points C interfaces for the runtime";
  let description = [{
    Every function gets `llvm.emit_c_interface` (one pointer per memref
    descriptor: the packed calls of abi.h), and loses its argument and
    result attributes (`mass.param = ...`), which the model descriptor
    already holds. A function with gradient results (`mass.grad`) keeps
    where their out-parameters will be, as `mass.grad_values` (argument
    count + result index), for mass-grad-ready. The first pass of the CPU pipeline after linalg, so that
    `mass-opt` runs what `massc` runs.
  }];
}

def MassGradReady : Pass<"mass-grad-ready", "::mlir::ModuleOp"> {
  let summary = "Calls the runtime as soon as each gradient is final";
  let description = [{
    Runs after bufferization, when each result of an entry point is an
    out-parameter. For every entry point that mass-c-interfaces gave a
    `mass.grad_values` attribute (the argument positions of its gradients'
    out-parameters, the runtime's value indices), finds the last op of the
    function's block that touches each such buffer or a memref made from
    it (a view), and inserts `call @mass_grad_ready(value)` after it. The
    module's `mass.grad_ready` maps the function to the values in the order
    of the calls; the model descriptor carries it, so every process knows
    the order before its first step. Under mpirun the runtime starts the
    sum of a bucket of gradients over the processes when the last of them
    is ready, while the backward pass goes on; on one process the call
    returns at once. A function of more than one block gets no calls (a
    warning), and the runtime sums after it.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
}

def MassConstantGlobals : Pass<"mass-constant-globals", "::mlir::ModuleOp"> {
  let summary = "Names and orders the constant globals by their first read";
  let description = [{
    One-shot bufferization turns tensor constants into `memref.global`s
    named and placed in the order it visits functions, which follows a hash
    of their addresses: the same module could come out with other names. The
    constant globals are renamed `__mass_constant_K` and placed at the top
    of the module in the order the module first reads them, so the output
    depends on the input alone (`mass-opt` and `massc` agree).
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def MassFuseLoops : Pass<"mass-fuse-loops", "::mlir::ModuleOp"> {
  let summary = "Fuses producer-consumer linalg ops into one loop nest";
  let description = [{
    The linalg ops lowered from one `mass.fusion` group (marked
    `mass.fusion_group`) are fused until the group is one linalg.generic:
    a producer's result that ops outside the group read becomes one more
    result of the fused op. Outside groups, elementwise producers with a
    single use are fused into their consumer when both run the same number
    of loops (the several ops one mass op lowers to). A producer is not
    fused into a consumer with more loops (a contraction), where it would
    be recomputed for every element of the extra loop. The marks are
    removed at the end.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def MassDistinctResults : Pass<"mass-distinct-results", "::mlir::func::FuncOp"> {
  let summary = "Gives every returned tensor and every destination its own buffer";
  let description = [{
    CSE can make one value the result of several outputs (two metrics with
    the same count), and a function may return an argument unchanged. Each
    such repeated or argument result gets a copy, so that after
    bufferization every result is a distinct allocation that can become an
    out-parameter. Likewise CSE merges equal fills and empty tensors that
    several ops write into; each writer but the last gets its own, so that
    bufferization does not copy a zero-filled buffer where a fill does.
  }];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect"];
}

def MassInPlaceResults : Pass<"mass-in-place-results", "::mlir::ModuleOp"> {
  let summary = "Finds the functions whose parameter and state results may overwrite their arguments";
  let description = [{
    The optimizer step returns each parameter and each optimizer state
    anew (`mass.param` and `mass.state` results with the names of the
    arguments they replace). Writing them over the arguments saves a
    second copy of the model and half the step's memory traffic, and is
    safe when each such result is its argument unchanged or comes from an
    all-parallel linalg.generic that reads the argument only element by
    element (identity maps, as an input) and writes the result the same
    way without reading its old value, and every other op that reads the
    argument reads it as a linalg input before that generic. The module's
    `mass.in_place` attribute lists the functions for which this holds for
    every such result; the runtime then passes the same buffers as
    arguments and results.
  }];
}

def MassArena : Pass<"mass-arena", "::mlir::ModuleOp"> {
  let summary = "Plans every intermediate buffer of a function into one arena";
  let description = [{
    The top-level memref.alloc ops of each function become memref.view ops
    of one byte buffer, a new last argument (`memref<?xi8>`) that the
    caller provides. Each buffer is live from its allocation to the last
    op that reads it or a view of it; buffers that are not live at the
    same time share memory (first fit, largest first, 64-byte aligned).
    Sizes with the batch in them form a second pool, placed after the
    fixed one at offsets that scale with the batch. The module's
    `mass.arena` attribute maps each function with an arena to its
    [bytes, bytes per sample]. Allocations with another dynamic size, or
    one that escapes, keep their allocation.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

def MassApproximateMath : Pass<"mass-approximate-math", "::mlir::ModuleOp"> {
  let summary = "tanh, erf, exp, log and the like as polynomials in arith ops";
  let description = [{
    LLVM has no instruction for tanh, erf, exp or log: they become a call
    of libm per element, which no loop vectoriser can widen (GELU's tanh
    was a third of a GPT's training step, the softmax's exp another tenth).
    MLIR's polynomial approximations (Eigen's rational tanh, Cephes-style
    exp and log, accurate to a few ulp) are arith ops, so their loops
    vectorise. NaN and infinities keep their meaning. sqrt keeps its LLVM
    intrinsic: one instruction on vectors.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::vector::VectorDialect"];
}

def MassStridedCopies : Pass<"mass-strided-copies", "::mlir::func::FuncOp"> {
  let summary = "Turns copies that involve strided views into linalg.copy";
  let description = [{
    memref.copy between buffers of identity layout lowers to memcpy; with a
    strided view on either side (a slice of a concatenation) it would call
    MLIR's C runner library, which training programs do not link. Those
    copies become linalg.copy, which lowers to loops. With `all` (the CUDA
    target, where the buffers are device memory) every copy does, so that
    it runs as a kernel.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
  let options = [
    Option<"all", "all", "bool", /*default=*/"false",
           "Every copy, identity layouts included">
  ];
}

def MassOutlineKernels : Pass<"mass-outline-kernels", "::mlir::ModuleOp"> {
  let summary = "Moves each outermost loop nest into a function of its own, shared by equal nests";
  let description = [{
    Every outermost scf.for and scf.parallel of a function with a body
    becomes a private function `<function>_kernel<N>` (attributes
    `mass.kernel`, never inlined) that takes the values the nest reads from
    outside it (constants are copied in) and returns its results, and a
    call in its place. Kernels whose text is equal but for their names are
    then one function. LLVM compiles many small functions much faster than
    one long one (the OpenMP translation extracts each parallel region from
    its whole function), and equal nests compile once.

    With `optimize-for-size`, the kernels made here that only move data
    (no arithmetic on floats: an im2col copy) or whose loops are vector
    code already (mass-vectorize-rows' rows) are optimised for size
    (LLVM's `optsize`): LLVM then neither unrolls them nor vectorises them
    again behind runtime checks, which halves the LLVM IR of a ResNet
    (110k lines to 72k) and its code generation time, at the same
    training speed. Scalar arithmetic keeps LLVM's unrolling: a max
    pool's gradient, whose index tests it folds away, runs 19 times
    slower without.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::LLVM::LLVMDialect"];
  let options = [
    Option<"optimizeForSize", "optimize-for-size", "bool", /*default=*/"false",
           "Mark the kernels optsize for LLVM">
  ];
}

def MassAllocaScopes : Pass<"mass-alloca-scopes", "::mlir::func::FuncOp"> {
  let summary = "Releases a loop body's stack allocations after each iteration";
  let description = [{
    Saves the stack pointer at the start of every loop body that holds a
    memref.alloca and restores it at the end (llvm.intr.stacksave and
    stackrestore): the loops' own promise to free such memory per iteration
    does not survive their lowering to branches, and a large loop would
    overflow the stack.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def MassVectorizeRows : Pass<"mass-vectorize-rows", "::mlir::func::FuncOp"> {
  let summary = "Runs the short innermost rows of linalg.generic ops as vectors";
  let description = [{
    A linalg.generic on buffers (f32, i32 or i64) whose innermost loop is
    parallel, of a static size within [min-width, max-width], and walked with
    unit stride by every result and with unit stride or stride 2 (a pool's
    read: two vectors, then the even lanes) by every input that depends on
    it (others are read once per row) becomes outer loops around, per chunk
    of the vector width (the last one masked), one vector load per operand,
    the body's elementwise ops on vectors and one vector store per result.
    Reduction loops just outside the row (a window's rows and columns, a
    sum's leading axis) run inside each chunk with its results carried in
    registers: one load and one store of them per chunk, not per step.
    Longer or dynamic rows that every operand walks with unit stride (or
    not at all) run as a loop of such chunks, then one masked chunk: LLVM
    would vectorise them only behind a runtime check that the output does
    not overlap an input, which fails for an update in place.
    Copies (linalg.copy) are generalised first. Image rows (28, 14, 7 elements) are the
    case: LLVM unrolls such short loops completely and leaves them scalar.
  }];
  let dependentDialects = [
    "::mlir::vector::VectorDialect", "::mlir::scf::SCFDialect",
    "::mlir::affine::AffineDialect", "::mlir::memref::MemRefDialect"
  ];
  let options = [
    Option<"minWidth", "min-width", "int64_t", /*default=*/"4",
           "Shortest row to vectorise">,
    Option<"maxWidth", "max-width", "int64_t", /*default=*/"64",
           "Longest row to vectorise (LLVM vectorises longer loops itself)">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "Lanes per vector; a row runs in chunks of it, the last masked">
  ];
}

def MassOuterParallel : Pass<"mass-outer-parallel", "::mlir::func::FuncOp"> {
  let summary = "Keeps only the outermost dimension of worthwhile loop nests parallel";
  let description = [{
    After linalg becomes scf.parallel loops, each outermost scf.parallel
    keeps its first dimension that runs more than once parallel (a
    convolution's single group would leave one thread working) and runs
    the others as scf.for loops inside it, so threads split the outer loop only and the inner
    loops stay plain loops that LLVM vectorises. A nest becomes sequential
    when starting threads costs more than it saves: nested in another loop
    (it would start them at every iteration), or with fewer than
    `min-work` iterations in all when its bounds are constants. Loops that
    mass-gemm marks `mass.parallel_kernel` stay parallel.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
  let options = [
    Option<"minWork", "min-work", "int64_t", /*default=*/"16384",
           "Iterations below which a nest with constant bounds runs on one "
           "thread">
  ];
}

def MassFoldTransposes : Pass<"mass-fold-transposes", "::mlir::func::FuncOp"> {
  let summary = "Reads transposed matmul operands in place";
  let description = [{
    A linalg.transpose that swaps the last two axes of a contraction's
    operand (x * W^T, dy^T * x) is folded into the contraction's indexing
    map, so no transposed copy is made: mass-gemm's kernels read A as
    [m, k] or [k, m] and pack B from [k, n] or [n, k].
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def MassGemm : Pass<"mass-gemm", "::mlir::ModuleOp"> {
  let summary = "Packed, register-blocked, vectorised matmul kernels for contractions";
  let description = [{
    Rewrites each f32 contraction on buffers, a linalg.generic over loops
    (batch..., m, k, n) computing C[b..., m, n] += A[b..., m, k] *
    B[b..., k, n] (A may also be read as A[b..., k, m] and B as
    B[b..., n, k]), into a blocked kernel. For each block of `tile-m` rows
    of C and `tile-k` steps of k, threads copy A's block into groups of
    `rows` rows, k-major, in a buffer allocated once (the arena plans it);
    then threads split C into panels two vectors wide, each copying its
    block of B into contiguous memory on the stack, zero past the edge of
    C (with fewer than four panels, threads also split the block's rows
    into chunks, each copying its panel of B). Inside, `rows` rows of C by the panel's width stay in vector
    registers while k advances, each step loading one row of the packed B
    and broadcasting one element of the packed A per row into fused
    multiply-adds. Rows left over use a one-row kernel that reads A in
    place; a panel cut by the edge of C uses masked loads and stores of C.
    Batch loops run outside, one after another. When the op just before
    fills C with a constant (a weight gradient's zero) or broadcasts a
    bias row into it, the kernel's first block of k starts from that value
    instead of reading C, and the fill only runs when k is empty. When the
    op just after is elementwise over C (an activation, a bias add), it runs
    on the block of C still in registers after the last block of k, and
    writes its own output there. C needs
    unit stride along n, and B too when read as B[k, n].

    With `share-kernels`, each contraction, with its init and epilogue,
    moves into a private function `<function>_gemm<N>` (attributes
    `mass.kernel`, never inlined) that takes its buffers with dynamic
    sizes, strides and offsets (a unit innermost stride stays) and the
    packed A, which the caller allocates; the loops above are emitted
    there. Products that differ only in their sizes and strides (a
    ResNet's convolutions, forward and backward) then call one function:
    LLVM compiles each kind of product once instead of once per layer.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect"
  ];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "f32 lanes per vector register (16 for AVX-512, 8 for AVX2)">,
    Option<"rows", "rows", "int64_t", /*default=*/"8",
           "Rows of C held in registers by the kernel (8 instead, when "
           "more rows would leave over 5% of a static m idle)">,
    Option<"tileM", "tile-m", "int64_t", /*default=*/"256",
           "Rows of C per block (A's block stays in L2)">,
    Option<"tileK", "tile-k", "int64_t", /*default=*/"256",
           "Steps of k per block (the panel of B stays in L1); a static k "
           "up to 1.5 times this is one block">,
    Option<"shareKernels", "share-kernels", "bool", /*default=*/"true",
           "Emit each product in a function shared by the products that "
           "differ only in sizes and strides">
  ];
}

def MassGpuLaunch : Pass<"mass-gpu-launch", "::mlir::func::FuncOp"> {
  let summary = "Runs each outermost parallel loop nest as one GPU kernel launch";
  let description = [{
    For the CUDA target, after linalg becomes scf.parallel loops: each
    outermost scf.parallel becomes a gpu.launch of one thread per
    iteration, `block-size` threads per block along x and as many blocks
    as the iterations need (the batch makes that count a run-time value).
    Each thread takes its iteration from its linear id, the last loop
    dimension fastest, so that neighbouring threads touch neighbouring
    elements; parallel loops nested inside become sequential loops of
    that thread. What else reads or writes device memory outside the loop
    nests (a sum to a scalar, a loss divided by its row count) runs in
    one-thread kernels, consecutive such ops in one kernel, so that the
    host only computes sizes and descriptors; the host's own buffers (stack
    allocations, constant globals: the shapes reshapes read) stay on the
    host. A reduction loop (scf.parallel with results) and a call of one of
    the CPU runtime's kernels (attention, layer norm) are not supported
    yet: errors at their locations.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::gpu::GPUDialect",
    "::mlir::scf::SCFDialect", "::mlir::func::FuncDialect"
  ];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block">
  ];
}

def MassDeviceScalars : Pass<"mass-device-scalars", "::mlir::func::FuncOp"> {
  let summary = "Scalars computed from tensors become 0-d linalg ops";
  let description = [{
    For the CUDA target, on linalg on tensors. A scalar read out of a
    tensor (tensor.extract: a loss, a count of labelled rows) and the
    arithmetic on it between the loop nests would run on the host, which
    cannot read device memory. Each such value becomes a 0-d tensor: the
    extract its tensor (or a one-element slice), each scalar op a 0-d
    linalg.generic, tensor.from_elements of it the tensor itself, a
    linalg.fill with it a broadcasting generic, and a linalg.generic that
    captured it reads it as an extra input of map `(d...) -> ()`. Any
    other use of such a scalar is an error at its location.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect"
  ];
}

def MassMergeKernelModules : Pass<"mass-merge-kernel-modules", "::mlir::ModuleOp"> {
  let summary = "Puts every outlined kernel in one gpu.module";
  let description = [{
    After gpu-kernel-outlining, which gives each kernel a module: one
    module, `@mass_kernels`, holds them all, each gpu.func named after the
    module it came from, and every gpu.launch_func refers to it there. The
    program then loads one module and ptxas assembles one. The constant
    globals outlining copied into several modules are kept once.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def MassHostShapes : Pass<"mass-host-shapes", "::mlir::func::FuncOp"> {
  let summary = "Keeps the shape operands of reshapes on the host's stack";
  let description = [{
    memref.reshape reads its shape operand on the host, when it builds the
    result's descriptor. On the CUDA target every other buffer is device
    memory, so a shape buffer that bufferization allocated (memref.alloc of
    static shape) becomes a memref.alloca: host memory, kept out of the
    arena.
  }];
}

def MassDeviceKernelCalls
    : Pass<"mass-device-kernel-calls", "::mlir::ModuleOp"> {
  let summary = "Calls the GPU runtime's kernels in place of the CPU's";
  let description = [{
    On the CPU target attention and layer norm's gradient bufferize into
    calls of the runtime's kernels (`mass_NAME`), one per sample and head
    (or chunk of rows) from a parallel loop. On the CUDA target the host
    makes one call, `mass_cuda_NAME`, that launches the GPU runtime's
    kernels over the whole loop: the loop `scf.parallel (%i) = (0) to (%n)`
    whose body is only the call goes, and the call takes `%n` where it took
    `%i`. A call outside such a loop is renamed; the CPU kernels'
    declarations go. A loop with more in it than the call is an error.
  }];
}

def MassEmulateLaunches
    : Pass<"mass-emulate-launches", "::mlir::func::FuncOp"> {
  let summary = "Runs each GPU kernel launch as loops on the host";
  let description = [{
    For testing the CUDA target where no GPU is: each `gpu.launch` becomes
    loops over its blocks and threads, in order, the body run once per
    thread with the block and thread ids the loops' indices. The kernels
    mass-gpu-launch writes share nothing between threads (no shared
    memory, no barriers), so running the threads in turn computes what the
    GPU computes. `massc --target=cuda --emulate-gpu` links the result with
    the runtime's emulated device.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
}

def MassDeviceActivations
    : Pass<"mass-device-activations", "::mlir::func::FuncOp"> {
  let summary = "A ReLU that alone reads a dense layer's product runs in place";
  let description = [{
    On the CUDA target, before the arena: a product with a bias (a bias
    broadcast into C, then C += A * B, as mass-device-gemm hands to
    cuBLASLt) whose result C (a buffer of its own) nothing but an
    elementwise `max(C, 0)` into a buffer Y of the same type reads
    becomes a ReLU of C in place, and Y's readers read C: the layer's
    pre-activation is dead after the ReLU, so mass-device-gemm can fold
    the ReLU into the product as cuBLASLt's ReLU epilogue.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect"];
}

def MassDeviceGemm : Pass<"mass-device-gemm", "::mlir::ModuleOp"> {
  let summary = "Matrix products as cuBLAS calls on the CUDA target";
  let description = [{
    Each contraction that mass-gemm would turn into a CPU kernel (C[m, n]
    += A * B, or batched over one leading dimension, of f32 buffers, A
    and B read directly or transposed) becomes one host call,
    `mass_cuda_gemm(A, B, C, a_transposed, b_transposed, accumulate)`, of
    rank-3 views (a product without a batch, or an operand that every
    batch shares, gets a leading dimension of 1). The runtime hands it to
    cuBLAS's strided batched product. A fill of zeros just before it goes
    (the product overwrites C: `accumulate` 0); a bias broadcast into C
    just before a product without a batch goes too, and the call is
    `mass_cuda_gemm_bias(A, B, C, bias, a_transposed, b_transposed,
    activation)`: cuBLASLt's bias epilogue; when the op just after it is
    a ReLU of C in place (mass-device-activations), that goes as well and
    `activation` is 1: cuBLASLt's ReLU-and-bias epilogue. When it is
    GPT-2's tanh GELU of C (or of C as [rows / T, T, n]) into a buffer Y,
    the GELU goes and the call is `mass_cuda_gemm_bias_gelu(A, B, C,
    bias, Y, a_transposed, b_transposed)`: cuBLASLt's GELU epilogue, which
    writes Y and keeps the pre-activation in C for the gradient. A product whose
    operands have no unit stride in their last two dimensions stays a loop
    nest.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // MASS_CODEGEN_PASSES_TD
