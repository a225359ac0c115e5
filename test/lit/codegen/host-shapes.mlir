// RUN: mass-opt --mass-host-shapes %s | FileCheck %s

// The shape a reshape reads is built on the host's stack; the buffers it
// reshapes stay where they are.
// CHECK-LABEL: func.func @flatten
// CHECK: %[[SHAPE:.*]] = memref.alloca() {alignment = 64 : i64} : memref<2xindex>
// CHECK-NEXT: memref.store %{{.*}}, %[[SHAPE]][%c0]
// CHECK: memref.reshape %arg0(%[[SHAPE]])
// CHECK-NOT: memref.dealloc %[[SHAPE]]
// CHECK: memref.alloc() : memref<4xf32>
func.func @flatten(%x: memref<?x2x2xf32>) -> memref<?x4xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %n = memref.dim %x, %c0 : memref<?x2x2xf32>
  %shape = memref.alloc() {alignment = 64 : i64} : memref<2xindex>
  memref.store %n, %shape[%c0] : memref<2xindex>
  memref.store %c4, %shape[%c1] : memref<2xindex>
  %r = memref.reshape %x(%shape) : (memref<?x2x2xf32>, memref<2xindex>) -> memref<?x4xf32>
  memref.dealloc %shape : memref<2xindex>
  %other = memref.alloc() : memref<4xf32>
  memref.dealloc %other : memref<4xf32>
  return %r : memref<?x4xf32>
}
