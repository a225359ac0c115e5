//===- MassOps.cpp - Verifiers of the mass ops ----------------------------===//

#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Shapes.h"

#include "mlir/IR/OpImplementation.h"

using namespace mass;
using namespace mlir;

static ArrayRef<int64_t> shapeOf(Value v) {
  return cast<ShapedType>(v.getType()).getShape();
}

/// Checks a shape rule's verdict against the result type the op carries.
static LogicalResult checkResult(Operation *op, const ShapeResult &expected,
                                 Value result) {
  if (!expected.ok())
    return op->emitOpError() << expected.message();
  if (ArrayRef<int64_t>(expected.shape()) != shapeOf(result))
    return op->emitOpError() << "result shape " << formatShape(shapeOf(result))
                             << " should be " << formatShape(expected.shape());
  return success();
}

//===----------------------------------------------------------------------===//
// Result types: each op with a result type that follows from its operands
// and attributes (`Inferred` in MassOps.td) has a `resultShape` rule here,
// written with Shapes.cpp. inferReturnTypes gives the generated builders
// their result type; the verifier checks the type an op carries against it.
//===----------------------------------------------------------------------===//

template <typename Adaptor> static ShapeResult binaryShape(Adaptor a) {
  return broadcastShape(shapeOf(a.getLhs()), shapeOf(a.getRhs()));
}
static ShapeResult resultShape(AddOp::Adaptor a) { return binaryShape(a); }
static ShapeResult resultShape(SubOp::Adaptor a) { return binaryShape(a); }
static ShapeResult resultShape(MulOp::Adaptor a) { return binaryShape(a); }
static ShapeResult resultShape(DivOp::Adaptor a) { return binaryShape(a); }

static ShapeResult resultShape(DenseOp::Adaptor a) {
  ArrayRef<int64_t> bias;
  if (a.getBias())
    bias = shapeOf(a.getBias());
  return denseShape(shapeOf(a.getInput()), shapeOf(a.getWeight()),
                    a.getBias() ? &bias : nullptr);
}

static ShapeResult resultShape(EmbeddingOp::Adaptor a) {
  return embeddingShape(shapeOf(a.getIds()), shapeOf(a.getWeight()));
}

static ShapeResult resultShape(MatmulOp::Adaptor a) {
  return matmulShape(shapeOf(a.getLhs()), shapeOf(a.getRhs()));
}

static ShapeResult resultShape(TransposeOp::Adaptor a) {
  return transposeShape(shapeOf(a.getInput()), a.getPerm());
}

static ShapeResult resultShape(ConcatOp::Adaptor a) {
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Value in : a.getInputs())
    shapes.push_back(shapeOf(in));
  return concatShape(shapes, static_cast<int64_t>(a.getAxis()));
}

static ShapeResult resultShape(BroadcastOp::Adaptor a) {
  ArrayRef<int64_t> like = shapeOf(a.getLike());
  ShapeResult joined = broadcastShape(shapeOf(a.getInput()), like);
  if (!joined.ok() || ArrayRef<int64_t>(joined.shape()) != like)
    return ShapeResult::error("cannot broadcast " +
                              formatShape(shapeOf(a.getInput())) + " to " +
                              formatShape(like));
  return Shape(like.begin(), like.end());
}

template <typename Adaptor> static ShapeResult reduceResult(Adaptor a) {
  return reduceShape(shapeOf(a.getInput()), a.getAxes(), a.getKeepdim());
}
static ShapeResult resultShape(SumOp::Adaptor a) { return reduceResult(a); }
static ShapeResult resultShape(MeanOp::Adaptor a) { return reduceResult(a); }
static ShapeResult resultShape(MaxOp::Adaptor a) { return reduceResult(a); }

static ShapeResult resultShape(Conv2dOp::Adaptor a) {
  return conv2dShape(shapeOf(a.getInput()), shapeOf(a.getWeight()), windowOf(a),
                     a.getGroups());
}

static ShapeResult resultShape(MaxPoolOp::Adaptor a) {
  return poolShape("maxpool", shapeOf(a.getInput()), windowOf(a));
}
static ShapeResult resultShape(AvgPoolOp::Adaptor a) {
  return poolShape("avgpool", shapeOf(a.getInput()), windowOf(a));
}

/// The f32 tensor of the op's rule, or the rule's message at `loc`.
template <typename Adaptor>
static LogicalResult inferF32(MLIRContext *context, std::optional<Location> loc,
                              Adaptor a, SmallVectorImpl<Type> &types) {
  ShapeResult shape = resultShape(a);
  if (!shape.ok())
    return emitOptionalError(loc, shape.message());
  types.push_back(
      RankedTensorType::get(shape.shape(), Float32Type::get(context)));
  return success();
}

