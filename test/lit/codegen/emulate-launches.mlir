// RUN: mass-opt --mass-emulate-launches --canonicalize --split-input-file --verify-diagnostics %s | FileCheck %s

// A launch becomes loops over blocks z, y, x, then threads z, y, x, in
// order (here the loops of one iteration fold away); the body reads its
// ids from the loops and its sizes from the launch's operands.
// CHECK-LABEL: func.func @launch
// CHECK-NOT: gpu.launch
// CHECK: scf.for %[[BX:.*]] = %c0 to %arg2 step %c1 {
// CHECK-NEXT: scf.for %[[TX:.*]] = %c0 to %c256 step %c1 {
// CHECK-NEXT: %[[BASE:.*]] = arith.muli %[[BX]], %c256 : index
// CHECK-NEXT: %[[ID:.*]] = arith.addi %[[BASE]], %[[TX]] : index
// CHECK-NEXT: %[[IN:.*]] = arith.cmpi slt, %[[ID]], %arg1 : index
// CHECK-NEXT: scf.if %[[IN]] {
// CHECK-NEXT: memref.store %{{.*}}, %arg0[%[[ID]]] : memref<?xf32>
// CHECK: return
func.func @launch(%a: memref<?xf32>, %n: index, %grid: index) {
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %zero = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %grid, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %base = arith.muli %bx, %sx : index
    %id = arith.addi %base, %tx : index
    %in = arith.cmpi slt, %id, %n : index
    scf.if %in {
      memref.store %zero, %a[%id] : memref<?xf32>
    }
    gpu.terminator
  }
  return
}

// -----

// Threads that exchange data through a barrier would not see each other's
// writes when run in turn.
func.func @barrier(%a: memref<?xf32>) {
  %c1 = arith.constant 1 : index
  // expected-error @+1 {{mass-emulate-launches: threads that exchange data are not emulated}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    gpu.barrier
    gpu.terminator
  }
  return
}
