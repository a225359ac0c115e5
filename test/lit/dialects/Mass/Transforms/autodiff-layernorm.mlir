// RUN: mass-opt --mass-autodiff %s | FileCheck %s

// Layer norm's VJP is one op over the rows, from the forward's saved
// statistics: the input's gradient and the weight's and bias's sums over
// rows.
module attributes {mass.tasks = [{name = "t", weight = 1.0 : f64}]} {
  func.func @forward(%x: tensor<?x5x8xf32> {mass.input = "x"},
                     %y: tensor<?x5x8xf32> {mass.label = "y"},
                     %w: tensor<8xf32> {mass.param = "ln.weight"},
                     %b: tensor<8xf32> {mass.param = "ln.bias"})
      -> (tensor<f32> {mass.output = "loss.t"}) {
    %0:3 = mass.layernorm %x, %w, %b eps = 1.0e-05 : tensor<?x5x8xf32>, tensor<8xf32> -> tensor<?x5xf32>, tensor<?x5xf32>
    %1 = mass.mse %0#0, %y : tensor<?x5x8xf32>
    return %1 : tensor<f32>
  }
}

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[X:[a-z0-9]*]]: tensor<?x5x8xf32> {mass.input = "x"}
// CHECK-SAME: %[[W:[a-z0-9]*]]: tensor<8xf32> {mass.param = "ln.weight"}
// CHECK: %[[Y:.*]], %[[MEAN:.*]], %[[RSTD:.*]] = mass.layernorm %[[X]], %[[W]]
// The mean squared error's gradient, then no reduction of layer norm's
// own: the op takes them all.
// CHECK: %[[DY:.*]] = mass.mul %{{.*}}, %{{.*}} : tensor<?x5x8xf32>, tensor<f32> -> tensor<?x5x8xf32>
// CHECK-NOT: mass.sum
// CHECK: %[[DX:.*]], %[[DW:.*]], %[[DB:.*]] = mass.layernorm_grad %[[X]], %[[MEAN]], %[[RSTD]], %[[W]], %[[DY]] : tensor<?x5x8xf32>, tensor<?x5xf32>, tensor<8xf32>
// CHECK: return %{{.*}}, %[[DW]], %[[DB]] :
