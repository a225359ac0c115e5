// RUN: mass-opt --one-shot-bufferize="bufferize-function-boundaries" %s | FileCheck %s
// RUN: mass-opt --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" %s | FileCheck %s --check-prefix=IDENTITY

// Attention and its gradient bufferize into new buffers for their results
// and one call of the runtime's kernel per sample and head, from a
// parallel loop; each buffer passes as a descriptor with any strides.

// CHECK-DAG: func.func private @mass_attention_forward(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @mass_attention_backward(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, {{.*}}, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @mass_layernorm_backward(memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @mass_layernorm_backward_sums(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>) attributes {llvm.emit_c_interface}

// CHECK-LABEL: func.func @attention
// CHECK: %[[B:.*]] = memref.dim %arg0, %c0
// CHECK: %[[OUT:.*]] = memref.alloc(%[[B]]) {{.*}} : memref<?x10x8xf32>
// CHECK: %[[LSE:.*]] = memref.alloc(%[[B]]) {{.*}} : memref<?x2x10xf32>
// CHECK: %[[N:.*]] = arith.muli %[[B]], %c2
// CHECK: scf.parallel (%[[I:.*]]) = (%c0{{.*}}) to (%[[N]]) step (%c1)
// CHECK: %[[INDEX:.*]] = arith.index_cast %[[I]] : index to i64
// CHECK: func.call @mass_attention_forward(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[INDEX]], %c2_i64, %c1_i64)
// CHECK: memref.alloc({{.*}}) {{.*}} : memref<?x10x8xf32>
// CHECK: memref.alloc({{.*}}) {{.*}} : memref<?x10x8xf32>
// CHECK: memref.alloc({{.*}}) {{.*}} : memref<?x10x8xf32>
// CHECK: scf.parallel
// CHECK: func.call @mass_attention_backward
func.func @attention(%q: tensor<?x10x8xf32>, %k: tensor<?x10x8xf32>, %v: tensor<?x10x8xf32>, %dy: tensor<?x10x8xf32>) -> (tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>) {
  %out, %lse = mass.attention %q, %k, %v heads = 2 causal : tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>
  %dq, %dk, %dv = mass.attention_grad %q, %k, %v, %out, %lse, %dy heads = 2 causal : tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x2x10xf32>
  return %out, %dq, %dk, %dv : tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>
}

// Self-attention: the kernels read the query, key and value as column
// blocks [?, 10, 8] of the packed [?, 10, 24] (views with its strides, no
// copy), and the gradient writes them into one new [?, 10, 24] buffer.

// CHECK-LABEL: func.func @self_attention
// CHECK: %[[OUT:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x10x8xf32>
// CHECK: %[[LSE:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2x10xf32>
// CHECK: %[[Q:.*]] = memref.subview %arg0[0, 0, 0] [%{{.*}}, 10, 8] [1, 1, 1]
// CHECK: %[[K:.*]] = memref.subview %arg0[0, 0, 8] [%{{.*}}, 10, 8] [1, 1, 1]
// CHECK: %[[V:.*]] = memref.subview %arg0[0, 0, 16] [%{{.*}}, 10, 8] [1, 1, 1]
// CHECK: scf.parallel
// CHECK: func.call @mass_attention_forward
// CHECK: %[[D:.*]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x10x24xf32>
// CHECK: memref.subview %arg0[0, 0, 0]
// CHECK: memref.subview %[[D]][0, 0, 0] [%{{.*}}, 10, 8] [1, 1, 1]
// CHECK: memref.subview %[[D]][0, 0, 8] [%{{.*}}, 10, 8] [1, 1, 1]
// CHECK: memref.subview %[[D]][0, 0, 16] [%{{.*}}, 10, 8] [1, 1, 1]
// CHECK: scf.parallel
// CHECK: func.call @mass_attention_backward
// CHECK: return %[[OUT]], %[[D]]
func.func @self_attention(%qkv: tensor<?x10x24xf32>, %dy: tensor<?x10x8xf32>) -> (tensor<?x10x8xf32>, tensor<?x10x24xf32>) {
  %out, %lse = mass.self_attention %qkv heads = 2 causal : tensor<?x10x24xf32>
  %d = mass.self_attention_grad %qkv, %out, %lse, %dy heads = 2 causal : tensor<?x10x24xf32>, tensor<?x10x8xf32>, tensor<?x2x10xf32>
  return %out, %d : tensor<?x10x8xf32>, tensor<?x10x24xf32>
}

