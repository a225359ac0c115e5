// RUN: mass-opt --mass-gpu-launch --canonicalize --split-input-file --verify-diagnostics %s | FileCheck %s

// A 2-D nest becomes one launch of 256-thread blocks over its n * 4
// iterations; each thread finds its (m, j) from its linear id, j fastest,
// and runs the parallel loop nested inside as a sequential loop.
// CHECK-LABEL: func.func @nest
// CHECK-DAG: %[[C4:.*]] = arith.constant 4 : index
// CHECK-DAG: %[[C256:.*]] = arith.constant 256 : index
// CHECK: %[[M:.*]] = arith.maxsi %arg2, %{{.*}} : index
// CHECK: %[[TOTAL:.*]] = arith.muli %[[M]], %[[C4]] : index
// CHECK: %[[BLOCKS:.*]] = arith.ceildivsi %[[TOTAL]], %[[C256]] : index
// CHECK: gpu.launch blocks(%[[BX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[BLOCKS]], %{{.*}} = %c1, %{{.*}} = %c1) threads(%[[TX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[C256]], %{{.*}} = %c1, %{{.*}} = %c1) {
// CHECK-NEXT: %[[BASE:.*]] = arith.muli %[[BX]], %[[C256]] : index
// CHECK-NEXT: %[[ID:.*]] = arith.addi %[[BASE]], %[[TX]] : index
// CHECK-NEXT: %[[IN:.*]] = arith.cmpi slt, %[[ID]], %[[TOTAL]] : index
// CHECK-NEXT: scf.if %[[IN]] {
// CHECK-NEXT: %[[J:.*]] = arith.remsi %[[ID]], %[[C4]] : index
// CHECK-NEXT: %[[MI:.*]] = arith.divsi %[[ID]], %[[C4]] : index
// CHECK-NEXT: scf.for %[[K:.*]] = %c0 to %c8 step %c1 {
// CHECK-NEXT: scf.for %{{.*}} = %c0 to %c2 step %c1 {
// CHECK-NEXT: memref.load %arg0[%[[MI]], %[[K]]]
// CHECK-NEXT: memref.load %arg1[%[[MI]], %[[J]]]
// CHECK-NEXT: arith.addf
// CHECK-NEXT: memref.store %{{.*}}, %arg1[%[[MI]], %[[J]]]
// CHECK: gpu.terminator
// CHECK-NOT: scf.parallel
func.func @nest(%a: memref<?x8xf32>, %c: memref<?x4xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  scf.parallel (%m, %j) = (%c0, %c0) to (%n, %c4) step (%c1, %c1) {
    scf.for %k = %c0 to %c8 step %c1 {
      scf.parallel (%i) = (%c0) to (%c2) step (%c1) {
        %x = memref.load %a[%m, %k] : memref<?x8xf32>
        %z = memref.load %c[%m, %j] : memref<?x4xf32>
        %s = arith.addf %z, %x : f32
        memref.store %s, %c[%m, %j] : memref<?x4xf32>
        scf.reduce
      }
    }
    scf.reduce
  }
  return
}

// -----

// A loop with steps: each dimension's count is its span over its step
// (here 4 iterations, one block), and the index goes back through the step
// and the lower bound.
// CHECK-LABEL: func.func @steps
// CHECK: gpu.launch blocks({{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) threads(%[[TX:.*]], %{{.*}}, %{{.*}}) in
// CHECK-NEXT: %[[IN:.*]] = arith.cmpi slt, %[[TX]], %c4 : index
// CHECK-NEXT: scf.if %[[IN]] {
// CHECK-NEXT: %[[SCALED:.*]] = arith.muli %[[TX]], %c2 : index
// CHECK-NEXT: %[[IV:.*]] = arith.addi %[[SCALED]], %c1 : index
// CHECK-NEXT: memref.store %{{.*}}, %arg0[%[[IV]]]
func.func @steps(%a: memref<9xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c9 = arith.constant 9 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c1) to (%c9) step (%c2) {
    memref.store %zero, %a[%i] : memref<9xf32>
    scf.reduce
  }
  return
}

// -----

func.func private @mass_layernorm(memref<?x8xf32>)

// A CPU runtime kernel called per row would run on the device, which has no
// version of it: mass-device-kernel-calls must replace the loop first.
func.func @runtime_kernel(%a: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    // expected-error @+1 {{the runtime kernel 'mass_layernorm' is not supported yet on the CUDA target}}
    func.call @mass_layernorm(%a) : (memref<?x8xf32>) -> ()
    scf.reduce
  }
  return
}

// -----

