//===- MassOps.td - Operations of the mass dialect ---------*- tablegen -*-===//
#ifndef MASS_OPS_TD
#define MASS_OPS_TD

include "MassDialect.td"
include "MassInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Mass_F32Tensor : RankedTensorOf<[F32]>;
def Mass_LabelTensor : RankedTensorOf<[I32]>;
def Mass_AnyTensor : RankedTensorOf<[F32, I32]>;
defvar Differentiable = DeclareOpInterfaceMethods<Mass_DifferentiableOpInterface>;
// The result type follows from the operands and attributes by a rule of
// Shapes.cpp (MassOps.cpp's resultShape); the builders need no result type.
defvar Inferred = InferTypeOpAdaptor;

def Mass_Scalar : 0DTensorOf<[F32]>,
    BuildableType<"::mlir::RankedTensorType::get({}, $_builder.getF32Type())">;
// Dropout's key for a step: the seed, then the first row of this process's
// slice of the global batch and the slice's rows (0 and the batch on one
// process), so that each sample draws the same mask whatever the processes.
def Mass_Seed : 1DTensorOf<[I32]>,
    BuildableType<"::mlir::RankedTensorType::get({3}, $_builder.getI32Type())">;

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

defvar MassElementwise = DeclareOpInterfaceMethods<Mass_ElementwiseOpInterface>;

