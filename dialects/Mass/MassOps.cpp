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

template <typename BinaryOp> static LogicalResult verifyBinary(BinaryOp op) {
  return checkResult(op,
                     broadcastShape(shapeOf(op.getLhs()), shapeOf(op.getRhs())),
                     op.getResult());
}
LogicalResult AddOp::verify() { return verifyBinary(*this); }
LogicalResult SubOp::verify() { return verifyBinary(*this); }
LogicalResult MulOp::verify() { return verifyBinary(*this); }
LogicalResult DivOp::verify() { return verifyBinary(*this); }

LogicalResult DenseOp::verify() {
  ArrayRef<int64_t> bias;
  if (getBias())
    bias = shapeOf(getBias());
  return checkResult(*this,
                     denseShape(shapeOf(getInput()), shapeOf(getWeight()),
                                getBias() ? &bias : nullptr),
                     getResult());
}

LogicalResult MatmulOp::verify() {
  return checkResult(*this, matmulShape(shapeOf(getLhs()), shapeOf(getRhs())),
                     getResult());
}

LogicalResult ReshapeOp::verify() {
  return checkResult(*this,
                     reshapeShape(shapeOf(getInput()), shapeOf(getResult())),
                     getResult());
}

LogicalResult TransposeOp::verify() {
  return checkResult(*this, transposeShape(shapeOf(getInput()), getPerm()),
                     getResult());
}

LogicalResult BroadcastOp::verify() {
  ArrayRef<int64_t> like = shapeOf(getLike());
  ShapeResult joined = broadcastShape(shapeOf(getInput()), like);
  if (!joined.ok() || ArrayRef<int64_t>(joined.shape()) != like)
    return emitOpError() << "cannot broadcast "
                         << formatShape(shapeOf(getInput())) << " to "
                         << formatShape(like);
  return checkResult(*this, Shape(like.begin(), like.end()), getResult());
}

template <typename ReduceOp> static LogicalResult verifyReduce(ReduceOp op) {
  return checkResult(
      op, reduceShape(shapeOf(op.getInput()), op.getAxes(), op.getKeepdim()),
      op.getResult());
}
LogicalResult SumOp::verify() { return verifyReduce(*this); }
LogicalResult MeanOp::verify() { return verifyReduce(*this); }
LogicalResult MaxOp::verify() { return verifyReduce(*this); }

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

LogicalResult ConcatOp::verify() {
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Value in : getInputs())
    shapes.push_back(shapeOf(in));
  return checkResult(*this, concatShape(shapes, getAxis()), getResult());
}

LogicalResult SliceOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  int64_t axis = getAxis(), offset = getOffset();
  if (axis < 0 || axis >= (int64_t)in.size() || in.size() != out.size())
    return emitOpError() << "axis " << axis << " does not fit "
                         << formatShape(in) << " -> " << formatShape(out);
  for (int64_t d = 0; d < (int64_t)in.size(); ++d)
    if (d != axis && in[d] != out[d])
      return emitOpError() << "result " << formatShape(out) << " differs from "
                           << formatShape(in) << " off axis " << axis;
  if (ShapedType::isDynamic(in[axis]) || ShapedType::isDynamic(out[axis]) ||
      offset < 0 || offset + out[axis] > in[axis])
    return emitOpError() << "positions " << offset << " to "
                         << offset + out[axis] << " are not in "
                         << formatShape(in) << " along axis " << axis;
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

LogicalResult Conv2dOp::verify() {
  return verifyConv(*this, getInput(), getWeight(), getResult());
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

LogicalResult MaxPoolOp::verify() {
  return verifyPool(*this, getInput(), getResult());
}
LogicalResult AvgPoolOp::verify() {
  return verifyPool(*this, getInput(), getResult());
}
LogicalResult MaxPoolGradOp::verify() {
  if (getResult().getType() != getInput().getType())
    return emitOpError("the result's type must be the input's");
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

LogicalResult DropoutOp::verify() {
  double p = getP().convertToDouble();
  if (p < 0 || p >= 1)
    return emitOpError() << "p must lie in [0, 1), got " << p;
  return success();
}
