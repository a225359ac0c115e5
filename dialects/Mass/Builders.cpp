//===- Builders.cpp - Building mass ops with inferred types ---------------===//

#include "dialects/Mass/Builders.h"
#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Shapes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mass;
using namespace mlir;

Value MassBuilder::constant(double value) {
  auto type = RankedTensorType::get({}, b.getF32Type());
  return b.create<arith::ConstantOp>(
      loc, type, DenseElementsAttr::get(type, static_cast<float>(value)));
}

Value MassBuilder::add(Value x, Value y) { return b.create<AddOp>(loc, x, y); }
Value MassBuilder::sub(Value x, Value y) { return b.create<SubOp>(loc, x, y); }
Value MassBuilder::mul(Value x, Value y) { return b.create<MulOp>(loc, x, y); }
Value MassBuilder::div(Value x, Value y) { return b.create<DivOp>(loc, x, y); }
Value MassBuilder::neg(Value x) { return b.create<NegOp>(loc, x); }
Value MassBuilder::sqrt(Value x) { return b.create<SqrtOp>(loc, x); }
Value MassBuilder::sign(Value x) { return b.create<SignOp>(loc, x); }
Value MassBuilder::relu(Value x) { return b.create<ReluOp>(loc, x); }

Value MassBuilder::sum(Value x, ArrayRef<int64_t> axes, bool keepdim) {
  return b.create<SumOp>(loc, x, axes, keepdim);
}

Value MassBuilder::reshape(Value x, RankedTensorType type) {
  if (typeOf(x) == type)
    return x;
  return b.create<ReshapeOp>(loc, type, x);
}

Value MassBuilder::transpose(Value x, ArrayRef<int64_t> perm) {
  return b.create<TransposeOp>(loc, x, perm);
}

Value MassBuilder::matmul(Value x, Value y) {
  return b.create<MatmulOp>(loc, x, y);
}

Value MassBuilder::broadcast(Value x, Value like) {
  if (typeOf(x) == typeOf(like))
    return x;
  return b.create<BroadcastOp>(loc, x, like);
}

Value MassBuilder::reduceTo(Value grad, RankedTensorType target) {
  ArrayRef<int64_t> from = typeOf(grad).getShape();
  ArrayRef<int64_t> to = target.getShape();
  if (from == to)
    return grad;
  size_t lead = from.size() - to.size();
  SmallVector<int64_t> axes;
  for (size_t i = 0; i < from.size(); ++i)
    if (i < lead || (to[i - lead] == 1 && from[i] != 1))
      axes.push_back(i);
  Value summed = axes.empty() ? grad : sum(grad, axes, /*keepdim=*/true);
  return reshape(summed, target);
}

Value MassBuilder::count(Value x, ArrayRef<int64_t> axes) {
  ArrayRef<int64_t> shape = typeOf(x).getShape();
  SmallVector<bool> reduced(shape.size(), false);
  for (int64_t a : axes)
    reduced[*normalizeAxis(a, shape.size())] = true;
  double n = 1, rest = 1;
  bool dynamic = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (!reduced[i])
      rest *= shape[i]; // static: only the batch is dynamic
    else if (ShapedType::isDynamic(shape[i]))
      dynamic = true;
    else
      n *= shape[i];
  }
  if (!dynamic)
    return constant(n);
  // The batch is among the axes: count at run time, as the sum of ones
  // shaped like x over all axes, less the axes that are not reduced.
  SmallVector<int64_t> all;
  for (size_t i = 0; i < shape.size(); ++i)
    all.push_back(i);
  Value total = sum(broadcast(constant(1.0), x), all, /*keepdim=*/false);
  return rest == 1 ? total : div(total, constant(rest));
}
