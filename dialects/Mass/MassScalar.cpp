//===- MassScalar.cpp - Scalar bodies of the elementwise mass ops ---------===//
//
// Each elementwise op (ElementwiseOpInterface) builds the function it
// applies to one element of each operand, in arith and math ops. Fusion
// and every backend's lowering read these bodies; nothing else says what an
// elementwise op computes.
//
//===----------------------------------------------------------------------===//

#include "dialects/Mass/MassOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mass;
using namespace mlir;

namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;

Value constant(OpBuilder &b, Location l, double v) {
  return b.create<arith::ConstantOp>(l, b.getF32FloatAttr(v));
}

/// 1 / (1 + exp(-x))
Value sigmoid(OpBuilder &b, Location l, Value x) {
  Value e = b.create<math::ExpOp>(l, b.create<arith::NegFOp>(l, x));
  return b.create<arith::DivFOp>(
      l, constant(b, l, 1.0),
      b.create<arith::AddFOp>(l, constant(b, l, 1.0), e));
}

/// The standard normal CDF, 0.5 * (1 + erf(x / sqrt(2))).
Value phi(OpBuilder &b, Location l, Value x) {
  Value scaled = b.create<arith::MulFOp>(l, x, constant(b, l, M_SQRT1_2));
  Value erf = b.create<math::ErfOp>(l, scaled);
  return b.create<arith::MulFOp>(
      l, constant(b, l, 0.5),
      b.create<arith::AddFOp>(l, constant(b, l, 1.0), erf));
}

/// GPT-2's GELU: tanh(sqrt(2 / pi) * (x + 0.044715 x^3)), the inner tanh.
Value geluTanhInner(OpBuilder &b, Location l, Value x) {
  Value cube = b.create<arith::MulFOp>(l, b.create<arith::MulFOp>(l, x, x), x);
  Value inner = b.create<arith::AddFOp>(
      l, x, b.create<arith::MulFOp>(l, cube, constant(b, l, 0.044715)));
  return b.create<math::TanhOp>(
      l, b.create<arith::MulFOp>(l, inner, constant(b, l, kSqrt2OverPi)));
}

} // namespace

//===----------------------------------------------------------------------===//
// Unary
//===----------------------------------------------------------------------===//

Value NegOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::NegFOp>(l, x[0]);
}

Value ReluOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::MaximumFOp>(l, x[0], constant(b, l, 0.0));
}

Value GeluOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::MulFOp>(l, x[0], phi(b, l, x[0]));
}

Value GeluTanhOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  // 0.5 x (1 + t)
  Value t = geluTanhInner(b, l, x[0]);
  Value half = b.create<arith::MulFOp>(l, x[0], constant(b, l, 0.5));
  return b.create<arith::MulFOp>(
      l, half, b.create<arith::AddFOp>(l, constant(b, l, 1.0), t));
}

Value SigmoidOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return sigmoid(b, l, x[0]);
}

Value TanhOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<math::TanhOp>(l, x[0]);
}

Value SiluOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::MulFOp>(l, x[0], sigmoid(b, l, x[0]));
}

Value ExpOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<math::ExpOp>(l, x[0]);
}

Value LogOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<math::LogOp>(l, x[0]);
}

Value SqrtOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<math::SqrtOp>(l, x[0]);
}

Value AbsOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<math::AbsFOp>(l, x[0]);
}

Value SignOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  // (x > 0) - (x < 0): zero at zero.
  Value zero = constant(b, l, 0.0);
  auto step = [&](arith::CmpFPredicate pred) -> Value {
    return b.create<arith::UIToFPOp>(
        l, b.getF32Type(), b.create<arith::CmpFOp>(l, pred, x[0], zero));
  };
  Value positive = step(arith::CmpFPredicate::OGT);
  Value negative = step(arith::CmpFPredicate::OLT);
  return b.create<arith::SubFOp>(l, positive, negative);
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//

Value AddOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::AddFOp>(l, x[0], x[1]);
}

Value SubOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::SubFOp>(l, x[0], x[1]);
}

Value MulOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::MulFOp>(l, x[0], x[1]);
}

Value DivOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  return b.create<arith::DivFOp>(l, x[0], x[1]);
}

Value GeluGradOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  // grad * gelu'(input), gelu'(x) = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)
  Value input = x[0];
  Value square = b.create<arith::MulFOp>(l, input, input);
  Value density = b.create<math::ExpOp>(
      l, b.create<arith::MulFOp>(l, square, constant(b, l, -0.5)));
  Value term =
      b.create<arith::MulFOp>(l, b.create<arith::MulFOp>(l, input, density),
                              constant(b, l, 0.3989422804014327));
  Value slope = b.create<arith::AddFOp>(l, phi(b, l, input), term);
  return b.create<arith::MulFOp>(l, slope, x[1]);
}

Value GeluTanhGradOp::buildScalar(OpBuilder &b, Location l, ValueRange x) {
  // gelu_tanh'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2 / pi)
  // (1 + 3 * 0.044715 x^2)
  Value input = x[0];
  Value t = geluTanhInner(b, l, input);
  Value one = constant(b, l, 1.0);
  Value half = constant(b, l, 0.5);
  Value square = b.create<arith::MulFOp>(l, input, input);
  Value inner = b.create<arith::MulFOp>(
      l, constant(b, l, kSqrt2OverPi),
      b.create<arith::AddFOp>(
          l, one,
          b.create<arith::MulFOp>(l, square, constant(b, l, 3 * 0.044715))));
  Value sech2 =
      b.create<arith::SubFOp>(l, one, b.create<arith::MulFOp>(l, t, t));
  Value left =
      b.create<arith::MulFOp>(l, half, b.create<arith::AddFOp>(l, one, t));
  Value right =
      b.create<arith::MulFOp>(l, b.create<arith::MulFOp>(l, half, input),
                              b.create<arith::MulFOp>(l, sech2, inner));
  Value slope = b.create<arith::AddFOp>(l, left, right);
  return b.create<arith::MulFOp>(l, slope, x[1]);
}
