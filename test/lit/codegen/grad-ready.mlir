// RUN: mass-opt --split-input-file --mass-grad-ready --verify-diagnostics %s | FileCheck %s

// After bufferization: the gradients of v and w are out-parameters 5 and
// 4. v's is final after the op that last reads it (w's gradient is
// computed from it), w's after the loop that writes it through a view.
// The module records the calls' order for the model descriptor.
// CHECK: module attributes {mass.grad_ready = {train_step = array<i64: 5, 4>}}
// CHECK: func.func private @mass_grad_ready(i64)
// CHECK-LABEL: func.func @train_step
// CHECK-NOT: mass.grad_values
// CHECK: linalg.generic
// CHECK-SAME: outs(%arg5
// CHECK: linalg.generic
// CHECK-SAME: ins(%arg5, %arg2
// CHECK: linalg.yield
// CHECK-NEXT: }
// CHECK-NEXT: %[[V:.*]] = arith.constant 5 : i64
// CHECK-NEXT: call @mass_grad_ready(%[[V]]) : (i64) -> ()
// CHECK: scf.for
// CHECK: memref.store
// CHECK-NEXT: }
// CHECK-NEXT: %[[W:.*]] = arith.constant 4 : i64
// CHECK-NEXT: call @mass_grad_ready(%[[W]]) : (i64) -> ()
// CHECK-NEXT: linalg.fill
// CHECK-NEXT: return
#id = affine_map<(d0) -> (d0)>
func.func @train_step(%x: memref<4xf32>, %w: memref<4xf32>, %v: memref<4xf32>,
                      %loss: memref<f32>, %gw: memref<2x2xf32>, %gv: memref<4xf32>)
    attributes {mass.grad_values = array<i64: 4, 5>} {
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%x, %w : memref<4xf32>, memref<4xf32>) outs(%gv : memref<4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.mulf %a, %b : f32
    linalg.yield %s : f32
  }
  %flat = memref.collapse_shape %gw [[0, 1]] : memref<2x2xf32> into memref<4xf32>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%gv, %v : memref<4xf32>, memref<4xf32>) outs(%flat : memref<4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.mulf %a, %b : f32
    linalg.yield %s : f32
  }
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %half = arith.constant 0.5 : f32
  scf.for %i = %c0 to %c4 step %c1 {
    %e = memref.load %flat[%i] : memref<4xf32>
    %h = arith.mulf %e, %half : f32
    memref.store %h, %flat[%i] : memref<4xf32>
  }
  linalg.fill ins(%half : f32) outs(%loss : memref<f32>)
  return
}

// -----

// Two gradients final after the same op: their calls follow it in the
// order of their values. One that nothing writes is reported first.
// CHECK: module attributes {mass.grad_ready = {train_step = array<i64: 3, 1, 2>}}
// CHECK-LABEL: func.func @train_step
// CHECK-NEXT: %[[Z:.*]] = arith.constant 3 : i64
// CHECK-NEXT: call @mass_grad_ready(%[[Z]])
// CHECK: linalg.yield
// CHECK-NEXT: }
// CHECK-NEXT: %[[A:.*]] = arith.constant 1 : i64
// CHECK-NEXT: call @mass_grad_ready(%[[A]])
// CHECK-NEXT: %[[B:.*]] = arith.constant 2 : i64
// CHECK-NEXT: call @mass_grad_ready(%[[B]])
// CHECK-NEXT: return
#id = affine_map<(d0) -> (d0)>
func.func @train_step(%x: memref<4xf32>, %g0: memref<4xf32>, %g1: memref<4xf32>, %g2: memref<4xf32>)
    attributes {mass.grad_values = array<i64: 1, 2, 3>} {
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%x : memref<4xf32>) outs(%g0, %g1 : memref<4xf32>, memref<4xf32>) {
  ^bb0(%a: f32, %o: f32, %p: f32):
    linalg.yield %a, %a : f32, f32
  }
  return
}

// -----

// A buffer the function returns is final before the return.
// CHECK-LABEL: func.func @train_step
// CHECK: memref.copy
// CHECK-NEXT: %[[G:.*]] = arith.constant 1 : i64
// CHECK-NEXT: call @mass_grad_ready(%[[G]])
// CHECK-NEXT: return
func.func @train_step(%x: memref<4xf32>, %g: memref<4xf32>) -> memref<4xf32>
    attributes {mass.grad_values = array<i64: 1>} {
  memref.copy %x, %g : memref<4xf32> to memref<4xf32>
  return %g : memref<4xf32>
}

// -----

// Functions without gradients are left alone.
// CHECK: module {
// CHECK-NOT: mass_grad_ready
func.func @forward(%x: memref<4xf32>, %y: memref<4xf32>) {
  memref.copy %x, %y : memref<4xf32> to memref<4xf32>
  return
}

// -----

// A gradient value that is no buffer argument is an error.
// expected-error@+1 {{mass-grad-ready: gradient value 2 is no buffer argument}}
func.func @train_step(%x: memref<4xf32>, %g: memref<4xf32>)
    attributes {mass.grad_values = array<i64: 2>} {
  return
}
