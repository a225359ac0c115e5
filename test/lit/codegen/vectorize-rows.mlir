// RUN: mass-opt --mass-vectorize-rows %s | FileCheck %s

// A row of 14 walked with unit stride: one masked vector per operand, the
// per-channel operand read once and broadcast, the body on vectors; the
// outermost parallel loop stays parallel.
// CHECK-LABEL: func.func @rows
// CHECK: scf.parallel (%[[N:.*]]) =
// CHECK: scf.for
// CHECK: %[[MASK:.*]] = vector.constant_mask [14] : vector<16xi1>
// CHECK: %[[X:.*]] = vector.maskedload %arg0[%{{.*}}, %{{.*}}, %{{.*}}], %[[MASK]], %{{.*}} : memref<?x3x14xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK: %[[B:.*]] = memref.load %arg1[%{{.*}}] : memref<3xf32>
// CHECK: %[[Y:.*]] = vector.maskedload %arg2
// CHECK: %[[BB:.*]] = vector.broadcast %[[B]] : f32 to vector<16xf32>
// CHECK: %[[S:.*]] = arith.addf %[[X]], %[[BB]] : vector<16xf32>
// CHECK: %[[M:.*]] = arith.maximumf %[[S]], %[[Y]] : vector<16xf32>
// CHECK: vector.maskedstore %arg2[%{{.*}}, %{{.*}}, %{{.*}}], %[[MASK]], %[[M]]
// CHECK-NOT: linalg.generic
func.func @rows(%x: memref<?x3x14xf32>, %b: memref<3xf32>, %y: memref<?x3x14xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %b : memref<?x3x14xf32>, memref<3xf32>) outs(%y : memref<?x3x14xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.addf %in, %c : f32
    %1 = arith.maximumf %0, %out : f32
    linalg.yield %1 : f32
  }
  return
}

// A read shifted by another loop (im2col's window offset) still walks the
// row with unit stride; a full row needs no mask.
// CHECK-LABEL: func.func @shifted
// CHECK: %[[ROW:.*]] = vector.load %arg0[%{{.*}}, %{{.*}}] : memref<2x20xf32>, vector<16xf32>
// CHECK: vector.store %[[ROW]], %arg1[%{{.*}}, %{{.*}}, %{{.*}}] : memref<2x2x16xf32>, vector<16xf32>
func.func @shifted(%x: memref<2x20xf32>, %y: memref<2x2x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2 + d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : memref<2x20xf32>) outs(%y : memref<2x2x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  return
}

// A stride of 2 (a pool's read) loads two vectors and keeps the even
// lanes; several results (a maximum and where it is, i64) store one vector
// each.
// CHECK-LABEL: func.func @pairs
// CHECK: %[[LO:.*]] = vector.load %arg0[%{{.*}}, %{{.*}}] : memref<2x32xf32>, vector<16xf32>
// CHECK: %[[M:.*]] = vector.constant_mask [15] : vector<16xi1>
// CHECK: %[[HI:.*]] = vector.maskedload %arg0[%{{.*}}, %{{.*}}], %[[M]], %{{.*}}
// CHECK: %[[EVEN:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30] : vector<16xf32>, vector<16xf32>
// CHECK: %[[WHERE:.*]] = vector.load %arg2
// CHECK: arith.cmpf ogt, %[[EVEN]], %{{.*}} : vector<16xf32>
// CHECK: vector.store %{{.*}}, %arg1
// CHECK: vector.store %{{.*}}, %arg2[%{{.*}}, %{{.*}}] : memref<2x16xi64>, vector<16xi64>
func.func @pairs(%x: memref<2x32xf32>, %y: memref<2x16xf32>, %at: memref<2x16xi64>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1 * 2)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x : memref<2x32xf32>) outs(%y, %at : memref<2x16xf32>, memref<2x16xi64>) {
  ^bb0(%in: f32, %best: f32, %where: i64):
    %one = arith.constant 1 : i64
    %above = arith.cmpf ogt, %in, %best : f32
    %m = arith.select %above, %in, %best : f32
    %w = arith.select %above, %one, %where : i64
    linalg.yield %m, %w : f32, i64
  }
  return
}

