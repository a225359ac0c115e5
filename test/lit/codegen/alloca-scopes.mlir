// RUN: mass-opt --mass-alloca-scopes %s | FileCheck %s

// A loop body that allocates on the stack releases it each iteration; a
// body that allocates nothing is left alone.
// CHECK-LABEL: func.func @panels
func.func @panels(%n: index, %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // CHECK: scf.for
  // CHECK-NEXT: %[[SP:.*]] = llvm.intr.stacksave : !llvm.ptr
  // CHECK-NEXT: memref.alloca() : memref<256x32xf32>
  // CHECK: llvm.intr.stackrestore %[[SP]] : !llvm.ptr
  // CHECK-NEXT: }
  scf.for %i = %c0 to %n step %c1 {
    %panel = memref.alloca() : memref<256x32xf32>
    %v = memref.load %panel[%c0, %c0] : memref<256x32xf32>
    memref.store %v, %out[%i] : memref<?xf32>
  }
  // CHECK: scf.for
  // CHECK-NOT: llvm.intr.stacksave
  // CHECK: return
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %out[%c0] : memref<?xf32>
    memref.store %v, %out[%i] : memref<?xf32>
  }
  return
}
