//===- LowerVision.cpp - Convolutions and pools to linalg on tensors ------===//
//
// A convolution becomes a matrix product on the fast path: im2col gathers
// the input's windows into columns [groups, C/g * KH * KW, N * OH * OW], one
// batched contraction per group multiplies them by the weight seen as
// [groups, O/g, C/g * KH * KW], and a transposing copy puts the result back
// into NCHW. The two gradients are products of the same shapes: the
// weight's takes dy (transposed to [groups, O/g, N * OH * OW]) times the
// columns transposed; the input's takes the weight transposed times dy and
// scatters the columns back with col2im, written as a gather over each input
// element's windows. Pools are reductions over the window with the element
// read at the window's position.
//
//===----------------------------------------------------------------------===//

#include "codegen/Lowering.h"

#include "dialects/Mass/MassOps.h"

#include "mlir/Dialect/Math/IR/Math.h"

#include <algorithm>
#include <limits>

using namespace mass;
using namespace mass::lowering;
using namespace mlir;

namespace {

/// Index arithmetic inside op bodies.
struct IndexMath {
  OpBuilder &b;
  Location loc;
  /// In a window generic (see `generic`), logical loops (n, c, h, w, kh, kw)
  /// run in the order (n, c, h, kh, kw, w).
  bool window = false;

  Value c(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }
  Value add(Value x, Value y) { return b.create<arith::AddIOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.create<arith::SubIOp>(loc, x, y); }
  Value mul(Value x, int64_t v) {
    return v == 1 ? x : b.create<arith::MulIOp>(loc, x, c(v)).getResult();
  }
  Value div(Value x, int64_t v) {
    return v == 1 ? x : b.create<arith::DivSIOp>(loc, x, c(v)).getResult();
  }
  Value rem(Value x, int64_t v) {
    return b.create<arith::RemSIOp>(loc, x, c(v));
  }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return b.create<arith::CmpIOp>(loc, p, x, y);
  }
  Value both(Value x, Value y) { return b.create<arith::AndIOp>(loc, x, y); }
  Value index(unsigned dim) {
    static const unsigned order[6] = {0, 1, 2, 5, 3, 4};
    return b.create<linalg::IndexOp>(loc, window ? order[dim] : dim);
  }
  /// `x` if it lies in [0, size), else 0: an address that is safe to read.
  Value clamp(Value x, Value valid) {
    return b.create<arith::SelectOp>(loc, valid, x, c(0));
  }
  Value inRange(Value x, int64_t size) {
    return both(cmp(arith::CmpIPredicate::sge, x, c(0)),
                cmp(arith::CmpIPredicate::slt, x, c(size)));
  }
};

/// The output position whose window position `k` reads input position `i`
/// along one axis, and whether there is one.
std::pair<Value, Value> target(IndexMath &m, Value i, Value k, int64_t stride,
                               int64_t pad, int64_t dilation, int64_t outSize) {
  Value num = m.sub(m.add(i, m.c(pad)), m.mul(k, dilation));
  Value valid = m.cmp(arith::CmpIPredicate::sge, num, m.c(0));
  if (stride != 1)
    valid = m.both(valid,
                   m.cmp(arith::CmpIPredicate::eq, m.rem(num, stride), m.c(0)));
  Value o = m.div(num, stride);
  valid = m.both(valid, m.cmp(arith::CmpIPredicate::slt, o, m.c(outSize)));
  return {m.clamp(o, valid), valid};
}

/// The spatial numbers of a window op: input and output H and W, and the
/// window's kernel, stride, padding and dilation per axis.
struct WindowShape {
  int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
  WindowShape(const Window &win, RankedTensorType input,
              RankedTensorType output)
      : h(input.getDimSize(2)), w(input.getDimSize(3)),
        oh(output.getDimSize(2)), ow(output.getDimSize(3)), kh(win.kernel[0]),
        kw(win.kernel[1]), sh(win.stride[0]), sw(win.stride[1]),
        ph(win.padding[0]), pw(win.padding[1]), dh(win.dilation[0]),
        dw(win.dilation[1]) {}
};

/// A convolution op's window whose kernel comes from its weight.
template <typename Op> Window convWindow(Op op, RankedTensorType weight) {
  Window win = windowOf(op);
  win.kernel = {weight.getDimSize(2), weight.getDimSize(3)};
  return win;
}

/// The numbers of one convolution.
struct ConvShape : WindowShape {
  int64_t n, c, o, groups;
  int64_t cg() const { return c / groups; }
  int64_t og() const { return o / groups; }
  int64_t patch() const { return cg() * kh * kw; }

  template <typename Op>
  ConvShape(Op op, RankedTensorType input, RankedTensorType weight,
            RankedTensorType output)
      : WindowShape(convWindow(op, weight), input, output),
        n(input.getDimSize(0)), c(input.getDimSize(1)), o(weight.getDimSize(0)),
        groups(op.getGroups()) {}
};

AffineMap map(OpBuilder &b, unsigned dims, ArrayRef<AffineExpr> exprs) {
  return AffineMap::get(dims, 0, exprs, b.getContext());
}

AffineMap dimsMap(OpBuilder &b, unsigned dims, ArrayRef<unsigned> which) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : which)
    exprs.push_back(b.getAffineDimExpr(d));
  return map(b, dims, exprs);
}

