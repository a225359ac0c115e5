// RUN: mass-opt --mass-optimizer %s | FileCheck %s

// SGD with momentum, nesterov and weight decay; clipping; one frozen
// parameter and one with a learning-rate scale.
module attributes {mass.train = {
    optimizer = {kind = "sgd", lr = 0.1 : f64, momentum = 0.9 : f64, nesterov = true, weight_decay = 5.0e-4 : f64},
    clip_grad_norm = 5.0 : f64,
    freeze = ["trunk.*"],
    lr_scale = [["head.*", 10.0 : f64]]}} {
  func.func @forward(%a: tensor<4xf32> {mass.param = "trunk.weight"},
                     %b: tensor<2x4xf32> {mass.param = "head.weight"}) {
    return
  }
}

// CHECK-LABEL: func.func @update(
// CHECK-SAME: %[[P:.*]]: tensor<2x4xf32> {mass.param = "head.weight"}, %[[G:.*]]: tensor<2x4xf32> {mass.grad = "head.weight"}, %[[BUF:.*]]: tensor<2x4xf32> {mass.state = "head.weight.momentum_buffer"}, %[[LR:.*]]: tensor<f32> {mass.hyper = "lr"}, %[[ELSEWHERE:.*]]: tensor<f32> {mass.hyper = "grad_squares_elsewhere"})
// CHECK-SAME: -> (tensor<2x4xf32> {mass.param = "head.weight"}, tensor<2x4xf32> {mass.state = "head.weight.momentum_buffer"}, tensor<f32> {mass.output = "grad_norm"})
// CHECK-NOT: trunk
// CHECK: %[[SQ:.*]] = mass.mul %[[G]], %[[G]]
// CHECK: mass.add %[[ELSEWHERE]], %{{.*}}
// CHECK: %[[NORM:.*]] = mass.sqrt
// CHECK: %[[RELU:.*]] = mass.relu
// CHECK: %[[CLIP:.*]] = mass.sub %{{.*}}, %[[RELU]]
// CHECK: %[[CG:.*]] = mass.mul %[[G]], %[[CLIP]]
// CHECK: %[[SCALED_LR:.*]] = mass.mul %[[LR]], %{{.*}}
// CHECK: %[[DECAYED:.*]] = mass.add %[[CG]], %{{.*}}
// CHECK: %[[MB:.*]] = mass.mul %{{.*}}, %[[BUF]]
// CHECK: %[[NEWBUF:.*]] = mass.add %[[MB]], %[[DECAYED]]
// CHECK: %[[NEST:.*]] = mass.add %[[DECAYED]], %{{.*}}
// CHECK: %[[STEP:.*]] = mass.mul %[[SCALED_LR]], %[[NEST]]
// CHECK: %[[NEWP:.*]] = mass.sub %[[P]], %[[STEP]]
// CHECK: return %[[NEWP]], %[[NEWBUF]], %[[NORM]]
