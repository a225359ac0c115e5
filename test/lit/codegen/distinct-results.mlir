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
