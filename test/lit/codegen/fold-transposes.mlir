// RUN: mass-opt --mass-fold-transposes %s | FileCheck %s

#a = affine_map<(m, k, n) -> (m, k)>
#b = affine_map<(m, k, n) -> (k, n)>
#c = affine_map<(m, k, n) -> (m, n)>

// mass-fold-transposes: a transpose of the last two axes feeding a
// contraction is read in place through the contraction's map.
// CHECK-LABEL: func.func @fold
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xf32>, %[[W:.*]]: tensor<8x16xf32>
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[BT:.*]], #{{.*}}]
// CHECK-SAME: ins(%[[X]], %[[W]] : tensor<?x16xf32>, tensor<8x16xf32>)
func.func @fold(%x: tensor<?x16xf32>, %w: tensor<8x16xf32>, %init: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %e = tensor.empty() : tensor<16x8xf32>
  %wt = linalg.transpose ins(%w : tensor<8x16xf32>) outs(%e : tensor<16x8xf32>) permutation = [1, 0]
  %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %wt : tensor<?x16xf32>, tensor<16x8xf32>) outs(%init : tensor<?x8xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}