// Unary elementwise ops; those with Mass_Builtin are the language's NAME(x).
class Mass_UnaryOp<string mnemonic, string what, list<Trait> traits = [Mass_Builtin]>
    : Mass_Op<mnemonic, !listconcat([Pure, SameOperandsAndResultType,
                                     Differentiable, MassElementwise], traits)> {
  let summary = what;
  let arguments = (ins Mass_F32Tensor:$input);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Mass_NegOp : Mass_UnaryOp<"neg", "elementwise -x", []>;
def Mass_ReluOp : Mass_UnaryOp<"relu", "elementwise max(x, 0)">;
def Mass_GeluOp : Mass_UnaryOp<"gelu", "elementwise GELU, erf form", []>;
def Mass_GeluTanhOp : Mass_UnaryOp<"gelu_tanh",
    "elementwise GELU, tanh approximation (GPT-2's)", []>;
def Mass_SigmoidOp : Mass_UnaryOp<"sigmoid", "elementwise 1 / (1 + exp(-x))">;
def Mass_TanhOp : Mass_UnaryOp<"tanh", "elementwise tanh">;
def Mass_SiluOp : Mass_UnaryOp<"silu", "elementwise x * sigmoid(x)">;
def Mass_ExpOp : Mass_UnaryOp<"exp", "elementwise exp">;
def Mass_LogOp : Mass_UnaryOp<"log", "elementwise natural logarithm">;
def Mass_SqrtOp : Mass_UnaryOp<"sqrt", "elementwise square root">;
def Mass_AbsOp : Mass_UnaryOp<"abs", "elementwise |x|">;
def Mass_SignOp : Mass_UnaryOp<"sign", "elementwise sign: -1, 0 or 1", []>;

class Mass_BinaryOp<string mnemonic, string what>
    : Mass_Op<mnemonic, [Pure, Differentiable, MassElementwise, Inferred]> {
  let summary = what;
  let description = [{
    Elementwise with NumPy broadcasting. A dynamic dimension broadcasts only
    against 1 or another dynamic dimension.
  }];
  let arguments = (ins Mass_F32Tensor:$lhs, Mass_F32Tensor:$rhs);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_AddOp : Mass_BinaryOp<"add", "elementwise sum">;
def Mass_SubOp : Mass_BinaryOp<"sub", "elementwise difference">;
def Mass_MulOp : Mass_BinaryOp<"mul", "elementwise product">;
def Mass_DivOp : Mass_BinaryOp<"div", "elementwise quotient">;

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

def Mass_DenseOp : Mass_Op<"dense", [Pure, Differentiable, Inferred]> {
  let summary = "x · weightᵀ + bias over the last axis";
  let description = [{
    `input [..., in]`, `weight [out, in]`, optional `bias [out]`; the result
    is `[..., out]`, as torch.nn.Linear.
  }];
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$weight,
                       Optional<Mass_F32Tensor>:$bias);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Mass_MatmulOp : Mass_Op<"matmul", [Pure, Differentiable, Inferred]> {
  let summary = "matrix product, batched over broadcast leading axes";
  let arguments = (ins Mass_F32Tensor:$lhs, Mass_F32Tensor:$rhs);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_AttentionOp : Mass_Op<"attention",
    [Pure, Differentiable, InferTypeOpAdaptor]> {
  let summary = "scaled dot-product attention over heads, in tiles";
  let description = [{
    `query [B, T, D]`, `key` and `value [B, S, D]` (projected already);
    head h takes columns `h * D / heads` to `(h + 1) * D / heads` of each.
    Per head, `softmax(q k^T / sqrt(D / heads)) v`, with key positions after
    the query's masked when `causal` (then T = S); `result [B, T, D]` holds
    the heads side by side. `lse [B, heads, T]` is the log-sum-exp of each
    query's scaled scores, kept for the VJP. Computed in tiles with an
    online softmax (no [T, S] matrix is kept), by the runtime's kernel.
  }];
  let arguments = (ins Mass_F32Tensor:$query, Mass_F32Tensor:$key,
                       Mass_F32Tensor:$value, I64Attr:$heads,
                       UnitAttr:$causal);
  let results = (outs Mass_F32Tensor:$result, Mass_F32Tensor:$lse);
  let assemblyFormat = [{
    $query `,` $key `,` $value `heads` `=` $heads (`causal` $causal^)?
    attr-dict `:` type($query) `,` type($key) `,` type($value)
  }];
  let hasVerifier = 1;
}

def Mass_SelfAttentionOp : Mass_Op<"self_attention",
    [Pure, Differentiable, InferTypeOpAdaptor]> {
  let summary = "attention whose query, key and value are one tensor's columns";
  let description = [{
    `qkv [B, T, 3D]` holds the query, key and value side by side (columns
    `[0, D)`, `[D, 2D)` and `[2D, 3D)`), as one dense layer with
    nn.MultiheadAttention's packed `in_proj_weight` gives them for
    self-attention; then as mass.attention: `result [B, T, D]`,
    `lse [B, heads, T]`. One product projects all three, and the VJP writes
    their gradients into one tensor, without slices and their pads.
  }];
  let arguments = (ins Mass_F32Tensor:$qkv, I64Attr:$heads, UnitAttr:$causal);
  let results = (outs Mass_F32Tensor:$result, Mass_F32Tensor:$lse);
  let assemblyFormat = [{
    $qkv `heads` `=` $heads (`causal` $causal^)? attr-dict `:` type($qkv)
  }];
  let hasVerifier = 1;
}

def Mass_EmbeddingOp : Mass_Op<"embedding", [Pure, Differentiable, Inferred]> {
  let summary = "rows of a table picked by integer ids, as torch.nn.Embedding";
  let description = [{
    `ids [B, ...]` (i32) and `weight [V, D]` give `[B, ..., D]`: row `id` of
    the weight for each id. The runtime checks the ids of its data against
    `[0, V)` before a step; the generated code clamps them into the table,
    so no id reads outside it.
  }];
  let arguments = (ins Mass_LabelTensor:$ids, Mass_F32Tensor:$weight);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $ids `,` $weight attr-dict `:` type($ids) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shape
//===----------------------------------------------------------------------===//

def Mass_ReshapeOp : Mass_Op<"reshape", [Pure, Differentiable,
    AllElementTypesMatch<["input", "result"]>]> {
  let summary = "same elements, new shape";
  let description = [{
    The result type is the new shape. When the input has a dynamic
    dimension, the result has exactly one, sized so the element count holds.
    Labels (i32) reshape too: a sequence's positions become samples.
  }];
  let arguments = (ins Mass_AnyTensor:$input);
  let results = (outs Mass_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Mass_TransposeOp : Mass_Op<"transpose", [Pure, Differentiable, Inferred]> {
  let summary = "permutes axes: result dim i is input dim perm[i]";
  let arguments = (ins Mass_F32Tensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `perm` `=` $perm attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_ConcatOp : Mass_Op<"concat", [Pure, Differentiable, Inferred]> {
  let summary = "inputs joined along an axis, as torch.cat";
  let description = [{
    The inputs have one rank and equal sizes except along `axis`, which is
    not the batch; the result's size there is the sum of theirs.
  }];
  let arguments = (ins Variadic<Mass_F32Tensor>:$inputs, I64Attr:$axis);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $inputs `axis` `=` $axis attr-dict `:` type($inputs) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The axis counted from the front (the attribute may count from the
    /// back, and its getter is unsigned).
    int64_t getFrontAxis() {
      int64_t axis = static_cast<int64_t>(getAxis());
      return axis < 0 ? axis + getType().getRank() : axis;
    }
  }];
}

def Mass_SliceOp : Mass_Op<"slice", [Pure, Differentiable]> {
  let summary = "a run of positions along one axis (the VJP of concat)";
  let description = [{
    `result` takes positions `offset` to `offset` + its size along `axis`
    of `input`, and all of the other axes.
  }];
  let arguments = (ins Mass_F32Tensor:$input, I64Attr:$axis, I64Attr:$offset);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `axis` `=` $axis `offset` `=` $offset attr-dict `:` type($input)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_BroadcastOp : Mass_Op<"broadcast", [Pure, Differentiable, Inferred]> {
  let summary = "NumPy-broadcasts input to the shape of like";
  let description = [{
    `like` gives only the shape (and its dynamic sizes); its values are not
    read.
  }];
  let arguments = (ins Mass_F32Tensor:$input, AnyRankedTensor:$like);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $like attr-dict `:` type($input) `,` type($like) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Convolution and pooling: NCHW activations, OIHW weights (PyTorch's)
//===----------------------------------------------------------------------===//

class Mass_ConvLikeOp<string mnemonic, list<Trait> traits = []>
    : Mass_Op<mnemonic, !listconcat([Pure], traits)> {
  let hasVerifier = 1;
}

def Mass_Conv2dOp : Mass_ConvLikeOp<"conv2d", [Differentiable, Inferred]> {
  let summary = "2-D cross-correlation, as torch.nn.functional.conv2d";
  let description = [{
    `input [N, C, H, W]`, `weight [O, C / groups, KH, KW]`; the result is
    `[N, O, OH, OW]` with `OH = (H + 2 pad - dilation (KH - 1) - 1) / stride
    + 1` (and so for W). `stride`, `padding` and `dilation` hold the height's
    value and the width's. Zero padding. The bias, if any, is a separate add.
  }];
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$weight,
                       DenseI64ArrayAttr:$stride, DenseI64ArrayAttr:$padding,
                       DenseI64ArrayAttr:$dilation, I64Attr:$groups);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `stride` `=` $stride `padding` `=` $padding
    `dilation` `=` $dilation `groups` `=` $groups attr-dict `:`
    type($input) `,` type($weight) `->` type($result)
  }];
}

def Mass_Conv2dGradInputOp : Mass_ConvLikeOp<"conv2d_grad_input"> {
  let summary = "the gradient of conv2d with respect to its input";
  let description = [{
    `grad` is the gradient of the convolution's result; the result has the
    input's type (which the result of the convolution alone does not fix).
  }];
  let arguments = (ins Mass_F32Tensor:$grad, Mass_F32Tensor:$weight,
                       DenseI64ArrayAttr:$stride, DenseI64ArrayAttr:$padding,
                       DenseI64ArrayAttr:$dilation, I64Attr:$groups);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $grad `,` $weight `stride` `=` $stride `padding` `=` $padding
    `dilation` `=` $dilation `groups` `=` $groups attr-dict `:`
    type($grad) `,` type($weight) `->` type($result)
  }];
}

def Mass_Conv2dGradWeightOp : Mass_ConvLikeOp<"conv2d_grad_weight"> {
  let summary = "the gradient of conv2d with respect to its weight";
  let arguments = (ins Mass_F32Tensor:$grad, Mass_F32Tensor:$input,
                       DenseI64ArrayAttr:$stride, DenseI64ArrayAttr:$padding,
                       DenseI64ArrayAttr:$dilation, I64Attr:$groups);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $grad `,` $input `stride` `=` $stride `padding` `=` $padding
    `dilation` `=` $dilation `groups` `=` $groups attr-dict `:`
    type($grad) `,` type($input) `->` type($result)
  }];
}

class Mass_PoolOp<string mnemonic, string what>
    : Mass_ConvLikeOp<mnemonic, [Differentiable, Inferred]> {
  let summary = what;
  let arguments = (ins Mass_F32Tensor:$input, DenseI64ArrayAttr:$kernel,
                       DenseI64ArrayAttr:$stride, DenseI64ArrayAttr:$padding);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `kernel` `=` $kernel `stride` `=` $stride `padding` `=` $padding
    attr-dict `:` type($input) `->` type($result)
  }];
}

def Mass_MaxPoolOp : Mass_PoolOp<"maxpool",
    "windowed maximum over H and W, padding never chosen (max_pool2d)">;
def Mass_AvgPoolOp : Mass_PoolOp<"avgpool",
    "windowed mean over H and W, zero padding counted (avg_pool2d)">;

def Mass_MaxPoolGradOp : Mass_ConvLikeOp<"maxpool_grad",
    [AllTypesMatch<["input", "result"]>]> {
  let summary = "the gradient of maxpool: each window's to its first maximum";
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$grad,
                       DenseI64ArrayAttr:$kernel, DenseI64ArrayAttr:$stride,
                       DenseI64ArrayAttr:$padding);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $grad `kernel` `=` $kernel `stride` `=` $stride `padding` `=`
    $padding attr-dict `:` type($input) `,` type($grad) `->` type($result)
  }];
}

