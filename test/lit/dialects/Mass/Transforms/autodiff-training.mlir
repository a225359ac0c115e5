// RUN: mass-opt --mass-autodiff %s | FileCheck %s

// @train_step runs in training mode: batch norm on batch statistics, its
// new running statistics returned under their buffers' names; dropout
// drawn from a seed argument, its gradient dropped by the same mask.
// @forward keeps evaluation mode.
module attributes {mass.tasks = [{name = "t", weight = 1.0 : f64}]} {
  func.func @forward(%x: tensor<?x3x4x4xf32> {mass.input = "x"},
                     %y: tensor<?xi32> {mass.label = "y"},
                     %g: tensor<3xf32> {mass.param = "bn.weight"},
                     %b: tensor<3xf32> {mass.param = "bn.bias"},
                     %m: tensor<3xf32> {mass.buffer = "bn.running_mean"},
                     %v: tensor<3xf32> {mass.buffer = "bn.running_var"})
      -> (tensor<f32> {mass.output = "loss.t"}) {
    %0:5 = mass.batchnorm %x, %g, %b, %m, %v eps = 1.0e-05 momentum = 1.0e-01 : tensor<?x3x4x4xf32>, tensor<3xf32>
    %1 = mass.dropout %0#0 p = 5.0e-01 stream = 0 : tensor<?x3x4x4xf32>
    %2 = mass.reshape %1 : tensor<?x3x4x4xf32> -> tensor<?x48xf32>
    %3 = mass.cross_entropy %2, %y : tensor<?x48xf32>, tensor<?xi32>
    return %3 : tensor<f32>
  }
}

// CHECK-LABEL: func.func @forward(
// CHECK: mass.batchnorm %{{.*}} eps
// CHECK: mass.dropout %{{.*}} p = 5.000000e-01 stream = 0 :
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[M:[a-z0-9]*]]: tensor<3xf32> {mass.buffer = "bn.running_mean"}, %[[V:[a-z0-9]*]]: tensor<3xf32> {mass.buffer = "bn.running_var"}, %[[SEED:[a-z0-9]*]]: tensor<3xi32> {mass.seed = "dropout"}, %{{.*}}: tensor<f32> {mass.task_weight = "t"})
// CHECK-SAME: tensor<3xf32> {mass.grad = "bn.weight"}, tensor<3xf32> {mass.grad = "bn.bias"}, tensor<3xf32> {mass.buffer = "bn.running_mean"}, tensor<3xf32> {mass.buffer = "bn.running_var"})
// CHECK: %[[Y:.*]], %[[MEAN:.*]], %[[INVSTD:.*]], %[[NM:.*]], %[[NV:.*]] = mass.batchnorm %{{.*}}, %[[M]], %[[V]] training eps
// CHECK: mass.dropout %[[Y]] seed %[[SEED]] training p = 5.000000e-01 stream = 0
// CHECK: mass.dropout %{{.*}} seed %[[SEED]] training p = 5.000000e-01 stream = 0
// The gradient of batch norm from its saved statistics.
// CHECK: mass.reshape %[[INVSTD]] : tensor<3xf32> -> tensor<3x1x1xf32>
// CHECK: mass.reshape %[[MEAN]] : tensor<3xf32> -> tensor<3x1x1xf32>
// Its means over the global batch: sum(dy), sum(dy * xhat) and the count
// as columns, summed over the data-parallel processes in one call, then
// taken apart.
// CHECK: %[[COLUMNS:.*]] = mass.concat %{{.*}}, %{{.*}}, %{{.*}} axis = 1 : tensor<3x1xf32>, tensor<3x1xf32>, tensor<3x1xf32> -> tensor<3x3xf32>
// CHECK: %[[FLAT:.*]] = mass.reshape %[[COLUMNS]] : tensor<3x3xf32> -> tensor<9xf32>
// CHECK: %[[SUMS:.*]] = mass.sum_ranks %[[FLAT]] : tensor<9xf32>
// CHECK: %[[BACK:.*]] = mass.reshape %[[SUMS]] : tensor<9xf32> -> tensor<3x3xf32>
// CHECK: mass.slice %[[BACK]] axis = 1 offset = 2
// CHECK: mass.slice %[[BACK]] axis = 1 offset = 0
// CHECK: mass.slice %[[BACK]] axis = 1 offset = 1
// CHECK: return {{.*}}, %[[NM]], %[[NV]] :
