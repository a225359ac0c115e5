// RUN: mass-opt --mass-device-scalars --split-input-file --verify-diagnostics %s | FileCheck %s

// A loss's mean (a sum over a count read out of 0-d tensors) becomes 0-d
// linalg ops; the loop nest that scaled by it reads it as a 0-d input, the
// tensor built from it is the 0-d result, and a fill with it broadcasts it.
// CHECK-DAG: #[[SCALAR:.*]] = affine_map<() -> ()>
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0) -> (d0)>
// CHECK-DAG: #[[BCAST:.*]] = affine_map<(d0) -> ()>
// CHECK-LABEL: func.func @mean
// CHECK-NOT: tensor.extract
// CHECK: %[[MAX:.*]] = linalg.generic {indexing_maps = [#[[SCALAR]], #[[SCALAR]]], iterator_types = []} ins(%arg1 : tensor<f32>)
// CHECK: arith.maximumf
// CHECK: %[[MEAN:.*]] = linalg.generic {indexing_maps = [#[[SCALAR]], #[[SCALAR]], #[[SCALAR]]], iterator_types = []} ins(%arg0, %[[MAX]] : tensor<f32>, tensor<f32>)
// CHECK: arith.divf
// CHECK: %[[SCALED:.*]] = linalg.generic {indexing_maps = [#[[ID]], #[[BCAST]], #[[ID]]], iterator_types = ["parallel"]} ins(%arg2, %[[MAX]] : tensor<?xf32>, tensor<f32>)
// CHECK-NEXT: ^bb0(%[[IN:.*]]: f32, %[[M:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: arith.mulf %[[IN]], %[[M]] : f32
// CHECK: %[[FILL:.*]] = linalg.generic {indexing_maps = [#[[BCAST]], #[[ID]]], iterator_types = ["parallel"]} ins(%[[MEAN]] : tensor<f32>)
// CHECK: return %[[MEAN]], %[[SCALED]], %[[FILL]]
#id = affine_map<(d0) -> (d0)>

func.func @mean(%sum: tensor<f32>, %count: tensor<f32>, %x: tensor<?xf32>) -> (tensor<f32>, tensor<?xf32>, tensor<4xf32>) {
  %one = arith.constant 1.0 : f32
  %s = tensor.extract %sum[] : tensor<f32>
  %c = tensor.extract %count[] : tensor<f32>
  %m = arith.maximumf %c, %one : f32
  %mean = arith.divf %s, %m : f32
  %t = tensor.from_elements %mean : tensor<f32>
  %scaled = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%x : tensor<?xf32>) outs(%x : tensor<?xf32>) {
  ^bb0(%in: f32, %out: f32):
    %p = arith.mulf %in, %m : f32
    linalg.yield %p : f32
  } -> tensor<?xf32>
  %e = tensor.empty() : tensor<4xf32>
  %f = linalg.fill ins(%mean : f32) outs(%e : tensor<4xf32>) -> tensor<4xf32>
  return %t, %scaled, %f : tensor<f32>, tensor<?xf32>, tensor<4xf32>
}

// -----

// An element read at an index is a one-element slice.
// CHECK-LABEL: func.func @slice
// CHECK: %[[ONE:.*]] = tensor.extract_slice %arg0[%c3] [1] [1] : tensor<8xf32> to tensor<f32>
// CHECK: %[[NEG:.*]] = linalg.generic {{.*}} ins(%[[ONE]] : tensor<f32>)
// CHECK: arith.negf
// CHECK: return %[[NEG]]

func.func @slice(%v: tensor<8xf32>) -> tensor<f32> {
  %c3 = arith.constant 3 : index
  %x = tensor.extract %v[%c3] : tensor<8xf32>
  %y = arith.negf %x : f32
  %t = tensor.from_elements %y : tensor<f32>
  return %t : tensor<f32>
}

// -----

// A size computed from device data would have to come back to the host.
func.func @host_use(%n: tensor<f32>) -> tensor<?xf32> {
  %x = tensor.extract %n[] : tensor<f32>
  %i = arith.fptosi %x : f32 to i64
  %j = arith.index_cast %i : i64 to index
  // expected-error @+1 {{a scalar computed on the device is used here on the host; this is not supported yet on the CUDA target}}
  %e = tensor.empty(%j) : tensor<?xf32>
  return %e : tensor<?xf32>
}