def Mass_AvgPoolGradOp : Mass_ConvLikeOp<"avgpool_grad"> {
  let summary = "the gradient of avgpool, spread evenly over each window";
  let arguments = (ins Mass_F32Tensor:$grad, DenseI64ArrayAttr:$kernel,
                       DenseI64ArrayAttr:$stride, DenseI64ArrayAttr:$padding);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $grad `kernel` `=` $kernel `stride` `=` $stride `padding` `=` $padding
    attr-dict `:` type($grad) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Normalisation and dropout: ops whose training mode differs
//===----------------------------------------------------------------------===//

def Mass_BatchNormOp : Mass_Op<"batchnorm", [Pure, Differentiable,
    AllTypesMatch<["input", "result"]>,
    AllTypesMatch<["weight", "bias", "running_mean", "running_var", "mean",
                   "invstd", "new_running_mean", "new_running_var"]>]> {
  let summary = "batch normalisation over axis 1, as torch.nn.BatchNorm2d";
  let description = [{
    `result = (input - mean) * invstd * weight + bias` per channel (axis 1).
    In training mode `mean` and `invstd = 1 / sqrt(var + eps)` come from the
    batch (biased variance over every axis but 1), and the running
    statistics move towards them: `new = (1 - momentum) * old + momentum *
    stat`, with the unbiased variance. In evaluation mode they come from the
    running statistics, which are returned unchanged. `mean` and `invstd`
    are results so that the VJP reuses them.
  }];
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$weight,
                       Mass_F32Tensor:$bias, Mass_F32Tensor:$running_mean,
                       Mass_F32Tensor:$running_var, F64Attr:$eps,
                       F64Attr:$momentum, UnitAttr:$training);
  let results = (outs Mass_F32Tensor:$result, Mass_F32Tensor:$mean,
                      Mass_F32Tensor:$invstd, Mass_F32Tensor:$new_running_mean,
                      Mass_F32Tensor:$new_running_var);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias `,` $running_mean `,` $running_var
    (`training` $training^)? `eps` `=` $eps `momentum` `=` $momentum
    attr-dict `:` type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def Mass_LayerNormOp : Mass_Op<"layernorm", [Pure, Differentiable,
    AllTypesMatch<["input", "result"]>, AllTypesMatch<["weight", "bias"]>]> {
  let summary = "layer normalisation over the last axis, as torch.nn.LayerNorm";
  let description = [{
    `result = (input - mean) * rstd * weight + bias` along the last axis,
    whose size is D (`weight [D]`, `bias [D]`): `mean` and
    `rstd = 1 / sqrt(var + eps)` (biased variance) are per row, shaped as the
    input without its last axis, and are results so that the VJP reuses
    them. The same in training and evaluation.
  }];
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$weight,
                       Mass_F32Tensor:$bias, F64Attr:$eps);
  let results = (outs Mass_F32Tensor:$result, Mass_F32Tensor:$mean,
                      Mass_F32Tensor:$rstd);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias `eps` `=` $eps attr-dict `:` type($input) `,`
    type($weight) `->` type($mean) `,` type($rstd)
  }];
  let builders = [OpBuilder<(ins "::mlir::Value":$input,
      "::mlir::Value":$weight, "::mlir::Value":$bias, "double":$eps)>];
  let hasVerifier = 1;
}

