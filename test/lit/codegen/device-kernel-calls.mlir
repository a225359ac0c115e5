// RUN: mass-opt --split-input-file --verify-diagnostics --mass-device-kernel-calls %s | FileCheck %s

// Attention's kernel, called once per sample and head from a parallel loop
// on the CPU, becomes one host call of the GPU runtime's kernel that takes
// the loop's trip count where the CPU's took its index.
// CHECK-NOT: @mass_attention_forward(
// CHECK: func.func private @mass_cuda_attention_forward(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, {{.*}}, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-NOT: @mass_attention_forward(
// CHECK-LABEL: func.func @attention
// CHECK-NOT: scf.parallel
// CHECK: %[[N:.*]] = arith.muli %{{.*}}, %c2 : index
// CHECK: %[[COUNT:.*]] = arith.index_cast %[[N]] : index to i64
// CHECK: %[[HEADS:.*]] = arith.constant 2 : i64
// CHECK: %[[CAUSAL:.*]] = arith.constant 1 : i64
// CHECK: call @mass_cuda_attention_forward(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[COUNT]], %[[HEADS]], %[[CAUSAL]])
// CHECK-NOT: scf.parallel
#any = strided<[?, ?, ?], offset: ?>
func.func private @mass_attention_forward(memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, i64, i64, i64) attributes {llvm.emit_c_interface}
func.func @attention(%q: memref<?x?x?xf32, #any>, %out: memref<?x?x?xf32, #any>, %lse: memref<?x?x?xf32, #any>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %b = memref.dim %q, %c0 : memref<?x?x?xf32, #any>
  %n = arith.muli %b, %c2 : index
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %index = arith.index_cast %i : index to i64
    %heads = arith.constant 2 : i64
    %causal = arith.constant 1 : i64
    func.call @mass_attention_forward(%q, %q, %q, %out, %lse, %index, %heads, %causal) : (memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, memref<?x?x?xf32, #any>, i64, i64, i64) -> ()
    scf.reduce
  }
  return
}

// -----

// A kernel the host calls once (layer norm's sums) is renamed.
// CHECK: func.func private @mass_cuda_layernorm_backward_sums(
// CHECK-LABEL: func.func @sums
// CHECK: call @mass_cuda_layernorm_backward_sums(%arg0, %arg1, %arg2)
#any3 = strided<[?, ?, ?], offset: ?>
#any1 = strided<[?], offset: ?>
func.func private @mass_layernorm_backward_sums(memref<?x?x?xf32, #any3>, memref<?xf32, #any1>, memref<?xf32, #any1>) attributes {llvm.emit_c_interface}
func.func @sums(%p: memref<?x?x?xf32, #any3>, %w: memref<?xf32, #any1>, %b: memref<?xf32, #any1>) {
  func.call @mass_layernorm_backward_sums(%p, %w, %b) : (memref<?x?x?xf32, #any3>, memref<?xf32, #any1>, memref<?xf32, #any1>) -> ()
  return
}

// -----

// A loop that does more than call the kernel cannot become one call.
#any = strided<[?], offset: ?>
func.func private @mass_kernel(memref<?xf32, #any>, i64) attributes {llvm.emit_c_interface}
func.func @busy(%x: memref<?xf32, #any>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %index = arith.index_cast %i : index to i64
    memref.store %f, %x[%i] : memref<?xf32, #any>
    // expected-error @+1 {{the runtime kernel 'mass_kernel' is called from a loop the CUDA target cannot launch as one call}}
    func.call @mass_kernel(%x, %index) : (memref<?xf32, #any>, i64) -> ()
    scf.reduce
  }
  return
}

// -----

// A sum over the processes, outside any loop, is renamed.
#any1s = strided<[?], offset: ?>
// CHECK-LABEL: func.func @sum_ranks
// CHECK: call @mass_cuda_sum_ranks(%arg0)
func.func private @mass_sum_ranks(memref<?xf32, #any1s>) attributes {llvm.emit_c_interface}
func.func @sum_ranks(%x: memref<?xf32, #any1s>) {
  func.call @mass_sum_ranks(%x) : (memref<?xf32, #any1s>) -> ()
  return
}