/// A linalg.generic whose loops are the dimensions of `init` (identity
/// output map) and the loops `extra` of the given sizes, reduced. The
/// reduced loops run just inside the last dimension of `init`'s, so that the
/// innermost loop walks rows: it vectorises, with the accumulators in
/// registers. (Bodies read the loops through IndexMath with `window`.)
Value generic(Lowering &l, Value init, ValueRange inputs,
              ArrayRef<AffineMap> inputMaps, ArrayRef<int64_t> extra,
              Body body) {
  auto type = tensorType(init);
  unsigned rank = type.getRank(), loops = rank + extra.size();
  SmallVector<Value> ins(inputs);
  SmallVector<AffineMap> maps(inputMaps);
  SmallVector<utils::IteratorType> iters(loops, utils::IteratorType::parallel);
  SmallVector<unsigned> outDims;
  for (unsigned i = 0; i < rank; ++i)
    outDims.push_back(extra.empty() || i + 1 < rank ? i : loops - 1);
  if (!extra.empty()) {
    // The reduced loops take their sizes from a tensor of that shape whose
    // values are never read.
    ins.push_back(l.b.create<tensor::EmptyOp>(l.loc, extra, l.b.getF32Type()));
    SmallVector<unsigned> dims;
    for (unsigned i = 0; i < extra.size(); ++i) {
      dims.push_back(rank - 1 + i);
      iters[rank - 1 + i] = utils::IteratorType::reduction;
    }
    maps.push_back(dimsMap(l.b, loops, dims));
  }
  maps.push_back(dimsMap(l.b, loops, outDims));
  unsigned used = inputs.size();
  return l.b
      .create<linalg::GenericOp>(
          l.loc, type, ins, init, maps, iters,
          [&](OpBuilder &b, Location loc, ValueRange args) {
            SmallVector<Value> passed(args.take_front(used));
            passed.push_back(args.back());
            b.create<linalg::YieldOp>(loc, body(b, loc, passed));
          })
      .getResult(0);
}

/// tensor.empty of `shape` whose first size, if dynamic, is `batch`.
Value emptyWithBatch(Lowering &l, ArrayRef<int64_t> shape, Value batchOf,
                     unsigned batchDim) {
  SmallVector<Value> dynamic;
  for (int64_t d : shape)
    if (ShapedType::isDynamic(d))
      dynamic.push_back(l.b.create<tensor::DimOp>(l.loc, batchOf, batchDim));
  return l.empty(RankedTensorType::get(shape, l.b.getF32Type()), dynamic);
}

Value collapse(Lowering &l, Value v, ArrayRef<ReassociationIndices> groups) {
  return l.b.create<tensor::CollapseShapeOp>(l.loc, v, groups);
}

Value expand(Lowering &l, Value v, ArrayRef<int64_t> shape,
             ArrayRef<ReassociationIndices> groups, Value batchOf,
             unsigned batchDim) {
  SmallVector<OpFoldResult> sizes;
  for (int64_t d : shape)
    sizes.push_back(
        ShapedType::isDynamic(d)
            ? OpFoldResult(l.b.create<tensor::DimOp>(l.loc, batchOf, batchDim))
            : OpFoldResult(l.b.getIndexAttr(d)));
  return l.b.create<tensor::ExpandShapeOp>(
      l.loc, RankedTensorType::get(shape, l.b.getF32Type()), v, groups, sizes);
}

/// `x` with `low` and `high` more positions of `value` along each axis
/// (a fill, then the input copied into its place).
Value padded(Lowering &l, Value x, ArrayRef<int64_t> low,
             ArrayRef<int64_t> high, double value) {
  if (llvm::all_of(low, [](int64_t v) { return v == 0; }) &&
      llvm::all_of(high, [](int64_t v) { return v == 0; }))
    return x;
  auto type = tensorType(x);
  SmallVector<int64_t> shape;
  SmallVector<Value> dynamic;
  SmallVector<OpFoldResult> offsets, sizes, strides;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    int64_t size = type.getDimSize(d);
    offsets.push_back(l.b.getIndexAttr(low[d]));
    strides.push_back(l.b.getIndexAttr(1));
    if (ShapedType::isDynamic(size)) {
      // Only the batch is dynamic, and it is never padded.
      Value dim = l.b.create<tensor::DimOp>(l.loc, x, d);
      dynamic.push_back(dim);
      sizes.push_back(dim);
      shape.push_back(size);
    } else {
      sizes.push_back(l.b.getIndexAttr(size));
      shape.push_back(size + low[d] + high[d]);
    }
  }
  auto paddedType = RankedTensorType::get(shape, type.getElementType());
  Value filled = l.filled(paddedType, dynamic, l.f32(value));
  return l.b.create<tensor::InsertSliceOp>(l.loc, x, filled, offsets, sizes,
                                           strides);
}

