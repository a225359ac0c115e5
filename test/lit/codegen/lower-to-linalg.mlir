// RUN: mass-opt --mass-lower-to-linalg %s | FileCheck %s

// Contractions run their loops as (m, k, n): the innermost loop walks rows.
// CHECK-DAG: #[[XMAP:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[WMAP:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[YMAP:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// A broadcast operand reads index 0 along its size-1 axis.
// CHECK-DAG: #[[ROW:.*]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-DAG: #[[CNHW:.*]] = affine_map<(d0, d1, d2, d3) -> (d1, d0, d2, d3)>
// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%a: tensor<?x4xf32>, %b: tensor<1x4xf32>) -> tensor<?x4xf32> {
  // CHECK: %[[D:.*]] = tensor.dim %{{.*}}, %c0 : tensor<?x4xf32>
  // CHECK: %[[E:.*]] = tensor.empty(%[[D]]) : tensor<?x4xf32>
  // CHECK: linalg.generic {{{.*}}#[[ROW]]{{.*}}} ins(%{{.*}}, %{{.*}} : tensor<?x4xf32>, tensor<1x4xf32>) outs(%[[E]] : tensor<?x4xf32>)
  // CHECK: arith.mulf
  %0 = mass.mul %a, %b : tensor<?x4xf32>, tensor<1x4xf32> -> tensor<?x4xf32>
  // CHECK: linalg.generic
  // CHECK: arith.maximumf
  %1 = mass.relu %0 : tensor<?x4xf32>
  return %1 : tensor<?x4xf32>
}

// CHECK-LABEL: func.func @dense
func.func @dense(%x: tensor<?x8xf32>, %w: tensor<3x8xf32>, %b: tensor<3xf32>) -> tensor<?x3xf32> {
  // The bias seeds the accumulator, then one contraction adds x · wᵀ, with
  // wᵀ made once.
  // CHECK: %[[BIAS:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<3xf32>)
  // CHECK: %[[WT:.*]] = linalg.transpose ins(%{{.*}} : tensor<3x8xf32>) outs(%{{.*}} : tensor<8x3xf32>) permutation = [1, 0]
  // CHECK: linalg.generic {indexing_maps = [#[[XMAP]], #[[WMAP]], #[[YMAP]]], iterator_types = ["parallel", "reduction", "parallel"]} ins(%{{.*}}, %[[WT]] : tensor<?x8xf32>, tensor<8x3xf32>) outs(%[[BIAS]] : tensor<?x3xf32>)
  %0 = mass.dense %x, %w, %b : (tensor<?x8xf32>, tensor<3x8xf32>, tensor<3xf32>) -> tensor<?x3xf32>
  return %0 : tensor<?x3xf32>
}

// A product with one matrix for every row of a sequence is one matrix
// product over all rows: [B, T, k] collapses to [B * T, k] (the size
// computed as the batch times T), and the result expands back.
// CHECK-LABEL: func.func @dense_over_rows
func.func @dense_over_rows(%x: tensor<?x4x8xf32>, %w: tensor<3x8xf32>, %b: tensor<3xf32>, %m: tensor<3x5xf32>) -> tensor<?x4x5xf32> {
  // CHECK: %[[N:.*]] = tensor.dim %arg0, %c0 : tensor<?x4x8xf32>
  // CHECK: %[[ROWS:.*]] = arith.muli %[[N]], %c4 : index
  // CHECK: %[[X:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : tensor<?x4x8xf32> into tensor<?x8xf32>
  // CHECK: tensor.empty(%[[ROWS]]) : tensor<?x3xf32>
  // CHECK: %[[Y:.*]] = linalg.generic {indexing_maps = [#[[XMAP]], #[[WMAP]], #[[YMAP]]], {{.*}}} ins(%[[X]], %{{.*}} : tensor<?x8xf32>, tensor<8x3xf32>)
  // CHECK: %[[B:.*]] = tensor.dim %arg0, %c0
  // CHECK: tensor.expand_shape %[[Y]] {{\[\[}}0, 1], [2]] output_shape [%[[B]], 4, 3] : tensor<?x3xf32> into tensor<?x4x3xf32>
  %0 = mass.dense %x, %w, %b : (tensor<?x4x8xf32>, tensor<3x8xf32>, tensor<3xf32>) -> tensor<?x4x3xf32>
  // The same for matmul with a matrix on the right.
  // CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<?x4x3xf32> into tensor<?x3xf32>
  // CHECK: linalg.generic {indexing_maps = [#[[XMAP]], #[[WMAP]], #[[YMAP]]], {{.*}}} ins(%{{.*}}, %arg3 : tensor<?x3xf32>, tensor<3x5xf32>)
  // CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [%{{.*}}, 4, 5] : tensor<?x5xf32> into tensor<?x4x5xf32>
  %1 = mass.matmul %0, %m : tensor<?x4x3xf32>, tensor<3x5xf32> -> tensor<?x4x5xf32>
  return %1 : tensor<?x4x5xf32>
}

