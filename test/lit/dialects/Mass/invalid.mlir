// RUN: mass-opt %s -split-input-file -verify-diagnostics

func.func @dense_weight(%x: tensor<?x784xf32>, %w: tensor<256x100xf32>) {
  // expected-error @+1 {{dense: weight [256, 100] does not fit input [B, 784]; expected [out, 784]}}
  %0 = mass.dense %x, %w : (tensor<?x784xf32>, tensor<256x100xf32>) -> tensor<?x256xf32>
  return
}

// -----

func.func @dense_result(%x: tensor<?x784xf32>, %w: tensor<256x784xf32>) {
  // expected-error @+1 {{result shape [B, 10] should be [B, 256]}}
  %0 = mass.dense %x, %w : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?x10xf32>
  return
}

// -----

func.func @broadcast(%a: tensor<?x4xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{cannot broadcast shapes [B, 4] and [3]}}
  %0 = mass.add %a, %b : tensor<?x4xf32>, tensor<3xf32> -> tensor<?x4xf32>
  return
}

// -----

func.func @dynamic_against_static(%a: tensor<?x4xf32>, %b: tensor<8x4xf32>) {
  // expected-error @+1 {{cannot broadcast shapes [B, 4] and [8, 4]}}
  %0 = mass.add %a, %b : tensor<?x4xf32>, tensor<8x4xf32> -> tensor<8x4xf32>
  return
}

// -----

func.func @matmul_inner(%a: tensor<?x8xf32>, %b: tensor<7x3xf32>) {
  // expected-error @+1 {{matmul: inner dimensions differ: [B, 8] and [7, 3]}}
  %0 = mass.matmul %a, %b : tensor<?x8xf32>, tensor<7x3xf32> -> tensor<?x3xf32>
  return
}

// -----

func.func @reshape_count(%a: tensor<4x6xf32>) {
  // expected-error @+1 {{reshape: cannot reshape [4, 6] into [5, 5]}}
  %0 = mass.reshape %a : tensor<4x6xf32> -> tensor<5x5xf32>
  return
}

// -----

func.func @reshape_batch(%a: tensor<?x6xf32>) {
  // expected-error @+1 {{the target shape must keep the batch dimension}}
  %0 = mass.reshape %a : tensor<?x6xf32> -> tensor<2x3xf32>
  return
}

// -----

func.func @transpose_perm(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{transpose: perm is not a permutation of 0..1}}
  %0 = mass.transpose %a perm = [0, 0] : tensor<2x3xf32> -> tensor<2x2xf32>
  return
}

// -----

func.func @reduce_axis(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{axis 2 is out of range for [2, 3]}}
  %0 = mass.sum %a axes = [2] : tensor<2x3xf32> -> tensor<2xf32>
  return
}

// -----

func.func @softmax_axis(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{axis -3 is out of range for [2, 3]}}
  %0 = mass.softmax %a axis = -3 : tensor<2x3xf32>
  return
}

// -----

func.func @labels(%l: tensor<?x10xf32>, %y: tensor<?x2xi32>) {
  // expected-error @+1 {{labels [B, 2] do not fit logits [B, 10]; expected [B]}}
  %0 = mass.cross_entropy %l, %y : tensor<?x10xf32>, tensor<?x2xi32>
  return
}

// -----

func.func @smoothing(%l: tensor<?x10xf32>, %y: tensor<?xi32>) {
  // expected-error @+1 {{smoothing must lie in [0, 1], got 2}}
  %0 = mass.cross_entropy %l, %y {smoothing = 2.0 : f64} : tensor<?x10xf32>, tensor<?xi32>
  return
}

// -----

func.func @top_k(%l: tensor<?x10xf32>, %y: tensor<?xi32>) {
  // expected-error @+1 {{k must lie in [1, 10], got 11}}
  %0:2 = mass.top_k %l, %y k = 11 : tensor<?x10xf32>, tensor<?xi32>
  return
}

// -----

func.func @binary_accuracy(%l: tensor<?x2xf32>, %y: tensor<?x2xf32>) {
  // expected-error @+1 {{binary accuracy needs logits [B, 1]}}
  %0:2 = mass.accuracy %l, %y : tensor<?x2xf32>, tensor<?x2xf32>
  return
}

// -----