def Mass_DropoutOp : Mass_Op<"dropout", [Pure, Differentiable,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "inverted dropout, drawn from a counter-based hash";
  let description = [{
    In training mode with a `seed` ([seed, first row, rows]), each element is
    kept with probability `1 - p` and scaled by `1 / (1 - p)`; the draw
    hashes the seed, `stream` (one per dropout in the model) and the
    element's position in the global batch (its position in the input plus
    the first row times the elements per row), so the VJP (the same dropout
    of the gradient) draws the same mask, and a sample draws the same mask
    on any number of data-parallel processes. A negative seed turns dropout
    off (the gradient dump). In evaluation mode, or without a
    seed, it is the identity.
  }];
  let arguments = (ins Mass_F32Tensor:$input,
                       Optional<Mass_Seed>:$seed, F64Attr:$p,
                       I64Attr:$stream, UnitAttr:$training);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input (`seed` $seed^)? (`training` $training^)? `p` `=` $p `stream` `=`
    $stream attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Reductions and normalised exponentials
//===----------------------------------------------------------------------===//

class Mass_ReduceOp<string mnemonic, string what, list<Trait> traits = []>
    : Mass_Op<mnemonic, !listconcat([Pure, Differentiable, Inferred], traits)> {
  let summary = what;
  let arguments = (ins Mass_F32Tensor:$input, DenseI64ArrayAttr:$axes,
                       UnitAttr:$keepdim);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `axes` `=` $axes (`keepdim` $keepdim^)? attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_SumOp : Mass_ReduceOp<"sum", "sum over axes", [Mass_LoopNestReduction]>;
def Mass_MeanOp : Mass_ReduceOp<"mean", "mean over axes">;
def Mass_MaxOp : Mass_ReduceOp<"max", "maximum over axes", [Mass_LoopNestReduction]>;

class Mass_SoftmaxLikeOp<string mnemonic, string what>
    : Mass_Op<mnemonic, [Pure, SameOperandsAndResultType, Differentiable]> {
  let summary = what;
  let arguments = (ins Mass_F32Tensor:$input, I64Attr:$axis);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Mass_SoftmaxOp : Mass_SoftmaxLikeOp<"softmax", "exp(x) / sum(exp(x)) along axis">;
def Mass_LogSoftmaxOp : Mass_SoftmaxLikeOp<"log_softmax", "log(softmax(x)) along axis">;

//===----------------------------------------------------------------------===//
// Losses: scalar means over the labelled samples
//===----------------------------------------------------------------------===//

def Mass_CrossEntropyOp : Mass_Op<"cross_entropy", [Pure, Differentiable]> {
  let summary = "softmax cross-entropy with label smoothing";
  let description = [{
    `logits [B, C]`, `labels [B]` (class indices; -1 marks an unlabelled
    sample). The mean over labelled samples of
    `-(1 - s) * log p[label] - s / C * sum_c log p[c]`, as
    torch.nn.functional.cross_entropy with `ignore_index=-1` and
    `label_smoothing=s`. Zero when no sample is labelled.
  }];
  let arguments = (ins Mass_F32Tensor:$logits, Mass_LabelTensor:$labels,
                       DefaultValuedAttr<F64Attr, "0.0">:$smoothing);
  let results = (outs Mass_Scalar:$result);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` type($logits) `,` type($labels)
  }];
  let hasVerifier = 1;
}

class Mass_RegressionLossOp<string mnemonic, string what>
    : Mass_Op<mnemonic,
              [Pure, AllTypesMatch<["pred", "target"]>, Differentiable]> {
  let summary = what;
  let arguments = (ins Mass_F32Tensor:$pred, Mass_F32Tensor:$target);
  let results = (outs Mass_Scalar:$result);
  let assemblyFormat = "$pred `,` $target attr-dict `:` type($pred)";
}

def Mass_MseOp : Mass_RegressionLossOp<"mse", "mean of (pred - target)^2">;
def Mass_L1Op : Mass_RegressionLossOp<"l1", "mean of |pred - target|">;
def Mass_BceOp : Mass_RegressionLossOp<"bce",
    "binary cross-entropy on logits, mean over elements (BCEWithLogitsLoss)">;

//===----------------------------------------------------------------------===//
// Backward ops: the parts of vector-Jacobian products that other ops do not
// express well
//===----------------------------------------------------------------------===//

def Mass_GeluGradOp : Mass_Op<"gelu_grad",
    [Pure, AllTypesMatch<["input", "grad", "result"]>, MassElementwise]> {
  let summary = "grad * gelu'(input), erf form";
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$grad);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` type($result)";
}

def Mass_GeluTanhGradOp : Mass_Op<"gelu_tanh_grad",
    [Pure, AllTypesMatch<["input", "grad", "result"]>, MassElementwise]> {
  let summary = "grad * gelu_tanh'(input)";
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$grad);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` type($result)";
}

def Mass_AttentionGradOp : Mass_Op<"attention_grad",
    [Pure, AllTypesMatch<["query", "result", "grad"]>, InferTypeOpAdaptor]> {
  let summary = "the gradients of attention's query, key and value";
  let description = [{
    From attention's operands, its `result` and `lse`, and the gradient
    `grad` of its result. Recomputes each tile's probabilities from `lse`
    (FlashAttention's backward pass); the results have the types of query,
    key and value.
  }];
  let arguments = (ins Mass_F32Tensor:$query, Mass_F32Tensor:$key,
                       Mass_F32Tensor:$value, Mass_F32Tensor:$result,
                       Mass_F32Tensor:$lse, Mass_F32Tensor:$grad,
                       I64Attr:$heads, UnitAttr:$causal);
  let results = (outs Mass_F32Tensor:$dquery, Mass_F32Tensor:$dkey,
                      Mass_F32Tensor:$dvalue);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $result `,` $lse `,` $grad `heads` `=`
    $heads (`causal` $causal^)? attr-dict `:` type($query) `,` type($key)
    `,` type($value) `,` type($lse)
  }];
  let hasVerifier = 1;
}

def Mass_SelfAttentionGradOp : Mass_Op<"self_attention_grad",
    [Pure, AllTypesMatch<["qkv", "dqkv"]>, AllTypesMatch<["result", "grad"]>]> {
  let summary = "the gradient of self_attention's packed query, key and value";
  let description = [{
    From self_attention's operand, its `result` and `lse`, and the gradient
    `grad` of its result: `dqkv [B, T, 3D]`, the gradients of the query,
    key and value side by side, as attention_grad computes them.
  }];
  let arguments = (ins Mass_F32Tensor:$qkv, Mass_F32Tensor:$result,
                       Mass_F32Tensor:$lse, Mass_F32Tensor:$grad,
                       I64Attr:$heads, UnitAttr:$causal);
  let results = (outs Mass_F32Tensor:$dqkv);
  let assemblyFormat = [{
    $qkv `,` $result `,` $lse `,` $grad `heads` `=` $heads
    (`causal` $causal^)? attr-dict `:` type($qkv) `,` type($result) `,`
    type($lse)
  }];
  let hasVerifier = 1;
}

def Mass_LayerNormGradOp : Mass_Op<"layernorm_grad",
    [Pure, AllTypesMatch<["input", "grad", "dinput"]>,
     AllTypesMatch<["weight", "dweight", "dbias"]>,
     AllTypesMatch<["mean", "rstd"]>]> {
  let summary = "the gradients of layernorm's input, weight and bias";
  let description = [{
    Over the rows of `input [..., D]` with the forward's `mean [...]` and
    `rstd [...]`, the `weight [D]` and the gradient `grad [..., D]` of the
    result: with
    `xhat = (input - mean) * rstd` and `g = grad * weight`,
    `dinput = rstd * (g - mean(g) - xhat * mean(g * xhat))` (means along
    each row), `dweight = sum over rows of grad * xhat` and
    `dbias = sum over rows of grad`. One pass over the rows (a runtime
    kernel); the sums over rows add fixed chunks of rows, then the chunks
    in order, so they do not depend on the number of threads.
  }];
  let arguments = (ins Mass_F32Tensor:$input, Mass_F32Tensor:$mean,
                       Mass_F32Tensor:$rstd, Mass_F32Tensor:$weight,
                       Mass_F32Tensor:$grad);
  let results = (outs Mass_F32Tensor:$dinput, Mass_F32Tensor:$dweight,
                      Mass_F32Tensor:$dbias);
  let assemblyFormat = [{
    $input `,` $mean `,` $rstd `,` $weight `,` $grad attr-dict `:`
    type($input) `,` type($mean) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def Mass_SumRanksOp : Mass_Op<"sum_ranks",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "a vector summed over the processes of a data-parallel job";
  let description = [{
    Each process's `input` summed over every process that trains together
    (under mpirun), the same sums on each; on one process, the input.
    Batch norm's statistics and their gradients span the global batch
    through it. It stays an op until bufferization, which copies the input
    and calls the runtime's `mass_sum_ranks` on the copy. Every process runs
    the same program, so each reaches these ops in the same order.
  }];
  let arguments = (ins 1DTensorOf<[F32]>:$input);
  let results = (outs 1DTensorOf<[F32]>:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Mass_PadOp : Mass_Op<"pad", [Pure]> {
  let summary = "input placed among zeros along one axis (the VJP of slice)";
  let description = [{
    `result` is zero except at positions `offset` to `offset` + the input's
    size along `axis`, which hold the input.
  }];
  let arguments = (ins Mass_F32Tensor:$input, I64Attr:$axis, I64Attr:$offset);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $input `axis` `=` $axis `offset` `=` $offset attr-dict `:` type($input)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_EmbeddingGradOp : Mass_Op<"embedding_grad", [Pure]> {
  let summary = "the gradient of embedding's table: a scatter-add";
  let description = [{
    `grad [B, ..., D]` is the gradient of the embedding's result; the result
    `[V, D]` holds, in row v, the sum of the rows of `grad` whose id is v
    (added in the order of the positions, so the sum is deterministic).
  }];
  let arguments = (ins Mass_LabelTensor:$ids, Mass_F32Tensor:$grad);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $ids `,` $grad attr-dict `:` type($ids) `,` type($grad) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Mass_CrossEntropyGradOp : Mass_Op<"cross_entropy_grad",
    [Pure, AllTypesMatch<["logits", "result"]>]> {
  let summary = "gradient of cross_entropy with respect to its logits";
  let description = [{
    `grad * (softmax(logits) - q) / n` on labelled rows and zero on the
    others, where q is the smoothed one-hot target and n the number of
    labelled rows.
  }];
  let arguments = (ins Mass_F32Tensor:$logits, Mass_LabelTensor:$labels,
                       Mass_Scalar:$grad,
                       DefaultValuedAttr<F64Attr, "0.0">:$smoothing);
  let results = (outs Mass_F32Tensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels `,` $grad attr-dict `:` type($logits) `,` type($labels)
  }];
}

//===----------------------------------------------------------------------===//
// Metrics: a sum and a count over the batch, so that the runtime can
// accumulate them over an epoch
//===----------------------------------------------------------------------===//

def Mass_AccuracyOp : Mass_Op<"accuracy", [Pure]> {
  let summary = "correct predictions and labelled samples";
  let description = [{
    With `logits [B, C]` and i32 `labels [B]`: argmax hits over labelled
    samples (label != -1). With `logits [B, 1]` and f32 targets `[B, 1]`:
    binary accuracy, a hit when `(logit > 0) == (target > 0.5)`.
  }];
  let arguments = (ins Mass_F32Tensor:$logits, AnyRankedTensor:$labels);
  let results = (outs Mass_Scalar:$correct, Mass_Scalar:$count);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` type($logits) `,` type($labels)
  }];
  let hasVerifier = 1;
}

