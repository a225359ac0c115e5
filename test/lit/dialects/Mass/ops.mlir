// RUN: mass-opt %s | FileCheck %s
// RUN: mass-opt %s | mass-opt | FileCheck %s
// RUN: mass-opt %s -mlir-print-op-generic | mass-opt | FileCheck %s

// CHECK-LABEL: func.func @layers
func.func @layers(%x: tensor<?x784xf32>, %w: tensor<256x784xf32>,
                  %b: tensor<256xf32>) -> tensor<?x256xf32> {
  // CHECK: mass.dense %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x784xf32>, tensor<256x784xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  %0 = mass.dense %x, %w, %b : (tensor<?x784xf32>, tensor<256x784xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  // CHECK: mass.dense %{{.*}}, %{{.*}} : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?x256xf32>
  %1 = mass.dense %x, %w : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?x256xf32>
  // CHECK: mass.relu %{{.*}} : tensor<?x256xf32>
  %2 = mass.relu %0 : tensor<?x256xf32>
  %3 = mass.gelu %2 : tensor<?x256xf32>
  %4 = mass.sigmoid %3 : tensor<?x256xf32>
  %5 = mass.tanh %4 : tensor<?x256xf32>
  %6 = mass.silu %5 : tensor<?x256xf32>
  %7 = mass.exp %6 : tensor<?x256xf32>
  %8 = mass.log %7 : tensor<?x256xf32>
  %9 = mass.sqrt %8 : tensor<?x256xf32>
  %10 = mass.abs %9 : tensor<?x256xf32>
  %11 = mass.neg %10 : tensor<?x256xf32>
  %12 = mass.sign %11 : tensor<?x256xf32>
  // CHECK: mass.add %{{.*}}, %{{.*}} : tensor<?x256xf32>, tensor<256xf32> -> tensor<?x256xf32>
  %13 = mass.add %12, %b : tensor<?x256xf32>, tensor<256xf32> -> tensor<?x256xf32>
  %14 = mass.sub %13, %1 : tensor<?x256xf32>, tensor<?x256xf32> -> tensor<?x256xf32>
  %c = arith.constant dense<0.5> : tensor<f32>
  // CHECK: mass.mul %{{.*}}, %{{.*}} : tensor<f32>, tensor<?x256xf32> -> tensor<?x256xf32>
  %15 = mass.mul %c, %14 : tensor<f32>, tensor<?x256xf32> -> tensor<?x256xf32>
  %16 = mass.div %15, %c : tensor<?x256xf32>, tensor<f32> -> tensor<?x256xf32>
  return %16 : tensor<?x256xf32>
}

// CHECK-LABEL: func.func @shapes
func.func @shapes(%x: tensor<?x1x28x28xf32>, %a: tensor<?x4x8xf32>,
                  %m: tensor<8x3xf32>) -> tensor<?x784xf32> {
  // CHECK: mass.reshape %{{.*}} : tensor<?x1x28x28xf32> -> tensor<?x784xf32>
  %0 = mass.reshape %x : tensor<?x1x28x28xf32> -> tensor<?x784xf32>
  // CHECK: mass.transpose %{{.*}} perm = [0, 2, 1] : tensor<?x4x8xf32> -> tensor<?x8x4xf32>
  %1 = mass.transpose %a perm = [0, 2, 1] : tensor<?x4x8xf32> -> tensor<?x8x4xf32>
  // CHECK: mass.matmul %{{.*}}, %{{.*}} : tensor<?x4x8xf32>, tensor<8x3xf32> -> tensor<?x4x3xf32>
  %2 = mass.matmul %a, %m : tensor<?x4x8xf32>, tensor<8x3xf32> -> tensor<?x4x3xf32>
  // CHECK: mass.sum %{{.*}} axes = [1] : tensor<?x4x8xf32> -> tensor<?x8xf32>
  %3 = mass.sum %a axes = [1] : tensor<?x4x8xf32> -> tensor<?x8xf32>
  // CHECK: mass.mean %{{.*}} axes = [-1] keepdim : tensor<?x4x8xf32> -> tensor<?x4x1xf32>
  %4 = mass.mean %a axes = [-1] keepdim : tensor<?x4x8xf32> -> tensor<?x4x1xf32>
  %5 = mass.max %a axes = [0, 1, 2] : tensor<?x4x8xf32> -> tensor<f32>
  // CHECK: mass.broadcast %{{.*}}, %{{.*}} : tensor<?x4x1xf32>, tensor<?x4x8xf32> -> tensor<?x4x8xf32>
  %6 = mass.broadcast %4, %a : tensor<?x4x1xf32>, tensor<?x4x8xf32> -> tensor<?x4x8xf32>
  // CHECK: mass.softmax %{{.*}} axis = -1 : tensor<?x4x8xf32>
  %7 = mass.softmax %6 axis = -1 : tensor<?x4x8xf32>
  %8 = mass.log_softmax %7 axis = 1 : tensor<?x4x8xf32>
  return %0 : tensor<?x784xf32>
}