func.func @mse_types(%p: tensor<?x1xf32>, %t: tensor<?x2xf32>) {
  // expected-error @+1 {{all of {pred, target} have same type}}
  %0 = "mass.mse"(%p, %t) : (tensor<?x1xf32>, tensor<?x2xf32>) -> tensor<f32>
  return
}

// -----

func.func @fusion_yield(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{'mass.fusion' op yields 'tensor<?x8xf32>' but has results 'tensor<8xf32>'}}
  %0 = mass.fusion ins(%x : tensor<?x8xf32>) {
  ^bb0(%a: tensor<?x8xf32>):
    %1 = mass.relu %a : tensor<?x8xf32>
    mass.yield %1 : tensor<?x8xf32>
  } -> tensor<8xf32>
  return
}

// -----

func.func @fusion_arguments(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{'mass.fusion' op block argument 0 has type 'tensor<8xf32>', its input 'tensor<?x8xf32>'}}
  %0 = mass.fusion ins(%x : tensor<?x8xf32>) {
  ^bb0(%a: tensor<8xf32>):
    %1 = mass.relu %a : tensor<8xf32>
    mass.yield %1 : tensor<8xf32>
  } -> tensor<8xf32>
  return
}

// -----

func.func @fusion_isolated(%x: tensor<?x8xf32>) {
  // expected-note @+1 {{required by region isolation constraints}}
  %0 = mass.fusion {
    // expected-error @+1 {{using value defined outside the region}}
    %1 = mass.relu %x : tensor<?x8xf32>
    mass.yield %1 : tensor<?x8xf32>
  } -> tensor<?x8xf32>
  return
}

// -----

func.func @conv_channels(%x: tensor<?x4x9x9xf32>, %w: tensor<6x3x3x3xf32>) {
  // expected-error @+1 {{conv2d: a weight [6, 3, 3, 3] takes 6 input channels, got [B, 4, 9, 9]}}
  %0 = mass.conv2d %x, %w stride = [1, 1] padding = [0, 0] dilation = [1, 1] groups = 2 : tensor<?x4x9x9xf32>, tensor<6x3x3x3xf32> -> tensor<?x6x7x7xf32>
  return
}

// -----

func.func @conv_groups(%x: tensor<?x4x9x9xf32>, %w: tensor<5x2x3x3xf32>) {
  // expected-error @+1 {{conv2d: groups (2) must divide the input's channels (4) and the output's (5)}}
  %0 = mass.conv2d %x, %w stride = [1, 1] padding = [0, 0] dilation = [1, 1] groups = 2 : tensor<?x4x9x9xf32>, tensor<5x2x3x3xf32> -> tensor<?x5x7x7xf32>
  return
}

// -----

func.func @conv_window(%x: tensor<?x4x3x3xf32>, %w: tensor<6x4x3x3xf32>) {
  // expected-error @+1 {{conv2d: a 3 window dilated by 2 does not fit [B, 4, 3, 3] padded by 0}}
  %0 = mass.conv2d %x, %w stride = [1, 1] padding = [0, 0] dilation = [2, 2] groups = 1 : tensor<?x4x3x3xf32>, tensor<6x4x3x3xf32> -> tensor<?x6x1x1xf32>
  return
}

// -----

func.func @conv_result(%x: tensor<?x4x9x9xf32>, %w: tensor<6x4x3x3xf32>) {
  // expected-error @+1 {{result shape [B, 6, 9, 9] should be [B, 6, 5, 5]}}
  %0 = mass.conv2d %x, %w stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 1 : tensor<?x4x9x9xf32>, tensor<6x4x3x3xf32> -> tensor<?x6x9x9xf32>
  return
}

// -----

func.func @conv_grad_input(%dy: tensor<?x6x5x5xf32>, %w: tensor<6x4x3x3xf32>) {
  // expected-error @+1 {{result shape [B, 6, 5, 5] should be [B, 6, 3, 3]}}
  %0 = mass.conv2d_grad_input %dy, %w stride = [2, 2] padding = [1, 1] dilation = [1, 1] groups = 1 : tensor<?x6x5x5xf32>, tensor<6x4x3x3xf32> -> tensor<?x4x5x5xf32>
  return
}

// -----