/// The input's windows as columns: [g, C/g * KH * KW, N * OH * OW], read
/// from the zero-padded input through an affine map (no bounds checks).
Value im2col(Lowering &l, const ConvShape &s, Value x) {
  Value xp = padded(l, x, {0, 0, s.ph, s.pw}, {0, 0, s.ph, s.pw}, 0.0);
  Value init =
      emptyWithBatch(l, {s.groups, s.cg(), s.kh, s.kw, s.n, s.oh, s.ow}, x, 0);
  auto d = [&](unsigned i) { return l.b.getAffineDimExpr(i); };
  AffineMap read = map(l.b, 7,
                       {d(4), d(0) * s.cg() + d(1), d(5) * s.sh + d(2) * s.dh,
                        d(6) * s.sw + d(3) * s.dw});
  Value col = generic(l, init, {xp}, {read}, {},
                      [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  return collapse(l, col, {{0}, {1, 2, 3}, {4, 5, 6}});
}

/// The weight [O, C/g, KH, KW] as [g, O/g, C/g * KH * KW].
Value groupedWeight(Lowering &l, const ConvShape &s, Value w) {
  Value flat = collapse(l, w, {{0}, {1, 2, 3}});
  return l.b.create<tensor::ExpandShapeOp>(
      l.loc,
      RankedTensorType::get({s.groups, s.og(), s.patch()}, l.b.getF32Type()),
      flat, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
}

/// dy [N, O, OH, OW] as [g, O/g, N * OH * OW].
Value groupedGrad(Lowering &l, const ConvShape &s, Value dy) {
  Value init = emptyWithBatch(l, {s.groups, s.og(), s.n, s.oh, s.ow}, dy, 0);
  AffineExpr g = l.b.getAffineDimExpr(0), og = l.b.getAffineDimExpr(1);
  AffineMap in = map(l.b, 5,
                     {l.b.getAffineDimExpr(2), g * s.og() + og,
                      l.b.getAffineDimExpr(3), l.b.getAffineDimExpr(4)});
  Value t = generic(l, init, {dy}, {in}, {},
                    [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  return collapse(l, t, {{0}, {1}, {2, 3, 4}});
}

/// C for a product [g, m, N * P] whose columns run over the batch: its
/// buffer keeps the batch as an axis of its own, so that its size is a
/// multiple of the batch the arena can plan.
Value batchedProduct(Lowering &l, int64_t g, int64_t m, int64_t p,
                     Value batchOf) {
  Value full = emptyWithBatch(l, {g, m, ShapedType::kDynamic, p}, batchOf, 0);
  return collapse(l, full, {{0}, {1}, {2, 3}});
}

/// C for a weight's gradient [g, O/g, K]: a buffer of the weight's shape
/// seen that way, so that the gradient a step returns is this buffer
/// itself, not a copy of it.
Value weightProduct(Lowering &l, const ConvShape &s, RankedTensorType wType) {
  Value rows = collapse(l, l.empty(wType, {}), {{0}, {1, 2, 3}});
  return l.b.create<tensor::ExpandShapeOp>(
      l.loc,
      RankedTensorType::get({s.groups, s.og(), s.patch()}, l.b.getF32Type()),
      rows, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
}

/// C[b, m, n] = A * B over loops (b, m, k, n), into `init` zeroed.
Value product(Lowering &l, Value init, Value a, AffineMap mapA, Value bMat,
              AffineMap mapB) {
  init = l.b.create<linalg::FillOp>(l.loc, l.f32(0), init).getResult(0);
  AffineMap mapC = dimsMap(l.b, 4, {0, 1, 3});
  return l.contract(cast<RankedTensorType>(init.getType()), a, bMat, init,
                    {mapA, mapB, mapC});
}

struct Conv2dPattern : public MassPattern<Conv2dOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(Conv2dOp op, Lowering &l) const override {
    auto outType = tensorType(op.getResult());
    ConvShape s(op, tensorType(op.getInput()), tensorType(op.getWeight()),
                outType);
    Value col = im2col(l, s, op.getInput());
    Value w = groupedWeight(l, s, op.getWeight());
    // [g, O/g, N * OH * OW] = [g, O/g, K] x [g, K, N * OH * OW]
    Value t = product(
        l, batchedProduct(l, s.groups, s.og(), s.oh * s.ow, op.getInput()), w,
        dimsMap(l.b, 4, {0, 1, 2}), col, dimsMap(l.b, 4, {0, 2, 3}));
    t = expand(l, t, {s.groups, s.og(), s.n, s.oh, s.ow}, {{0}, {1}, {2, 3, 4}},
               op.getInput(), 0);
    // Back to NCHW.
    AffineExpr o = l.b.getAffineDimExpr(1);
    AffineMap in = map(l.b, 4,
                       {o.floorDiv(s.og()), o % s.og(), l.b.getAffineDimExpr(0),
                        l.b.getAffineDimExpr(2), l.b.getAffineDimExpr(3)});
    Value init = l.empty(outType, l.dynamicSizes(outType, {op.getInput()}));
    return SmallVector<Value>{
        generic(l, init, {t}, {in}, {},
                [](OpBuilder &, Location, ValueRange a) { return a[0]; })};
  }
};

struct Conv2dGradWeightPattern : public MassPattern<Conv2dGradWeightOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(Conv2dGradWeightOp op,
                                      Lowering &l) const override {
    auto wType = tensorType(op.getResult());
    ConvShape s(op, tensorType(op.getInput()), wType, tensorType(op.getGrad()));
    Value col = im2col(l, s, op.getInput());
    Value dy = groupedGrad(l, s, op.getGrad());
    // [g, O/g, K] = [g, O/g, N * OH * OW] x [g, K, N * OH * OW]^T
    Value dw =
        product(l, weightProduct(l, s, wType), dy, dimsMap(l.b, 4, {0, 1, 2}),
                col, dimsMap(l.b, 4, {0, 3, 2}));
    Value flat = collapse(l, dw, {{0, 1}, {2}});
    return SmallVector<Value>{l.b.create<tensor::ExpandShapeOp>(
        l.loc, wType, flat, ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}})};
  }
};

struct Conv2dGradInputPattern : public MassPattern<Conv2dGradInputOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(Conv2dGradInputOp op,
                                      Lowering &l) const override {
    auto inType = tensorType(op.getResult());
    ConvShape s(op, inType, tensorType(op.getWeight()),
                tensorType(op.getGrad()));
    Value dy = groupedGrad(l, s, op.getGrad());
    Value w = groupedWeight(l, s, op.getWeight());
    // [g, K, N * OH * OW] = [g, O/g, K]^T x [g, O/g, N * OH * OW]
    Value dcol = product(
        l, batchedProduct(l, s.groups, s.patch(), s.oh * s.ow, op.getGrad()), w,
        dimsMap(l.b, 4, {0, 2, 1}), dy, dimsMap(l.b, 4, {0, 2, 3}));
    dcol = expand(l, dcol, {s.groups, s.cg(), s.kh, s.kw, s.n, s.oh, s.ow},
                  {{0}, {1, 2, 3}, {4, 5, 6}}, op.getGrad(), 0);
    // col2im: each input element sums the columns that read it.
    Value init =
        l.filled(inType, l.dynamicSizes(inType, {op.getGrad()}), l.f32(0));
    if (s.sh == 1 && s.sw == 1) {
      // With unit strides, the column that window position (kh, kw) of
      // input row h reads is h + pad - kh * dilation: affine once the
      // columns are padded with zeros so that it always lies inside.
      int64_t lh = std::max<int64_t>(0, (s.kh - 1) * s.dh - s.ph);
      int64_t lw = std::max<int64_t>(0, (s.kw - 1) * s.dw - s.pw);
      int64_t rh = std::max<int64_t>(0, s.h + s.ph - s.oh);
      int64_t rw = std::max<int64_t>(0, s.w + s.pw - s.ow);
      Value dp = padded(l, dcol, {0, 0, 0, 0, 0, lh, lw},
                        {0, 0, 0, 0, 0, rh, rw}, 0.0);
      // Loops (n, c, h, kh, kw, w).
      auto d = [&](unsigned i) { return l.b.getAffineDimExpr(i); };
      AffineMap read = map(l.b, 6,
                           {d(1).floorDiv(s.cg()), d(1) % s.cg(), d(3), d(4),
                            d(0), d(2) + (s.ph + lh) - d(3) * s.dh,
                            d(5) + (s.pw + lw) - d(4) * s.dw});
      return SmallVector<Value>{
          generic(l, init, {dp}, {read}, {s.kh, s.kw}, addBody)};
    }
    return SmallVector<Value>{generic(
        l, init, {}, {}, {s.kh, s.kw},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          IndexMath m{b, loc, /*window=*/true};
          Value kh = m.index(4), kw = m.index(5), ch = m.index(1);
          auto [oh, vh] = target(m, m.index(2), kh, s.sh, s.ph, s.dh, s.oh);
          auto [ow, vw] = target(m, m.index(3), kw, s.sw, s.pw, s.dw, s.ow);
          Value v = b.create<tensor::ExtractOp>(
              loc, dcol,
              ValueRange{m.div(ch, s.cg()), m.rem(ch, s.cg()), kh, kw,
                         m.index(0), oh, ow});
          v = b.create<arith::SelectOp>(loc, m.both(vh, vw), v,
                                        cst(b, loc, 0.0));
          return Value(b.create<arith::AddFOp>(loc, a.back(), v));
        })};
  }
};