def Mass_TopKOp : Mass_Op<"top_k", [Pure]> {
  let summary = "labelled samples whose label is among the k largest logits";
  let arguments = (ins Mass_F32Tensor:$logits, Mass_LabelTensor:$labels,
                       I64Attr:$k);
  let results = (outs Mass_Scalar:$correct, Mass_Scalar:$count);
  let assemblyFormat = [{
    $logits `,` $labels `k` `=` $k attr-dict `:` type($logits) `,` type($labels)
  }];
  let hasVerifier = 1;
}

def Mass_AbsErrorOp : Mass_Op<"abs_error",
    [Pure, AllTypesMatch<["pred", "target"]>]> {
  let summary = "sum of |pred - target| and the element count (for mae)";
  let arguments = (ins Mass_F32Tensor:$pred, Mass_F32Tensor:$target);
  let results = (outs Mass_Scalar:$sum, Mass_Scalar:$count);
  let assemblyFormat = "$pred `,` $target attr-dict `:` type($pred)";
}

def Mass_SquaredErrorOp : Mass_Op<"squared_error",
    [Pure, AllTypesMatch<["pred", "target"]>]> {
  let summary = "sum of (pred - target)^2 and the element count (for rmse)";
  let arguments = (ins Mass_F32Tensor:$pred, Mass_F32Tensor:$target);
  let results = (outs Mass_Scalar:$sum, Mass_Scalar:$count);
  let assemblyFormat = "$pred `,` $target attr-dict `:` type($pred)";
}

