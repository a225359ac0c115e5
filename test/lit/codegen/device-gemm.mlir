// RUN: mass-opt --split-input-file --mass-device-gemm --cse %s | FileCheck %s

// A product x[m, k] * W^T (W stored [n, k]) after a fill of zeros: one
// host call of the runtime's product on rank-3 views (a leading dimension
// of 1), B read transposed, C overwritten (the last 0), the fill gone.
// CHECK: func.func private @mass_cuda_gemm(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @dense
// CHECK-NOT: linalg.fill
// CHECK-DAG: %[[X:.*]] = memref.expand_shape %arg0 {{\[\[}}0, 1], [2]] output_shape [1, %{{.*}}, 64] : memref<?x64xf32> into memref<1x?x64xf32>
// CHECK-DAG: %[[W:.*]] = memref.expand_shape %arg1 {{\[\[}}0, 1], [2]] output_shape [1, 32, 64] : memref<32x64xf32> into memref<1x32x64xf32>
// CHECK-DAG: %[[Y:.*]] = memref.expand_shape %arg2 {{\[\[}}0, 1], [2]] output_shape [1, %{{.*}}, 32] : memref<?x32xf32> into memref<1x?x32xf32>
// CHECK-DAG: %[[A:.*]] = memref.cast %[[X]]
// CHECK-DAG: %[[B:.*]] = memref.cast %[[W]]
// CHECK-DAG: %[[C:.*]] = memref.cast %[[Y]]
// CHECK-DAG: %[[NO:.*]] = arith.constant 0 : i64
// CHECK-DAG: %[[YES:.*]] = arith.constant 1 : i64
// CHECK: call @mass_cuda_gemm(%[[A]], %[[B]], %[[C]], %[[NO]], %[[YES]], %[[NO]])
// CHECK-NOT: linalg.generic
#mk = affine_map<(m, k, n) -> (m, k)>
#nk = affine_map<(m, k, n) -> (n, k)>
#mn = affine_map<(m, k, n) -> (m, n)>
func.func @dense(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x32xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<?x32xf32>)
  linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Batched (attention-like scores per sample) with A read transposed
