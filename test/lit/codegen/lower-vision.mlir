// RUN: mass-opt --mass-lower-to-linalg %s | FileCheck %s

// The maps, printed first.
// CHECK-DAG: #[[IM2COL:.*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d4, d0 * 2 + d1, d5 * 2 + d2, d6 * 2 + d3)>
// CHECK-DAG: #[[ALL7:.*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3, d4, d5, d6)>
// CHECK-DAG: #[[A:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// Batch norm's sums read x [N, C, H, W] over loops (C, N, H, W).
// CHECK-DAG: #[[ROW:.*]] = affine_map<() -> (1)>
// CHECK-DAG: #[[ROWS:.*]] = affine_map<() -> (2)>
// CHECK-DAG: #[[CNHW:.*]] = affine_map<(d0, d1, d2, d3) -> (d1, d0, d2, d3)>
// CHECK-DAG: #[[B:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>
// CHECK-DAG: #[[C:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[NCHW:.*]] = affine_map<(d0, d1, d2, d3) -> (d1 floordiv 3, d1 mod 3, d0, d2, d3)>
// CHECK-DAG: #[[DY:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d2, d0 * 3 + d1, d3, d4)>
// CHECK-DAG: #[[WT:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d1)>
// CHECK-DAG: #[[BT:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>
// Window loops run (n, c, h, kh, kw, w): the innermost walks rows.
// CHECK-DAG: #[[WIN:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d3, d4)>
// CHECK-DAG: #[[OUT:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d5)>
// CHECK-DAG: #[[POOLREAD:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 * 2 + d3, d5 * 2 + d4)>
// CHECK-DAG: #[[COL2IM:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d1 floordiv 4, d1 mod 4, d3, d4, d0, d2 - d3 + 2, d5 - d4 + 2)>
// CHECK-DAG: #[[TILE:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 floordiv 2, d3 floordiv 2)>

// A grouped, strided convolution: im2col reads the zero-padded input
// through an affine map into columns [g, C/g*KH*KW, N*OH*OW], one
// contraction per group multiplies them by the weight seen as
// [g, O/g, C/g*KH*KW], and a copy returns NCHW.
// CHECK-LABEL: func.func @conv
// CHECK: %[[PADDED:.*]] = tensor.insert_slice %arg0 into %{{.*}}[0, 0, 1, 1] [%{{.*}}, 4, 9, 9] [1, 1, 1, 1] : tensor<?x4x9x9xf32> into tensor<?x4x11x11xf32>
// CHECK: %[[COLS:.*]] = linalg.generic {indexing_maps = [#[[IM2COL]], #[[ALL7]]]{{.*}} ins(%[[PADDED]] : tensor<?x4x11x11xf32>) outs(%{{.*}} : tensor<2x2x3x3x?x5x5xf32>)
// CHECK: %[[COL:.*]] = tensor.collapse_shape %[[COLS]] {{\[\[}}0], [1, 2, 3], [4, 5, 6]] : tensor<2x2x3x3x?x5x5xf32> into tensor<2x18x?xf32>
// CHECK: %[[W:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [2, 3, 18] : tensor<6x18xf32> into tensor<2x3x18xf32>
// The product's buffer keeps the batch as an axis of its own.
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<2x3x?x25xf32>
// CHECK: %[[CE:.*]] = tensor.collapse_shape %[[E]]
// CHECK: %[[Z:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[CE]] : tensor<2x3x?xf32>)
// CHECK: %[[P:.*]] = linalg.generic {indexing_maps = [#[[A]], #[[B]], #[[C]]], iterator_types = ["parallel", "parallel", "reduction", "parallel"]} ins(%[[W]], %[[COL]] : tensor<2x3x18xf32>, tensor<2x18x?xf32>) outs(%[[Z]] : tensor<2x3x?xf32>)
// CHECK: %[[PX:.*]] = tensor.expand_shape %[[P]] {{\[\[}}0], [1], [2, 3, 4]] output_shape [2, 3, %{{.*}}, 5, 5]
// CHECK: linalg.generic {indexing_maps = [#[[NCHW]], #{{.*}}]{{.*}} ins(%[[PX]] : tensor<2x3x?x5x5xf32>) outs(%{{.*}} : tensor<?x6x5x5xf32>)
func.func @conv(%x: tensor<?x4x9x9xf32>, %w: tensor<6x2x3x3xf32>) -> tensor<?x6x5x5xf32> {
  %0 = mass.conv2d %x, %w stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32> -> tensor<?x6x5x5xf32>
  return %0 : tensor<?x6x5x5xf32>
}