func.func @pool_padding(%x: tensor<?x4x9x9xf32>) {
  // expected-error @+1 {{maxpool: the padding (2) may be at most half the kernel (3), as in PyTorch}}
  %0 = mass.maxpool %x kernel = [3, 3] stride = [1, 1] padding = [2, 2] : tensor<?x4x9x9xf32> -> tensor<?x4x11x11xf32>
  return
}

// -----

func.func @pool_rank(%x: tensor<?x4x9xf32>) {
  // expected-error @+1 {{avgpool: expected an NCHW tensor [N, C, H, W], got [B, 4, 9]}}
  %0 = mass.avgpool %x kernel = [3, 3] stride = [1, 1] padding = [0, 0] : tensor<?x4x9xf32> -> tensor<?x4x7x7xf32>
  return
}

// -----

func.func @concat_batch(%a: tensor<?x3xf32>) {
  // expected-error @+1 {{concat: cannot join along the batch axis of [B, 3]}}
  %0 = mass.concat %a, %a axis = 0 : tensor<?x3xf32>, tensor<?x3xf32> -> tensor<?x3xf32>
  return
}

// -----

func.func @slice_range(%a: tensor<?x6xf32>) {
  // expected-error @+1 {{positions 4 to 7 are not in [B, 6] along axis 1}}
  %0 = mass.slice %a axis = 1 offset = 4 : tensor<?x6xf32> -> tensor<?x3xf32>
  return
}

// -----

func.func @batchnorm_weight(%x: tensor<?x3x4x4xf32>, %g: tensor<4xf32>) {
  // expected-error @+1 {{weight [4] should be [C] = [3]}}
  %0:5 = mass.batchnorm %x, %g, %g, %g, %g eps = 1.0e-05 momentum = 1.0e-01 : tensor<?x3x4x4xf32>, tensor<4xf32>
  return
}

// -----

func.func @dropout_p(%x: tensor<?x3xf32>) {
  // expected-error @+1 {{p must lie in [0, 1), got 1}}
  %0 = mass.dropout %x p = 1.0 stream = 0 : tensor<?x3xf32>
  return
}

// -----

func.func @dropout_seed(%x: tensor<?x3xf32>, %seed: tensor<2xi32>) {
  // expected-error @+1 {{takes its seed as tensor<3xi32> (seed, first row, rows), got 'tensor<2xi32>'}}
  %0 = "mass.dropout"(%x, %seed) <{p = 5.0e-01 : f64, stream = 0 : i64, training}> : (tensor<?x3xf32>, tensor<2xi32>) -> tensor<?x3xf32>
  return
}

// -----

func.func @layernorm_weight(%x: tensor<?x5x8xf32>, %g: tensor<6xf32>) {
  // expected-error @+1 {{layernorm: weight [6] should be [D] = [8]}}
  %0:3 = mass.layernorm %x, %g, %g eps = 1.0e-05 : tensor<?x5x8xf32>, tensor<6xf32> -> tensor<?x5xf32>, tensor<?x5xf32>
  return
}

// -----

func.func @layernorm_rows(%x: tensor<?x5x8xf32>, %g: tensor<8xf32>) {
  // expected-error @+1 {{result shape [B, 8] should be [B, 5]}}
  %0:3 = mass.layernorm %x, %g, %g eps = 1.0e-05 : tensor<?x5x8xf32>, tensor<8xf32> -> tensor<?x8xf32>, tensor<?x8xf32>
  return
}

// -----

