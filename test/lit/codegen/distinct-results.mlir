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
// the first gets a fill of its own, so bufferization copies nothing.
// CHECK-LABEL: func.func @shared_fill
// CHECK: %[[E1:.*]] = tensor.empty() : tensor<4x4xf32>
// CHECK: %[[Z1:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E1]] : tensor<4x4xf32>)
// CHECK: %[[E2:.*]] = tensor.empty() : tensor<4x4xf32>
// CHECK: %[[Z2:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E2]] : tensor<4x4xf32>)
// CHECK: linalg.matmul ins(%arg0, %arg1 : tensor<4x4xf32>, tensor<4x4xf32>) outs(%[[Z2]] : tensor<4x4xf32>)
// CHECK: linalg.matmul ins(%arg1, %arg0 : tensor<4x4xf32>, tensor<4x4xf32>) outs(%[[Z1]] : tensor<4x4xf32>)
func.func @shared_fill(%a: tensor<4x4xf32>, %b: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  %1 = linalg.matmul ins(%b, %a : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  return %0, %1 : tensor<4x4xf32>, tensor<4x4xf32>
}
