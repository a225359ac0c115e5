// RUN: mass-opt --mass-gemm="vector-width=4 rows=2 tile-k=32 tile-m=64 share-kernels=false" --cse %s | FileCheck %s

#a = affine_map<(m, k, n) -> (m, k)>
#at = affine_map<(m, k, n) -> (k, m)>
#b = affine_map<(m, k, n) -> (k, n)>
#bt = affine_map<(m, k, n) -> (n, k)>
#c = affine_map<(m, k, n) -> (m, n)>

// C += A * B with A's rows 4 KiB apart (a view of a wider buffer: they
// would share L1's sets): for each block of 64 rows of C and block of 32
// steps of k, threads first copy A's block into groups of 2 rows, k-major (zero past
// the last row): tiles of 4 steps of k, a vector per row, transposed in
// registers and stored 2 lanes per step, then the steps left one by one;
// then they split C into panels of two vectors (8 columns),
// each copying its block of B to the stack. A block of 2 rows x 8 columns
// of C stays in registers across the k loop, fed by one row of the packed
// B and a broadcast element of the packed A per row. In the last group, a
// row past the end of C reads and writes C's last row, stored first; the
// last panel, cut by the edge of C, uses masked loads and stores.
// CHECK-LABEL: func.func @matmul
// CHECK-SAME: (%[[A:.*]]: memref<?x64xf32, strided<[1024, 1]>>, %[[B:.*]]: memref<64x10xf32>, %[[C:.*]]: memref<?x10xf32>)
// CHECK: %[[M:.*]] = memref.dim %[[C]], %c0
// CHECK: %[[PA:.*]] = memref.alloc() {alignment = 64 : i64} : memref<32x32x2xf32>
// CHECK: scf.for %[[M0:.*]] = %c0 to %[[M]] step %c64 {
// CHECK: %[[M1:.*]] = arith.minsi
// CHECK: %[[LAST:.*]] = arith.subi %[[M1]], %c1
// CHECK: scf.for %[[K0:.*]] = %c0 to %c64 step %c32 {
// CHECK: %[[K1:.*]] = arith.minsi
// CHECK: scf.parallel (%[[G:.*]]) = (%c0) to (%{{.*}}) step (%c1) {
// CHECK: %[[LANES:.*]] = vector.constant_mask [2] : vector<4xi1>
// CHECK: scf.for %[[KT:.*]] = %[[K0]] to %[[TILED:.*]] step %c4 {
// CHECK: %[[V0:.*]] = vector.load %[[A]][%{{.*}}, %[[KT]]] : memref<?x64xf32, strided<[1024, 1]>>, vector<4xf32>
// CHECK: arith.select %{{.*}}, %[[V0]], %[[ZEROS:.*]] : vector<4xf32>
// CHECK: vector.load %[[A]][%{{.*}}, %[[KT]]] : memref<?x64xf32, strided<[1024, 1]>>, vector<4xf32>
// CHECK: vector.shuffle
// CHECK: vector.maskedstore %[[PA]][%[[G]], %{{.*}}, %c0], %[[LANES]]
// CHECK-COUNT-3: vector.maskedstore %[[PA]]
// CHECK: scf.for %[[KA:.*]] = %[[TILED]] to %[[K1]] step %c1 {
// CHECK: %[[IN:.*]] = arith.cmpi slt, %[[ROW0:.*]], %[[M1]]
// CHECK: %[[CLAMPED:.*]] = arith.minsi %[[ROW0]], %[[LAST]]
// CHECK: %[[X0:.*]] = memref.load %[[A]][%[[CLAMPED]], %[[KA]]]
// CHECK: %[[Z0:.*]] = arith.select %[[IN]], %[[X0]], %cst
// CHECK: memref.store %[[Z0]], %[[PA]][%[[G]], %{{.*}}, %c0]
// CHECK: } {mass.parallel_kernel}
// With two panels, threads also split the block's row groups into two
// chunks: each item runs one panel on one chunk's rows.
// CHECK: %[[CHUNKS:.*]] = arith.minsi
// CHECK: scf.parallel (%[[P:.*]]) = (%c0) to (%{{.*}}) step (%c1) {
// CHECK: %[[PANEL:.*]] = arith.divui %[[P]], %[[CHUNKS]]
// CHECK: %[[J:.*]] = arith.muli %[[PANEL]], %c8
// CHECK: arith.remui %[[P]], %[[CHUNKS]]
// CHECK: %[[BEGIN:.*]] = arith.minsi %{{.*}}, %[[M1]]
// CHECK: %[[END:.*]] = arith.minsi %{{.*}}, %[[M1]]
// CHECK: %[[PB:.*]] = memref.alloca() {alignment = 64 : i64} : memref<32x8xf32>
// CHECK: %[[FULL:.*]] = arith.cmpi sge
// CHECK: scf.if %[[FULL]] {
// CHECK: scf.for %[[KP:.*]] = %[[K0]] to %[[K1]] step %c1 {
// CHECK: %[[ROW:.*]] = vector.load %[[B]][%[[KP]], %{{.*}}] : memref<64x10xf32>, vector<4xf32>
// CHECK: vector.store %[[ROW]], %[[PB]]
// CHECK: scf.for %[[I:.*]] = %[[BEGIN]] to %[[END]] step %c2 {
// CHECK: %[[GI:.*]] = arith.divui
// CHECK: %[[R0:.*]] = arith.minsi %[[I]], %[[LAST]]
// CHECK: %[[R1:.*]] = arith.minsi %{{.*}}, %[[LAST]]
// CHECK: %[[C00:.*]] = vector.load %[[C]][%[[R0]], %[[J]]] : memref<?x10xf32>, vector<4xf32>
// CHECK-COUNT-3: vector.load %[[C]]
// CHECK: %[[R:.*]]:4 = scf.for %[[K:.*]] = %[[K0]] to %[[K1]] step %c1 iter_args(%[[ACC:.*]] = %[[C00]], {{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
// CHECK: %[[KK:.*]] = arith.subi %[[K]], %[[K0]]
// CHECK: %[[B0:.*]] = vector.load %[[PB]][%[[KK]], %c0]
// CHECK: %[[B1:.*]] = vector.load %[[PB]][%[[KK]], %c4]
// CHECK: %[[X:.*]] = memref.load %[[PA]][%[[GI]], %[[KK]], %c0]
// CHECK: %[[XS:.*]] = vector.broadcast %[[X]] : f32 to vector<4xf32>
// CHECK: vector.fma %[[XS]], %[[B0]], %[[ACC]] : vector<4xf32>
// CHECK: vector.fma %[[XS]], %[[B1]]
// CHECK: memref.load %[[PA]][%[[GI]], %[[KK]], %c1]
// CHECK-COUNT-2: vector.fma
// CHECK: scf.yield
// CHECK: vector.store %[[R]]#2, %[[C]][%[[R1]], %[[J]]]
// CHECK: vector.store %[[R]]#3
// CHECK: vector.store %[[R]]#0, %[[C]][%[[R0]], %[[J]]]
// CHECK: } else {
// CHECK: vector.create_mask %{{.*}} : vector<4xi1>
// CHECK: vector.create_mask %{{.*}} : vector<4xi1>
// CHECK: vector.maskedload %[[B]]
// CHECK: vector.maskedload %[[C]]
// CHECK: vector.maskedstore %[[C]]
// CHECK-NOT: linalg.generic
func.func @matmul(%A: memref<?x64xf32, strided<[1024, 1]>>, %B: memref<64x10xf32>, %C: memref<?x10xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<?x64xf32, strided<[1024, 1]>>, memref<64x10xf32>) outs(%C : memref<?x10xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// B read as B[n, k], as in x * W^T: in a full panel, square tiles of B
// are loaded a row (of k) at a time, transposed with two-source shuffles
// and stored as rows of the packed block; steps of k left over are copied
// one element at a time. In the last panel, the rows of the packed block
// are zeroed (vector stores), then the columns inside C copied.
// CHECK-LABEL: func.func @transposed_rhs
// CHECK-SAME: (%[[A:.*]]: memref<?x16xf32>, %[[B:.*]]: memref<8x16xf32>
// CHECK: scf.if
// CHECK: scf.for %[[KT:.*]] = %{{.*}} to %{{.*}} step %c4 {
// CHECK-COUNT-4: vector.load %[[B]][%{{.*}}, %[[KT]]] : memref<8x16xf32>, vector<4xf32>
// CHECK: vector.shuffle {{.*}} [0, 1, 4, 5]
// CHECK: vector.shuffle {{.*}} [2, 3, 6, 7]
// CHECK: vector.shuffle {{.*}} [0, 4, 2, 6]
// CHECK: vector.shuffle {{.*}} [1, 5, 3, 7]
// CHECK: vector.store
// CHECK: scf.for %[[KP:.*]] =
// CHECK: memref.load %[[B]][%{{.*}}, %[[KP]]] : memref<8x16xf32>
// CHECK: } else {
// CHECK: scf.for
// CHECK-COUNT-2: vector.store %cst{{.*}} : memref<16x8xf32>, vector<4xf32>
// CHECK: %[[COLS:.*]] = arith.minsi
// CHECK: scf.for %[[SLOT:.*]] = %c0 to %[[COLS]] step %c1 {
// CHECK: scf.for
// CHECK: memref.load %[[B]]
// CHECK: memref.store
func.func @transposed_rhs(%A: memref<?x16xf32>, %B: memref<8x16xf32>, %C: memref<?x8xf32>) {
  linalg.generic {indexing_maps = [#a, #bt, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<?x16xf32>, memref<8x16xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A read transposed, A[k, m], as in dW = dyT * x.
// CHECK-LABEL: func.func @transposed_lhs
// CHECK-SAME: (%[[A:.*]]: memref<?x16xf32>
// The group's rows are contiguous at each step of k: one masked load
// (the rows that exist) and one masked store per step.
// CHECK: scf.parallel
// CHECK: %[[LANES:.*]] = vector.constant_mask [2] : vector<4xi1>
// CHECK: %[[VALID:.*]] = vector.create_mask %{{.*}} : vector<4xi1>
// CHECK: scf.for %[[K:.*]] = {{.*}} {
// CHECK: %[[X:.*]] = vector.maskedload %[[A]][%[[K]], %{{.*}}], %[[VALID]], %{{.*}} : memref<?x16xf32>
// CHECK: vector.maskedstore %{{.*}}, %[[LANES]], %[[X]]
func.func @transposed_lhs(%A: memref<?x16xf32>, %B: memref<?x8xf32>, %C: memref<16x8xf32>) {
  linalg.generic {indexing_maps = [#at, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<?x16xf32>, memref<?x8xf32>) outs(%C : memref<16x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %y, %x : f32
    %s = arith.addf %p, %acc : f32
    linalg.yield %s : f32
  }
  return
}

// Batched, with a broadcast right operand: an outer loop over the batch,
// and B's batch index is the constant 0.
// CHECK-LABEL: func.func @batched
// CHECK-SAME: (%[[A:.*]]: memref<3x4x8xf32>, %[[B:.*]]: memref<1x8x16xf32>, %[[C:.*]]: memref<3x4x16xf32>)
// CHECK: scf.for %[[BI:.*]] = %c0 to %c3 step %c1 {
// CHECK: vector.load %[[B]][%c0, %{{.*}}, %{{.*}}]
// CHECK: vector.load %[[C]][%[[BI]], %{{.*}}, %{{.*}}]
// CHECK: memref.load %[[A]][%[[BI]], %{{.*}}, %{{.*}}]
#ba = affine_map<(b, m, k, n) -> (b, m, k)>
#bb = affine_map<(b, m, k, n) -> (0, k, n)>
#bc = affine_map<(b, m, k, n) -> (b, m, n)>
func.func @batched(%A: memref<3x4x8xf32>, %B: memref<1x8x16xf32>, %C: memref<3x4x16xf32>) {
  linalg.generic {indexing_maps = [#ba, #bb, #bc], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<3x4x8xf32>, memref<1x8x16xf32>) outs(%C : memref<3x4x16xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Left alone: a body that is not a multiply-add, a B without unit stride
// along n, and a contraction on tensors.
// CHECK-LABEL: func.func @not_matched
// CHECK-COUNT-3: linalg.generic
// CHECK-NOT: vector.
func.func @not_matched(%A: memref<4x8xf32>, %B: memref<8x16xf32>, %S: memref<8x16xf32, strided<[32, 2]>>, %C: memref<4x16xf32>, %T: tensor<4x8xf32>, %U: tensor<8x16xf32>, %V: tensor<4x16xf32>) -> tensor<4x16xf32> {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<4x8xf32>, memref<8x16xf32>) outs(%C : memref<4x16xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.maximumf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %S : memref<4x8xf32>, memref<8x16xf32, strided<[32, 2]>>) outs(%C : memref<4x16xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%T, %U : tensor<4x8xf32>, tensor<8x16xf32>) outs(%V : tensor<4x16xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<4x16xf32>
  return %r : tensor<4x16xf32>
}

// What C starts from, written just before (the zero of a weight gradient,
// the bias of a dense layer), becomes the kernel's first accumulators: the
// first block of k starts from it instead of reading C, and the op that
// wrote it only runs when there is no k at all. (A static k of 16, under
// 1.5 blocks of 32, runs as one block of 16.)
// CHECK-LABEL: func.func @bias_start
// CHECK-SAME: (%[[A:.*]]: memref<?x16xf32>, %[[W:.*]]: memref<16x8xf32>, %[[BIAS:.*]]: memref<8xf32>, %[[C:.*]]: memref<?x8xf32>)
// CHECK: %[[NONE:.*]] = arith.cmpi eq, %c16, %c0
// CHECK: scf.if %[[NONE]] {
// CHECK-NEXT: linalg.generic
// CHECK: scf.for %[[K0:[a-z0-9_]+]] = %c0 to %c16 step %c16
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %[[K0]], %c0
// CHECK: scf.if %[[FIRST]] -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
// CHECK: %[[B0:.*]] = vector.load %[[BIAS]]
// CHECK: %[[B1:.*]] = vector.load %[[BIAS]]
// CHECK: scf.yield %[[B0]], %[[B1]], %[[B0]], %[[B1]]
// CHECK: } else {
// CHECK: vector.load %[[C]]
#row = affine_map<(m, n) -> (n)>
#id = affine_map<(m, n) -> (m, n)>
func.func @bias_start(%A: memref<?x16xf32>, %W: memref<16x8xf32>, %bias: memref<8xf32>, %C: memref<?x8xf32>) {
  linalg.generic {indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%bias : memref<8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %W : memref<?x16xf32>, memref<16x8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// CHECK-LABEL: func.func @zero_start
// CHECK: scf.if
// CHECK-NEXT: linalg.fill
// CHECK: scf.if %{{.*}} -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
// CHECK: %[[Z:.*]] = vector.broadcast %cst : f32 to vector<4xf32>
// CHECK: scf.yield %[[Z]], %[[Z]], %[[Z]], %[[Z]]
func.func @zero_start(%A: memref<?x16xf32>, %W: memref<16x8xf32>, %C: memref<?x8xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%C : memref<?x8xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %W : memref<?x16xf32>, memref<16x8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// The elementwise op just after that reads C (a bias add and an activation)
// runs on the block of C still in registers, after the last block of k,
// and writes its own output; its other operands are loaded alongside. All
// of its values are computed before the first store: its output may be
// one of its inputs, and the last group's rows past the end of C read and
// write C's last row.
// CHECK-LABEL: func.func @epilogue
// CHECK-SAME: (%[[A:.*]]: memref<?x16xf32>, %[[W:.*]]: memref<16x8xf32>, %[[C:.*]]: memref<?x8xf32>, %[[ROW:.*]]: memref<8xf32>, %[[D:.*]]: memref<?x8xf32>)
// CHECK: %[[R:.*]]:4 = scf.for
// CHECK: vector.store %[[R]]#0, %[[C]]
// CHECK: %[[LAST:.*]] = arith.cmpi eq
// CHECK: scf.if %[[LAST]] {
// CHECK: %[[Y:.*]] = vector.load %[[ROW]]
// CHECK: %[[S:.*]] = arith.addf %[[R]]#0, %[[Y]] : vector<4xf32>
// CHECK: %[[Z:.*]] = vector.broadcast %cst : f32 to vector<4xf32>
// CHECK: %[[M:.*]] = arith.maximumf %[[S]], %[[Z]] : vector<4xf32>
// CHECK-COUNT-3: arith.maximumf
// CHECK-NOT: vector.load
// CHECK: vector.store {{.*}}, %[[D]]
// CHECK: vector.store {{.*}}, %[[D]]
// CHECK: vector.store %[[M]], %[[D]]
// CHECK-NOT: linalg.generic
// CHECK: return
#e = affine_map<(m, n) -> (m, n)>
#er = affine_map<(m, n) -> (n)>
func.func @epilogue(%A: memref<?x16xf32>, %W: memref<16x8xf32>, %C: memref<?x8xf32>, %row: memref<8xf32>, %D: memref<?x8xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %W : memref<?x16xf32>, memref<16x8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#e, #er, #e], iterator_types = ["parallel", "parallel"]}
      ins(%C, %row : memref<?x8xf32>, memref<8xf32>) outs(%D : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    %m = arith.maximumf %s, %zero : f32
    linalg.yield %m : f32
  }
  return
}

// Not an epilogue: an op that writes over A, which the matmul still reads
// while its panels run.
// CHECK-LABEL: func.func @writes_over_a
// CHECK: scf.for
// CHECK: linalg.generic
func.func @writes_over_a(%A: memref<?x8xf32>, %W: memref<8x8xf32>, %C: memref<?x8xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %W : memref<?x8xf32>, memref<8x8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#e, #e], iterator_types = ["parallel", "parallel"]}
      ins(%C : memref<?x8xf32>) outs(%A : memref<?x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = arith.negf %x : f32
    linalg.yield %n : f32
  }
  return
}

// Rows of A 192 bytes apart fall into different L1 sets: the kernel reads
// them in place (no copy of A), a row past the end of C reading C's last
// row.
// CHECK-LABEL: func.func @direct
// CHECK-SAME: (%[[A:.*]]: memref<?x48xf32>, %[[B:.*]]: memref<48x8xf32>, %[[C:.*]]: memref<?x8xf32>)
// CHECK-NOT: memref.alloc()
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %c2 {
// CHECK: %[[R0:.*]] = arith.minsi %[[I]], %[[LAST:.*]] : index
// CHECK: %[[R1:.*]] = arith.minsi %{{.*}}, %[[LAST]] : index
// CHECK: scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %c1 iter_args
// CHECK: memref.load %[[A]][%[[R0]], %[[K]]] : memref<?x48xf32>
// CHECK: memref.load %[[A]][%[[R1]], %[[K]]] : memref<?x48xf32>
func.func @direct(%A: memref<?x48xf32>, %B: memref<48x8xf32>, %C: memref<?x8xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%A, %B : memref<?x48xf32>, memref<48x8xf32>) outs(%C : memref<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
