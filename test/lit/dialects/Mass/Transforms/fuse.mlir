// RUN: mass-opt --mass-fuse %s | FileCheck %s

// A bias add and an activation: one group; the splat constant is copied in.
// CHECK-LABEL: func.func @epilogue
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[B:.*]]: tensor<8xf32>)
// CHECK: %[[R:.*]] = mass.fusion ins(%[[X]], %[[B]] : tensor<?x8xf32>, tensor<8xf32>) {
// CHECK-NEXT: ^bb0(%[[A:.*]]: tensor<?x8xf32>, %[[C:.*]]: tensor<8xf32>):
// CHECK-NEXT: %[[K:.*]] = arith.constant dense<2.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[S:.*]] = mass.add %[[A]], %[[C]]
// CHECK-NEXT: %[[M:.*]] = mass.mul %[[S]], %[[K]]
// CHECK-NEXT: %[[T:.*]] = mass.relu %[[M]]
// CHECK-NEXT: mass.yield %[[T]] : tensor<?x8xf32>
// CHECK-NEXT: } -> tensor<?x8xf32>
// CHECK-NEXT: return %[[R]]
func.func @epilogue(%x: tensor<?x8xf32>, %b: tensor<8xf32>) -> tensor<?x8xf32> {
  %k = arith.constant dense<2.0> : tensor<f32>
  %0 = mass.add %x, %b : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  %1 = mass.mul %0, %k : tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
  %2 = mass.relu %1 : tensor<?x8xf32>
  return %2 : tensor<?x8xf32>
}

// An optimizer step: the new moment is both returned and read by the new
// parameter, so the group yields both. The scalar lr / bias correction has
// another shape and stays outside.
// CHECK-LABEL: func.func @momentum
// CHECK: %[[LR:.*]] = mass.div
// CHECK: %[[R:.*]]:2 = mass.fusion ins({{.*}}%[[LR]]{{.*}}) {
// CHECK: %[[NEW_M:.*]] = mass.add
// CHECK: %[[NEW_P:.*]] = mass.sub
// CHECK-NEXT: mass.yield %[[NEW_M]], %[[NEW_P]] : tensor<4x4xf32>, tensor<4x4xf32>
// CHECK: return %[[R]]#1, %[[R]]#0
func.func @momentum(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>,
                    %lr: tensor<f32>, %bc: tensor<f32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %c = arith.constant dense<0.9> : tensor<f32>
  %0 = mass.mul %c, %m : tensor<f32>, tensor<4x4xf32> -> tensor<4x4xf32>
  %1 = mass.add %0, %g : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  %s = mass.div %lr, %bc : tensor<f32>, tensor<f32> -> tensor<f32>
  %2 = mass.mul %s, %1 : tensor<f32>, tensor<4x4xf32> -> tensor<4x4xf32>
  %3 = mass.sub %p, %2 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
  return %3, %1 : tensor<4x4xf32>, tensor<4x4xf32>
}

// A reduction ends a group and is its only result.
// CHECK-LABEL: func.func @reduction
// CHECK: %[[R:.*]] = mass.fusion ins(%{{.*}} : tensor<?x8xf32>) {
// CHECK: mass.exp
// CHECK: %[[S:.*]] = mass.sum %{{.*}} axes = [1]
// CHECK-NEXT: mass.yield %[[S]] : tensor<?xf32>
// CHECK: return %[[R]]
func.func @reduction(%x: tensor<?x8xf32>) -> tensor<?xf32> {
  %0 = mass.exp %x : tensor<?x8xf32>
  %1 = mass.sum %0 axes = [1] : tensor<?x8xf32> -> tensor<?xf32>
  return %1 : tensor<?xf32>
}

// A producer read by a matmul before the group's root cannot move into the
// group (the matmul would run before the value exists): no group forms.
// CHECK-LABEL: func.func @read_before_root
// CHECK-NOT: mass.fusion
// CHECK: return
func.func @read_before_root(%x: tensor<?x8xf32>, %w: tensor<8x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %0 = mass.exp %x : tensor<?x8xf32>
  %1 = mass.matmul %0, %w : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %2 = mass.relu %0 : tensor<?x8xf32>
  return %1, %2 : tensor<?x8xf32>, tensor<?x8xf32>
}

// A reduction's group has no other result: the square read by the sum and
// by a later op is computed once for each (a one-instruction op is copied
// for each reader rather than stored).
// CHECK-LABEL: func.func @copied_square
// CHECK: mass.fusion
// CHECK: mass.mul %[[A:.*]], %[[A]]
// CHECK: mass.sum
// CHECK: mass.fusion
// CHECK: mass.mul %[[B:.*]], %[[B]]
// CHECK: mass.sqrt
// CHECK-NOT: mass.mul
// CHECK: return
func.func @copied_square(%g: tensor<16xf32>) -> (tensor<f32>, tensor<16xf32>) {
  %0 = mass.mul %g, %g : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  %1 = mass.sum %0 axes = [0] : tensor<16xf32> -> tensor<f32>
  %2 = mass.sqrt %0 : tensor<16xf32>
  %3 = mass.neg %2 : tensor<16xf32>
  return %1, %3 : tensor<f32>, tensor<16xf32>
}
