// RUN: mass-opt --mass-optimizer %s | FileCheck %s

// AdamW: decoupled weight decay, two moments, bias corrections at run time.
module attributes {mass.train = {
    optimizer = {kind = "adamw", lr = 3.0e-4 : f64, betas = [0.9 : f64, 0.95 : f64], weight_decay = 0.1 : f64}}} {
  func.func @forward(%a: tensor<4xf32> {mass.param = "w"}) {
    return
  }
}

// CHECK-LABEL: func.func @update(
// CHECK-SAME: {mass.param = "w"}, %[[G:.*]]: tensor<4xf32> {mass.grad = "w"}, %[[M:.*]]: tensor<4xf32> {mass.state = "w.exp_avg"}, %[[V:.*]]: tensor<4xf32> {mass.state = "w.exp_avg_sq"}, %[[LR:.*]]: tensor<f32> {mass.hyper = "lr"}, %[[BC1:.*]]: tensor<f32> {mass.hyper = "bias_correction1"}, %[[BC2:.*]]: tensor<f32> {mass.hyper = "bias_correction2"})
// CHECK: arith.constant dense<1.000000e-01>
// CHECK: %[[DECAY:.*]] = mass.mul %[[LR]]
// CHECK: arith.constant dense<0.899999976>
// CHECK: mass.mul %{{.*}}, %[[M]]
// CHECK: arith.constant dense<0.949999988>
// CHECK: mass.mul %{{.*}}, %[[V]]
// CHECK: mass.sqrt %[[BC2]]
// CHECK: mass.div %[[LR]], %[[BC1]]
// CHECK: return

// Without clipping no squares: @update_slice takes none, and there is no
// @grad_squares.
// CHECK-LABEL: func.func @update_slice(
// CHECK-SAME: %{{.*}}: tensor<4xf32> {mass.param = "slice"}, %{{.*}}: tensor<4xf32> {mass.grad = "slice"}, %{{.*}}: tensor<4xf32> {mass.state = "slice.exp_avg"}, %{{.*}}: tensor<4xf32> {mass.state = "slice.exp_avg_sq"}, %{{.*}}: tensor<f32> {mass.hyper = "lr"}, %{{.*}}: tensor<f32> {mass.hyper = "bias_correction1"}, %{{.*}}: tensor<f32> {mass.hyper = "bias_correction2"})
// CHECK-NOT: mass.optimizer = {{{.*}}lr_scales
// CHECK-NOT: @grad_squares