// The input's gradient with stride 2: the weight transposed times dy gives
// columns, and col2im sums, for each input element, the columns that read
// it (stride checked with remsi). The weight's gradient: dy times the
// columns transposed, over N*OH*OW.
// CHECK-LABEL: func.func @grads
// CHECK: linalg.generic {indexing_maps = [#[[DY]], #{{.*}}]{{.*}} ins(%arg0 : tensor<?x6x5x5xf32>) outs(%{{.*}} : tensor<2x3x?x5x5xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[WT]], #[[B]], #[[C]]]{{.*}} ins(%{{.*}}, %{{.*}} : tensor<2x3x18xf32>, tensor<2x3x?xf32>) outs(%{{.*}} : tensor<2x18x?xf32>)
// CHECK: %[[DCOL:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2, 3], [4, 5, 6]]
// CHECK: linalg.generic {indexing_maps = [#[[WIN]], #[[OUT]]], iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction", "parallel"]} ins(%{{.*}} : tensor<3x3xf32>) outs(%{{.*}} : tensor<?x4x9x9xf32>)
// CHECK: arith.remsi
// CHECK: tensor.extract %[[DCOL]]
// CHECK: tensor.collapse_shape %{{.*}} : tensor<2x2x3x3x?x5x5xf32> into tensor<2x18x?xf32>
// CHECK: linalg.generic {indexing_maps = [#[[A]], #[[BT]], #[[C]]]{{.*}} ins(%{{.*}}, %{{.*}} : tensor<2x3x?xf32>, tensor<2x18x?xf32>) outs(%{{.*}} : tensor<2x3x18xf32>)
// CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2, 3]] output_shape [6, 2, 3, 3]
func.func @grads(%dy: tensor<?x6x5x5xf32>, %x: tensor<?x4x9x9xf32>, %w: tensor<6x2x3x3xf32>) -> (tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32>) {
  %0 = mass.conv2d_grad_input %dy, %w stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x6x5x5xf32>, tensor<6x2x3x3xf32> -> tensor<?x4x9x9xf32>
  %1 = mass.conv2d_grad_weight %dy, %x stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x6x5x5xf32>, tensor<?x4x9x9xf32> -> tensor<6x2x3x3xf32>
  return %0, %1 : tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32>
}

// With unit strides col2im reads the columns, padded with zeros, through
// an affine map: no bounds checks.
// CHECK-LABEL: func.func @grads_unit_stride
// CHECK: %[[PCOL:.*]] = tensor.insert_slice %{{.*}} into %{{.*}}[0, 0, 0, 0, 0, 1, 1] [1, 4, 3, 3, %{{.*}}, 9, 9] [1, 1, 1, 1, 1, 1, 1] : tensor<1x4x3x3x?x9x9xf32> into tensor<1x4x3x3x?x11x11xf32>
// CHECK: linalg.generic {indexing_maps = [#[[COL2IM]], #[[WIN]], #[[OUT]]], iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction", "parallel"]} ins(%[[PCOL]], %{{.*}} : tensor<1x4x3x3x?x11x11xf32>, tensor<3x3xf32>) outs(%{{.*}} : tensor<?x4x9x9xf32>)
// CHECK-NOT: arith.select
// CHECK: return
func.func @grads_unit_stride(%dy: tensor<?x6x9x9xf32>, %w: tensor<6x4x3x3xf32>) -> tensor<?x4x9x9xf32> {
  %0 = mass.conv2d_grad_input %dy, %w stride = [1, 1] padding = [1, 1] dilation = [1, 1] groups = 1 : tensor<?x6x9x9xf32>, tensor<6x4x3x3xf32> -> tensor<?x4x9x9xf32>
  return %0 : tensor<?x4x9x9xf32>
}