func.func @layernorm_grad_rows(%x: tensor<?x5x8xf32>, %m: tensor<?x8xf32>, %g: tensor<8xf32>) {
  // expected-error @+1 {{result shape [B, 8] should be [B, 5]}}
  %0:3 = mass.layernorm_grad %x, %m, %m, %g, %x : tensor<?x5x8xf32>, tensor<?x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @layernorm_grad_weight(%x: tensor<?x5x8xf32>, %m: tensor<?x5xf32>, %g: tensor<5xf32>) {
  // expected-error @+1 {{layernorm: weight [5] should be [D] = [8]}}
  %0:3 = mass.layernorm_grad %x, %m, %m, %g, %x : tensor<?x5x8xf32>, tensor<?x5xf32>, tensor<5xf32>
  return
}

// -----

func.func @layernorm_grad_rank(%x: tensor<8xf32>, %m: tensor<f32>) {
  // expected-error @+1 {{input must be rows [..., D]}}
  %0:3 = mass.layernorm_grad %x, %m, %m, %x, %x : tensor<8xf32>, tensor<f32>, tensor<8xf32>
  return
}

// -----

func.func @embedding_table(%ids: tensor<?x6xi32>, %w: tensor<?x8xf32>) {
  // expected-error @+1 {{embedding: expected a static table [V, D], got [B, 8]}}
  %0 = mass.embedding %ids, %w : tensor<?x6xi32>, tensor<?x8xf32> -> tensor<?x6x8xf32>
  return
}

// -----

func.func @embedding_result(%ids: tensor<?x6xi32>, %w: tensor<11x8xf32>) {
  // expected-error @+1 {{result shape [B, 6, 11] should be [B, 6, 8]}}
  %0 = mass.embedding %ids, %w : tensor<?x6xi32>, tensor<11x8xf32> -> tensor<?x6x11xf32>
  return
}

// -----

func.func @embedding_grad_shape(%ids: tensor<?x6xi32>, %dy: tensor<?x5x8xf32>) {
  // expected-error @+1 {{grad [B, 5, 8] should be [B, 6, 8]}}
  %0 = mass.embedding_grad %ids, %dy : tensor<?x6xi32>, tensor<?x5x8xf32> -> tensor<11x8xf32>
  return
}

// -----

func.func @attention_heads(%q: tensor<?x10x8xf32>) {
  // expected-error @+1 {{attention: 3 heads do not divide 8 features}}
  %0:2 = mass.attention %q, %q, %q heads = 3 : tensor<?x10x8xf32>, tensor<?x10x8xf32>, tensor<?x10x8xf32>
  return
}

// -----

func.func @attention_causal(%q: tensor<?x10x8xf32>, %k: tensor<?x12x8xf32>) {
  // expected-error @+1 {{attention: a causal mask needs as many keys as queries, got 10 and 12}}
  %0:2 = mass.attention %q, %k, %k heads = 2 causal : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<?x12x8xf32>
  return
}

// -----

func.func @attention_value(%q: tensor<?x10x8xf32>, %k: tensor<?x12x8xf32>, %v: tensor<?x11x8xf32>) {
  // expected-error @+1 {{attention: key [B, 12, 8] and value [B, 11, 8] must both be [B, S, 8] for query [B, 10, 8]}}
  %0:2 = mass.attention %q, %k, %v heads = 2 : tensor<?x10x8xf32>, tensor<?x12x8xf32>, tensor<?x11x8xf32>
  return
}

// -----

func.func @pad_range(%x: tensor<4x3xf32>) {
  // expected-error @+1 {{positions 2 to 6 are not in [5, 3] along axis 0}}
  %0 = mass.pad %x axis = 0 offset = 2 : tensor<4x3xf32> -> tensor<5x3xf32>
  return
}

// -----

func.func @self_attention_packing(%qkv: tensor<?x10x25xf32>) {
  // expected-error @+1 {{self_attention: expected qkv [B, T, 3D], got [B, 10, 25]}}
  %out, %lse = mass.self_attention %qkv heads = 1 : tensor<?x10x25xf32>
  return
}

// -----

func.func @self_attention_heads(%qkv: tensor<?x10x24xf32>) {
  // expected-error @+1 {{attention: 3 heads do not divide 8 features}}
  %out, %lse = mass.self_attention %qkv heads = 3 : tensor<?x10x24xf32>
  return
}

// -----

func.func @self_attention_grad_lse(%qkv: tensor<?x10x24xf32>, %r: tensor<?x10x8xf32>, %lse: tensor<?x4x10xf32>) {
  // expected-error @+1 {{lse must be [B, heads, T]}}
  %d = mass.self_attention_grad %qkv, %r, %lse, %r heads = 2 : tensor<?x10x24xf32>, tensor<?x10x8xf32>, tensor<?x4x10xf32>
  return
}

// -----

func.func @sum_ranks_dynamic(%x: tensor<?xf32>) {
  // expected-error @+1 {{sums a vector of static size, got 'tensor<?xf32>'}}
  %0 = mass.sum_ranks %x : tensor<?xf32>
  return
}
