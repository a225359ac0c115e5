// RUN: mass-opt --mass-distinct-results %s | FileCheck %s

// A value returned twice, and an argument returned as it is, get copies;
// the first use of a computed value stays.
// CHECK-LABEL: func.func @f(
// CHECK-SAME: %[[ARG:.*]]: tensor<4xf32>
func.func @f(%a: tensor<4xf32>) -> (tensor<f32>, tensor<f32>, tensor<4xf32>) {
  // CHECK: %[[C:.*]] = arith.constant
  %c = arith.constant dense<1.0> : tensor<f32>
  // CHECK: %[[COPY:.*]] = bufferization.alloc_tensor() copy(%[[C]]) : tensor<f32>
  // CHECK: %[[ARGCOPY:.*]] = bufferization.alloc_tensor() copy(%[[ARG]]) : tensor<4xf32>
  // CHECK: return %[[C]], %[[COPY]], %[[ARGCOPY]]
  return %c, %c, %a : tensor<f32>, tensor<f32>, tensor<4xf32>
}

// Two products write into one zero-filled tensor (CSE merged their fills):
// each gets a fill of its own right before it, so bufferization copies
// nothing and mass-gemm can start each product from its fill.
// CHECK-LABEL: func.func @shared_fill
// CHECK-NEXT: %[[C:.*]] = arith.constant
// CHECK-NEXT: %[[E1:.*]] = tensor.empty() : tensor<4x4xf32>
// CHECK-NEXT: %[[Z1:.*]] = linalg.fill ins(%[[C]] : f32) outs(%[[E1]] : tensor<4x4xf32>)
// CHECK-NEXT: linalg.matmul ins(%arg0, %arg1 : tensor<4x4xf32>, tensor<4x4xf32>) outs(%[[Z1]] : tensor<4x4xf32>)
// CHECK-NEXT: %[[E2:.*]] = tensor.empty() : tensor<4x4xf32>
// CHECK-NEXT: %[[Z2:.*]] = linalg.fill ins(%[[C]] : f32) outs(%[[E2]] : tensor<4x4xf32>)
// CHECK-NEXT: linalg.matmul ins(%arg1, %arg0 : tensor<4x4xf32>, tensor<4x4xf32>) outs(%[[Z2]] : tensor<4x4xf32>)
func.func @shared_fill(%a: tensor<4x4xf32>, %b: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  %1 = linalg.matmul ins(%b, %a : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  return %0, %1 : tensor<4x4xf32>, tensor<4x4xf32>
}

// Two weight gradients computed in their weights' shape share one empty
// tensor seen through reshapes, and its fill: each product gets the whole
// chain (empty, reshapes, fill) right before it.
// CHECK-LABEL: func.func @shared_reshaped_fill
// CHECK-NEXT: %[[C:.*]] = arith.constant
// CHECK-NEXT: %[[E1:.*]] = tensor.empty() : tensor<2x2x2xf32>
// CHECK-NEXT: %[[R1:.*]] = tensor.collapse_shape %[[E1]]
// CHECK-NEXT: %[[Z1:.*]] = linalg.fill ins(%[[C]] : f32) outs(%[[R1]] : tensor<2x4xf32>)
// CHECK-NEXT: linalg.matmul ins(%arg0, %arg1 : tensor<2x3xf32>, tensor<3x4xf32>) outs(%[[Z1]] : tensor<2x4xf32>)
// CHECK-NEXT: %[[E2:.*]] = tensor.empty() : tensor<2x2x2xf32>
// CHECK-NEXT: %[[R2:.*]] = tensor.collapse_shape %[[E2]]
// CHECK-NEXT: %[[Z2:.*]] = linalg.fill ins(%[[C]] : f32) outs(%[[R2]] : tensor<2x4xf32>)
// CHECK-NEXT: linalg.matmul ins(%arg2, %arg1 : tensor<2x3xf32>, tensor<3x4xf32>) outs(%[[Z2]] : tensor<2x4xf32>)
func.func @shared_reshaped_fill(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>, %c: tensor<2x3xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x2x2xf32>
  %r = tensor.collapse_shape %e [[0], [1, 2]] : tensor<2x2x2xf32> into tensor<2x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%r : tensor<2x4xf32>) -> tensor<2x4xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<2x3xf32>, tensor<3x4xf32>) outs(%z : tensor<2x4xf32>) -> tensor<2x4xf32>
  %1 = linalg.matmul ins(%c, %b : tensor<2x3xf32>, tensor<3x4xf32>) outs(%z : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %0, %1 : tensor<2x4xf32>, tensor<2x4xf32>
}
