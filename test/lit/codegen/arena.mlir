// RUN: mass-opt --mass-arena %s | FileCheck %s

// Buffers that are never live at the same time share memory; the others
// get their own 64-byte aligned offsets. Batch-sized buffers follow the
// fixed pool, at offsets that scale with the batch.
// CHECK: module attributes {mass.arena = {escapes = array<i64: 64, 0>, reshaped = array<i64: 0, 64>, step = array<i64: 1088, 128>, views = array<i64: 0, 256>}}
// CHECK-LABEL: func.func @step
// CHECK-SAME: (%[[X:.*]]: memref<?x8xf32>, %[[OUT:.*]]: memref<16xf32>, %[[ARENA:.*]]: memref<?xi8>)
// CHECK: %[[A:.*]] = memref.view %[[ARENA]][%c0{{.*}}][] : memref<?xi8> to memref<256xf32>
// CHECK: %[[B:.*]] = memref.view %[[ARENA]][%c1024{{.*}}][] : memref<?xi8> to memref<16xf32>
// CHECK: %[[C:.*]] = memref.view %[[ARENA]][%c0{{.*}}][] : memref<?xi8> to memref<16xf32>
// CHECK: %[[N:.*]] = memref.dim %[[X]], %c0
// CHECK: %[[SCALED:.*]] = arith.muli %[[N]], %c0
// CHECK: %[[AT:.*]] = arith.addi %c1088, %[[SCALED]]
// CHECK: %[[D:.*]] = memref.view %[[ARENA]][%[[AT]]][%[[N]]] : memref<?xi8> to memref<?x8xf32>
// CHECK: %[[E:.*]] = memref.view %[[ARENA]][%{{.*}}][%[[N]]] : memref<?xi8> to memref<?x8xf32>
// CHECK-NOT: memref.alloc
func.func @step(%x: memref<?x8xf32>, %out: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %f = arith.constant 1.0 : f32
  %a = memref.alloc() : memref<256xf32>
  %b = memref.alloc() : memref<16xf32>
  linalg.fill ins(%f : f32) outs(%a : memref<256xf32>)
  linalg.fill ins(%f : f32) outs(%b : memref<16xf32>)
  // %a is dead from here: %c takes its place, %b stays live.
  %c = memref.alloc() : memref<16xf32>
  memref.copy %b, %c : memref<16xf32> to memref<16xf32>
  memref.copy %c, %out : memref<16xf32> to memref<16xf32>
  %n = memref.dim %x, %c0 : memref<?x8xf32>
  %d = memref.alloc(%n) : memref<?x8xf32>
  %e = memref.alloc(%n) : memref<?x8xf32>
  memref.copy %x, %d : memref<?x8xf32> to memref<?x8xf32>
  memref.copy %d, %e : memref<?x8xf32> to memref<?x8xf32>
  return
}

// A buffer returned, and one whose size is not the batch, keep their
// allocations; a view of a planned buffer extends its life.
// CHECK-LABEL: func.func @escapes
// CHECK-SAME: (%{{.*}}: index, %[[ARENA:[^:]*]]: memref<?xi8>)
// CHECK: memref.alloc() : memref<4xf32>
// CHECK: memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: memref.view %[[ARENA]]
// CHECK: memref.subview
func.func @escapes(%k: index) -> memref<4xf32> {
  %f = arith.constant 1.0 : f32
  %r = memref.alloc() : memref<4xf32>
  %s = memref.alloc(%k) : memref<?xf32>
  linalg.fill ins(%f : f32) outs(%s : memref<?xf32>)
  %t = memref.alloc() : memref<8xf32>
  %v = memref.subview %t[0] [4] [1] : memref<8xf32> to memref<4xf32, strided<[1]>>
  memref.copy %v, %r : memref<4xf32, strided<[1]>> to memref<4xf32>
  return %r : memref<4xf32>
}

// Sizes a reshape computes from the batch (here 64 * batch / 16 = 4 *
// batch) are batch-sized too: per-sample offsets divide the size by its
// multiple to find the batch. A quotient that is not exact keeps its
// allocation.
// CHECK-LABEL: func.func @reshaped
// CHECK-SAME: (%[[X:.*]]: memref<?x16xf32>, %[[ARENA:[^:]*]]: memref<?xi8>)
// CHECK: %[[N:.*]] = memref.dim %[[X]], %c0
// CHECK: %[[ROWS:.*]] = arith.muli %[[N]], %c64
// CHECK: %[[SIZE:.*]] = arith.divui %[[ROWS]], %c16
// CHECK: %[[BATCH:.*]] = arith.divui %[[SIZE]], %c4
// CHECK: %[[SCALED:.*]] = arith.muli %[[BATCH]], %c0
// CHECK: memref.view %[[ARENA]][%{{.*}}][%[[SIZE]]] : memref<?xi8> to memref<?x4xf32>
// CHECK: memref.alloc(%{{.*}}) : memref<?xf32>
func.func @reshaped(%x: memref<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %c48 = arith.constant 48 : index
  %f = arith.constant 1.0 : f32
  %n = memref.dim %x, %c0 : memref<?x16xf32>
  %rows = arith.muli %n, %c64 : index
  %size = arith.divui %rows, %c16 : index
  %a = memref.alloc(%size) : memref<?x4xf32>
  linalg.fill ins(%f : f32) outs(%a : memref<?x4xf32>)
  %odd = arith.divui %rows, %c48 : index
  %b = memref.alloc(%odd) : memref<?xf32>
  linalg.fill ins(%f : f32) outs(%b : memref<?xf32>)
  return
}

// Sizes read through views of planned buffers: the rows of an expanded
// buffer (the size it was given), a collapsed one (the batch times the
// static axes) and an affine map of either (as canonicalization leaves
// them) are batch-sized.
// CHECK-LABEL: func.func @views
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @views(%x: memref<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  %n = memref.dim %x, %c0 : memref<?x16xf32>
  %rows = arith.muli %n, %c4 : index
  %a = memref.alloc(%rows) : memref<?x8xf32>
  linalg.fill ins(%f : f32) outs(%a : memref<?x8xf32>)
  %e = memref.expand_shape %a [[0, 1], [2]] output_shape [%n, 4, 8] : memref<?x8xf32> into memref<?x4x8xf32>
  %en = memref.dim %e, %c0 : memref<?x4x8xf32>
  %b = memref.alloc(%en) : memref<?x4x8xf32>
  memref.copy %e, %b : memref<?x4x8xf32> to memref<?x4x8xf32>
  %c = memref.collapse_shape %b [[0, 1], [2]] : memref<?x4x8xf32> into memref<?x8xf32>
  %cn = memref.dim %c, %c0 : memref<?x8xf32>
  %d = memref.alloc(%cn) : memref<?x8xf32>
  memref.copy %c, %d : memref<?x8xf32> to memref<?x8xf32>
  %q = affine.apply affine_map<()[s0] -> (s0 floordiv 4)>()[%cn]
  %g = memref.alloc(%q) : memref<?x2xf32>
  linalg.fill ins(%f : f32) outs(%g : memref<?x2xf32>)
  return
}
