// RUN: mass-opt --mass-outline-kernels %s | FileCheck %s

// Each outermost loop nest becomes a call to a private kernel that takes
// what the nest reads from outside (constants are copied in). The two
// nests of @step that scale different buffers the same way share one
// kernel, and @predict's equal nest calls it too; the nest that adds
// instead has its own. Ops between the nests stay in place.

// CHECK-LABEL: func.func @step(
// CHECK-SAME: %[[A:.*]]: memref<64xf32>, %[[B:.*]]: memref<64xf32>, %[[S:.*]]: f32)
// CHECK: call @step_kernel0(%[[A]], %[[S]]) : (memref<64xf32>, f32) -> ()
// CHECK-NEXT: %[[T:.*]] = arith.addf %[[S]], %[[S]] : f32
// CHECK-NEXT: call @step_kernel0(%[[B]], %[[T]]) : (memref<64xf32>, f32) -> ()
// CHECK-NEXT: call @step_kernel2(%[[A]], %[[B]]) : (memref<64xf32>, memref<64xf32>) -> ()
// CHECK-NEXT: return
func.func @step(%a: memref<64xf32>, %b: memref<64xf32>, %s: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    %v = memref.load %a[%i] : memref<64xf32>
    %w = arith.mulf %v, %s : f32
    memref.store %w, %a[%i] : memref<64xf32>
  }
  %t = arith.addf %s, %s : f32
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    %v = memref.load %b[%i] : memref<64xf32>
    %w = arith.mulf %v, %t : f32
    memref.store %w, %b[%i] : memref<64xf32>
  }
  scf.for %i = %c0 to %c64 step %c1 {
    %v = memref.load %a[%i] : memref<64xf32>
    %w = memref.load %b[%i] : memref<64xf32>
    %x = arith.addf %v, %w : f32
    memref.store %x, %b[%i] : memref<64xf32>
  }
  return
}

// The kernels follow their function: private, internal to LLVM, never
// inlined; the duplicates are gone.
// CHECK-LABEL: func.func private @step_kernel0(
// CHECK-SAME: %[[M:.*]]: memref<64xf32>, %[[F:.*]]: f32)
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, mass.kernel, no_inline}
// CHECK: scf.parallel
// CHECK: arith.mulf %{{.*}}, %[[F]] : f32
// CHECK-NOT: func.func private @step_kernel1
// CHECK-LABEL: func.func private @step_kernel2(
// CHECK: arith.addf

// CHECK-NOT: func.func private @predict_kernel
// CHECK-LABEL: func.func @predict(
// CHECK: call @step_kernel0(
// CHECK-NEXT: return
func.func @predict(%a: memref<64xf32>, %s: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    %v = memref.load %a[%i] : memref<64xf32>
    %w = arith.mulf %v, %s : f32
    memref.store %w, %a[%i] : memref<64xf32>
  }
  return
}

// A loop that yields a value returns it from its kernel.
// CHECK-LABEL: func.func @total(
// CHECK: %[[SUM:.*]] = call @total_kernel0(%{{.*}}) : (memref<64xf32>) -> f32
// CHECK-NEXT: return %[[SUM]] : f32
func.func @total(%a: memref<64xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %sum = scf.for %i = %c0 to %c64 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %a[%i] : memref<64xf32>
    %n = arith.addf %acc, %v : f32
    scf.yield %n : f32
  }
  return %sum : f32
}

// CHECK-LABEL: func.func private @total_kernel0(
// CHECK-SAME: %{{.*}}: memref<64xf32>) -> f32
// CHECK: arith.constant 0.000000e+00 : f32
// CHECK: scf.for
// CHECK: return %{{.*}} : f32
