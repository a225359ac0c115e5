//===- MassVJP.cpp - Vector-Jacobian products of the mass ops -------------===//
//
// Each differentiable op builds the gradients of its operands from the
// gradient of its result, out of other mass ops. Broadcasting ops sum their
// gradients back to each operand's shape.
//
//===----------------------------------------------------------------------===//

#include "dialects/Mass/Builders.h"
#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Shapes.h"

using namespace mass;
using namespace mlir;

using Grads = llvm::SmallVectorImpl<Value>;

//===----------------------------------------------------------------------===//
// Elementwise unary
//===----------------------------------------------------------------------===//

/// dx = dy * f'(x), with f' built by `derivative`.
template <typename Op, typename F>
static LogicalResult unary(Op op, OpBuilder &b, ArrayRef<Value> dys, Grads &dxs,
                           F derivative) {
  MassBuilder m(b, op.getLoc());
  dxs.push_back(m.mul(dys[0], derivative(m, op.getInput(), op.getResult())));
  return success();
}

LogicalResult NegOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  dxs.push_back(MassBuilder(b, getLoc()).neg(dys[0]));
  return success();
}

LogicalResult ReluOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  // relu(x) > 0 exactly where x > 0: sign(relu(x)) is the step function.
  return unary(*this, b, dys, dxs,
               [](MassBuilder &m, Value, Value y) { return m.sign(y); });
}

LogicalResult GeluOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  dxs.push_back(b.create<GeluGradOp>(getLoc(), getInput(), dys[0]));
  return success();
}

LogicalResult GeluTanhOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                   Grads &dxs) {
  dxs.push_back(b.create<GeluTanhGradOp>(getLoc(), getInput(), dys[0]));
  return success();
}

LogicalResult SigmoidOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                  Grads &dxs) {
  return unary(*this, b, dys, dxs, [](MassBuilder &m, Value, Value y) {
    return m.mul(y, m.sub(m.constant(1.0), y));
  });
}

LogicalResult TanhOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  return unary(*this, b, dys, dxs, [](MassBuilder &m, Value, Value y) {
    return m.sub(m.constant(1.0), m.mul(y, y));
  });
}

LogicalResult SiluOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  // d/dx x·s(x) = s(x) · (1 + x · (1 - s(x)))
  return unary(*this, b, dys, dxs, [&](MassBuilder &m, Value x, Value) {
    Value s = b.create<SigmoidOp>(getLoc(), x);
    Value one = m.constant(1.0);
    return m.mul(s, m.add(one, m.mul(x, m.sub(one, s))));
  });
}

LogicalResult ExpOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  return unary(*this, b, dys, dxs,
               [](MassBuilder &, Value, Value y) { return y; });
}

LogicalResult LogOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  dxs.push_back(MassBuilder(b, getLoc()).div(dys[0], getInput()));
  return success();
}

LogicalResult SqrtOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  dxs.push_back(m.div(m.mul(dys[0], m.constant(0.5)), getResult()));
  return success();
}

LogicalResult AbsOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  return unary(*this, b, dys, dxs,
               [](MassBuilder &m, Value x, Value) { return m.sign(x); });
}

LogicalResult SignOp::buildVJP(OpBuilder &, ArrayRef<Value>, Grads &dxs) {
  dxs.push_back(Value()); // zero almost everywhere
  return success();
}

//===----------------------------------------------------------------------===//
// Elementwise binary, with broadcasting
//===----------------------------------------------------------------------===//

template <typename Op>
static void binaryGrads(Op op, MassBuilder &m, Value dLhs, Value dRhs,
                        Grads &dxs) {
  dxs.push_back(dLhs ? m.reduceTo(dLhs, MassBuilder::typeOf(op.getLhs()))
                     : Value());
  dxs.push_back(dRhs ? m.reduceTo(dRhs, MassBuilder::typeOf(op.getRhs()))
                     : Value());
}

LogicalResult AddOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  binaryGrads(*this, m, dys[0], dys[0], dxs);
  return success();
}

LogicalResult SubOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  binaryGrads(*this, m, dys[0], m.neg(dys[0]), dxs);
  return success();
}

LogicalResult MulOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  binaryGrads(*this, m, m.mul(dys[0], getRhs()), m.mul(dys[0], getLhs()), dxs);
  return success();
}

LogicalResult DivOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  // d(x/y)/dy = -x/y^2 = -(x/y)/y
  Value dLhs = m.div(dys[0], getRhs());
  Value dRhs = m.neg(m.mul(dLhs, m.div(getLhs(), getRhs())));
  binaryGrads(*this, m, dLhs, dRhs, dxs);
  return success();
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

