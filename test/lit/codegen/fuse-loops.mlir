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

// CHECK-LABEL: func.func @conv_epilogue
// A convolution's copy of its product back to NCHW (outside any group)
// fuses into the group of its epilogue (a shift and relu): one loop nest
// reads the product and writes the activation.
func.func @conv_epilogue(%x: tensor<?x3x8x8xf32>, %w: tensor<4x3x3x3xf32>, %s: tensor<?x4x6x6xf32>) -> tensor<?x4x6x6xf32> {
  // CHECK: %[[P:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel"]
  // CHECK: %[[E:.*]] = tensor.expand_shape %[[P]]
  // CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[E]], %{{.*}} : tensor<1x4x?x6x6xf32>, tensor<?x4x6x6xf32>)
  // CHECK: arith.addf
  // CHECK: arith.maximumf
  // CHECK-NOT: linalg.generic
  // CHECK: return
  %0 = mass.conv2d %x, %w stride = [1, 1] padding = [0, 0] dilation = [1, 1] groups = 1 : tensor<?x3x8x8xf32>, tensor<4x3x3x3xf32> -> tensor<?x4x6x6xf32>
  %1 = mass.fusion ins(%0, %s : tensor<?x4x6x6xf32>, tensor<?x4x6x6xf32>) {
  ^bb0(%a: tensor<?x4x6x6xf32>, %b: tensor<?x4x6x6xf32>):
    %2 = mass.add %a, %b : tensor<?x4x6x6xf32>, tensor<?x4x6x6xf32> -> tensor<?x4x6x6xf32>
    %3 = mass.relu %2 : tensor<?x4x6x6xf32>
    mass.yield %3 : tensor<?x4x6x6xf32>
  } -> tensor<?x4x6x6xf32>
  return %1 : tensor<?x4x6x6xf32>
}