func.func @reduction(%a: memref<8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  // expected-error @+1 {{a parallel reduction is not supported yet on the CUDA target}}
  %sum = scf.parallel (%i) = (%c0) to (%c8) step (%c1) init (%zero) -> f32 {
    %x = memref.load %a[%i] : memref<8xf32>
    scf.reduce(%x : f32) {
    ^bb0(%l: f32, %r: f32):
      %s = arith.addf %l, %r : f32
      scf.reduce.return %s : f32
    }
  }
  return %sum : f32
}

// -----

// A sum over the batch (the reduction loop outside, as linalg writes it)
// runs inside each thread: one thread per column, the rows in order.
// CHECK-LABEL: func.func @column_sums
// CHECK: gpu.launch
// CHECK: scf.if
// CHECK-NEXT: scf.for %[[ROW:.*]] = %c0 to %arg2 step %c1 {
// CHECK-NEXT: memref.load %arg0[%[[ROW]], %{{.*}}] : memref<?x16xf32>
// CHECK-NOT: gpu.launch
func.func @column_sums(%a: memref<?x16xf32>, %s: memref<16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %n step %c1 {
    scf.parallel (%j) = (%c0) to (%c16) step (%c1) {
      %x = memref.load %a[%i, %j] : memref<?x16xf32>
      %y = memref.load %s[%j] : memref<16xf32>
      %z = arith.addf %x, %y : f32
      memref.store %z, %s[%j] : memref<16xf32>
      scf.reduce
    }
  }
  return
}

// -----

// An integer division of a value read from device memory (dropout's
// position of a slice: the first row times elements / rows) joins the
// kernel of one thread where it stands, though it cannot be speculated.
// CHECK-LABEL: func.func @division_joins
// CHECK: gpu.launch
// CHECK: %[[ROWS:.*]] = memref.load %arg0[%c2] : memref<3xi32>
// CHECK: arith.divui %arg2, %{{.*}} : i64
// CHECK: memref.store %{{.*}}, %arg1[] : memref<i32>
// CHECK-NEXT: gpu.terminator
func.func @division_joins(%seed: memref<3xi32>, %out: memref<i32>, %elements: i64) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %one = arith.constant 1 : i32
  %first = memref.load %seed[%c1] : memref<3xi32>
  %rows = memref.load %seed[%c2] : memref<3xi32>
  %atLeastOne = arith.maxsi %rows, %one : i32
  %wide = arith.extsi %atLeastOne : i32 to i64
  %perRow = arith.divui %elements, %wide : i64
  %narrow = arith.trunci %perRow : i64 to i32
  %position = arith.muli %first, %narrow : i32
  memref.store %position, %out[] : memref<i32>
  return
}

// -----

// What touches device memory outside the nests (a sum to a scalar, the
// mean after it) runs in one kernel of one thread; the arithmetic on host
// values that does not depend on it stays on the host, before it. A
// constant global the kernel reads is copied into it.
memref.global "private" constant @one : memref<f32> = dense<1.0>

// CHECK-LABEL: func.func @scalar_tail
// CHECK: %[[HALF:.*]] = arith.divsi %arg2, %c2 : index
// CHECK: gpu.launch blocks({{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) threads({{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) {
// CHECK-NEXT: %[[ONE:.*]] = memref.get_global @one : memref<f32>
// CHECK-NEXT: memref.store %{{.*}}, %arg1[] : memref<f32>
// CHECK-NEXT: scf.for
// CHECK: memref.store %{{.*}}, %arg1[] : memref<f32>
// CHECK-NEXT: }
// CHECK-NEXT: %[[SUM:.*]] = memref.load %arg1[] : memref<f32>
// CHECK-NEXT: %[[K:.*]] = memref.load %[[ONE]][] : memref<f32>
// CHECK-NEXT: %[[MEAN:.*]] = arith.divf %[[SUM]], %[[K]] : f32
// CHECK-NEXT: memref.store %[[MEAN]], %arg1[] : memref<f32>
// CHECK-NEXT: gpu.terminator
// CHECK: memref.store %[[HALF]], %[[SHAPE:.*]][%c0] : memref<1xindex>
// CHECK-NEXT: %[[BACK:.*]] = memref.load %[[SHAPE]][%c0] : memref<1xindex>
// CHECK-NEXT: return %[[BACK]]
func.func @scalar_tail(%a: memref<?xf32>, %out: memref<f32>, %n: index) -> index {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %one = memref.get_global @one : memref<f32>
  %shape = memref.alloca() : memref<1xindex>
  memref.store %zero, %out[] : memref<f32>
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %a[%i] : memref<?xf32>
    %y = memref.load %out[] : memref<f32>
    %z = arith.addf %x, %y : f32
    memref.store %z, %out[] : memref<f32>
  }
  %half = arith.divsi %n, %c2 : index
  %sum = memref.load %out[] : memref<f32>
  %k = memref.load %one[] : memref<f32>
  %mean = arith.divf %sum, %k : f32
  memref.store %mean, %out[] : memref<f32>
  // A host buffer (a reshape's shape) stays on the host.
  memref.store %half, %shape[%c0] : memref<1xindex>
  %back = memref.load %shape[%c0] : memref<1xindex>
  return %back : index
}

