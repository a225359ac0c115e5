// RUN: mass-opt --mass-approximate-math %s | FileCheck %s

// tanh and erf (scalars or vectors) become polynomials in arith ops, which
// loops vectorise; exp keeps its LLVM intrinsic.

// CHECK-LABEL: func.func @gelu
// CHECK-NOT: math.tanh
// CHECK-NOT: math.erf
// tanh: the input clamped to [-7.9, 7.9] by comparisons that keep a NaN
// (unordered), then a ratio of polynomials.
// CHECK: %[[LOW:.*]] = arith.cmpf ult, %arg0, %{{.*}} : f32
// CHECK: arith.select %[[LOW]], %arg0, %{{.*}} : f32
// CHECK: arith.divf %{{.*}}, %{{.*}} : f32
// erf on a vector: coefficients chosen by range.
// CHECK: arith.cmpf olt, %arg1, %{{.*}} : vector<16xf32>
// CHECK: arith.select %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: math.exp %arg0 : f32
// CHECK-NOT: math.tanh
// CHECK-NOT: math.erf
func.func @gelu(%x: f32, %v: vector<16xf32>) -> (f32, vector<16xf32>, f32) {
  %t = math.tanh %x : f32
  %e = math.erf %v : vector<16xf32>
  %l = math.exp %x : f32
  return %t, %e, %l : f32, vector<16xf32>, f32
}