//===----------------------------------------------------------------------===//
// Pools
//===----------------------------------------------------------------------===//

struct PoolShape : WindowShape {
  int64_t c;
  template <typename Op>
  PoolShape(Op op, RankedTensorType input, RankedTensorType output)
      : WindowShape(windowOf(op), input, output), c(input.getDimSize(1)) {}
};

/// The window generic of a pool: loops (n, c, oh, kh, kw, ow) over the
/// input padded with `fill`, read through an affine map; `body` combines an
/// element (a[0]) into the accumulator (a[1]).
Value poolReduce(Lowering &l, const PoolShape &s, Value x, Value init,
                 double fill, Body body) {
  Value xp = padded(l, x, {0, 0, s.ph, s.pw}, {0, 0, s.ph, s.pw}, fill);
  auto d = [&](unsigned i) { return l.b.getAffineDimExpr(i); };
  AffineMap read =
      map(l.b, 6, {d(0), d(1), d(2) * s.sh + d(3), d(5) * s.sw + d(4)});
  return generic(l, init, {xp}, {read}, {s.kh, s.kw}, body);
}

/// Each window's maximum and where it is: its first maximum in row-major
/// window order (as PyTorch), as the window-local position kh * KW + kw.
/// The forward pass and the gradient build the same op, so that CSE leaves
/// one in a training step. Padding holds -inf, never chosen over an element
/// (the value propagates NaN, as PyTorch's).
linalg::GenericOp windowArgmax(Lowering &l, const PoolShape &s, Value x,
                               RankedTensorType outType) {
  auto idxType = RankedTensorType::get(outType.getShape(), l.b.getI64Type());
  SmallVector<Value> dynamic = l.dynamicSizes(outType, {x});
  double lowest = -std::numeric_limits<float>::infinity();
  Value best = l.filled(outType, dynamic, l.f32(lowest));
  Value where =
      l.b.create<linalg::FillOp>(l.loc,
                                 ValueRange{l.b.create<arith::ConstantOp>(
                                     l.loc, l.b.getI64IntegerAttr(-1))},
                                 ValueRange{l.empty(idxType, dynamic)})
          .getResult(0);
  Value xp = padded(l, x, {0, 0, s.ph, s.pw}, {0, 0, s.ph, s.pw}, lowest);
  // Loops (n, c, oh, kh, kw, ow), as `generic` orders windows.
  auto d = [&](unsigned i) { return l.b.getAffineDimExpr(i); };
  // The window's sizes come from a tensor of its shape, never read.
  Value window = l.b.create<tensor::EmptyOp>(
      l.loc, ArrayRef<int64_t>{s.kh, s.kw}, l.b.getF32Type());
  SmallVector<AffineMap> maps = {
      map(l.b, 6, {d(0), d(1), d(2) * s.sh + d(3), d(5) * s.sw + d(4)}),
      dimsMap(l.b, 6, {3, 4}), dimsMap(l.b, 6, {0, 1, 2, 5}),
      dimsMap(l.b, 6, {0, 1, 2, 5})};
  SmallVector<utils::IteratorType> iters(6, utils::IteratorType::parallel);
  iters[3] = iters[4] = utils::IteratorType::reduction;
  return l.b.create<linalg::GenericOp>(
      l.loc, TypeRange{outType, idxType}, ValueRange{xp, window},
      ValueRange{best, where}, maps, iters,
      [&](OpBuilder &b, Location loc, ValueRange a) {
        IndexMath m{b, loc};
        Value local = b.create<arith::IndexCastOp>(
            loc, b.getI64Type(), m.add(m.mul(m.index(3), s.kw), m.index(4)));
        // a: the element, the window's (unread) one, max so far, where.
        Value none = b.create<arith::CmpIOp>(
            loc, arith::CmpIPredicate::slt, a[3],
            b.create<arith::ConstantOp>(loc, b.getI64IntegerAttr(0)));
        Value above =
            b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGT, a[0], a[2]);
        Value take = b.create<arith::OrIOp>(loc, none, above);
        b.create<linalg::YieldOp>(
            loc, ValueRange{b.create<arith::MaximumFOp>(loc, a[2], a[0]),
                            b.create<arith::SelectOp>(loc, take, local, a[3])});
      });
}

