// RUN: mass-opt --split-input-file --mass-in-place-results %s | FileCheck %s

// SGD with momentum, one loop per parameter: the gradient norm reads the
// gradient, the parameter's other reader (weight decay) comes first, and
// the update reads each argument element by element. A frozen parameter
// is returned as it is.
// CHECK: module attributes {mass.in_place = ["update"]}
#id = affine_map<(d0) -> (d0)>
#scalar = affine_map<(d0) -> ()>
func.func @update(%p: tensor<4xf32> {mass.param = "w"}, %q: tensor<2xf32> {mass.param = "frozen"},
                  %g: tensor<4xf32> {mass.grad = "w"}, %m: tensor<4xf32> {mass.state = "w.momentum_buffer"},
                  %lr: tensor<f32> {mass.hyper = "lr"})
    -> (tensor<4xf32> {mass.param = "w"}, tensor<2xf32> {mass.param = "frozen"},
        tensor<4xf32> {mass.state = "w.momentum_buffer"}) {
  %e = tensor.empty() : tensor<4xf32>
  %d = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%p, %g : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%pi: f32, %gi: f32, %o: f32):
    %s = arith.addf %pi, %gi : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  %e2 = tensor.empty() : tensor<4xf32>
  %new:2 = linalg.generic {indexing_maps = [#id, #id, #id, #scalar, #id, #id], iterator_types = ["parallel"]}
      ins(%p, %d, %m, %lr : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>)
      outs(%e, %e2 : tensor<4xf32>, tensor<4xf32>) {
  ^bb0(%pi: f32, %di: f32, %mi: f32, %l: f32, %o1: f32, %o2: f32):
    %mm = arith.addf %mi, %di : f32
    %step = arith.mulf %l, %mm : f32
    %pn = arith.subf %pi, %step : f32
    linalg.yield %pn, %mm : f32, f32
  } -> (tensor<4xf32>, tensor<4xf32>)
  return %new#0, %q, %new#1 : tensor<4xf32>, tensor<2xf32>, tensor<4xf32>
}

// -----

// The parameter is read again after the loop that writes its new value
// (here by a second elementwise op): writing in place would change what
// that op reads, so nothing is marked.
// CHECK: module {
// CHECK-NOT: mass.in_place
#id = affine_map<(d0) -> (d0)>
func.func @update(%p: tensor<4xf32> {mass.param = "w"}, %g: tensor<4xf32> {mass.grad = "w"})
    -> (tensor<4xf32> {mass.param = "w"}, tensor<4xf32> {mass.output = "other"}) {
  %e = tensor.empty() : tensor<4xf32>
  %new = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%p, %g : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%pi: f32, %gi: f32, %o: f32):
    %s = arith.subf %pi, %gi : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  %e2 = tensor.empty() : tensor<4xf32>
  %late = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%p : tensor<4xf32>) outs(%e2 : tensor<4xf32>) {
  ^bb0(%pi: f32, %o: f32):
    %s = arith.mulf %pi, %pi : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %new, %late : tensor<4xf32>, tensor<4xf32>
}

// -----

// The new value of element i reads element 3 - i of the parameter: an
// earlier iteration would already have overwritten it.
// CHECK: module {
// CHECK-NOT: mass.in_place
#id = affine_map<(d0) -> (d0)>
#rev = affine_map<(d0) -> (3 - d0)>
func.func @update(%p: tensor<4xf32> {mass.param = "w"}, %g: tensor<4xf32> {mass.grad = "w"})
    -> (tensor<4xf32> {mass.param = "w"}) {
  %e = tensor.empty() : tensor<4xf32>
  %new = linalg.generic {indexing_maps = [#rev, #id, #id], iterator_types = ["parallel"]}
      ins(%p, %g : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%pi: f32, %gi: f32, %o: f32):
    %s = arith.subf %pi, %gi : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %new : tensor<4xf32>
}

// -----

// A new value computed by a reduction (or by anything but an elementwise
// linalg.generic) is not marked.
// CHECK: module {
// CHECK-NOT: mass.in_place
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @update(%p: tensor<4xf32> {mass.param = "b"}, %g: tensor<4x3xf32> {mass.grad = "b"})
    -> (tensor<4xf32> {mass.param = "b"}) {
  %new = linalg.generic {indexing_maps = [#id2, #row], iterator_types = ["parallel", "reduction"]}
      ins(%g : tensor<4x3xf32>) outs(%p : tensor<4xf32>) {
  ^bb0(%gi: f32, %acc: f32):
    %s = arith.subf %acc, %gi : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %new : tensor<4xf32>
}