// Pools read the padded input through an affine map. Max pooling finds
// each window's maximum and where it is (its first maximum, window-local:
// kh * KW + kw), one op that the gradient builds too (CSE keeps one per
// training step); padding holds -inf, never chosen. The mean pads with
// zeros and divides by the whole window (padding counts). Max's gradient
// sums dy, for each input element, over the windows that chose it.
// CHECK-LABEL: func.func @pools
// CHECK: %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: linalg.fill ins(%[[NEGINF]] : f32) outs(%{{.*}} : tensor<?x3x4x4xf32>)
// CHECK: linalg.fill ins(%{{.*}} : i64) outs(%{{.*}} : tensor<?x3x4x4xi64>)
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x3x10x10xf32>)
// CHECK: %[[XP:.*]] = tensor.insert_slice %arg0 into
// CHECK: linalg.generic {indexing_maps = [#[[POOLREAD]], #[[WIN]], #[[OUT]], #[[OUT]]]{{.*}} ins(%[[XP]], %{{.*}} : tensor<?x3x10x10xf32>, tensor<3x3xf32>) outs(%{{.*}}, %{{.*}} : tensor<?x3x4x4xf32>, tensor<?x3x4x4xi64>)
// CHECK: arith.cmpf ogt
// CHECK: arith.maximumf
// CHECK: linalg.yield %{{.*}}, %{{.*}} : f32, i64
// CHECK: linalg.generic {indexing_maps = [#[[POOLREAD]], #[[WIN]], #[[OUT]]]
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK: arith.divf %{{.*}}, %{{.*}} : f32
// CHECK: %[[ARGMAX:.*]]:2 = linalg.generic {indexing_maps = [#[[POOLREAD]], #[[WIN]], #[[OUT]], #[[OUT]]]
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<?x3x8x8xf32>)
// CHECK: tensor.extract %[[ARGMAX]]#1
// CHECK: arith.cmpi eq
// CHECK: tensor.extract %arg1
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<?x3x8x8xf32>)
// CHECK: tensor.extract %arg1
// CHECK: arith.divf
func.func @pools(%x: tensor<?x3x8x8xf32>, %dy: tensor<?x3x4x4xf32>) -> (tensor<?x3x4x4xf32>, tensor<?x3x4x4xf32>, tensor<?x3x8x8xf32>, tensor<?x3x8x8xf32>) {
  %0 = mass.maxpool %x kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x3x8x8xf32> -> tensor<?x3x4x4xf32>
  %1 = mass.avgpool %x kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x3x8x8xf32> -> tensor<?x3x4x4xf32>
  %2 = mass.maxpool_grad %x, %dy kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x3x8x8xf32>, tensor<?x3x4x4xf32> -> tensor<?x3x8x8xf32>
  %3 = mass.avgpool_grad %dy kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x3x4x4xf32> -> tensor<?x3x8x8xf32>
  return %0, %1, %2, %3 : tensor<?x3x4x4xf32>, tensor<?x3x4x4xf32>, tensor<?x3x8x8xf32>, tensor<?x3x8x8xf32>
}

// Windows that tile the input: max's gradient is elementwise, reading the
// window's maximum and dy at (h / 2, w / 2); the row and column past the
// last window get zero.
// CHECK-LABEL: func.func @pool_tiles
// CHECK: %[[ARG:.*]]:2 = linalg.generic
// CHECK: %[[ROUTED:.*]] = linalg.generic {indexing_maps = [#[[TILE]], #[[TILE]], #{{.*}}], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[ARG]]#1, %arg1 : tensor<?x3x4x4xi64>, tensor<?x3x4x4xf32>) outs(%{{.*}} : tensor<?x3x8x8xf32>)
// CHECK: arith.cmpi eq
// CHECK: tensor.insert_slice %[[ROUTED]] into %{{.*}}[0, 0, 0, 0] [%{{.*}}, 3, 8, 8] [1, 1, 1, 1] : tensor<?x3x8x8xf32> into tensor<?x3x9x9xf32>
func.func @pool_tiles(%x: tensor<?x3x9x9xf32>, %dy: tensor<?x3x4x4xf32>) -> tensor<?x3x9x9xf32> {
  %0 = mass.maxpool_grad %x, %dy kernel = [2, 2] stride = [2, 2] padding = [0, 0] : tensor<?x3x9x9xf32>, tensor<?x3x4x4xf32> -> tensor<?x3x9x9xf32>
  return %0 : tensor<?x3x9x9xf32>
}

