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

// The learning-rate scales go to the runtime, which scales @update_slice's.
// CHECK: mass.optimizer = {{{.*}}lr_scales = {head.weight = 1.000000e+01 : f64}}

// CHECK-LABEL: func.func @update(
// CHECK-SAME: %[[P:.*]]: tensor<2x4xf32> {mass.param = "head.weight"}, %[[G:.*]]: tensor<2x4xf32> {mass.grad = "head.weight"}, %[[BUF:.*]]: tensor<2x4xf32> {mass.state = "head.weight.momentum_buffer"}, %[[LR:.*]]: tensor<f32> {mass.hyper = "lr"})
// CHECK-SAME: -> (tensor<2x4xf32> {mass.param = "head.weight"}, tensor<2x4xf32> {mass.state = "head.weight.momentum_buffer"}, tensor<f32> {mass.output = "grad_norm"})
// CHECK-NOT: trunk
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00>
// CHECK: %[[SQ:.*]] = mass.mul %[[G]], %[[G]]
// CHECK: mass.add %[[ZERO]], %{{.*}}
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

// The same rule over a flat slice of all the trained values (8 here, fewer
// than 65,536): the runtime scales lr, and the squares of every gradient
// come in whole.
// CHECK-LABEL: func.func @update_slice(
// CHECK-SAME: %[[SP:.*]]: tensor<8xf32> {mass.param = "slice"}, %[[SG:.*]]: tensor<8xf32> {mass.grad = "slice"}, %[[SBUF:.*]]: tensor<8xf32> {mass.state = "slice.momentum_buffer"}, %[[SLR:.*]]: tensor<f32> {mass.hyper = "lr"}, %[[SQUARES:.*]]: tensor<f32> {mass.hyper = "grad_squares"})
// CHECK-SAME: -> (tensor<8xf32> {mass.param = "slice"}, tensor<8xf32> {mass.state = "slice.momentum_buffer"}) {
// CHECK-NEXT: mass.sqrt %[[SQUARES]]
// CHECK: %[[SRELU:.*]] = mass.relu
// CHECK-NEXT: %[[SCLIP:.*]] = mass.sub %{{.*}}, %[[SRELU]]
// CHECK-NEXT: mass.mul %[[SG]], %[[SCLIP]]
// CHECK-NOT: mass.mul %[[SLR]], %{{.*}} : tensor<f32>, tensor<f32>
// CHECK: %[[SSTEP:.*]] = mass.mul %[[SLR]], %{{.*}} : tensor<f32>, tensor<8xf32>
// CHECK-NEXT: %[[SNEWP:.*]] = mass.sub %[[SP]], %[[SSTEP]]
// CHECK-NEXT: return %[[SNEWP]], %{{.*}} : tensor<8xf32>, tensor<8xf32>

// With clipping, the squares alone, added as @update adds them.
// CHECK-LABEL: func.func @grad_squares(
// CHECK-SAME: %[[GG:.*]]: tensor<2x4xf32> {mass.grad = "head.weight"}) -> (tensor<f32> {mass.output = "grad_squares"})
// CHECK-NEXT: %[[GZERO:.*]] = arith.constant dense<0.000000e+00>
// CHECK-NEXT: %[[GG2:.*]] = mass.mul %[[GG]], %[[GG]]
// CHECK-NEXT: %[[GSUM:.*]] = mass.sum %[[GG2]] axes = [0, 1]
// CHECK-NEXT: %[[GTOTAL:.*]] = mass.add %[[GZERO]], %[[GSUM]]
// CHECK-NEXT: return %[[GTOTAL]]