// A stride of 3 is left to the loops.
// CHECK-LABEL: func.func @strided
// CHECK: linalg.generic
func.func @strided(%x: memref<2x48xf32>, %y: memref<2x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1 * 3)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x : memref<2x48xf32>) outs(%y : memref<2x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  return
}

// An elementwise op over whole contiguous buffers (a conv weight's
// optimizer step, rows of 3) runs as one loop over all elements: a long
// row, so a parallel loop of whole vectors, then one masked vector for
// the rest (the size is dynamic).
// CHECK-LABEL: func.func @flat
// CHECK: %[[X:.*]] = memref.collapse_shape %arg0 {{\[\[}}0, 1, 2]] : memref<?x3x3xf32> into memref<?xf32>
// CHECK: %[[Y:.*]] = memref.collapse_shape %arg2 {{\[\[}}0, 1, 2]] : memref<?x3x3xf32> into memref<?xf32>
// CHECK: %[[N:.*]] = memref.dim %[[X]]
// CHECK: %[[WHOLE:.*]] = arith.muli %{{.*}}, %c16
// CHECK: scf.parallel (%{{.*}}) = (%{{.*}}) to (%[[WHOLE]]) step (%c16) {
// CHECK: vector.load %[[X]][%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: arith.mulf %{{.*}} : vector<16xf32>
// CHECK: vector.store %{{.*}}, %[[Y]][%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: %[[REST:.*]] = arith.subi %[[N]], %[[WHOLE]]
// CHECK: %[[MASK:.*]] = vector.create_mask %[[REST]] : vector<16xi1>
// CHECK: vector.maskedload %[[X]][%{{.*}}], %[[MASK]]
// CHECK: vector.maskedstore %[[Y]][%{{.*}}], %[[MASK]]
func.func @flat(%x: memref<?x3x3xf32>, %s: memref<f32>, %y: memref<?x3x3xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> ()>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %s : memref<?x3x3xf32>, memref<f32>) outs(%y : memref<?x3x3xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  }
  return
}

// The innermost loops that every operand walks contiguously, or not at
// all, run as one: a gradient norm's partial sums over a conv weight
// [O, I, 3, 3] add rows of I*3*3, and a per-channel scale of [N, C, H, W]
// runs over rows of H*W. Rows longer than 64 run as a loop of vectors,
// then one masked vector. The reduced axis, just outside the row and
// short (8 steps), runs inside each chunk with the partial sums in
// registers (one load and one store of them per chunk); the channel the
// scale depends on stays a loop of its own.
// CHECK-LABEL: func.func @flat_inner
// CHECK: %[[W:.*]] = memref.collapse_shape %arg0 {{\[\[}}0], [1, 2, 3]] : memref<8x8x3x3xf32> into memref<8x72xf32>
// CHECK: %[[P:.*]] = memref.collapse_shape %arg1 {{\[\[}}0, 1, 2]] : memref<8x3x3xf32> into memref<72xf32>
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %c16 {
// CHECK: %[[P0:.*]] = vector.load %[[P]][%{{.*}}] : memref<72xf32>, vector<16xf32>
// CHECK: %[[SUM:.*]] = scf.for %[[O:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[ACC:.*]] = %[[P0]]) -> (vector<16xf32>) {
// CHECK: %[[ROW:.*]] = vector.load %[[W]][%{{.*}}, %{{.*}}] : memref<8x72xf32>, vector<16xf32>
// CHECK: %[[SQ:.*]] = arith.mulf %[[ROW]], %[[ROW]] : vector<16xf32>
// CHECK: %[[NEXT:.*]] = arith.addf %[[SQ]], %[[ACC]] : vector<16xf32>
// CHECK: scf.yield %[[NEXT]] : vector<16xf32>
// CHECK: vector.store %[[SUM]], %[[P]][%{{.*}}] : memref<72xf32>, vector<16xf32>
// CHECK: %[[MASK:.*]] = vector.constant_mask [8] : vector<16xi1>
// CHECK: vector.maskedstore %[[P]][%{{.*}}], %[[MASK]]
// CHECK: %[[X:.*]] = memref.collapse_shape %arg2 {{\[\[}}0], [1], [2, 3]] : memref<?x4x10x10xf32> into memref<?x4x100xf32>
// CHECK: %[[Y:.*]] = memref.collapse_shape %arg4 {{\[\[}}0], [1], [2, 3]] : memref<?x4x10x10xf32> into memref<?x4x100xf32>
// CHECK: scf.parallel
// CHECK: scf.for
// CHECK: vector.load %[[X]]
// CHECK: %[[S:.*]] = memref.load %arg3[%{{.*}}] : memref<4xf32>
// CHECK: vector.broadcast %[[S]]
// CHECK: vector.store %{{.*}}, %[[Y]]
// CHECK: vector.constant_mask [4] : vector<16xi1>
func.func @flat_inner(%w: memref<8x8x3x3xf32>, %p: memref<8x3x3xf32>, %x: memref<?x4x10x10xf32>, %s: memref<4xf32>, %y: memref<?x4x10x10xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d1, d2, d3)>], iterator_types = ["reduction", "parallel", "parallel", "parallel"]} ins(%w : memref<8x8x3x3xf32>) outs(%p : memref<8x3x3xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.mulf %in, %in : f32
    %1 = arith.addf %0, %acc : f32
    linalg.yield %1 : f32
  }
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d1)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x, %s : memref<?x4x10x10xf32>, memref<4xf32>) outs(%y : memref<?x4x10x10xf32>) {
  ^bb0(%in: f32, %c: f32, %out: f32):
    %0 = arith.mulf %in, %c : f32
    linalg.yield %0 : f32
  }
  return
}