//===----------------------------------------------------------------------===//
// Fusion
//===----------------------------------------------------------------------===//

def Mass_FusionOp : Mass_Op<"fusion", [IsolatedFromAbove,
    RecursiveMemoryEffects, SingleBlockImplicitTerminator<"YieldOp">]> {
  let summary = "A group of ops that code generation runs as one loop nest";
  let description = [{
    Made by `mass-fuse`: elementwise ops over one shape, possibly ending in
    a reduction of that shape, with the values that flow between them kept
    inside. The block's arguments are the group's inputs; `mass.yield`
    returns the values used outside the group. Lowering turns the group
    into one loop nest that writes only the results.

    ```mlir
    %r = mass.fusion ins(%x, %b : tensor<?x8xf32>, tensor<8xf32>) {
    ^bb0(%a: tensor<?x8xf32>, %c: tensor<8xf32>):
      %0 = mass.add %a, %c : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
      %1 = mass.relu %0 : tensor<?x8xf32>
      mass.yield %1 : tensor<?x8xf32>
    } -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    (`ins` `(` $inputs^ `:` type($inputs) `)`)? attr-dict-with-keyword $body
    `->` type($results)
  }];
  let hasRegionVerifier = 1;
}

def Mass_YieldOp : Mass_Op<"yield", [Pure, Terminator, ReturnLike,
    HasParent<"FusionOp">]> {
  let summary = "The results of a fusion group";
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
  let builders = [OpBuilder<(ins), [{ build($_builder, $_state, {}); }]>];
}

#endif // MASS_OPS_TD
