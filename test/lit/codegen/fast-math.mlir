// RUN: mass-opt --mass-lower-to-linalg %s | FileCheck %s --check-prefix=EXACT
// RUN: mass-opt --mass-lower-to-linalg=fast-math %s | FileCheck %s --check-prefix=FAST

// With fast-math, float arithmetic may be reassociated and fused into FMAs,
// which lets LLVM vectorise reductions such as the contraction below.
func.func @dense(%x: tensor<?x8xf32>, %w: tensor<3x8xf32>) -> tensor<?x3xf32> {
  %0 = mass.dense %x, %w : (tensor<?x8xf32>, tensor<3x8xf32>) -> tensor<?x3xf32>
  %1 = mass.sigmoid %0 : tensor<?x3xf32>
  return %1 : tensor<?x3xf32>
}
// EXACT-LABEL: func.func @dense
// EXACT-NOT: fastmath
// EXACT: arith.divf %{{.*}}, %{{.*}} : f32
// EXACT-NOT: fastmath
// FAST: arith.negf %{{.*}} fastmath<reassoc,contract> : f32
// FAST: arith.addf %{{.*}}, %{{.*}} fastmath<reassoc,contract> : f32
// FAST: arith.divf %{{.*}}, %{{.*}} fastmath<reassoc,contract> : f32