// A loop that an operand reads through a constant index, or that a
// strided view does not lay out contiguously, stays as it is.
// CHECK-LABEL: func.func @not_flat
// CHECK-NOT: memref.collapse_shape
// CHECK: return
func.func @not_flat(%b: memref<1x1xf32>, %y: memref<8x16xf32>, %v: memref<8x16xf32, strided<[32, 1]>>, %z: memref<8x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (0, 0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%b : memref<1x1xf32>) outs(%y : memref<8x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%v : memref<8x16xf32, strided<[32, 1]>>) outs(%z : memref<8x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  return
}

// A long reduction just outside the row (a sum over 128 rows) stays
// outside: each step adds a whole row into the partial sums, walking
// memory row by row.
// CHECK-LABEL: func.func @long_reduction
// CHECK: scf.for %{{.*}} = %c0 to %c128 step %c1 {
// CHECK: vector.load %arg0
// CHECK: vector.load %arg1
// CHECK: vector.store %{{.*}}, %arg1
// CHECK-NOT: iter_args
// CHECK: return
func.func @long_reduction(%x: memref<128x32xf32>, %p: memref<32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>], iterator_types = ["reduction", "parallel"]} ins(%x : memref<128x32xf32>) outs(%p : memref<32xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %0 = arith.addf %in, %acc : f32
    linalg.yield %0 : f32
  }
  return
}

// What mass-approximate-math leaves of exp (floor, fma, float and integer
// bit operations) runs on vectors like any other op.
// CHECK-LABEL: func.func @approximated
// CHECK: math.floor %{{.*}} : vector<16xf32>
// CHECK: math.fma %{{.*}} : vector<16xf32>
// CHECK: arith.fptosi %{{.*}} : vector<16xf32> to vector<16xi32>
// CHECK: arith.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK-NOT: linalg.generic
func.func @approximated(%x: memref<4x16xf32>, %y: memref<4x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x : memref<4x16xf32>) outs(%y : memref<4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %c = arith.constant 1.44269502 : f32
    %h = arith.constant 5.000000e-01 : f32
    %s = arith.constant 23 : i32
    %0 = math.fma %in, %c, %h : f32
    %1 = math.floor %0 : f32
    %2 = arith.fptosi %1 : f32 to i32
    %3 = arith.shli %2, %s : i32
    %4 = arith.bitcast %3 : i32 to f32
    linalg.yield %4 : f32
  }
  return
}