/// The verifier of an op with an inferred type: its rule's message, or a
/// result shape that differs from the rule's.
template <typename Op> static LogicalResult verifyInferred(Op op) {
  return checkResult(op, resultShape(typename Op::Adaptor(op)), op.getResult());
}

#define MASS_INFERRED(Op)                                                      \
  LogicalResult Op::inferReturnTypes(MLIRContext *context,                     \
                                     std::optional<Location> loc, Adaptor a,   \
                                     SmallVectorImpl<Type> &types) {           \
    return inferF32(context, loc, a, types);                                   \
  }                                                                            \
  LogicalResult Op::verify() { return verifyInferred(*this); }
MASS_INFERRED(AddOp)
MASS_INFERRED(SubOp)
MASS_INFERRED(MulOp)
MASS_INFERRED(DivOp)
MASS_INFERRED(DenseOp)
MASS_INFERRED(MatmulOp)
MASS_INFERRED(EmbeddingOp)
MASS_INFERRED(TransposeOp)
MASS_INFERRED(ConcatOp)
MASS_INFERRED(BroadcastOp)
MASS_INFERRED(SumOp)
MASS_INFERRED(MeanOp)
MASS_INFERRED(MaxOp)
MASS_INFERRED(Conv2dOp)
MASS_INFERRED(MaxPoolOp)
MASS_INFERRED(AvgPoolOp)
#undef MASS_INFERRED

LogicalResult EmbeddingGradOp::verify() {
  ArrayRef<int64_t> table = shapeOf(getResult());
  ShapeResult r = embeddingShape(shapeOf(getIds()), table);
  if (!r.ok())
    return emitOpError() << r.message();
  if (ArrayRef<int64_t>(r.shape()) != shapeOf(getGrad()))
    return emitOpError() << "grad " << formatShape(shapeOf(getGrad()))
                         << " should be " << formatShape(r.shape());
  return success();
}

LogicalResult ReshapeOp::verify() {
  return checkResult(*this,
                     reshapeShape(shapeOf(getInput()), shapeOf(getResult())),
                     getResult());
}

template <typename SoftmaxOp> static LogicalResult verifySoftmax(SoftmaxOp op) {
  int64_t rank = shapeOf(op.getInput()).size();
  int64_t axis = static_cast<int64_t>(op.getAxis());
  if (!normalizeAxis(axis, rank))
    return op.emitOpError() << "axis " << axis << " is out of range for "
                            << formatShape(shapeOf(op.getInput()));
  return success();
}
LogicalResult SoftmaxOp::verify() { return verifySoftmax(*this); }
LogicalResult LogSoftmaxOp::verify() { return verifySoftmax(*this); }

LogicalResult CrossEntropyOp::verify() {
  ShapeResult r = classifierShape(shapeOf(getLogits()), shapeOf(getLabels()));
  if (!r.ok())
    return emitOpError() << r.message();
  r = smoothingRange(getSmoothing().convertToDouble());
  return r.ok() ? success() : emitOpError() << r.message();
}

LogicalResult AccuracyOp::verify() {
  ArrayRef<int64_t> logits = shapeOf(getLogits());
  auto labelType = cast<ShapedType>(getLabels().getType());
  if (labelType.getElementType().isInteger(32)) {
    ShapeResult r = classifierShape(logits, labelType.getShape());
    return r.ok() ? success() : emitOpError() << r.message();
  }
  ShapeResult r = binaryAccuracyShape(logits, labelType.getShape());
  return r.ok() ? success() : emitOpError() << r.message();
}

LogicalResult TopKOp::verify() {
  ShapeResult r = classifierShape(shapeOf(getLogits()), shapeOf(getLabels()));
  if (!r.ok())
    return emitOpError() << r.message();
  int64_t classes = shapeOf(getLogits())[1];
  int64_t k = static_cast<int64_t>(getK());
  if (k < 1 || k > classes)
    return emitOpError() << "k must lie in [1, " << classes << "], got " << k;
  return success();
}

#include "dialects/Mass/MassInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/Mass/MassOps.cpp.inc"

LogicalResult FusionOp::verifyRegions() {
  Block &body = getBody().front();
  if (body.getNumArguments() != getInputs().size())
    return emitOpError() << "has " << getInputs().size() << " inputs but its "
                         << "block takes " << body.getNumArguments()
                         << " arguments";
  for (auto [input, arg] : llvm::zip(getInputs(), body.getArguments()))
    if (input.getType() != arg.getType())
      return emitOpError() << "block argument " << arg.getArgNumber()
                           << " has type " << arg.getType() << ", its input "
                           << input.getType();
  auto yield = cast<YieldOp>(body.getTerminator());
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError() << "yields " << yield.getValues().getTypes()
                         << " but has results " << getResultTypes();
  return success();
}