// CHECK-LABEL: func.func @losses
func.func @losses(%logits: tensor<?x10xf32>, %labels: tensor<?xi32>,
                  %p: tensor<?x1xf32>, %t: tensor<?x1xf32>) -> tensor<f32> {
  // CHECK: mass.cross_entropy %{{.*}}, %{{.*}} {smoothing = 5.000000e-02 : f64} : tensor<?x10xf32>, tensor<?xi32>
  %0 = mass.cross_entropy %logits, %labels {smoothing = 0.05 : f64} : tensor<?x10xf32>, tensor<?xi32>
  %1 = mass.mse %p, %t : tensor<?x1xf32>
  %2 = mass.l1 %p, %t : tensor<?x1xf32>
  %3 = mass.bce %p, %t : tensor<?x1xf32>
  // CHECK: = mass.accuracy %{{.*}}, %{{.*}} : tensor<?x10xf32>, tensor<?xi32>
  %4:2 = mass.accuracy %logits, %labels : tensor<?x10xf32>, tensor<?xi32>
  %5:2 = mass.accuracy %p, %t : tensor<?x1xf32>, tensor<?x1xf32>
  // CHECK: mass.top_k %{{.*}}, %{{.*}} k = 3 : tensor<?x10xf32>, tensor<?xi32>
  %6:2 = mass.top_k %logits, %labels k = 3 : tensor<?x10xf32>, tensor<?xi32>
  %7:2 = mass.abs_error %p, %t : tensor<?x1xf32>
  %8:2 = mass.squared_error %p, %t : tensor<?x1xf32>
  return %0 : tensor<f32>
}

// CHECK-LABEL: func.func @fusion
func.func @fusion(%x: tensor<?x8xf32>, %b: tensor<8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  // CHECK: %[[R:.*]]:2 = mass.fusion ins(%{{.*}}, %{{.*}} : tensor<?x8xf32>, tensor<8xf32>) {
  // CHECK-NEXT: ^bb0(%[[A:.*]]: tensor<?x8xf32>, %[[C:.*]]: tensor<8xf32>):
  // CHECK-NEXT: %[[S:.*]] = mass.add %[[A]], %[[C]]
  // CHECK-NEXT: %[[T:.*]] = mass.relu %[[S]]
  // CHECK-NEXT: mass.yield %[[S]], %[[T]] : tensor<?x8xf32>, tensor<?x8xf32>
  // CHECK-NEXT: } -> tensor<?x8xf32>, tensor<?x8xf32>
  %0:2 = mass.fusion ins(%x, %b : tensor<?x8xf32>, tensor<8xf32>) {
  ^bb0(%a: tensor<?x8xf32>, %c: tensor<8xf32>):
    %1 = mass.add %a, %c : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
    %2 = mass.relu %1 : tensor<?x8xf32>
    mass.yield %1, %2 : tensor<?x8xf32>, tensor<?x8xf32>
  } -> tensor<?x8xf32>, tensor<?x8xf32>
  return %0#0, %0#1 : tensor<?x8xf32>, tensor<?x8xf32>
}