// (stored [b, k, m]) and B shared by every batch (its batch index 0): B
// becomes a view of its first matrix. Nothing wrote C just before: the
// product adds onto it.
// CHECK-LABEL: func.func @batched
// CHECK: %[[B0:.*]] = memref.subview %arg1[0, 0, 0] [1, 8, 16] [1, 1, 1]
// CHECK: %[[A:.*]] = memref.cast %arg0
// CHECK: %[[B:.*]] = memref.cast %[[B0]]
// CHECK: %[[C:.*]] = memref.cast %arg2
// CHECK: call @mass_cuda_gemm(%[[A]], %[[B]], %[[C]], %c1_i64, %c0_i64, %c1_i64)
#bkm = affine_map<(b, m, k, n) -> (b, k, m)>
#b0kn = affine_map<(b, m, k, n) -> (0, k, n)>
#bmn = affine_map<(b, m, k, n) -> (b, m, n)>
func.func @batched(%a: memref<?x8x4xf32>, %b: memref<3x8x16xf32>, %c: memref<?x4x16xf32>) {
  linalg.generic {indexing_maps = [#bkm, #b0kn, #bmn], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
      ins(%a, %b : memref<?x8x4xf32>, memref<3x8x16xf32>) outs(%c : memref<?x4x16xf32>) {
  ^bb0(%x: f32, %y: f32, %z: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %z, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// An operand with no unit stride in its last two dimensions (every other
// column of a matrix) is not a matrix cuBLAS reads: the loop nest stays.
// CHECK-LABEL: func.func @strided
// CHECK-NOT: call @mass_cuda_gemm
// CHECK: linalg.generic
#mk2 = affine_map<(m, k, n) -> (m, k)>
#kn2 = affine_map<(m, k, n) -> (k, n)>
#mn2 = affine_map<(m, k, n) -> (m, n)>
func.func @strided(%x: memref<4x8xf32, strided<[32, 2]>>, %w: memref<8x4xf32>, %y: memref<4x4xf32>) {
  linalg.generic {indexing_maps = [#mk2, #kn2, #mn2], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<4x8xf32, strided<[32, 2]>>, memref<8x4xf32>) outs(%y : memref<4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// A dense layer: its bias broadcast over the rows of C, then the product.
// The broadcast goes; cuBLASLt adds the bias as the product's epilogue
// (the last argument 0: no activation).
// CHECK: func.func private @mass_cuda_gemm_bias(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @dense_bias
// CHECK-NOT: linalg.generic
// CHECK: %[[BIAS:.*]] = memref.cast %arg3 : memref<32xf32> to memref<?xf32, strided<[?], offset: ?>>
// CHECK: call @mass_cuda_gemm_bias(%{{.*}}, %{{.*}}, %{{.*}}, %[[BIAS]], %c0_i64, %c1_i64, %c0_i64)
// CHECK-NOT: linalg.generic
#row = affine_map<(m, n) -> (n)>
#id = affine_map<(m, n) -> (m, n)>
#mk3 = affine_map<(m, k, n) -> (m, k)>
#nk3 = affine_map<(m, k, n) -> (n, k)>
#mn3 = affine_map<(m, k, n) -> (m, n)>
func.func @dense_bias(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x32xf32>, %bias: memref<32xf32>) {
  linalg.generic {indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk3, #nk3, #mn3], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// The same with a ReLU of C in place just after the product (what
// mass-device-activations leaves): cuBLASLt's ReLU-and-bias epilogue (the
// last argument 1), and the ReLU's loop nest goes. A ReLU into another
// buffer stays a loop nest: the pre-activation may still be read.
// CHECK-LABEL: func.func @dense_relu
// CHECK-NOT: linalg.generic
// CHECK: call @mass_cuda_gemm_bias(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i64, %c1_i64, %c1_i64)
// CHECK-NOT: linalg.generic
// CHECK-LABEL: func.func @dense_relu_elsewhere
// CHECK: call @mass_cuda_gemm_bias(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i64, %c1_i64, %c0_i64)
// CHECK: linalg.generic
// CHECK: arith.maximumf
#row4 = affine_map<(m, n) -> (n)>
#id4 = affine_map<(m, n) -> (m, n)>
#mk4 = affine_map<(m, k, n) -> (m, k)>
#nk4 = affine_map<(m, k, n) -> (n, k)>
#mn4 = affine_map<(m, k, n) -> (m, n)>
func.func @dense_relu(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x32xf32>, %bias: memref<32xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [#row4, #id4], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk4, #nk4, #mn4], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel"]}
      outs(%y : memref<?x32xf32>) {
  ^bb0(%o: f32):
    %r = arith.maximumf %o, %zero : f32
    linalg.yield %r : f32
  }
  return
}
func.func @dense_relu_elsewhere(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x32xf32>, %bias: memref<32xf32>, %out: memref<?x32xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [#row4, #id4], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk4, #nk4, #mn4], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel"]}
      ins(%y : memref<?x32xf32>) outs(%out : memref<?x32xf32>) {
  ^bb0(%i: f32, %o: f32):
    %r = arith.maximumf %i, %zero : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A dense layer and GPT-2's tanh GELU of it, as the mass dialect writes it
// (here over C viewed as [B, T, n]), into a buffer of its own: the GELU
// goes into the call, cuBLASLt's GELU epilogue, which writes its output
// (as C's rank-3 view) and keeps the pre-activation in C for the gradient.
// With another constant (0.6 x (1 + tanh(...))) it is no GELU: it stays.
// CHECK: func.func private @mass_cuda_gemm_bias_gelu(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @dense_gelu
// CHECK-NOT: linalg.generic
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %arg4 {{\[\[}}0, 1], [2]] : memref<?x4x32xf32> into memref<?x32xf32>
// CHECK: %[[OUT3:.*]] = memref.expand_shape %[[FLAT]] {{\[\[}}0, 1], [2]]
// CHECK: %[[OUT:.*]] = memref.cast %[[OUT3]]
// CHECK: call @mass_cuda_gemm_bias_gelu(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[OUT]], %c0_i64, %c1_i64)
// CHECK-NOT: linalg.generic
// CHECK-LABEL: func.func @not_gelu
// CHECK: call @mass_cuda_gemm_bias(
// CHECK: linalg.generic
// CHECK: math.tanh
#row5 = affine_map<(m, n) -> (n)>
#id5 = affine_map<(m, n) -> (m, n)>
#mk5 = affine_map<(m, k, n) -> (m, k)>
#nk5 = affine_map<(m, k, n) -> (n, k)>
#mn5 = affine_map<(m, k, n) -> (m, n)>
#id53 = affine_map<(b, t, n) -> (b, t, n)>
func.func @dense_gelu(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %c: memref<?x32xf32>, %bias: memref<32xf32>, %y: memref<?x4x32xf32>) {
  %half = arith.constant 0.5 : f32
  %one = arith.constant 1.0 : f32
  %k0 = arith.constant 0.044715 : f32
  %k1 = arith.constant 0.797884583 : f32
  %c4 = arith.constant 4 : index
  linalg.generic {indexing_maps = [#row5, #id5], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk5, #nk5, #mn5], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %c0 = arith.constant 0 : index
  %rows = memref.dim %c, %c0 : memref<?x32xf32>
  %bt = arith.divui %rows, %c4 : index
  %c3 = memref.expand_shape %c [[0, 1], [2]] output_shape [%bt, 4, 32] : memref<?x32xf32> into memref<?x4x32xf32>
  linalg.generic {indexing_maps = [#id53, #id53], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%c3 : memref<?x4x32xf32>) outs(%y : memref<?x4x32xf32>) {
  ^bb0(%v: f32, %o: f32):
    %sq = arith.mulf %v, %v : f32
    %cube = arith.mulf %sq, %v : f32
    %t0 = arith.mulf %cube, %k0 : f32
    %t1 = arith.addf %v, %t0 : f32
    %t2 = arith.mulf %t1, %k1 : f32
    %t3 = math.tanh %t2 : f32
    %h = arith.mulf %v, %half : f32
    %t4 = arith.addf %t3, %one : f32
    %g = arith.mulf %h, %t4 : f32
    linalg.yield %g : f32
  }
  return
}
func.func @not_gelu(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %c: memref<?x32xf32>, %bias: memref<32xf32>, %y: memref<?x32xf32>) {
  %half = arith.constant 0.6 : f32
  %one = arith.constant 1.0 : f32
  %k0 = arith.constant 0.044715 : f32
  %k1 = arith.constant 0.797884583 : f32
  linalg.generic {indexing_maps = [#row5, #id5], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<32xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%b: f32, %o: f32):
    linalg.yield %b : f32
  }
  linalg.generic {indexing_maps = [#mk5, #nk5, #mn5], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#id5, #id5], iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<?x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%v: f32, %o: f32):
    %sq = arith.mulf %v, %v : f32
    %cube = arith.mulf %sq, %v : f32
    %t0 = arith.mulf %cube, %k0 : f32
    %t1 = arith.addf %v, %t0 : f32
    %t2 = arith.mulf %t1, %k1 : f32
    %t3 = math.tanh %t2 : f32
    %h = arith.mulf %v, %half : f32
    %t4 = arith.addf %t3, %one : f32
    %g = arith.mulf %h, %t4 : f32
    linalg.yield %g : f32
  }
  return
}