LogicalResult SliceOp::verify() {
  ShapeResult r = sliceShape(shapeOf(getInput()), shapeOf(getResult()),
                             getAxis(), getOffset());
  return r.ok() ? success() : emitOpError() << r.message();
}

LogicalResult PadOp::verify() {
  ShapeResult r = sliceShape(shapeOf(getResult()), shapeOf(getInput()),
                             getAxis(), getOffset());
  return r.ok() ? success() : emitOpError() << r.message();
}

/// Attention's rule on the query, key and value of `a` (an adaptor of
/// attention or of its gradient).
template <typename Adaptor> static ShapeResult attentionRule(Adaptor a) {
  return attentionShape(shapeOf(a.getQuery()), shapeOf(a.getKey()),
                        shapeOf(a.getValue()),
                        static_cast<int64_t>(a.getHeads()), a.getCausal());
}

/// attentionRule's message at `loc`, when the rule fails.
template <typename Adaptor>
static LogicalResult checkAttention(std::optional<Location> loc, Adaptor a) {
  ShapeResult r = attentionRule(a);
  return r.ok() ? success() : emitOptionalError(loc, r.message());
}

/// lse [B, heads, T] for query [B, T, D].
static RankedTensorType lseType(MLIRContext *context, ArrayRef<int64_t> query,
                                int64_t heads) {
  return RankedTensorType::get({query[0], heads, query[1]},
                               Float32Type::get(context));
}

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *context,
                                            std::optional<Location> loc,
                                            Adaptor a,
                                            SmallVectorImpl<Type> &types) {
  if (failed(checkAttention(loc, a)))
    return failure();
  types.push_back(a.getQuery().getType());
  types.push_back(lseType(context, shapeOf(a.getQuery()),
                          static_cast<int64_t>(a.getHeads())));
  return success();
}

LogicalResult AttentionOp::verify() {
  ShapeResult r = attentionRule(Adaptor(*this));
  return r.ok() ? success() : emitOpError() << r.message();
}

LogicalResult AttentionGradOp::inferReturnTypes(MLIRContext *context,
                                                std::optional<Location> loc,
                                                Adaptor a,
                                                SmallVectorImpl<Type> &types) {
  if (failed(checkAttention(loc, a)))
    return failure();
  types.append(
      {a.getQuery().getType(), a.getKey().getType(), a.getValue().getType()});
  return success();
}

LogicalResult AttentionGradOp::verify() {
  ShapeResult r = attentionRule(Adaptor(*this));
  if (!r.ok())
    return emitOpError() << r.message();
  if (getLse().getType() != lseType(getContext(), shapeOf(getQuery()),
                                    static_cast<int64_t>(getHeads())))
    return emitOpError("lse must be [B, heads, T]");
  return success();
}

/// Self-attention's rule: qkv [B, T, 3D] holds a query, key and value
/// [B, T, D] side by side; the result is [B, T, D].
static ShapeResult selfAttentionRule(ArrayRef<int64_t> qkv, int64_t heads,
                                     bool causal) {
  if (qkv.size() != 3 || ShapedType::isDynamic(qkv[2]) || qkv[2] % 3 != 0)
    return ShapeResult::error("self_attention: expected qkv [B, T, 3D], got " +
                              formatShape(qkv));
  Shape one = {qkv[0], qkv[1], qkv[2] / 3};
  return attentionShape(one, one, one, heads, causal);
}

LogicalResult SelfAttentionOp::inferReturnTypes(MLIRContext *context,
                                                std::optional<Location> loc,
                                                Adaptor a,
                                                SmallVectorImpl<Type> &types) {
  ShapeResult r = selfAttentionRule(
      shapeOf(a.getQkv()), static_cast<int64_t>(a.getHeads()), a.getCausal());
  if (!r.ok())
    return emitOptionalError(loc, r.message());
  types.push_back(RankedTensorType::get(r.shape(), Float32Type::get(context)));
  types.push_back(
      lseType(context, r.shape(), static_cast<int64_t>(a.getHeads())));
  return success();
}

LogicalResult SelfAttentionOp::verify() {
  ShapeResult r = selfAttentionRule(
      shapeOf(getQkv()), static_cast<int64_t>(getHeads()), getCausal());
  return checkResult(*this, r, getResult());
}