LogicalResult DenseOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  Value dy = dys[0];
  auto inType = MassBuilder::typeOf(getInput());
  auto wType = MassBuilder::typeOf(getWeight());
  int64_t rank = inType.getRank();
  // dx = dy · W
  dxs.push_back(m.matmul(dy, getWeight()));
  // dW = dyᵀ · x over all leading axes, flattened into one.
  Value dy2 = dy, x2 = getInput();
  if (rank != 2) {
    auto rows = [&](int64_t cols) {
      int64_t n = ShapedType::kDynamic;
      if (inType.hasStaticShape()) {
        n = 1;
        for (int64_t d : inType.getShape().drop_back())
          n *= d;
      }
      return RankedTensorType::get({n, cols}, b.getF32Type());
    };
    dy2 = m.reshape(dy, rows(wType.getDimSize(0)));
    x2 = m.reshape(getInput(), rows(wType.getDimSize(1)));
  }
  dxs.push_back(m.matmul(m.transpose(dy2, {1, 0}), x2));
  // db = dy summed over all but the last axis.
  if (getBias()) {
    SmallVector<int64_t> axes;
    for (int64_t i = 0; i + 1 < rank; ++i)
      axes.push_back(i);
    dxs.push_back(axes.empty() ? dy : m.sum(dy, axes, /*keepdim=*/false));
  }
  return success();
}

static SmallVector<int64_t> swapLastTwo(int64_t rank) {
  SmallVector<int64_t> perm;
  for (int64_t i = 0; i < rank; ++i)
    perm.push_back(i);
  std::swap(perm[rank - 1], perm[rank - 2]);
  return perm;
}

LogicalResult MatmulOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                 Grads &dxs) {
  MassBuilder m(b, getLoc());
  Value a = getLhs(), c = getRhs(), dy = dys[0];
  Value ct = m.transpose(c, swapLastTwo(MassBuilder::typeOf(c).getRank()));
  Value at = m.transpose(a, swapLastTwo(MassBuilder::typeOf(a).getRank()));
  dxs.push_back(m.reduceTo(m.matmul(dy, ct), MassBuilder::typeOf(a)));
  dxs.push_back(m.reduceTo(m.matmul(at, dy), MassBuilder::typeOf(c)));
  return success();
}

//===----------------------------------------------------------------------===//
// Shape
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                  Grads &dxs) {
  dxs.push_back(MassBuilder(b, getLoc())
                    .reshape(dys[0], MassBuilder::typeOf(getInput())));
  return success();
}

LogicalResult TransposeOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                    Grads &dxs) {
  SmallVector<int64_t> inverse(getPerm().size());
  for (auto [i, p] : llvm::enumerate(getPerm()))
    inverse[p] = i;
  dxs.push_back(MassBuilder(b, getLoc()).transpose(dys[0], inverse));
  return success();
}

LogicalResult ConcatOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                 Grads &dxs) {
  int64_t axis = getFrontAxis();
  int64_t offset = 0;
  for (Value in : getInputs()) {
    RankedTensorType type = MassBuilder::typeOf(in);
    dxs.push_back(b.create<SliceOp>(getLoc(), type, dys[0],
                                    b.getI64IntegerAttr(axis),
                                    b.getI64IntegerAttr(offset)));
    offset += type.getDimSize(axis);
  }
  return success();
}

LogicalResult BroadcastOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                    Grads &dxs) {
  dxs.push_back(MassBuilder(b, getLoc())
                    .reduceTo(dys[0], MassBuilder::typeOf(getInput())));
  dxs.push_back(Value()); // `like` only lends its shape
  return success();
}

//===----------------------------------------------------------------------===//
// Convolution and pooling
//===----------------------------------------------------------------------===//

LogicalResult Conv2dOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                 Grads &dxs) {
  dxs.push_back(b.create<Conv2dGradInputOp>(
      getLoc(), getInput().getType(), dys[0], getWeight(), getStrideAttr(),
      getPaddingAttr(), getDilationAttr(), getGroupsAttr()));
  dxs.push_back(b.create<Conv2dGradWeightOp>(
      getLoc(), getWeight().getType(), dys[0], getInput(), getStrideAttr(),
      getPaddingAttr(), getDilationAttr(), getGroupsAttr()));
  return success();
}

LogicalResult MaxPoolOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                  Grads &dxs) {
  dxs.push_back(b.create<MaxPoolGradOp>(getLoc(), getInput().getType(),
                                        getInput(), dys[0], getKernelAttr(),
                                        getStrideAttr(), getPaddingAttr()));
  return success();
}

LogicalResult AvgPoolOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                  Grads &dxs) {
  dxs.push_back(b.create<AvgPoolGradOp>(getLoc(), getInput().getType(), dys[0],
                                        getKernelAttr(), getStrideAttr(),
                                        getPaddingAttr()));
  return success();
}

