// RUN: mass-opt --mass-outer-parallel %s | FileCheck %s

// A 2-D parallel nest keeps its first dimension parallel; a parallel loop
// inside another becomes a sequential loop.
// CHECK-LABEL: func.func @nest
func.func @nest(%a: memref<?x8xf32>, %b: memref<8x4xf32>, %c: memref<?x4xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  // CHECK: scf.parallel (%[[M:.*]]) = (%c0) to (%{{.*}}) step (%c1) {
  // CHECK-NEXT: scf.for %[[K:.*]] = %c0 to %c8 step %c1 {
  // CHECK-NEXT: scf.for %[[N:.*]] = %c0 to %c4 step %c1 {
  // CHECK: memref.load %{{.*}}[%[[M]], %[[K]]]
  // CHECK: memref.store %{{.*}}, %{{.*}}[%[[M]], %[[N]]]
  // CHECK-NOT: scf.parallel
  scf.parallel (%m) = (%c0) to (%n) step (%c1) {
    scf.for %k = %c0 to %c8 step %c1 {
      scf.parallel (%j) = (%c0) to (%c4) step (%c1) {
        %x = memref.load %a[%m, %k] : memref<?x8xf32>
        %y = memref.load %b[%k, %j] : memref<8x4xf32>
        %z = memref.load %c[%m, %j] : memref<?x4xf32>
        %p = arith.mulf %x, %y : f32
        %s = arith.addf %z, %p : f32
        memref.store %s, %c[%m, %j] : memref<?x4xf32>
        scf.reduce
      }
    }
    scf.reduce
  }
  return
}

// CHECK-LABEL: func.func @two_dims
func.func @two_dims(%a: memref<?x4xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  // CHECK: scf.parallel (%[[I:.*]]) = (%c0) to (%{{.*}}) step (%c1) {
  // CHECK-NEXT: scf.for %[[J:.*]] = %c0 to %c4 step %c1 {
  // CHECK-NEXT: memref.store %{{.*}}, %{{.*}}[%[[I]], %[[J]]]
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c4) step (%c1, %c1) {
    memref.store %f, %a[%i, %j] : memref<?x4xf32>
    scf.reduce
  }
  return
}

// Threads are not worth starting for a nest inside a sequential loop (a
// column sum's inner loop) or for a small nest with constant bounds; a
// matmul kernel's panels keep them wherever they are.
// CHECK-LABEL: func.func @worth
// CHECK: scf.for
// CHECK-NEXT: scf.for
// CHECK: scf.for
// CHECK-NEXT: scf.for
// CHECK: scf.for
// CHECK-NEXT: scf.parallel
// CHECK: mass.parallel_kernel
func.func @worth(%a: memref<?x8xf32>, %s: memref<8xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %n step %c1 {
    scf.parallel (%j) = (%c0) to (%c8) step (%c1) {
      %x = memref.load %a[%i, %j] : memref<?x8xf32>
      memref.store %x, %s[%j] : memref<8xf32>
      scf.reduce
    }
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%c16, %c8) step (%c1, %c1) {
    %x = memref.load %s[%j] : memref<8xf32>
    memref.store %x, %a[%i, %j] : memref<?x8xf32>
    scf.reduce
  }
  scf.for %i = %c0 to %n step %c1 {
    scf.parallel (%j) = (%c0) to (%c8) step (%c1) {
      %x = memref.load %a[%i, %j] : memref<?x8xf32>
      memref.store %x, %s[%j] : memref<8xf32>
      scf.reduce
    } {mass.parallel_kernel}
  }
  return
}

// A first dimension that runs once (a convolution's single group) gives
// threads nothing to split: the next one is the parallel loop, the unit
// one a loop inside it. A nest that runs once in all is sequential.
// CHECK-LABEL: func.func @unit_first
func.func @unit_first(%x: memref<1x64x256xf32>, %y: memref<1x64x256xf32>, %s: memref<1xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c64 = arith.constant 64 : index
  // CHECK: scf.parallel (%[[C:.*]]) = (%c0) to (%c64) step (%c1) {
  // CHECK-NEXT: scf.for %[[G:.*]] = %c0 to %c1 step %c1 {
  // CHECK-NEXT: scf.for %[[W:.*]] = %c0 to %c256 step %c1 {
  // CHECK: memref.load %{{.*}}[%[[G]], %[[C]], %[[W]]]
  scf.parallel (%g, %c, %w) = (%c0, %c0, %c0) to (%c1, %c64, %c256) step (%c1, %c1, %c1) {
    %v = memref.load %x[%g, %c, %w] : memref<1x64x256xf32>
    %d = arith.addf %v, %v : f32
    memref.store %d, %y[%g, %c, %w] : memref<1x64x256xf32>
    scf.reduce
  }
  // CHECK-NOT: scf.parallel
  // CHECK: scf.for %{{.*}} = %c0 to %c1 step %c1 {
  // CHECK: return
  scf.parallel (%i) = (%c0) to (%c1) step (%c1) {
    %v = memref.load %s[%i] : memref<1xf32>
    %d = arith.addf %v, %v : f32
    memref.store %d, %s[%i] : memref<1xf32>
    scf.reduce
  }
  return
}
