// RUN: mass-opt --mass-lower-to-linalg --mass-fuse-loops %s | FileCheck %s

// CHECK-LABEL: func.func @chain
// An elementwise chain becomes one loop nest: one linalg.generic computes
// the product, the exp and the sum.
func.func @chain(%a: tensor<?x4xf32>, %b: tensor<?x4xf32>) -> tensor<?x4xf32> {
  // CHECK: linalg.generic
  // CHECK: arith.mulf
  // CHECK-NEXT: math.exp
  // CHECK-NEXT: arith.addf
  // CHECK-NOT: linalg.generic
  // CHECK: return
  %0 = mass.mul %a, %b : tensor<?x4xf32>, tensor<?x4xf32> -> tensor<?x4xf32>
  %1 = mass.exp %0 : tensor<?x4xf32>
  %2 = mass.add %1, %a : tensor<?x4xf32>, tensor<?x4xf32> -> tensor<?x4xf32>
  return %2 : tensor<?x4xf32>
}

// CHECK-LABEL: func.func @into_contraction
// relu is not fused into the contraction, which would recompute it for
// every output column.
func.func @into_contraction(%x: tensor<?x8xf32>, %w: tensor<8x3xf32>) -> tensor<?x3xf32> {
  // CHECK: %[[RELU:.*]] = linalg.generic
  // CHECK: arith.maximumf
  // CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "reduction", "parallel"]{{.*}} ins(%[[RELU]], %{{.*}} :
  %0 = mass.relu %x : tensor<?x8xf32>
  %1 = mass.matmul %0, %w : tensor<?x8xf32>, tensor<8x3xf32> -> tensor<?x3xf32>
  return %1 : tensor<?x3xf32>
}
