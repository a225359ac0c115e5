// RUN: mass-opt --mass-strided-copies %s | FileCheck %s

// A copy into a strided view (one input's place in a concatenation)
// becomes linalg.copy; one between plain buffers stays a memcpy.
// CHECK-LABEL: func.func @copies
func.func @copies(%a: memref<4x3xf32>, %b: memref<4x3xf32>, %c: memref<4x7xf32>) {
  %view = memref.subview %c[0, 2] [4, 3] [1, 1] : memref<4x7xf32> to memref<4x3xf32, strided<[7, 1], offset: 2>>
  // CHECK: linalg.copy ins(%{{.*}} : memref<4x3xf32>) outs(%{{.*}} : memref<4x3xf32, strided<[7, 1], offset: 2>>)
  memref.copy %a, %view : memref<4x3xf32> to memref<4x3xf32, strided<[7, 1], offset: 2>>
  // CHECK: memref.copy %{{.*}}, %{{.*}} : memref<4x3xf32> to memref<4x3xf32>
  memref.copy %a, %b : memref<4x3xf32> to memref<4x3xf32>
  // CHECK-NOT: memref.copy
  return
}