struct MaxPoolPattern : public MassPattern<MaxPoolOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(MaxPoolOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    PoolShape s(op, tensorType(op.getInput()), type);
    return SmallVector<Value>{
        windowArgmax(l, s, op.getInput(), type).getResult(0)};
  }
};

struct AvgPoolPattern : public MassPattern<AvgPoolOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(AvgPoolOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    PoolShape s(op, tensorType(op.getInput()), type);
    SmallVector<Value> dynamic = l.dynamicSizes(type, {op.getInput()});
    Value sum = poolReduce(l, s, op.getInput(),
                           l.filled(type, dynamic, l.f32(0)), 0.0, addBody);
    // Padding counts (count_include_pad): every window has KH * KW.
    double area = static_cast<double>(s.kh * s.kw);
    return SmallVector<Value>{l.elementwise(
        type, {sum}, [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
          return b.create<arith::DivFOp>(loc, a[0], cst(b, loc, area));
        })};
  }
};

/// For input position (loops 0-3) and window position (loops 4, 5): the
/// output position whose window holds it there, and whether there is one.
std::pair<Value, Value> windowOwner(IndexMath &m, const PoolShape &s,
                                    Value &oh) {
  auto [h, vh] = target(m, m.index(2), m.index(4), s.sh, s.ph, 1, s.oh);
  auto [w, vw] = target(m, m.index(3), m.index(5), s.sw, s.pw, 1, s.ow);
  oh = h;
  return {w, m.both(vh, vw)};
}

struct AvgPoolGradPattern : public MassPattern<AvgPoolGradOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(AvgPoolGradOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    PoolShape s(op, type, tensorType(op.getGrad()));
    Value init = l.filled(type, l.dynamicSizes(type, {op.getGrad()}), l.f32(0));
    double area = static_cast<double>(s.kh * s.kw);
    return SmallVector<Value>{generic(
        l, init, {}, {}, {s.kh, s.kw},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          IndexMath m{b, loc, /*window=*/true};
          Value oh;
          auto [ow, valid] = windowOwner(m, s, oh);
          Value v = b.create<tensor::ExtractOp>(
              loc, op.getGrad(), ValueRange{m.index(0), m.index(1), oh, ow});
          v = b.create<arith::DivFOp>(loc, v, cst(b, loc, area));
          v = b.create<arith::SelectOp>(loc, valid, v, cst(b, loc, 0.0));
          return Value(b.create<arith::AddFOp>(loc, a.back(), v));
        })};
  }
};