// CHECK-LABEL: func.func @vision
func.func @vision(%x: tensor<?x4x9x9xf32>, %w: tensor<6x2x3x3xf32>,
                  %dy: tensor<?x6x5x5xf32>, %a: tensor<?x3xf32>)
    -> (tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32>, tensor<?x4x4x4xf32>,
        tensor<?x4x9x9xf32>, tensor<?x4x9x9xf32>, tensor<?x3xf32>) {
  // CHECK: mass.conv2d %{{.*}}, %{{.*}} stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32> -> tensor<?x6x5x5xf32>
  %0 = mass.conv2d %x, %w stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32> -> tensor<?x6x5x5xf32>
  // CHECK: mass.conv2d_grad_input %{{.*}}, %{{.*}} stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x6x5x5xf32>, tensor<6x2x3x3xf32> -> tensor<?x4x9x9xf32>
  %1 = mass.conv2d_grad_input %dy, %w stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x6x5x5xf32>, tensor<6x2x3x3xf32> -> tensor<?x4x9x9xf32>
  // CHECK: mass.conv2d_grad_weight %{{.*}}, %{{.*}} stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x6x5x5xf32>, tensor<?x4x9x9xf32> -> tensor<6x2x3x3xf32>
  %2 = mass.conv2d_grad_weight %dy, %x stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 2 : tensor<?x6x5x5xf32>, tensor<?x4x9x9xf32> -> tensor<6x2x3x3xf32>
  // CHECK: mass.maxpool %{{.*}} kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x4x9x9xf32> -> tensor<?x4x5x5xf32>
  %3 = mass.maxpool %x kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x4x9x9xf32> -> tensor<?x4x5x5xf32>
  // CHECK: mass.avgpool %{{.*}} kernel = [2, 2] stride = [2, 2] padding = [0, 0] : tensor<?x4x9x9xf32> -> tensor<?x4x4x4xf32>
  %4 = mass.avgpool %x kernel = [2, 2] stride = [2, 2] padding = [0, 0] : tensor<?x4x9x9xf32> -> tensor<?x4x4x4xf32>
  // CHECK: mass.maxpool_grad %{{.*}}, %{{.*}} kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x4x9x9xf32>, tensor<?x4x5x5xf32> -> tensor<?x4x9x9xf32>
  %5 = mass.maxpool_grad %x, %3 kernel = [3, 3] stride = [2, 2] padding = [1, 1] : tensor<?x4x9x9xf32>, tensor<?x4x5x5xf32> -> tensor<?x4x9x9xf32>
  // CHECK: mass.avgpool_grad %{{.*}} kernel = [2, 2] stride = [2, 2] padding = [0, 0] : tensor<?x4x4x4xf32> -> tensor<?x4x9x9xf32>
  %6 = mass.avgpool_grad %4 kernel = [2, 2] stride = [2, 2] padding = [0, 0] : tensor<?x4x4x4xf32> -> tensor<?x4x9x9xf32>
  // CHECK: mass.concat %{{.*}}, %{{.*}} axis = 1 : tensor<?x3xf32>, tensor<?x3xf32> -> tensor<?x6xf32>
  %7 = mass.concat %a, %a axis = 1 : tensor<?x3xf32>, tensor<?x3xf32> -> tensor<?x6xf32>
  // CHECK: mass.slice %{{.*}} axis = 1 offset = 3 : tensor<?x6xf32> -> tensor<?x3xf32>
  %8 = mass.slice %7 axis = 1 offset = 3 : tensor<?x6xf32> -> tensor<?x3xf32>
  return %1, %2, %4, %5, %6, %8 : tensor<?x4x9x9xf32>, tensor<6x2x3x3xf32>, tensor<?x4x4x4xf32>, tensor<?x4x9x9xf32>, tensor<?x4x9x9xf32>, tensor<?x3xf32>
}

// CHECK-LABEL: func.func @modes
func.func @modes(%x: tensor<?x3x4x4xf32>, %g: tensor<3xf32>, %seed: tensor<3xi32>) -> (tensor<?x3x4x4xf32>, tensor<?x3x4x4xf32>) {
  // CHECK: mass.batchnorm %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} training eps = 1.000000e-05 momentum = 1.000000e-01 : tensor<?x3x4x4xf32>, tensor<3xf32>
  %0:5 = mass.batchnorm %x, %g, %g, %g, %g training eps = 1.0e-05 momentum = 1.0e-01 : tensor<?x3x4x4xf32>, tensor<3xf32>
  // CHECK: mass.dropout %{{.*}} seed %{{.*}} training p = 5.000000e-01 stream = 2 : tensor<?x3x4x4xf32>
  %1 = mass.dropout %0#0 seed %seed training p = 5.0e-01 stream = 2 : tensor<?x3x4x4xf32>
  return %0#0, %1 : tensor<?x3x4x4xf32>, tensor<?x3x4x4xf32>
}