LogicalResult SelfAttentionGradOp::verify() {
  ShapeResult r = selfAttentionRule(
      shapeOf(getQkv()), static_cast<int64_t>(getHeads()), getCausal());
  if (failed(checkResult(*this, r, getResult())))
    return failure();
  if (getLse().getType() !=
      lseType(getContext(), r.shape(), static_cast<int64_t>(getHeads())))
    return emitOpError("lse must be [B, heads, T]");
  return success();
}

//===----------------------------------------------------------------------===//
// Convolution and pooling
//===----------------------------------------------------------------------===//

/// The convolution of `input` by `weight` gives `output`'s shape.
template <typename Op>
static LogicalResult verifyConv(Op op, Value input, Value weight,
                                Value output) {
  return checkResult(op,
                     conv2dShape(shapeOf(input), shapeOf(weight), windowOf(op),
                                 op.getGroups()),
                     output);
}

LogicalResult Conv2dGradInputOp::verify() {
  return verifyConv(*this, getResult(), getWeight(), getGrad());
}
LogicalResult Conv2dGradWeightOp::verify() {
  return verifyConv(*this, getInput(), getResult(), getGrad());
}

template <typename Op>
static LogicalResult verifyPool(Op op, Value input, Value output) {
  return checkResult(
      op, poolShape(op->getName().stripDialect(), shapeOf(input), windowOf(op)),
      output);
}

LogicalResult MaxPoolGradOp::verify() {
  return verifyPool(*this, getInput(), getGrad());
}
LogicalResult AvgPoolGradOp::verify() {
  return verifyPool(*this, getResult(), getGrad());
}

//===----------------------------------------------------------------------===//
// Normalisation and dropout
//===----------------------------------------------------------------------===//

LogicalResult BatchNormOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), w = shapeOf(getWeight());
  if (in.size() < 2 || ShapedType::isDynamic(in[1]))
    return emitOpError() << "expects an input [N, C, ...] with a static C, got "
                         << formatShape(in);
  if (w.size() != 1 || w[0] != in[1])
    return emitOpError() << "weight " << formatShape(w) << " should be [C] = ["
                         << in[1] << "]";
  double eps = getEps().convertToDouble(),
         momentum = getMomentum().convertToDouble();
  if (eps <= 0 || momentum < 0 || momentum > 1)
    return emitOpError() << "needs eps > 0 and momentum in [0, 1]";
  return success();
}

/// The row statistics' shape: the input without its last axis.
static ShapeResult layerNormRows(ArrayRef<int64_t> in, ArrayRef<int64_t> w) {
  if (in.empty() || ShapedType::isDynamic(in.back()))
    return ShapeResult::error("layernorm: expects an input with a static last "
                              "axis, got " +
                              formatShape(in));
  if (w.size() != 1 || w[0] != in.back())
    return ShapeResult::error("layernorm: weight " + formatShape(w) +
                              " should be [D] = [" + std::to_string(in.back()) +
                              "]");
  return Shape(in.begin(), in.end() - 1);
}

void LayerNormOp::build(OpBuilder &b, OperationState &state, Value input,
                        Value weight, Value bias, double eps) {
  ArrayRef<int64_t> in = shapeOf(input);
  auto row = RankedTensorType::get(in.drop_back(), b.getF32Type());
  build(b, state, input.getType(), row, row, input, weight, bias,
        b.getF64FloatAttr(eps));
}

LogicalResult LayerNormOp::verify() {
  ShapeResult rows = layerNormRows(shapeOf(getInput()), shapeOf(getWeight()));
  if (!rows.ok())
    return emitOpError() << rows.message();
  if (getEps().convertToDouble() <= 0)
    return emitOpError() << "needs eps > 0";
  if (getRstd().getType() != getMean().getType())
    return emitOpError() << "mean and rstd must have one type";
  return checkResult(*this, rows, getMean());
}

LogicalResult SumRanksOp::verify() {
  if (!cast<RankedTensorType>(getInput().getType()).hasStaticShape())
    return emitOpError("sums a vector of static size, got ")
           << getInput().getType();
  return success();
}

LogicalResult LayerNormGradOp::verify() {
  ArrayRef<int64_t> x = shapeOf(getInput()), w = shapeOf(getWeight());
  if (x.size() < 2)
    return emitOpError() << "input must be rows [..., D]";
  return checkResult(*this, layerNormRows(x, w), getMean());
}

LogicalResult DropoutOp::verify() {
  double p = getP().convertToDouble();
  if (p < 0 || p >= 1)
    return emitOpError() << "p must lie in [0, 1), got " << p;
  if (getSeed() && cast<RankedTensorType>(getSeed().getType()).getShape() !=
                       ArrayRef<int64_t>{3})
    return emitOpError() << "takes its seed as tensor<3xi32> (seed, first "
                            "row, rows), got "
                         << getSeed().getType();
  return success();
}