struct MaxPoolGradPattern : public MassPattern<MaxPoolGradOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(MaxPoolGradOp op,
                                      Lowering &l) const override {
    auto type = tensorType(op.getResult());
    auto outType = tensorType(op.getGrad());
    PoolShape s(op, type, outType);
    Value x = op.getInput();
    auto argmax = windowArgmax(l, s, x, outType);
    Value argmaxes = argmax.getResult(1);
    if (s.kh == s.sh && s.kw == s.sw && s.ph == 0 && s.pw == 0) {
      // Windows that tile the input: each element has at most one, at
      // (h / k, w / k), and an elementwise pass routes dy to the maxima.
      // Rows and columns past the last window get zero.
      int64_t hc = s.oh * s.sh, wc = s.ow * s.sw;
      auto coveredType = RankedTensorType::get(
          {type.getDimSize(0), s.c, hc, wc}, l.b.getF32Type());
      auto d = [&](unsigned i) { return l.b.getAffineDimExpr(i); };
      AffineMap owner =
          map(l.b, 4, {d(0), d(1), d(2).floorDiv(s.sh), d(3).floorDiv(s.sw)});
      Value routed =
          generic(l, l.empty(coveredType, l.dynamicSizes(coveredType, {x})),
                  {argmaxes, op.getGrad()}, {owner, owner}, {},
                  [&](OpBuilder &b, Location loc, ValueRange a) {
                    IndexMath m{b, loc};
                    Value self = b.create<arith::IndexCastOp>(
                        loc, b.getI64Type(),
                        m.add(m.mul(m.rem(m.index(2), s.sh), s.kw),
                              m.rem(m.index(3), s.sw)));
                    Value hit = b.create<arith::CmpIOp>(
                        loc, arith::CmpIPredicate::eq, a[0], self);
                    return Value(b.create<arith::SelectOp>(loc, hit, a[1],
                                                           cst(b, loc, 0.0)));
                  });
      if (hc == s.h && wc == s.w)
        return SmallVector<Value>{routed};
      Value zeros = l.filled(type, l.dynamicSizes(type, {x}), l.f32(0));
      SmallVector<OpFoldResult> offsets(4, l.b.getIndexAttr(0)),
          strides(4, l.b.getIndexAttr(1));
      SmallVector<OpFoldResult> sizes = {
          OpFoldResult(l.b.create<tensor::DimOp>(l.loc, x, 0)),
          l.b.getIndexAttr(s.c), l.b.getIndexAttr(hc), l.b.getIndexAttr(wc)};
      return SmallVector<Value>{l.b.create<tensor::InsertSliceOp>(
          l.loc, routed, zeros, offsets, sizes, strides)};
    }
    Value init = l.filled(type, l.dynamicSizes(type, {x}), l.f32(0));
    return SmallVector<Value>{generic(
        l, init, {}, {}, {s.kh, s.kw},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          IndexMath m{b, loc, /*window=*/true};
          Value oh;
          auto [ow, valid] = windowOwner(m, s, oh);
          SmallVector<Value> at = {m.index(0), m.index(1), oh, ow};
          Value chosen = b.create<tensor::ExtractOp>(loc, argmaxes, at);
          Value self = b.create<arith::IndexCastOp>(
              loc, b.getI64Type(), m.add(m.mul(m.index(4), s.kw), m.index(5)));
          Value hit =
              m.both(valid, b.create<arith::CmpIOp>(
                                loc, arith::CmpIPredicate::eq, chosen, self));
          Value v = b.create<tensor::ExtractOp>(loc, op.getGrad(), at);
          v = b.create<arith::SelectOp>(loc, hit, v, cst(b, loc, 0.0));
          return Value(b.create<arith::AddFOp>(loc, a.back(), v));
        })};
  }
};

//===----------------------------------------------------------------------===//
// Batch norm and dropout
//===----------------------------------------------------------------------===//

/// The map from x's loops to its channel (axis 1).
AffineMap channelMap(OpBuilder &b, unsigned rank) {
  return dimsMap(b, rank, {1});
}

/// Per channel: the sum over every other axis of `body`'s value for each
/// element of x (inputs: x's element, then each of `perChannel`'s). The
/// channel is the outermost loop (threads split the channels); the last
/// axes are summed last, from partial sums per position along them (per
/// image position when the partial sums stay small, else per column): the
/// innermost loop then walks rows (vectorised) instead of adding into one
/// accumulator in memory.
Value channelSum(Lowering &l, Value x, ValueRange perChannel, Body body) {
  auto type = tensorType(x);
  unsigned rank = type.getRank();
  // Loops: channel, batch, then the image axes ([N, C]: batch, channel, so
  // that rows of channels vectorise).
  bool hasImage = rank > 2;
  SmallVector<unsigned> order =
      hasImage ? SmallVector<unsigned>{1, 0} : SmallVector<unsigned>{0, 1};
  unsigned channel = hasImage ? 0 : 1;
  for (unsigned d = 2; d < rank; ++d)
    order.push_back(d);
  unsigned keptAxes = 0;
  if (rank > 2 && !type.isDynamicDim(rank - 1)) {
    keptAxes = 1;
    int64_t image = 1;
    for (unsigned d = 1; d < rank; ++d)
      image =
          type.isDynamicDim(d) || image < 0 ? -1 : image * type.getDimSize(d);
    if (image > 0 && image <= 65536)
      keptAxes = rank - 2;
  }
  SmallVector<int64_t> shape = {type.getDimSize(1)};
  SmallVector<unsigned> kept = {channel};
  for (unsigned d = rank - keptAxes; d < rank; ++d) {
    shape.push_back(type.getDimSize(d));
    kept.push_back(d);
  }
  auto outType = RankedTensorType::get(shape, type.getElementType());
  SmallVector<Value> ins = {x};
  ins.append(perChannel.begin(), perChannel.end());
  SmallVector<AffineMap> maps = {dimsMap(l.b, rank, order)};
  maps.append(perChannel.size(), dimsMap(l.b, rank, {channel}));
  maps.push_back(dimsMap(l.b, rank, kept));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::reduction);
  for (unsigned d : kept)
    iters[d] = utils::IteratorType::parallel;
  Value sums =
      l.b.create<linalg::GenericOp>(
             l.loc, outType, ins, l.filled(outType, {}, l.f32(0)), maps, iters,
             [&](OpBuilder &b, Location loc, ValueRange a) {
               Value v = body(b, loc, a.drop_back());
               b.create<linalg::YieldOp>(
                   loc, ValueRange{b.create<arith::AddFOp>(loc, a.back(), v)});
             })
          .getResult(0);
  if (keptAxes == 0)
    return sums;
  return l.reduce(sums, llvm::to_vector(llvm::seq<int64_t>(1, 1 + keptAxes)),
                  l.f32(0), addBody);
}

