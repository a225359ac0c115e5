// RUN: mass-opt --mass-approximate-math %s | FileCheck %s

// tanh, erf, exp and log (scalars or vectors) become polynomials in arith
// ops, which loops vectorise (LLVM's exp and log intrinsics are libm calls
// per element); sqrt keeps its intrinsic, one instruction on vectors.

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
// exp: n = floor(x log2(e) + 1/2) and a polynomial of the rest, scaled
// by 2^n built in the exponent bits.
// CHECK: math.floor %{{.*}} : f32
// CHECK: arith.fptosi %{{.*}} : f32 to i32
// CHECK: arith.shli
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// log on a vector: the exponent and mantissa taken apart by bit operations.
// CHECK: arith.bitcast %{{.*}} : vector<16xf32> to vector<16xi32>
// CHECK: math.sqrt %arg0 : f32
// CHECK-NOT: math.tanh
// CHECK-NOT: math.erf
// CHECK-NOT: math.exp
// CHECK-NOT: math.log
func.func @gelu(%x: f32, %v: vector<16xf32>) -> (f32, vector<16xf32>, f32, vector<16xf32>, f32) {
  %t = math.tanh %x : f32
  %e = math.erf %v : vector<16xf32>
  %l = math.exp %x : f32
  %g = math.log %v : vector<16xf32>
  %s = math.sqrt %x : f32
  return %t, %e, %l, %g, %s : f32, vector<16xf32>, f32, vector<16xf32>, f32
}
