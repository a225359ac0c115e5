// RUN: mass-opt --mass-arena %s | FileCheck %s

// Buffers that are never live at the same time share memory; the others
// get their own 64-byte aligned offsets. Batch-sized buffers follow the
// fixed pool, at offsets that scale with the batch.
// CHECK: module attributes {mass.arena = {escapes = array<i64: 64, 0>, step = array<i64: 1088, 128>}}
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
