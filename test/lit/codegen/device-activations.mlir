// RUN: mass-opt --split-input-file --mass-device-activations %s | FileCheck %s

// A dense layer and its ReLU (the bias broadcast, the product, max(C, 0)
// into Y): nothing else reads C, so the ReLU runs on C in place and Y's
// reader (the return's copy) reads C; Y's buffer goes.
// CHECK-LABEL: func.func @dense_relu
// CHECK: %[[C:.*]] = memref.alloc(%{{.*}}) : memref<?x32xf32>
// CHECK-NOT: memref.alloc
// CHECK: linalg.generic {{.*}} outs(%[[C]] : memref<?x32xf32>)
// CHECK: linalg.generic {{.*}} ins(%arg0, %arg1 : memref<?x64xf32>, memref<32x64xf32>) outs(%[[C]] : memref<?x32xf32>)
// CHECK: linalg.generic {indexing_maps = [#{{.*}}], iterator_types = ["parallel", "parallel"]} outs(%[[C]] : memref<?x32xf32>)
// CHECK-NEXT: ^bb0(%[[OUT:.*]]: f32):
// CHECK: arith.maximumf %[[OUT]], %{{.*}} : f32
// CHECK: memref.copy %[[C]], %arg3
#row = affine_map<(m, n) -> (n)>
#id = affine_map<(m, n) -> (m, n)>
#mk = affine_map<(m, k, n) -> (m, k)>
#nk = affine_map<(m, k, n) -> (n, k)>
#mn = affine_map<(m, k, n) -> (m, n)>
func.func @dense_relu(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %bias: memref<32xf32>, %result: memref<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %rows = memref.dim %x, %c0 : memref<?x64xf32>
  %c = memref.alloc(%rows) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %y = memref.alloc(%rows) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<?x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%i: f32, %o: f32):
    %r = arith.maximumf %i, %zero : f32
    linalg.yield %r : f32
  }
  memref.copy %y, %result : memref<?x32xf32> to memref<?x32xf32>
  return
}

// -----

// The pre-activation read again after the ReLU (GELU's gradient needs it;
// here a copy out): the ReLU keeps its own buffer.
// CHECK-LABEL: func.func @read_again
// CHECK: %[[C:.*]] = memref.alloc
// CHECK: %[[Y:.*]] = memref.alloc
// CHECK: ins(%[[C]] : memref<?x32xf32>) outs(%[[Y]] : memref<?x32xf32>)
// CHECK: memref.copy %[[C]], %arg4
#row2 = affine_map<(m, n) -> (n)>
#id2 = affine_map<(m, n) -> (m, n)>
#mk2 = affine_map<(m, k, n) -> (m, k)>
#nk2 = affine_map<(m, k, n) -> (n, k)>
#mn2 = affine_map<(m, k, n) -> (m, n)>
func.func @read_again(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %bias: memref<32xf32>, %result: memref<?x32xf32>, %pre: memref<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %rows = memref.dim %x, %c0 : memref<?x64xf32>
  %c = memref.alloc(%rows) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#row2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk2, #nk2, #mn2], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %y = memref.alloc(%rows) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<?x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%i: f32, %o: f32):
    %r = arith.maximumf %i, %zero : f32
    linalg.yield %r : f32
  }
  memref.copy %y, %result : memref<?x32xf32> to memref<?x32xf32>
  memref.copy %c, %pre : memref<?x32xf32> to memref<?x32xf32>
  return
}

// -----

// Not a ReLU (max(C, 1)): left alone.
// CHECK-LABEL: func.func @not_relu
// CHECK: %[[C:.*]] = memref.alloc
// CHECK: %[[Y:.*]] = memref.alloc
// CHECK: ins(%[[C]] : memref<?x32xf32>) outs(%[[Y]] : memref<?x32xf32>)
#row3 = affine_map<(m, n) -> (n)>
#id3 = affine_map<(m, n) -> (m, n)>
#mk3 = affine_map<(m, k, n) -> (m, k)>
#nk3 = affine_map<(m, k, n) -> (n, k)>
#mn3 = affine_map<(m, k, n) -> (m, n)>
func.func @not_relu(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %bias: memref<32xf32>, %result: memref<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %one = arith.constant 1.0 : f32
  %rows = memref.dim %x, %c0 : memref<?x64xf32>
  %c = memref.alloc(%rows) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#row3, #id3], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk3, #nk3, #mn3], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %y = memref.alloc(%rows) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<?x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%i: f32, %o: f32):
    %r = arith.maximumf %i, %one : f32
    linalg.yield %r : f32
  }
  memref.copy %y, %result : memref<?x32xf32> to memref<?x32xf32>
  return
}