// CHECK-LABEL: func.func @reduce
func.func @reduce(%x: tensor<?x8xf32>) -> tensor<?x1xf32> {
  // CHECK: linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?xf32>)
  // CHECK: linalg.generic {{{.*}}iterator_types = ["parallel", "reduction"]}
  // CHECK: arith.addf
  // keepdim reshapes the reduction.
  // CHECK: tensor.reshape %{{.*}}(%{{.*}}) : (tensor<?xf32>, tensor<2xindex>) -> tensor<?x1xf32>
  %0 = mass.sum %x axes = [1] keepdim : tensor<?x8xf32> -> tensor<?x1xf32>
  return %0 : tensor<?x1xf32>
}

// A sum over every axis of a conv weight [O, I, 3, 3] runs in two stages:
// partial sums over O for each of I*3*3 positions (rows of 36 innermost),
// then over those. A last axis of 3 alone would make rows of 3.
// CHECK-LABEL: func.func @sum_all
// CHECK: %[[P:.*]] = linalg.generic {{{.*}}iterator_types = ["reduction", "parallel", "parallel", "parallel"]} ins(%arg0 : tensor<8x4x3x3xf32>) outs(%{{.*}} : tensor<4x3x3xf32>)
// CHECK: linalg.generic {{{.*}}iterator_types = ["reduction", "reduction", "reduction"]} ins(%[[P]] : tensor<4x3x3xf32>) outs(%{{.*}} : tensor<f32>)
func.func @sum_all(%w: tensor<8x4x3x3xf32>) -> tensor<f32> {
  %0 = mass.sum %w axes = [0, 1, 2, 3] : tensor<8x4x3x3xf32> -> tensor<f32>
  return %0 : tensor<f32>
}

// A per-channel sum over [N, C, H, W] (a conv bias's gradient, batch
// norm's backward pass) runs the channel outermost, so that threads split
// the channels: loops (C, N, H, W), partial sums per image position, then
// those.
// CHECK-LABEL: func.func @sum_per_channel
// CHECK: %[[P:.*]] = linalg.generic {indexing_maps = [#[[CNHW]], #{{.*}}], iterator_types = ["parallel", "reduction", "parallel", "parallel"]} ins(%arg0 : tensor<?x3x4x4xf32>) outs(%{{.*}} : tensor<3x4x4xf32>)
// CHECK: linalg.generic {{{.*}}iterator_types = ["parallel", "reduction", "reduction"]} ins(%[[P]] : tensor<3x4x4xf32>) outs(%{{.*}} : tensor<3xf32>)
func.func @sum_per_channel(%x: tensor<?x3x4x4xf32>) -> tensor<3xf32> {
  %0 = mass.sum %x axes = [0, 2, 3] : tensor<?x3x4x4xf32> -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// CHECK-LABEL: func.func @cross_entropy
func.func @cross_entropy(%l: tensor<?x10xf32>, %y: tensor<?xi32>) -> tensor<f32> {
  // log-sum-exp of each row.
  // CHECK: math.exp
  // CHECK: math.log
  // The label's logit is picked by comparing the class index with the label.
  // CHECK: linalg.index 1
  // CHECK: arith.cmpi eq
  // Unlabelled rows (label < 0) count for nothing.
  // CHECK: arith.cmpi sge
  // CHECK: arith.maximumf
  // CHECK: arith.divf
  // CHECK: tensor.from_elements %{{.*}} : tensor<f32>
  %0 = mass.cross_entropy %l, %y : tensor<?x10xf32>, tensor<?xi32>
  return %0 : tensor<f32>
}

// CHECK-LABEL: func.func @transpose
func.func @transpose(%x: tensor<?x3x4xf32>) -> tensor<4x?x3xf32> {
  // CHECK: %[[D:.*]] = tensor.dim %{{.*}}, %c0
  // CHECK: linalg.transpose ins(%{{.*}} : tensor<?x3x4xf32>) outs(%{{.*}} : tensor<4x?x3xf32>) permutation = [2, 0, 1]
  %0 = mass.transpose %x perm = [2, 0, 1] : tensor<?x3x4xf32> -> tensor<4x?x3xf32>
  return %0 : tensor<4x?x3xf32>
}

// concat inserts each input at its offset along the axis; slice, its VJP,
// extracts one back.
// CHECK-LABEL: func.func @concat
func.func @concat(%a: tensor<?x3xf32>, %b: tensor<?x4xf32>) -> (tensor<?x7xf32>, tensor<?x4xf32>) {
  // CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x7xf32>
  // CHECK: %[[A:.*]] = tensor.insert_slice %arg0 into %[[E]][0, 0] [%{{.*}}, 3] [1, 1] : tensor<?x3xf32> into tensor<?x7xf32>
  // CHECK: %[[B:.*]] = tensor.insert_slice %arg1 into %[[A]][0, 3] [%{{.*}}, 4] [1, 1] : tensor<?x4xf32> into tensor<?x7xf32>
  %0 = mass.concat %a, %b axis = 1 : tensor<?x3xf32>, tensor<?x4xf32> -> tensor<?x7xf32>
  // CHECK: tensor.extract_slice %[[B]][0, 3] [%{{.*}}, 4] [1, 1] : tensor<?x7xf32> to tensor<?x4xf32>
  %1 = mass.slice %0 axis = 1 offset = 3 : tensor<?x7xf32> -> tensor<?x4xf32>
  return %0, %1 : tensor<?x7xf32>, tensor<?x4xf32>
}