// -----

// The host cannot read what a kernel computed.
func.func @host_reads_device(%a: memref<f32>) -> index {
  %x = memref.load %a[] : memref<f32>
  %i = arith.fptosi %x : f32 to i64
  %j = arith.index_cast %i : i64 to index
  // expected-error @+1 {{the host reads a value that a kernel computes on the device}}
  return %j : index
}

// -----

// An embedding's gradient: a row of the table per token, the row chosen by
// the token's id. The token's load moves inside: one thread per column adds
// the tokens' rows in order, so repeated tokens add up as on the CPU.
// CHECK-LABEL: func.func @scatter_rows
// CHECK: gpu.launch blocks({{.*}}) threads(%[[J:[^,]*]], %{{.*}}, %{{.*}}) in
// CHECK: scf.if
// CHECK-NEXT: scf.for %[[T:.*]] = %c0 to %arg3 step %c1 {
// CHECK-NEXT: %[[ID:.*]] = memref.load %arg0[%[[T]]] : memref<?xi32>
// CHECK-NEXT: %[[ROW:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK-NEXT: %[[FROM:.*]] = memref.subview %arg1[%[[T]], 0]
// CHECK-NEXT: %[[TO:.*]] = memref.subview %arg2[%[[ROW]], 0]
// CHECK-NEXT: memref.load %[[FROM]][%c0, %[[J]]]
// CHECK-NEXT: memref.load %[[TO]][%c0, %[[J]]]
// CHECK-NEXT: arith.addf
// CHECK-NEXT: memref.store %{{.*}}, %[[TO]][%c0, %[[J]]]
// CHECK-NOT: gpu.launch
func.func @scatter_rows(%ids: memref<?xi32>, %grad: memref<?x64xf32>,
                        %table: memref<1000x64xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  scf.for %t = %c0 to %n step %c1 {
    %id = memref.load %ids[%t] : memref<?xi32>
    %row = arith.index_cast %id : i32 to index
    %from = memref.subview %grad[%t, 0] [1, 64] [1, 1] : memref<?x64xf32> to memref<1x64xf32, strided<[64, 1], offset: ?>>
    %to = memref.subview %table[%row, 0] [1, 64] [1, 1] : memref<1000x64xf32> to memref<1x64xf32, strided<[64, 1], offset: ?>>
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      %g = memref.load %from[%c0, %j] : memref<1x64xf32, strided<[64, 1], offset: ?>>
      %w = memref.load %to[%c0, %j] : memref<1x64xf32, strided<[64, 1], offset: ?>>
      %s = arith.addf %w, %g : f32
      memref.store %s, %to[%c0, %j] : memref<1x64xf32, strided<[64, 1], offset: ?>>
      scf.reduce
    }
  }
  return
}

// -----

// The loop's own load reads what the parallel loop writes: moving it into
// each thread would read other threads' results. The loop runs in one
// thread instead, the parallel loop inside it in order (a kernel does not
// launch kernels).
// CHECK-LABEL: func.func @dependent_rows
// CHECK: gpu.launch blocks({{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) threads({{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) {
// CHECK-NEXT: scf.for %[[T:.*]] = %c0 to %arg2 step %c1 {
// CHECK: memref.load %arg1[%[[T]]]
// CHECK: scf.for %[[J:.*]] = %c0 to %c64 step %c1 {
// CHECK: memref.store %{{.*}}, %arg0[%{{.*}}, %[[J]]]
// CHECK: gpu.terminator
// CHECK-NOT: gpu.launch
func.func @dependent_rows(%table: memref<16x64xf32>, %next: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  scf.for %t = %c0 to %n step %c1 {
    %x = memref.load %next[%t] : memref<?xf32>
    %i = arith.fptosi %x : f32 to i32
    %row = arith.index_cast %i : i32 to index
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      %w = memref.load %table[%row, %j] : memref<16x64xf32>
      %s = arith.addf %w, %x : f32
      memref.store %s, %table[%row, %j] : memref<16x64xf32>
      %c3 = arith.constant 3 : index
      memref.store %s, %next[%c3] : memref<?xf32>
      scf.reduce
    }
  }
  return
}