// CHECK-LABEL: func.func @sequences
func.func @sequences(%ids: tensor<?x6xi32>, %table: tensor<11x8xf32>,
                     %g: tensor<8xf32>) -> (tensor<?x6x8xf32>, tensor<11x8xf32>, tensor<?xi32>) {
  // CHECK: mass.embedding %{{.*}}, %{{.*}} : tensor<?x6xi32>, tensor<11x8xf32> -> tensor<?x6x8xf32>
  %0 = mass.embedding %ids, %table : tensor<?x6xi32>, tensor<11x8xf32> -> tensor<?x6x8xf32>
  // CHECK: mass.layernorm %{{.*}}, %{{.*}}, %{{.*}} eps = 1.000000e-05 : tensor<?x6x8xf32>, tensor<8xf32> -> tensor<?x6xf32>, tensor<?x6xf32>
  %1:3 = mass.layernorm %0, %g, %g eps = 1.0e-05 : tensor<?x6x8xf32>, tensor<8xf32> -> tensor<?x6xf32>, tensor<?x6xf32>
  // CHECK: mass.gelu_tanh %{{.*}} : tensor<?x6x8xf32>
  %2 = mass.gelu_tanh %1#0 : tensor<?x6x8xf32>
  // CHECK: mass.gelu_tanh_grad %{{.*}}, %{{.*}} : tensor<?x6x8xf32>
  %3 = mass.gelu_tanh_grad %2, %0 : tensor<?x6x8xf32>
  // CHECK: mass.embedding_grad %{{.*}}, %{{.*}} : tensor<?x6xi32>, tensor<?x6x8xf32> -> tensor<11x8xf32>
  %4 = mass.embedding_grad %ids, %3 : tensor<?x6xi32>, tensor<?x6x8xf32> -> tensor<11x8xf32>
  // Labels reshape too: a sequence's positions become samples.
  // CHECK: mass.reshape %{{.*}} : tensor<?x6xi32> -> tensor<?xi32>
  %5 = mass.reshape %ids : tensor<?x6xi32> -> tensor<?xi32>
  return %2, %4, %5 : tensor<?x6x8xf32>, tensor<11x8xf32>, tensor<?xi32>
}

// CHECK-LABEL: func.func @attention
func.func @attention(%q: tensor<?x10x8xf32>, %kv: tensor<?x12x8xf32>, %w: tensor<8x8xf32>) -> (tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<24x8xf32>) {
  // CHECK: mass.attention %{{.*}}, %{{.*}}, %{{.*}} heads = 2 : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<?x12x8xf32>
  %out, %lse = mass.attention %q, %kv, %kv heads = 2 : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<?x12x8xf32>
  // CHECK: mass.attention %{{.*}}, %{{.*}}, %{{.*}} heads = 4 causal : tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>
  %self, %lse2 = mass.attention %q, %q, %q heads = 4 causal : tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>
  // CHECK: mass.attention_grad {{.*}} heads = 2 : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<?x12x8xf32>, tensor<?x2x10xf32>
  %dq, %dk, %dv = mass.attention_grad %q, %kv, %kv, %out, %lse, %self heads = 2 : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<?x12x8xf32>, tensor<?x2x10xf32>
  // CHECK: mass.pad %{{.*}} axis = 0 offset = 8 : tensor<8x8xf32> -> tensor<24x8xf32>
  %p = mass.pad %w axis = 0 offset = 8 : tensor<8x8xf32> -> tensor<24x8xf32>
  return %dq, %dk, %p : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<24x8xf32>
}

// CHECK-LABEL: func.func @layernorm_grad
func.func @layernorm_grad(%x: tensor<?x10x8xf32>, %m: tensor<?x10xf32>, %w: tensor<8xf32>) -> (tensor<?x10x8xf32>, tensor<8xf32>, tensor<8xf32>) {
  // CHECK: mass.layernorm_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x10x8xf32>, tensor<?x10xf32>, tensor<8xf32>
  %dx, %dw, %db = mass.layernorm_grad %x, %m, %m, %w, %x : tensor<?x10x8xf32>, tensor<?x10xf32>, tensor<8xf32>
  return %dx, %dw, %db : tensor<?x10x8xf32>, tensor<8xf32>, tensor<8xf32>
}

// CHECK-LABEL: func.func @self_attention
func.func @self_attention(%qkv: tensor<?x10x24xf32>, %dy: tensor<?x10x8xf32>) -> tensor<?x10x24xf32> {
  // CHECK: %[[OUT:.*]], %[[LSE:.*]] = mass.self_attention %{{.*}} heads = 2 causal : tensor<?x10x24xf32>
  %out, %lse = mass.self_attention %qkv heads = 2 causal : tensor<?x10x24xf32>
  // CHECK: mass.self_attention_grad %{{.*}}, %[[OUT]], %[[LSE]], %{{.*}} heads = 2 causal : tensor<?x10x24xf32>, tensor<?x10x8xf32>, tensor<?x2x10xf32>
  %d = mass.self_attention_grad %qkv, %out, %lse, %dy heads = 2 causal : tensor<?x10x24xf32>, tensor<?x10x8xf32>, tensor<?x2x10xf32>
  return %d : tensor<?x10x24xf32>
}

// CHECK-LABEL: func.func @sum_ranks
func.func @sum_ranks(%x: tensor<6xf32>) -> tensor<6xf32> {
  // CHECK: mass.sum_ranks %{{.*}} : tensor<6xf32>
  %0 = mass.sum_ranks %x : tensor<6xf32>
  return %0 : tensor<6xf32>
}
