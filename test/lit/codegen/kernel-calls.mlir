// RUN: mass-opt --one-shot-bufferize="bufferize-function-boundaries" %s | FileCheck %s

// Attention and its gradient bufferize into new buffers for their results
// and one call of the runtime's kernel per sample and head, from a
// parallel loop; each buffer passes as a descriptor with any strides.

// CHECK-DAG: func.func private @mass_attention_forward(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @mass_attention_backward(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, {{.*}}, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64, i64) attributes {llvm.emit_c_interface}

// CHECK-LABEL: func.func @attention
// CHECK: %[[B:.*]] = memref.dim %arg0, %c0
// CHECK: %[[OUT:.*]] = memref.alloc(%[[B]]) {{.*}} : memref<?x10x8xf32>
// CHECK: %[[LSE:.*]] = memref.alloc(%[[B]]) {{.*}} : memref<?x2x10xf32>
// CHECK: %[[N:.*]] = arith.muli %[[B]], %c2
// CHECK: scf.parallel (%[[I:.*]]) = (%c0) to (%[[N]]) step (%c1)
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
