// RUN: mass-opt --mass-gemm="vector-width=4 rows=2 tile-k=32 tile-m=64" --cse %s | FileCheck %s

#a = affine_map<(m, k, n) -> (m, k)>
#bt = affine_map<(m, k, n) -> (n, k)>
#b = affine_map<(m, k, n) -> (k, n)>
#c = affine_map<(m, k, n) -> (m, n)>
#e = affine_map<(m, n) -> (m, n)>

// Products that differ only in their sizes and strides call one kernel,
// which takes each buffer with dynamic sizes, strides and offset (a unit
// innermost stride stays) through a memref.cast, and the packed A, which
// the caller allocates (rows of A 4 KiB apart are copied). The zero that
// C starts from moves into the kernel with the product.
// CHECK-LABEL: func.func @layers
// CHECK-SAME: (%[[A:.*]]: memref<?x64xf32, strided<[1024, 1]>>, %[[B:.*]]: memref<64x10xf32>, %[[C:.*]]: memref<?x10xf32>, %[[X:.*]]: memref<8x64xf32, strided<[1024, 1], offset: 5>>, %[[W:.*]]: memref<64x24xf32>, %[[Y:.*]]: memref<8x24xf32>)
// CHECK: %[[PA:.*]] = memref.alloc() {alignment = 64 : i64} : memref<32x32x2xf32>
// CHECK: %[[C1:.*]] = memref.cast %[[C]] : memref<?x10xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK: %[[A1:.*]] = memref.cast %[[A]] : memref<?x64xf32, strided<[1024, 1]>> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK: %[[B1:.*]] = memref.cast %[[B]] : memref<64x10xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK: call @[[KERNEL:layers_gemm[0-9]+]](%[[PA]], %[[C1]], %[[A1]], %[[B1]])
// CHECK: %[[PA2:.*]] = memref.alloc() {alignment = 64 : i64} : memref<32x32x2xf32>
// CHECK: %[[Y1:.*]] = memref.cast %[[Y]] : memref<8x24xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK: %[[X1:.*]] = memref.cast %[[X]] : memref<8x64xf32, strided<[1024, 1], offset: 5>> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK: call @[[KERNEL]](%[[PA2]], %[[Y1]], %[[X1]], {{.*}})
// A product with B read as B[n, k] is another kind: another kernel.
// CHECK: call @[[OTHER:layers_gemm[0-9]+]](
// CHECK-NOT: linalg.generic
// CHECK: return
//
// CHECK: func.func private @[[OTHER]]
// CHECK: func.func private @[[KERNEL]](%[[PK:.*]]: memref<32x32x2xf32>, %[[CK:.*]]: memref<?x?xf32, strided<[?, 1], offset: ?>>, %[[AK:.*]]: memref<?x?xf32, strided<[?, 1], offset: ?>>, %{{.*}}: memref<?x?xf32, strided<[?, 1], offset: ?>>)
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, mass.kernel, no_inline}
// CHECK: %[[M:.*]] = memref.dim %[[CK]], %c0
// CHECK: %[[K:.*]] = memref.dim %[[AK]], %c1
// CHECK: scf.if
// CHECK-NEXT: linalg.fill
// CHECK: scf.for %{{.*}} = %c0 to %[[M]] step %c64 {
// CHECK: scf.for %{{.*}} = %c0 to %[[K]] step %c32 {
// CHECK: scf.parallel
// CHECK: memref.store %{{.*}}, %[[PK]]
// CHECK: } {mass.parallel_kernel}
// CHECK: vector.fma
// CHECK-NOT: func.func private @layers_gemm
func.func @layers(%A: memref<?x64xf32, strided<[1024, 1]>>, %B: memref<64x10xf32>, %C: memref<?x10xf32>,
                  %X: memref<8x64xf32, strided<[1024, 1], offset: 5>>, %W: memref<64x24xf32>, %Y: memref<8x24xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%C : memref<?x10xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<?x64xf32, strided<[1024, 1]>>, memref<64x10xf32>) outs(%C : memref<?x10xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.fill ins(%zero : f32) outs(%Y : memref<8x24xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%X, %W : memref<8x64xf32, strided<[1024, 1], offset: 5>>, memref<64x24xf32>) outs(%Y : memref<8x24xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %T = memref.alloc() : memref<24x64xf32>
  linalg.generic {indexing_maps = [#a, #bt, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%X, %T : memref<8x64xf32, strided<[1024, 1], offset: 5>>, memref<24x64xf32>) outs(%Y : memref<8x24xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// An epilogue's buffers and the scalars its body reads come along; rows of
// A read in place need no packed A.
// CHECK-LABEL: func.func @activation
// CHECK-NOT: memref.alloc
// CHECK: call @[[ACT:activation_gemm[0-9]+]]({{.*}}) : (memref<?x?xf32, strided<[?, 1], offset: ?>>, memref<?x?xf32, strided<[?, 1], offset: ?>>, memref<?x?xf32, strided<[?, 1], offset: ?>>, memref<?x?xf32, strided<[?, 1], offset: ?>>, f32) -> ()
// CHECK: func.func private @[[ACT]](
// CHECK: arith.maximumf {{.*}} : vector<4xf32>
func.func @activation(%A: memref<?x48xf32>, %B: memref<48x8xf32>, %C: memref<?x8xf32>, %D: memref<?x8xf32>, %floor: f32) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<?x48xf32>, memref<48x8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#e, #e], iterator_types = ["parallel", "parallel"]}
      ins(%C : memref<?x8xf32>) outs(%D : memref<?x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    %m = arith.maximumf %x, %floor : f32
    linalg.yield %m : f32
  }
  return
}