struct BatchNormPattern : public MassPattern<BatchNormOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(BatchNormOp op,
                                      Lowering &l) const override {
    Value x = op.getInput();
    auto type = tensorType(x);
    auto vecType = tensorType(op.getWeight());
    unsigned rank = type.getRank();
    double eps = op.getEps().convertToDouble(),
           momentum = op.getMomentum().convertToDouble();
    auto perChannel = [&](ValueRange ins, Body body) {
      return l.elementwise(vecType, ins, body);
    };
    Value mean, invstd, newMean, newVar;
    if (op.getTraining()) {
      SmallVector<int64_t> axes;
      for (unsigned i = 0; i < rank; ++i)
        if (i != 1)
          axes.push_back(i);
      // The statistics of the global batch (as SyncBatchNorm): the sums
      // and the count, then the squares, summed over the data-parallel
      // processes (on one process, as they are).
      int64_t channels = vecType.getDimSize(0);
      Value sum = channelSum(
          l, x, {}, [](OpBuilder &, Location, ValueRange a) { return a[0]; });
      auto packedType =
          RankedTensorType::get({channels + 1}, vecType.getElementType());
      Value packed = l.b.create<tensor::InsertSliceOp>(
          l.loc, sum, l.empty(packedType, {}),
          ArrayRef<OpFoldResult>{l.b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{l.b.getIndexAttr(channels)},
          ArrayRef<OpFoldResult>{l.b.getIndexAttr(1)});
      Value last = l.b.create<arith::ConstantIndexOp>(l.loc, channels);
      packed = l.b.create<tensor::InsertOp>(l.loc, l.count(x, axes), packed,
                                            ValueRange{last});
      Value global = l.b.create<SumRanksOp>(l.loc, packed);
      sum = l.b.create<tensor::ExtractSliceOp>(
          l.loc, vecType, global, ArrayRef<OpFoldResult>{l.b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{l.b.getIndexAttr(channels)},
          ArrayRef<OpFoldResult>{l.b.getIndexAttr(1)});
      Value n = l.b.create<tensor::ExtractOp>(l.loc, global, ValueRange{last});
      mean = perChannel({sum}, [&](OpBuilder &b, Location loc, ValueRange a) {
        return Value(b.create<arith::DivFOp>(loc, a[0], n));
      });
      // Two passes: the squares are taken about the mean.
      Value squares = l.b.create<SumRanksOp>(
          l.loc, channelSum(l, x, {mean},
                            [](OpBuilder &b, Location loc, ValueRange a) {
                              Value d =
                                  b.create<arith::SubFOp>(loc, a[0], a[1]);
                              return Value(b.create<arith::MulFOp>(loc, d, d));
                            }));
      invstd =
          perChannel({squares}, [&](OpBuilder &b, Location loc, ValueRange a) {
            Value var = b.create<arith::DivFOp>(loc, a[0], n);
            Value shifted = b.create<arith::AddFOp>(loc, var, cst(b, loc, eps));
            return Value(b.create<arith::DivFOp>(
                loc, cst(b, loc, 1.0), b.create<math::SqrtOp>(loc, shifted)));
          });
      auto blend = [&](OpBuilder &b, Location loc, Value old, Value stat) {
        Value kept =
            b.create<arith::MulFOp>(loc, old, cst(b, loc, 1 - momentum));
        Value moved = b.create<arith::MulFOp>(loc, stat, cst(b, loc, momentum));
        return Value(b.create<arith::AddFOp>(loc, kept, moved));
      };
      newMean = perChannel({op.getRunningMean(), mean},
                           [&](OpBuilder &b, Location loc, ValueRange a) {
                             return blend(b, loc, a[0], a[1]);
                           });
      // The running variance takes the unbiased estimate, n / (n - 1).
      newVar = perChannel(
          {op.getRunningVar(), squares},
          [&](OpBuilder &b, Location loc, ValueRange a) {
            Value dof = b.create<arith::SubFOp>(loc, n, cst(b, loc, 1.0));
            dof = b.create<arith::MaximumFOp>(loc, dof, cst(b, loc, 1.0));
            Value unbiased = b.create<arith::DivFOp>(loc, a[1], dof);
            return blend(b, loc, a[0], unbiased);
          });
    } else {
      mean = newMean = op.getRunningMean();
      newVar = op.getRunningVar();
      invstd =
          perChannel({newVar}, [&](OpBuilder &b, Location loc, ValueRange a) {
            Value shifted =
                b.create<arith::AddFOp>(loc, a[0], cst(b, loc, eps));
            return Value(b.create<arith::DivFOp>(
                loc, cst(b, loc, 1.0), b.create<math::SqrtOp>(loc, shifted)));
          });
    }
    // y = (x - mean) * invstd * weight + bias, one pass.
    Value y = l.normalize(x, mean, invstd, op.getWeight(), op.getBias(),
                          channelMap(l.b, rank), channelMap(l.b, rank));
    return SmallVector<Value>{y, mean, invstd, newMean, newVar};
  }
};

/// murmur3's 32-bit finaliser: every input bit flips each output bit with
/// probability about 1/2.
Value mix32(OpBuilder &b, Location loc, Value h) {
  auto i32 = [&](uint32_t v) {
    return b.create<arith::ConstantOp>(
        loc, b.getI32IntegerAttr(static_cast<int32_t>(v)));
  };
  auto shiftXor = [&](Value x, uint32_t by) {
    return b.create<arith::XOrIOp>(loc, x,
                                   b.create<arith::ShRUIOp>(loc, x, i32(by)));
  };
  h = shiftXor(h, 16);
  h = b.create<arith::MulIOp>(loc, h, i32(0x85ebca6bu));
  h = shiftXor(h, 13);
  h = b.create<arith::MulIOp>(loc, h, i32(0xc2b2ae35u));
  return shiftXor(h, 16);
}

struct DropoutPattern : public MassPattern<DropoutOp> {
  using MassPattern::MassPattern;
  FailureOr<SmallVector<Value>> lower(DropoutOp op,
                                      Lowering &l) const override {
    if (!op.getTraining() || !op.getSeed() || op.getP().isZero())
      return SmallVector<Value>{op.getInput()};
    auto type = tensorType(op.getInput());
    OpBuilder &b = l.b;
    Location loc = l.loc;
    auto i32 = [&](OpBuilder &b, uint32_t v) {
      return b.create<arith::ConstantOp>(
          loc, b.getI32IntegerAttr(static_cast<int32_t>(v)));
    };
    auto element = [&](int64_t k) {
      return b.create<tensor::ExtractOp>(
          loc, op.getSeed(),
          ValueRange{b.create<arith::ConstantIndexOp>(loc, k)});
    };
    Value seed = element(0);
    Value off = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, seed,
                                        i32(b, 0));
    // The position of this slice's first element in the global batch: the
    // first row times the elements per row (per sample, whatever the
    // layout of a sample's elements after it). One 0-d op computes it (on
    // a GPU a kernel: the division reads the seed, which lives there).
    Value elements = b.create<arith::ConstantIndexOp>(loc, 1);
    for (int64_t d = 0; d < type.getRank(); ++d)
      elements = b.create<arith::MulIOp>(
          loc, elements, b.create<tensor::DimOp>(loc, op.getInput(), d));
    elements = b.create<arith::IndexCastOp>(loc, b.getI64Type(), elements);
    MLIRContext *ctx = b.getContext();
    Value first =
        b.create<linalg::GenericOp>(
             loc, TypeRange{RankedTensorType::get({}, b.getI32Type())},
             ValueRange{op.getSeed(), op.getSeed()},
             ValueRange{b.create<tensor::EmptyOp>(loc, ArrayRef<int64_t>{},
                                                  b.getI32Type())},
             ArrayRef<AffineMap>{
                 AffineMap::get(0, 0, b.getAffineConstantExpr(1), ctx),
                 AffineMap::get(0, 0, b.getAffineConstantExpr(2), ctx),
                 AffineMap::get(0, 0, ctx)},
             ArrayRef<utils::IteratorType>{},
             [&](OpBuilder &b, Location loc, ValueRange a) {
               Type i64 = b.getI64Type();
               Value rows = b.create<arith::ExtSIOp>(
                   loc, i64, b.create<arith::MaxSIOp>(loc, a[1], i32(b, 1)));
               Value perRow = b.create<arith::TruncIOp>(
                   loc, b.getI32Type(),
                   b.create<arith::DivUIOp>(loc, elements, rows));
               b.create<linalg::YieldOp>(
                   loc, ValueRange{b.create<arith::MulIOp>(loc, a[0], perRow)});
             })
            .getResult(0);
    // The stream's key: the seed and the dropout's number, mixed.
    Value key =
        mix32(b, loc,
              b.create<arith::AddIOp>(
                  loc, b.create<arith::MulIOp>(loc, seed, i32(b, 0x9e3779b9u)),
                  i32(b, static_cast<uint32_t>(op.getStream() * 0x632be5abu))));
    double p = op.getP().convertToDouble();
    uint32_t threshold =
        static_cast<uint32_t>(std::min(p * 4294967296.0, 4294967295.0));
    float scale = static_cast<float>(1.0 / (1.0 - p));
    // The dropout: `first` read as a 0-d input.
    return SmallVector<Value>{l.elementwise(
        type, {op.getInput(), first},
        [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
          // The element's position in row-major order in the global batch
          // (mod 2^32).
          Value pos = i32(b, 0);
          for (int64_t d = 0; d < type.getRank(); ++d) {
            if (d)
              pos = b.create<arith::MulIOp>(
                  loc, pos, i32(b, static_cast<uint32_t>(type.getDimSize(d))));
            Value i = b.create<arith::IndexCastOp>(
                loc, b.getI32Type(), b.create<linalg::IndexOp>(loc, d));
            pos = b.create<arith::AddIOp>(loc, pos, i);
          }
          pos = b.create<arith::AddIOp>(loc, pos, a[1]);
          Value h = mix32(
              b, loc,
              b.create<arith::XOrIOp>(
                  loc, b.create<arith::MulIOp>(loc, pos, i32(b, 0xcc9e2d51u)),
                  key));
          Value keep = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::uge,
                                               h, i32(b, threshold));
          Value kept = b.create<arith::MulFOp>(loc, a[0], cst(b, loc, scale));
          Value y =
              b.create<arith::SelectOp>(loc, keep, kept, cst(b, loc, 0.0));
          return b.create<arith::SelectOp>(loc, off, a[0], y);
        })};
  }
};

} // namespace

void mass::lowering::populateVisionPatterns(RewritePatternSet &patterns) {
  patterns.add<Conv2dPattern, Conv2dGradWeightPattern, Conv2dGradInputPattern,
               MaxPoolPattern, AvgPoolPattern, MaxPoolGradPattern,
               AvgPoolGradPattern, BatchNormPattern, DropoutPattern>(
      patterns.getContext());
}
