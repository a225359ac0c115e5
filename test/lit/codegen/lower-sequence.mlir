// RUN: mass-opt --mass-lower-to-linalg %s | FileCheck %s

// CHECK-DAG: #[[ALL:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[ROW:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[LAST:.*]] = affine_map<(d0, d1, d2) -> (d2)>

// Layer norm: the row sums, the mean, the squares about it (a second
// pass), rstd, and one pass that normalises.
// CHECK-LABEL: func.func @layernorm
// CHECK: %[[SUM:.*]] = linalg.generic {indexing_maps = [#[[ALL]], #[[ROW]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0 : tensor<?x5x8xf32>)
// CHECK: %[[MEAN:.*]] = linalg.generic {{.*}} ins(%[[SUM]] : tensor<?x5xf32>)
// CHECK: arith.divf %{{.*}}, %{{.*}} : f32
// CHECK: %[[SQ:.*]] = linalg.generic {indexing_maps = [#[[ALL]], #[[ROW]], #[[ROW]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0, %[[MEAN]] : tensor<?x5x8xf32>, tensor<?x5xf32>)
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: %[[RSTD:.*]] = linalg.generic {{.*}} ins(%[[SQ]] : tensor<?x5xf32>)
// CHECK: math.sqrt
// CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[ALL]], #[[ROW]], #[[ROW]], #[[LAST]], #[[LAST]], #[[ALL]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0, %[[MEAN]], %[[RSTD]], %arg1, %arg2
// CHECK: return %[[Y]], %[[MEAN]], %[[RSTD]]
func.func @layernorm(%x: tensor<?x5x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>) -> (tensor<?x5x8xf32>, tensor<?x5xf32>, tensor<?x5xf32>) {
  %y:3 = mass.layernorm %x, %w, %b eps = 1.0e-05 : tensor<?x5x8xf32>, tensor<8xf32> -> tensor<?x5xf32>, tensor<?x5xf32>
  return %y#0, %y#1, %y#2 : tensor<?x5x8xf32>, tensor<?x5xf32>, tensor<?x5xf32>
}

// An embedding gathers rows by id, clamped into the table.
// CHECK-LABEL: func.func @embedding
// CHECK: linalg.generic {indexing_maps = [#[[ROW]], #[[ALL]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<?x6xi32>) outs(%{{.*}} : tensor<?x6x8xf32>)
// CHECK: %[[LOW:.*]] = arith.maxsi %{{.*}}, %c0_i32
// CHECK: %[[ID:.*]] = arith.minsi %[[LOW]], %c10_i32
// CHECK: %[[ROWI:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK: %[[COL:.*]] = linalg.index 2
// CHECK: tensor.extract %arg1[%[[ROWI]], %[[COL]]] : tensor<11x8xf32>
func.func @embedding(%ids: tensor<?x6xi32>, %w: tensor<11x8xf32>) -> tensor<?x6x8xf32> {
  %y = mass.embedding %ids, %w : tensor<?x6xi32>, tensor<11x8xf32> -> tensor<?x6x8xf32>
  return %y : tensor<?x6x8xf32>
}

// Its gradient adds each position's row into the row its id names, one
// position after another.
// CHECK-LABEL: func.func @embedding_grad
// CHECK: %[[IDS:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1]] : tensor<?x6xi32> into tensor<?xi32>
// CHECK: %[[DY:.*]] = tensor.collapse_shape %arg1 {{\[\[}}0, 1], [2]] : tensor<?x6x8xf32> into tensor<?x8xf32>
// CHECK: %[[ZERO:.*]] = linalg.fill
// CHECK: scf.for %[[N:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[ACC:.*]] = %[[ZERO]]) -> (tensor<11x8xf32>)
// CHECK: tensor.extract %[[IDS]][%[[N]]]
// CHECK: %[[R:.*]] = arith.index_cast
// CHECK: %[[IN:.*]] = tensor.extract_slice %[[DY]][%[[N]], 0] [1, 8] [1, 1]
// CHECK: %[[OLD:.*]] = tensor.extract_slice %[[ACC]][%[[R]], 0] [1, 8] [1, 1]
// CHECK: %[[NEW:.*]] = linalg.generic {{.*}} ins(%[[IN]] : tensor<1x8xf32>) outs(%[[OLD]] : tensor<1x8xf32>)
// CHECK: arith.addf
// CHECK: %[[UP:.*]] = tensor.insert_slice %[[NEW]] into %[[ACC]][%[[R]], 0] [1, 8] [1, 1]
// CHECK: scf.yield %[[UP]]
func.func @embedding_grad(%ids: tensor<?x6xi32>, %dy: tensor<?x6x8xf32>) -> tensor<11x8xf32> {
  %g = mass.embedding_grad %ids, %dy : tensor<?x6xi32>, tensor<?x6x8xf32> -> tensor<11x8xf32>
  return %g : tensor<11x8xf32>
}
