// RUN: mass-opt --mass-fuse --mass-lower-to-linalg --mass-fuse-loops %s | FileCheck %s

// The optimizer step's group becomes one loop nest writing both the new
// moment and the new parameter: no buffer between its five ops.
// CHECK-LABEL: func.func @momentum
// CHECK: %[[LR:.*]] = linalg.generic {{.*}} iterator_types = []
// CHECK: %[[R:.*]]:2 = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]}
// CHECK-SAME: outs(%{{.*}}, %{{.*}} : tensor<4x4xf32>, tensor<4x4xf32>)
// CHECK: arith.mulf
// CHECK-NEXT: arith.addf
// CHECK-NEXT: arith.mulf
// CHECK-NEXT: arith.subf
// CHECK-NEXT: linalg.yield
// CHECK-NOT: linalg.generic
// CHECK-NOT: mass.fusion_group
// CHECK: return %[[R]]#{{[01]}}, %[[R]]#{{[01]}}
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

// A group ending in a reduction: one loop nest with a reduction loop.
// CHECK-LABEL: func.func @norm
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]}
// CHECK: arith.mulf
// CHECK-NEXT: arith.addf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @norm(%g: tensor<16xf32>) -> tensor<f32> {
  %0 = mass.mul %g, %g : tensor<16xf32>, tensor<16xf32> -> tensor<16xf32>
  %1 = mass.sum %0 axes = [0] : tensor<16xf32> -> tensor<f32>
  return %1 : tensor<f32>
}