//===----------------------------------------------------------------------===//
// Normalisation and dropout
//===----------------------------------------------------------------------===//

LogicalResult BatchNormOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                    Grads &dxs) {
  MassBuilder m(b, getLoc());
  Value x = getInput(), dy = dys[0];
  if (!dy)
    return emitOpError("only the normalised result is differentiable");
  int64_t rank = MassBuilder::typeOf(x).getRank();
  int64_t channels = MassBuilder::typeOf(x).getDimSize(1);
  // Per-channel vectors as [C, 1, ...], to broadcast against x.
  SmallVector<int64_t> column(rank - 1, 1);
  column[0] = channels;
  auto columnType = RankedTensorType::get(column, b.getF32Type());
  auto asColumn = [&](Value v) { return m.reshape(v, columnType); };
  SmallVector<int64_t> axes;
  for (int64_t i = 0; i < rank; ++i)
    if (i != 1)
      axes.push_back(i);
  Value invstd = asColumn(getInvstd());
  Value xhat = m.mul(m.sub(x, asColumn(getMean())), invstd);
  Value dbias = m.sum(dy, axes, /*keepdim=*/false);
  Value dweight = m.sum(m.mul(dy, xhat), axes, /*keepdim=*/false);
  Value scale = m.mul(asColumn(getWeight()), invstd);
  Value dx;
  if (getTraining()) {
    // The batch statistics depend on x too:
    // dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), the means
    // over the global batch (as SyncBatchNorm): the sums and the count,
    // side by side as columns [C, 3], summed over the data-parallel
    // processes in one call. (dweight and dbias stay this process's: the
    // gradients are summed over the processes after the step.)
    auto f32 = b.getF32Type();
    auto vector = RankedTensorType::get({channels}, f32);
    auto one = RankedTensorType::get({channels, 1}, f32);
    auto three = RankedTensorType::get({channels, 3}, f32);
    Value columns[] = {m.reshape(dbias, one), m.reshape(dweight, one), Value()};
    columns[2] = m.broadcast(m.count(x, axes), columns[0]);
    Value packed = b.create<ConcatOp>(getLoc(), three, columns, 1);
    Value summed = m.reshape(
        b.create<SumRanksOp>(
            getLoc(),
            m.reshape(packed, RankedTensorType::get({3 * channels}, f32))),
        three);
    auto column = [&](int64_t k) {
      return asColumn(
          m.reshape(b.create<SliceOp>(getLoc(), one, summed, 1, k), vector));
    };
    Value n = column(2);
    Value centred = m.sub(dy, m.div(column(0), n));
    dx = m.mul(m.sub(centred, m.mul(xhat, m.div(column(1), n))), scale);
  } else {
    dx = m.mul(dy, scale);
  }
  dxs.append({dx, dweight, dbias, Value(), Value()});
  return success();
}

LogicalResult LayerNormOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                    Grads &dxs) {
  if (!dys[0])
    return emitOpError("only the normalised result is differentiable");
  // One op over the rows (layernorm_grad's description has the formulas).
  Type w = getWeight().getType();
  auto grad = b.create<LayerNormGradOp>(
      getLoc(), TypeRange{getInput().getType(), w, w}, getInput(), getMean(),
      getRstd(), getWeight(), dys[0]);
  dxs.append(grad->result_begin(), grad->result_end());
  return success();
}

LogicalResult DropoutOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                  Grads &dxs) {
  // Linear in x with the same mask: the gradient is dropped the same way.
  dxs.push_back(b.create<DropoutOp>(getLoc(), dys[0].getType(), dys[0],
                                    getSeed(), getPAttr(), getStreamAttr(),
                                    getTrainingAttr()));
  if (getSeed())
    dxs.push_back(Value());
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

/// dy with the reduced axes restored as size-1 axes.
template <typename Op>
static Value keepdimGrad(Op op, MassBuilder &m, Value dy) {
  if (op.getKeepdim())
    return dy;
  ShapeResult shape = reduceShape(MassBuilder::typeOf(op.getInput()).getShape(),
                                  op.getAxes(), /*keepdim=*/true);
  return m.reshape(
      dy, RankedTensorType::get(shape.shape(), m.builder().getF32Type()));
}

LogicalResult SumOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  dxs.push_back(m.broadcast(keepdimGrad(*this, m, dys[0]), getInput()));
  return success();
}

LogicalResult MeanOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  Value scaled =
      m.div(keepdimGrad(*this, m, dys[0]), m.count(getInput(), getAxes()));
  dxs.push_back(m.broadcast(scaled, getInput()));
  return success();
}