// Layer norm's gradient: new buffers for dx, dweight and dbias and for the
// chunks' sums over rows; the rows [?, 10, 8] pass as [?, 8] (and their
// statistics as [?]); one call per chunk from a parallel loop, then the
// chunks' sums added in order. Buffers with any strides (the default
// function boundary here) may not collapse: they are copied first; those
// with an identity layout collapse in place.

// CHECK-LABEL: func.func @layernorm_grad
// CHECK: %[[B:.*]] = memref.dim %arg0, %c0
// CHECK: %[[DX:.*]] = memref.alloc(%[[B]]) {{.*}} : memref<?x10x8xf32>
// CHECK: memref.alloc() {{.*}} : memref<8xf32>
// CHECK: memref.alloc() {{.*}} : memref<8xf32>
// CHECK: %[[PARTIAL:.*]] = memref.alloc() {{.*}} : memref<64x2x8xf32>
// CHECK: %[[COPY:.*]] = memref.alloc({{.*}}) {{.*}} : memref<?x10x8xf32>
// CHECK: memref.copy %arg0, %[[COPY]]
// CHECK: memref.collapse_shape %[[COPY]] {{\[\[}}0, 1], [2]] : memref<?x10x8xf32> into memref<?x8xf32>
// CHECK: memref.collapse_shape %[[DX]] {{\[\[}}0, 1], [2]]
// CHECK: scf.parallel (%[[I:.*]]) = (%c0{{.*}}) to (%c64) step (%c1)
// CHECK: %[[CHUNK:.*]] = arith.index_cast %[[I]] : index to i64
// CHECK: func.call @mass_layernorm_backward({{.*}}, %[[CHUNK]], %c64_i64)
// CHECK: call @mass_layernorm_backward_sums

// IDENTITY-LABEL: func.func @layernorm_grad
// IDENTITY-NOT: memref.copy
// IDENTITY: memref.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : memref<?x10x8xf32> into memref<?x8xf32>
// IDENTITY: memref.collapse_shape %arg1 {{\[\[}}0, 1]] : memref<?x10xf32> into memref<?xf32>
// IDENTITY: memref.collapse_shape %arg2 {{\[\[}}0, 1]] : memref<?x10xf32> into memref<?xf32>
// IDENTITY: memref.collapse_shape %arg4 {{\[\[}}0, 1], [2]] : memref<?x10x8xf32> into memref<?x8xf32>
// IDENTITY: func.call @mass_layernorm_backward(
func.func @layernorm_grad(%x: tensor<?x10x8xf32>, %m: tensor<?x10xf32>, %r: tensor<?x10xf32>, %w: tensor<8xf32>, %dy: tensor<?x10x8xf32>) -> (tensor<?x10x8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %dx, %dw, %db = mass.layernorm_grad %x, %m, %r, %w, %dy : tensor<?x10x8xf32>, tensor<?x10xf32>, tensor<8xf32>
  return %dx, %dw, %db : tensor<?x10x8xf32>, tensor<8xf32>, tensor<8xf32>
}

// A sum over the data-parallel processes: the input copied into a new
// buffer, which the runtime sums in place.

// CHECK-LABEL: func.func @sum_ranks
// CHECK: %[[SUMS:.*]] = memref.alloc() {{.*}} : memref<5xf32>
// CHECK: memref.copy %arg0, %[[SUMS]]
// CHECK: %[[ANY:.*]] = memref.cast %[[SUMS]] : memref<5xf32> to memref<?xf32, strided<[?], offset: ?>>
// CHECK: call @mass_sum_ranks(%[[ANY]])
// CHECK: return %[[SUMS]]

// IDENTITY-LABEL: func.func @sum_ranks
// IDENTITY: call @mass_sum_ranks
func.func @sum_ranks(%x: tensor<5xf32>) -> tensor<5xf32> {
  %0 = mass.sum_ranks %x : tensor<5xf32>
  return %0 : tensor<5xf32>
}