// Batch norm in training mode: per channel (axis 1) a sum (the channel the
// outermost loop, for threads; partial sums per image position, then
// those), the mean, the squares
// about the mean (the same way), invstd = 1 / sqrt(var + eps), the two running
// statistics, and one pass for the result. In evaluation mode: invstd from
// the running variance and the same pass. Dropout in training mode keeps
// an element when a hash of the seed, its stream and its position in the
// global batch clears p * 2^32, and scales it by 1 / (1 - p); the position
// of the slice's first element (the seed's first row times the elements per
// row: the input's elements over the seed's rows) is a 0-d op of its own.
// CHECK-LABEL: func.func @bn
// CHECK: linalg.generic {indexing_maps = [#[[CNHW]], #{{.*}}], iterator_types = ["parallel", "reduction", "parallel", "parallel"]} ins(%arg0 : tensor<?x3x4x4xf32>) outs(%{{.*}} : tensor<3x4x4xf32>)
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction"]} ins(%{{.*}} : tensor<3x4x4xf32>) outs(%{{.*}} : tensor<3xf32>)
// The sums and the count summed over the data-parallel processes
// (SyncBatchNorm), then the squares about the global mean.
// CHECK: %[[PACKED:.*]] = tensor.insert_slice %[[SUM]] into %{{.*}}[0] [3] [1] : tensor<3xf32> into tensor<4xf32>
// CHECK: %[[WITHN:.*]] = tensor.insert %{{.*}} into %[[PACKED]][%c3] : tensor<4xf32>
// CHECK: %[[GLOBAL:.*]] = mass.sum_ranks %[[WITHN]] : tensor<4xf32>
// CHECK: tensor.extract_slice %[[GLOBAL]][0] [3] [1] : tensor<4xf32> to tensor<3xf32>
// CHECK: tensor.extract %[[GLOBAL]][%c3] : tensor<4xf32>
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel", "parallel"]} ins(%arg0, %{{.*}} : tensor<?x3x4x4xf32>, tensor<3xf32>) outs(%{{.*}} : tensor<3x4x4xf32>)
// CHECK: %[[SQUARES:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<3x4x4xf32>) outs(%{{.*}} : tensor<3xf32>)
// CHECK: mass.sum_ranks %[[SQUARES]] : tensor<3xf32>
// CHECK: math.sqrt
// CHECK: linalg.generic {{.*}} ins(%arg3, %{{.*}} : tensor<3xf32>, tensor<3xf32>)
// CHECK: linalg.generic {{.*}} ins(%arg4, %{{.*}} : tensor<3xf32>, tensor<3xf32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg0, %{{.*}}, %{{.*}}, %arg1, %arg2 :
// CHECK: linalg.generic {{.*}} ins(%arg4 : tensor<3xf32>)
// CHECK: math.sqrt
// CHECK: linalg.generic {{.*}} ins(%arg0, %arg3, %{{.*}}, %arg1, %arg2 :
// CHECK: %[[SEED:.*]] = tensor.extract %arg5[%{{.*}}] : tensor<3xi32>
// CHECK: arith.cmpi slt, %[[SEED]]
// CHECK: %[[FIRST:.*]] = linalg.generic {indexing_maps = [#[[ROW]], #[[ROWS]], #{{.*}}], iterator_types = []} ins(%arg5, %arg5 : tensor<3xi32>, tensor<3xi32>) outs(%{{.*}} : tensor<i32>)
// CHECK: arith.divui
// CHECK: linalg.generic {{.*}} ins(%arg0, %[[FIRST]] : tensor<?x3x4x4xf32>, tensor<i32>)
// CHECK: linalg.index 3
// CHECK: arith.addi %{{.*}}, %in{{.*}} : i32
// CHECK: arith.cmpi uge, %{{.*}}, %c1073741824_i32 : i32
// CHECK: arith.mulf %{{.*}}, %cst{{.*}} : f32
// CHECK: arith.select
func.func @bn(%x: tensor<?x3x4x4xf32>, %g: tensor<3xf32>, %b: tensor<3xf32>, %m: tensor<3xf32>, %v: tensor<3xf32>, %seed: tensor<3xi32>) -> (tensor<?x3x4x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<?x3x4x4xf32>, tensor<?x3x4x4xf32>) {
  %0:5 = mass.batchnorm %x, %g, %b, %m, %v training eps = 1.0e-05 momentum = 1.0e-01 : tensor<?x3x4x4xf32>, tensor<3xf32>
  %1:5 = mass.batchnorm %x, %g, %b, %m, %v eps = 1.0e-05 momentum = 1.0e-01 : tensor<?x3x4x4xf32>, tensor<3xf32>
  %2 = mass.dropout %x seed %seed training p = 2.5e-01 stream = 3 : tensor<?x3x4x4xf32>
  return %0#0, %0#3, %0#4, %1#0, %2 : tensor<?x3x4x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<?x3x4x4xf32>, tensor<?x3x4x4xf32>
}