LogicalResult MaxOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  // The gradient goes to the maxima, shared evenly among ties (as
  // torch.amax): mask = 1 - sign(max - x), as max - x >= 0.
  Value maxima = m.broadcast(keepdimGrad(*this, m, getResult()), getInput());
  Value mask = m.sub(m.constant(1.0), m.sign(m.sub(maxima, getInput())));
  Value ties = m.sum(mask, getAxes(), /*keepdim=*/true);
  Value share = m.div(keepdimGrad(*this, m, dys[0]), ties);
  dxs.push_back(m.mul(mask, m.broadcast(share, getInput())));
  return success();
}

LogicalResult SoftmaxOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                  Grads &dxs) {
  MassBuilder m(b, getLoc());
  // dx = y * (dy - sum(dy * y, axis))
  Value y = getResult();
  Value dot = m.sum(m.mul(dys[0], y), {static_cast<int64_t>(getAxis())},
                    /*keepdim=*/true);
  dxs.push_back(m.mul(y, m.sub(dys[0], dot)));
  return success();
}

LogicalResult LogSoftmaxOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                     Grads &dxs) {
  MassBuilder m(b, getLoc());
  // dx = dy - exp(y) * sum(dy, axis)
  Value total = m.sum(dys[0], {static_cast<int64_t>(getAxis())},
                      /*keepdim=*/true);
  Value p = b.create<ExpOp>(getLoc(), getResult());
  dxs.push_back(m.sub(dys[0], m.mul(p, total)));
  return success();
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                    Grads &dxs) {
  if (!dys[0])
    return emitOpError("only the attention's result is differentiable");
  auto grad = b.create<AttentionGradOp>(
      getLoc(), getQuery(), getKey(), getValue(), getResult(), getLse(), dys[0],
      getHeadsAttr(), getCausalAttr());
  dxs.append({grad.getDquery(), grad.getDkey(), grad.getDvalue()});
  return success();
}

LogicalResult SelfAttentionOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                        Grads &dxs) {
  if (!dys[0])
    return emitOpError("only the attention's result is differentiable");
  dxs.push_back(b.create<SelfAttentionGradOp>(
      getLoc(), getQkv().getType(), getQkv(), getResult(), getLse(), dys[0],
      getHeadsAttr(), getCausalAttr()));
  return success();
}

LogicalResult SliceOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  dxs.push_back(b.create<PadOp>(getLoc(), getInput().getType(), dys[0],
                                getAxisAttr(), getOffsetAttr()));
  return success();
}

LogicalResult EmbeddingOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                    Grads &dxs) {
  dxs.push_back(Value()); // ids are integers
  dxs.push_back(b.create<EmbeddingGradOp>(getLoc(), getWeight().getType(),
                                          getIds(), dys[0]));
  return success();
}

LogicalResult CrossEntropyOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys,
                                       Grads &dxs) {
  dxs.push_back(b.create<CrossEntropyGradOp>(getLoc(), getLogits().getType(),
                                             getLogits(), getLabels(), dys[0],
                                             getSmoothingAttr()));
  dxs.push_back(Value()); // labels are integers
  return success();
}

/// d loss / d pred for a mean over all elements of `diffGrad` (the
/// elementwise derivative), and its negation for the target when `negate`.
static LogicalResult meanLoss(Operation *op, OpBuilder &b, Value pred, Value dy,
                              Value elementwise, Value targetGrad, Grads &dxs) {
  MassBuilder m(b, op->getLoc());
  SmallVector<int64_t> all;
  for (int64_t i = 0; i < MassBuilder::typeOf(pred).getRank(); ++i)
    all.push_back(i);
  Value scale = m.div(dy, m.count(pred, all));
  dxs.push_back(m.mul(elementwise, scale));
  dxs.push_back(m.mul(targetGrad, scale));
  return success();
}

LogicalResult MseOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  Value d = m.mul(m.constant(2.0), m.sub(getPred(), getTarget()));
  return meanLoss(*this, b, getPred(), dys[0], d, m.neg(d), dxs);
}

LogicalResult L1Op::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  Value d = m.sign(m.sub(getPred(), getTarget()));
  return meanLoss(*this, b, getPred(), dys[0], d, m.neg(d), dxs);
}

LogicalResult BceOp::buildVJP(OpBuilder &b, ArrayRef<Value> dys, Grads &dxs) {
  MassBuilder m(b, getLoc());
  // loss = max(x, 0) - x t + log(1 + exp(-|x|)): d/dx = sigmoid(x) - t,
  // d/dt = -x.
  Value s = b.create<SigmoidOp>(getLoc(), getPred());
  return meanLoss(*this, b, getPred(), dys[0], m.sub(s, getTarget()),
                  m.neg(getPred()), dxs);
}
