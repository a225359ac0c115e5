// RUN: mass-opt --mass-autodiff %s | FileCheck %s

// A dense layer and a loss: the weight's gradient is dyᵀ·x, the bias's the
// column sum of dy, and the loss is seeded with the task's weight.
module attributes {mass.tasks = [{name = "t", weight = 1.0 : f64}]} {
  func.func @forward(%x: tensor<?x4xf32> {mass.input = "x"},
                     %y: tensor<?x3xf32> {mass.label = "y"},
                     %w: tensor<3x4xf32> {mass.param = "fc.weight"},
                     %b: tensor<3xf32> {mass.param = "fc.bias"},
                     %unused: tensor<2xf32> {mass.param = "unused"})
      -> (tensor<f32> {mass.output = "loss.t"}) {
    %0 = mass.dense %x, %w, %b : (tensor<?x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<?x3xf32>
    %1 = mass.relu %0 : tensor<?x3xf32>
    %2 = mass.mse %1, %y : tensor<?x3xf32>
    return %2 : tensor<f32>
  }
}

// CHECK-LABEL: func.func @forward(
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[X:.*]]: tensor<?x4xf32> {mass.input = "x"}, %[[Y:.*]]: tensor<?x3xf32> {mass.label = "y"}, %[[W:.*]]: tensor<3x4xf32> {mass.param = "fc.weight"}, %[[B:.*]]: tensor<3xf32> {mass.param = "fc.bias"}, %{{.*}}: tensor<2xf32> {mass.param = "unused"}, %[[TW:.*]]: tensor<f32> {mass.task_weight = "t"})
// CHECK-SAME: -> (tensor<f32> {mass.output = "loss.t"}, tensor<3x4xf32> {mass.grad = "fc.weight"}, tensor<3xf32> {mass.grad = "fc.bias"}, tensor<2xf32> {mass.grad = "unused"})
// CHECK: %[[DENSE:.*]] = mass.dense %[[X]], %[[W]], %[[B]]
// CHECK: %[[RELU:.*]] = mass.relu %[[DENSE]]
// CHECK: %[[LOSS:.*]] = mass.mse %[[RELU]], %[[Y]]
// mse: 2 (p - t) * w / N, N counted at run time over the dynamic batch.
// CHECK: %[[DIFF:.*]] = mass.sub %[[RELU]], %[[Y]]
// CHECK: %[[TWICE:.*]] = mass.mul %{{.*}}, %[[DIFF]]
// CHECK: %[[N:.*]] = mass.sum %{{.*}} axes = [0, 1] : tensor<?x3xf32> -> tensor<f32>
// CHECK: %[[SCALE:.*]] = mass.div %[[TW]], %[[N]]
// CHECK: %[[DP:.*]] = mass.mul %[[TWICE]], %[[SCALE]]
// relu: the step function is sign(relu(x)).
// CHECK: %[[STEP:.*]] = mass.sign %[[RELU]]
// CHECK: %[[DY:.*]] = mass.mul %[[DP]], %[[STEP]]
// CHECK: %[[DX:.*]] = mass.matmul %[[DY]], %[[W]] : tensor<?x3xf32>, tensor<3x4xf32> -> tensor<?x4xf32>
// CHECK: %[[DYT:.*]] = mass.transpose %[[DY]] perm = [1, 0] : tensor<?x3xf32> -> tensor<3x?xf32>
// CHECK: %[[DW:.*]] = mass.matmul %[[DYT]], %[[X]] : tensor<3x?xf32>, tensor<?x4xf32> -> tensor<3x4xf32>
// CHECK: %[[DB:.*]] = mass.sum %[[DY]] axes = [0] : tensor<?x3xf32> -> tensor<3xf32>
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : tensor<2xf32>
// CHECK: return %[[LOSS]], %[[DW]], %[[DB]], %[[ZERO]]
