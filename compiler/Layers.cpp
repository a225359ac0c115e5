//===- Layers.cpp - The built-in layers, ops, losses and metrics ----------===//
//
// Each entry checks its arguments, infers its result shape (errors name the
// shapes, at the call's source location), creates its parameters with
// PyTorch's default initialisation, and emits mass ops.
//
//===----------------------------------------------------------------------===//

#include "compiler/Elaborator.h"

#include "dialects/Mass/MassOps.h"

#include "llvm/Support/Casting.h"

#include <cmath>
#include <type_traits>

using namespace mass;
using mlir::failed;
using mlir::failure;
using mlir::FailureOr;

//===----------------------------------------------------------------------===//
// Argument access
//===----------------------------------------------------------------------===//

const ast::Loc &Args::argLoc(llvm::StringRef name) const {
  return has(name) ? get(name).loc : call.getLoc();
}

FailureOr<mlir::Value> Args::tensor(llvm::StringRef name) const {
  const Value &v = get(name);
  if (!v.isTensor()) {
    elab.error(v.loc) << call.callee << ": '" << name
                      << "' must be a tensor, got " << v.describe();
    return failure();
  }
  return v.tensor;
}

FailureOr<int64_t> Args::integer(llvm::StringRef name, int64_t dflt) const {
  if (!has(name))
    return dflt;
  const Value &v = get(name);
  std::optional<int64_t> i = v.asInteger();
  if (!i) {
    elab.error(v.loc) << call.callee << ": '" << name
                      << "' must be an integer between " << -kMaxDim << " and "
                      << kMaxDim << ", got " << v.describe();
    return failure();
  }
  return *i;
}

FailureOr<double> Args::number(llvm::StringRef name, double dflt) const {
  if (!has(name))
    return dflt;
  const Value &v = get(name);
  if (!v.isNumber()) {
    elab.error(v.loc) << call.callee << ": '" << name
                      << "' must be a number, got " << v.describe();
    return failure();
  }
  return v.number;
}

FailureOr<bool> Args::boolean(llvm::StringRef name, bool dflt) const {
  if (!has(name))
    return dflt;
  const Value &v = get(name);
  if (v.kind != Value::Kind::Bool) {
    elab.error(v.loc) << call.callee << ": '" << name
                      << "' must be true or false, got " << v.describe();
    return failure();
  }
  return v.boolean;
}

FailureOr<std::string>
Args::choice(llvm::StringRef name,
             llvm::ArrayRef<llvm::StringRef> choices) const {
  if (!has(name))
    return choices.front().str();
  const Value &v = get(name);
  if (v.kind == Value::Kind::String && llvm::is_contained(choices, v.str))
    return v.str;
  auto diag = elab.error(v.loc);
  diag << call.callee << ": '" << name << "' must be ";
  for (size_t i = 0; i < choices.size(); ++i)
    diag << (i == 0                    ? ""
             : i + 1 == choices.size() ? " or "
                                       : ", ")
         << "\"" << choices[i] << "\"";
  if (v.kind == Value::Kind::String)
    diag << ", got \"" << v.str << "\"";
  else
    diag << ", got " << v.describe();
  return failure();
}

FailureOr<std::vector<int64_t>> Args::axes(llvm::StringRef name,
                                           int64_t rank) const {
  std::vector<int64_t> out;
  if (!has(name)) {
    for (int64_t i = 0; i < rank; ++i)
      out.push_back(i);
    return out;
  }
  const Value &v = get(name);
  std::vector<Value> items = v.isSeq() ? v.elements : std::vector<Value>{v};
  for (const Value &item : items) {
    std::optional<int64_t> axis = item.asInteger();
    if (!axis) {
      elab.error(item.loc) << call.callee
                           << ": an axis must be an integer, got "
                           << item.describe();
      return failure();
    }
    out.push_back(*axis);
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

static llvm::ArrayRef<int64_t> shapeOf(mlir::Value v) {
  return mlir::cast<mlir::RankedTensorType>(v.getType()).getShape();
}

static bool isF32(mlir::Value v) {
  return mlir::cast<mlir::RankedTensorType>(v.getType())
      .getElementType()
      .isF32();
}

/// The f32 tensor argument `name`.
static FailureOr<mlir::Value> f32Arg(Elaborator &e, const Args &a,
                                     llvm::StringRef name) {
  FailureOr<mlir::Value> v = a.tensor(name);
  if (failed(v))
    return failure();
  if (!isF32(*v)) {
    e.error(a.get(name).loc)
        << a.getCall().callee << ": '" << name
        << "' must be an f32 tensor, got " << a.get(name).describe();
    return failure();
  }
  return v;
}

static Value result(mlir::Value v, const Args &a) {
  return Value::ofTensor(v, a.loc());
}

//===----------------------------------------------------------------------===//
// Layers with parameters
//===----------------------------------------------------------------------===//

static FailureOr<Value> buildDense(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<int64_t> out = a.integer("out", 0);
  FailureOr<bool> hasBias = a.boolean("bias", true);
  if (failed(x) || failed(out) || failed(hasBias))
    return failure();
  if (*out < 1) {
    e.error(a.get("out").loc) << "dense: 'out' must be positive, got " << *out;
    return failure();
  }
  llvm::ArrayRef<int64_t> in = shapeOf(*x);
  if (in.empty() || mlir::ShapedType::isDynamic(in.back())) {
    e.error(a.get("x").loc)
        << "dense acts on the last axis, which must have a static size; got "
        << a.get("x").describe();
    return failure();
  }
  // With `share`, the weight is an earlier parameter [out, in] (GPT-2's
  // tied output layer): the call holds a parameter only if it has a bias.
  mlir::Value w;
  if (a.has("share")) {
    const Value &share = a.get("share");
    if (share.kind != Value::Kind::String) {
      e.error(share.loc) << "dense: 'share' names a parameter, as in share: "
                            "\"wte.weight\"; got "
                         << share.describe();
      return failure();
    }
    w = e.sharedParam(share.str, share.loc, "dense");
    if (!w)
      return failure();
    if (shapeOf(w) != llvm::ArrayRef<int64_t>{*out, in.back()}) {
      e.error(share.loc) << "dense: '" << share.str << "' is "
                         << formatShape(shapeOf(w)) << "; a layer from "
                         << in.back() << " to " << *out
                         << " features shares a weight [" << *out << ", "
                         << in.back() << "]";
      return failure();
    }
  }
  if ((!w || *hasBias) && failed(e.beginParamCall(a.loc(), "dense")))
    return failure();
  // torch.nn.Linear: kaiming_uniform(a=sqrt(5)) for the weight and the same
  // bound for the bias, 1/sqrt(fan_in).
  Init init{Init::Kind::Uniform,
            1.0 / std::sqrt(static_cast<double>(in.back()))};
  if (!w)
    w = e.addParam({*out, in.back()}, "weight", init, a.loc());
  mlir::Value b;
  if (*hasBias)
    b = e.addParam({*out}, "bias", init, a.loc());
  llvm::ArrayRef<int64_t> biasShape =
      b ? shapeOf(b) : llvm::ArrayRef<int64_t>();
  if (failed(e.check(denseShape(in, shapeOf(w), b ? &biasShape : nullptr),
                     a.loc())))
    return failure();
  return result(e.getBuilder().create<DenseOp>(e.location(a.loc()), *x, w, b),
                a);
}

/// A window size given as one number for both axes.
static FailureOr<int64_t> windowArg(Elaborator &e, const Args &a,
                                    llvm::StringRef name, int64_t dflt,
                                    int64_t least) {
  FailureOr<int64_t> v = a.integer(name, dflt);
  if (failed(v))
    return failure();
  if (*v < least) {
    e.error(a.argLoc(name)) << a.getCall().callee << ": '" << name
                            << "' must be at least " << least << ", got " << *v;
    return failure();
  }
  return v;
}

static FailureOr<mlir::Value> nchwArg(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  if (failed(x))
    return failure();
  if (shapeOf(*x).size() != 4) {
    e.error(a.get("x").loc)
        << a.getCall().callee << " expects an NCHW tensor [B, C, H, W], got "
        << a.get("x").describe();
    return failure();
  }
  return x;
}

static FailureOr<Value> buildConv2d(Elaborator &e, const Args &a) {
  if (!a.has("kernel")) {
    e.error(a.loc())
        << "conv2d needs `kernel:`, as in conv2d(x, 32, kernel: 3)";
    return failure();
  }
  FailureOr<mlir::Value> x = nchwArg(e, a);
  FailureOr<int64_t> out = windowArg(e, a, "out", 0, 1);
  FailureOr<int64_t> kernel = windowArg(e, a, "kernel", 0, 1);
  FailureOr<int64_t> stride = windowArg(e, a, "stride", 1, 1);
  FailureOr<int64_t> pad = windowArg(e, a, "pad", 0, 0);
  FailureOr<int64_t> dilation = windowArg(e, a, "dilation", 1, 1);
  FailureOr<int64_t> groups = windowArg(e, a, "groups", 1, 1);
  FailureOr<bool> hasBias = a.boolean("bias", true);
  if (failed(x) || failed(out) || failed(kernel) || failed(stride) ||
      failed(pad) || failed(dilation) || failed(groups) || failed(hasBias))
    return failure();
  llvm::ArrayRef<int64_t> in = shapeOf(*x);
  if (!mlir::ShapedType::isDynamic(in[1]) && in[1] % *groups) {
    e.error(a.argLoc("groups"))
        << "conv2d: groups (" << *groups << ") must divide the input's "
        << in[1] << " channels";
    return failure();
  }
  Window window;
  window.stride = {*stride, *stride};
  window.padding = {*pad, *pad};
  window.dilation = {*dilation, *dilation};
  int64_t perGroup = in[1] / *groups;
  Shape weightShape = {*out, perGroup, *kernel, *kernel};
  if (failed(e.check(conv2dShape(in, weightShape, window, *groups), a.loc())) ||
      failed(e.beginParamCall(a.loc(), "conv2d")))
    return failure();
  // torch.nn.Conv2d: kaiming_uniform(a=sqrt(5)) for the weight and the same
  // bound for the bias, 1/sqrt(fan_in).
  Init init{Init::Kind::Uniform,
            1.0 / std::sqrt(static_cast<double>(perGroup * *kernel * *kernel))};
  mlir::Value w = e.addParam(weightShape, "weight", init, a.loc());
  mlir::OpBuilder &b = e.getBuilder();
  mlir::Location loc = e.location(a.loc());
  mlir::Value y = b.create<Conv2dOp>(loc, *x, w, window.stride, window.padding,
                                     window.dilation, *groups);
  if (*hasBias) {
    mlir::Value bias = e.addParam({*out}, "bias", init, a.loc());
    mlir::Value column =
        b.create<ReshapeOp>(loc, e.f32Tensor({*out, 1, 1}), bias);
    y = b.create<AddOp>(loc, y, column);
  }
  return result(y, a);
}

template <typename OpT>
static FailureOr<Value> buildPool(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = nchwArg(e, a);
  FailureOr<int64_t> kernel = windowArg(e, a, "k", 0, 1);
  if (failed(x) || failed(kernel))
    return failure();
  FailureOr<int64_t> stride = windowArg(e, a, "stride", *kernel, 1);
  FailureOr<int64_t> pad = windowArg(e, a, "pad", 0, 0);
  if (failed(stride) || failed(pad))
    return failure();
  Window window;
  window.kernel = {*kernel, *kernel};
  window.stride = {*stride, *stride};
  window.padding = {*pad, *pad};
  if (failed(
          e.check(poolShape(a.getCall().callee, shapeOf(*x), window), a.loc())))
    return failure();
  return result(e.getBuilder().create<OpT>(e.location(a.loc()), *x,
                                           window.kernel, window.stride,
                                           window.padding),
                a);
}

/// The mean over H and W, keeping them as size 1: [B, C, 1, 1].
static FailureOr<Value> buildGlobalAvgPool(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = nchwArg(e, a);
  if (failed(x))
    return failure();
  return result(e.getBuilder().create<MeanOp>(e.location(a.loc()), *x,
                                              llvm::ArrayRef<int64_t>{2, 3},
                                              /*keepdim=*/true),
                a);
}

static FailureOr<Value> buildBatchNorm(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<double> momentum = a.number("momentum", 0.1);
  FailureOr<double> eps = a.number("eps", 1e-5);
  if (failed(x) || failed(momentum) || failed(eps))
    return failure();
  llvm::ArrayRef<int64_t> in = shapeOf(*x);
  if (in.size() < 2 || mlir::ShapedType::isDynamic(in[1])) {
    e.error(a.get("x").loc) << "batchnorm normalises axis 1 of [B, C, ...], "
                               "which needs a static size; got "
                            << a.get("x").describe();
    return failure();
  }
  if (*momentum < 0 || *momentum > 1) {
    e.error(a.argLoc("momentum"))
        << "batchnorm: momentum must lie in [0, 1], got " << *momentum;
    return failure();
  }
  if (*eps <= 0) {
    e.error(a.argLoc("eps")) << "batchnorm: eps must be positive, got " << *eps;
    return failure();
  }
  if (failed(e.beginParamCall(a.loc(), "batchnorm")))
    return failure();
  // torch.nn.BatchNorm2d's order and initial values.
  int64_t c = in[1];
  mlir::Value w = e.addParam({c}, "weight", Init{Init::Kind::Ones}, a.loc());
  mlir::Value bias = e.addParam({c}, "bias", Init{Init::Kind::Zeros}, a.loc());
  mlir::Value mean =
      e.addBuffer({c}, "running_mean", Init{Init::Kind::Zeros}, a.loc());
  mlir::Value var =
      e.addBuffer({c}, "running_var", Init{Init::Kind::Ones}, a.loc());
  mlir::OpBuilder &b = e.getBuilder();
  mlir::Type vec = w.getType();
  auto op = b.create<BatchNormOp>(
      e.location(a.loc()), mlir::TypeRange{x->getType(), vec, vec, vec, vec},
      *x, w, bias, mean, var, b.getF64FloatAttr(*eps),
      b.getF64FloatAttr(*momentum),
      /*training=*/nullptr);
  return result(op.getResult(), a);
}

static FailureOr<Init> parseInit(Elaborator &e, const ast::KeywordArg &initArg,
                                 llvm::ArrayRef<int64_t> dims);

/// `embedding(ids, vocab: V, dim: D, init: ...)`: weight [V, D], N(0, 1) as
/// torch.nn.Embedding unless `init` says otherwise. The ids input, when the
/// ids are one, carries the bound the runtime checks its data against.
static FailureOr<Value> buildEmbedding(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> ids = a.tensor("ids");
  FailureOr<int64_t> vocab = a.integer("vocab", 0);
  FailureOr<int64_t> dim = a.integer("dim", 0);
  if (failed(ids) || failed(vocab) || failed(dim))
    return failure();
  if (isF32(*ids)) {
    e.error(a.get("ids").loc) << "embedding: ids must be an i32 tensor, got "
                              << a.get("ids").describe();
    return failure();
  }
  for (auto [name, v] :
       {std::pair<llvm::StringRef, int64_t>{"vocab", *vocab}, {"dim", *dim}})
    if (v < 1) {
      e.error(a.argLoc(name))
          << "embedding: needs `" << name << ":`, a positive size"
          << (a.has(name) ? ", got " + std::to_string(v) : std::string());
      return failure();
    }
  Init init{Init::Kind::Normal, 1.0};
  if (const ast::KeywordArg *kw = a.getCall().findKeyword("init")) {
    FailureOr<Init> parsed = parseInit(e, *kw, {*vocab, *dim});
    if (failed(parsed))
      return failure();
    init = *parsed;
  }
  if (failed(e.check(embeddingShape(shapeOf(*ids), {*vocab, *dim}), a.loc())) ||
      failed(e.beginParamCall(a.loc(), "embedding")))
    return failure();
  mlir::Value w = e.addParam({*vocab, *dim}, "weight", init, a.loc());
  e.boundIds(*ids, *vocab);
  return result(
      e.getBuilder().create<EmbeddingOp>(e.location(a.loc()), *ids, w), a);
}

/// `attention(query, key, value, heads: H, causal: false)` with
/// nn.MultiheadAttention's parameters and initialisation: in_proj_weight
/// [3D, D] (xavier_uniform; rows for q, then k, then v), in_proj_bias [3D]
/// (zeros), out_proj.weight [D, D] (Linear's), out_proj.bias [D] (zeros).
static FailureOr<Value> buildAttention(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> q = f32Arg(e, a, "q");
  FailureOr<mlir::Value> k = f32Arg(e, a, "k");
  FailureOr<mlir::Value> v = f32Arg(e, a, "v");
  FailureOr<int64_t> heads = a.integer("heads", 0);
  FailureOr<bool> causal = a.boolean("causal", false);
  if (failed(q) || failed(k) || failed(v) || failed(heads) || failed(causal))
    return failure();
  if (!a.has("heads")) {
    e.error(a.loc()) << "attention: needs `heads:`, the number of heads";
    return failure();
  }
  if (failed(e.check(attentionShape(shapeOf(*q), shapeOf(*k), shapeOf(*v),
                                    *heads, *causal),
                     a.loc())) ||
      failed(e.beginParamCall(a.loc(), "attention")))
    return failure();
  int64_t d = shapeOf(*q).back();
  Init inProj{Init::Kind::Uniform, std::sqrt(6.0 / static_cast<double>(4 * d))};
  Init linear{Init::Kind::Uniform, 1.0 / std::sqrt(static_cast<double>(d))};
  Init zeros{Init::Kind::Zeros};
  mlir::Value w = e.addParam({3 * d, d}, "in_proj_weight", inProj, a.loc());
  mlir::Value bias = e.addParam({3 * d}, "in_proj_bias", zeros, a.loc());
  mlir::Value outW = e.addParam({d, d}, "out_proj.weight", linear, a.loc());
  mlir::Value outB = e.addParam({d}, "out_proj.bias", zeros, a.loc());
  mlir::OpBuilder &b = e.getBuilder();
  mlir::Location loc = e.location(a.loc());
  // Self-attention (one tensor as query, key and value): one product with
  // the packed weight, whose columns [i D, (i + 1) D) are q, k and v.
  if (*q == *k && *k == *v) {
    mlir::Value qkv = b.create<DenseOp>(loc, *q, w, bias);
    auto attention = b.create<SelfAttentionOp>(loc, qkv, *heads, *causal);
    return result(b.create<DenseOp>(loc, attention.getResult(), outW, outB), a);
  }
  // Otherwise each projection takes rows [i D, (i + 1) D) of the packed
  // weight and bias.
  auto project = [&](mlir::Value x, int64_t i) -> mlir::Value {
    mlir::Value wi = b.create<SliceOp>(loc, e.f32Tensor({d, d}), w, 0, i * d);
    mlir::Value bi = b.create<SliceOp>(loc, e.f32Tensor({d}), bias, 0, i * d);
    return b.create<DenseOp>(loc, x, wi, bi);
  };
  mlir::Value pq = project(*q, 0), pk = project(*k, 1), pv = project(*v, 2);
  auto attention = b.create<AttentionOp>(loc, pq, pk, pv, *heads, *causal);
  return result(b.create<DenseOp>(loc, attention.getResult(), outW, outB), a);
}

static FailureOr<Value> buildLayerNorm(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<double> eps = a.number("eps", 1e-5);
  if (failed(x) || failed(eps))
    return failure();
  llvm::ArrayRef<int64_t> in = shapeOf(*x);
  if (in.size() < 2 || mlir::ShapedType::isDynamic(in.back())) {
    e.error(a.get("x").loc) << "layernorm normalises the last axis of [B, ..., "
                               "D], which needs a static size; got "
                            << a.get("x").describe();
    return failure();
  }
  if (*eps <= 0) {
    e.error(a.argLoc("eps")) << "layernorm: eps must be positive, got " << *eps;
    return failure();
  }
  if (failed(e.beginParamCall(a.loc(), "layernorm")))
    return failure();
  // torch.nn.LayerNorm's order and initial values.
  int64_t d = in.back();
  mlir::Value w = e.addParam({d}, "weight", Init{Init::Kind::Ones}, a.loc());
  mlir::Value bias = e.addParam({d}, "bias", Init{Init::Kind::Zeros}, a.loc());
  return result(e.getBuilder()
                    .create<LayerNormOp>(e.location(a.loc()), *x, w, bias, *eps)
                    .getResult(),
                a);
}

static FailureOr<Value> buildDropout(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<double> p = a.number("p", 0.5);
  if (failed(x) || failed(p))
    return failure();
  if (*p < 0 || *p >= 1) {
    e.error(a.argLoc("p")) << "dropout: p must lie in [0, 1), got " << *p;
    return failure();
  }
  mlir::OpBuilder &b = e.getBuilder();
  return result(b.create<DropoutOp>(e.location(a.loc()), x->getType(), *x,
                                    /*seed=*/mlir::Value(),
                                    b.getF64FloatAttr(*p),
                                    b.getI64IntegerAttr(e.nextStream()),
                                    /*training=*/nullptr),
                a);
}

/// An `init:` argument (its expression, unevaluated): zeros, ones,
/// xavier_uniform, kaiming_uniform (fans as torch.nn.init computes them for
/// `dims`), normal(std: s) or uniform(a: a).
static FailureOr<Init> parseInit(Elaborator &e, const ast::KeywordArg &initArg,
                                 llvm::ArrayRef<int64_t> dims) {
  std::string kind;
  const ast::CallExpr *initCall =
      llvm::dyn_cast<ast::CallExpr>(initArg.value.get());
  if (auto *name = llvm::dyn_cast<ast::NameExpr>(initArg.value.get()))
    kind = name->str();
  else if (initCall)
    kind = initCall->callee;
  // Fans as torch.nn.init computes them for a tensor [out, in, *receptive].
  auto fans = [&](int64_t &fanIn, int64_t &fanOut) -> mlir::LogicalResult {
    if (dims.size() < 2) {
      e.error(initArg.loc) << kind
                           << " needs a type of rank 2 or more to compute "
                              "fan-in and fan-out";
      return failure();
    }
    int64_t receptive = 1;
    for (size_t i = 2; i < dims.size(); ++i)
      receptive *= dims[i];
    fanIn = dims[1] * receptive;
    fanOut = dims[0] * receptive;
    return mlir::success();
  };
  Init init;
  if (kind == "zeros" && !initCall) {
    init.kind = Init::Kind::Zeros;
  } else if (kind == "ones" && !initCall) {
    init.kind = Init::Kind::Ones;
  } else if ((kind == "xavier_uniform" || kind == "kaiming_uniform") &&
             !initCall) {
    int64_t fanIn, fanOut;
    if (failed(fans(fanIn, fanOut)))
      return failure();
    init.kind = Init::Kind::Uniform;
    init.scale = kind == "xavier_uniform"
                     ? std::sqrt(6.0 / static_cast<double>(fanIn + fanOut))
                     : std::sqrt(6.0 / static_cast<double>(fanIn));
  } else if ((kind == "normal" || kind == "uniform") && initCall) {
    const char *key = kind == "normal" ? "std" : "a";
    const ast::KeywordArg *scale = initCall->findKeyword(key);
    if (!scale || initCall->kwargs.size() != 1 || !initCall->args.empty()) {
      e.error(initCall->getLoc()) << kind << " takes `" << key << ":`";
      return failure();
    }
    FailureOr<Value> v = e.eval(*scale->value);
    if (failed(v))
      return failure();
    if (!v->isNumber() || v->number < 0) {
      e.error(scale->loc) << kind << ": '" << key << "' must be a number >= 0";
      return failure();
    }
    init.kind = kind == "normal" ? Init::Kind::Normal : Init::Kind::Uniform;
    init.scale = v->number;
  } else {
    e.error(initArg.value->getLoc())
        << "unknown init; expected zeros, ones, normal(std: s), uniform(a: "
           "a), xavier_uniform or kaiming_uniform";
    return failure();
  }
  return init;
}

/// `param(f32[...], init: zeros | ones | xavier_uniform | kaiming_uniform |
/// normal(std: s) | uniform(a: a))`, named after its binding.
static FailureOr<Value> buildParam(Elaborator &e, const Args &a) {
  const ast::CallExpr &call = a.getCall();
  if (call.args.size() != 1) {
    e.error(call.getLoc()) << "param takes one type, as in "
                              "param(f32[8, 16], init: zeros)";
    return failure();
  }
  FailureOr<Value> type = e.eval(*call.args[0]);
  if (failed(type))
    return failure();
  if (type->kind != Value::Kind::Type) {
    e.error(type->loc) << "param: expected a type such as f32[8, 16], got "
                       << type->describe();
    return failure();
  }
  const ast::KeywordArg *initArg = nullptr;
  for (const ast::KeywordArg &kw : call.kwargs) {
    if (kw.key != "init") {
      e.error(kw.loc) << "param has no argument '" << kw.key
                      << "'; it takes a type and `init:`";
      return failure();
    }
    initArg = &kw;
  }
  if (!initArg) {
    e.error(call.getLoc()) << "param needs `init:` (zeros, ones, normal(std: "
                              "s), uniform(a: a), xavier_uniform or "
                              "kaiming_uniform)";
    return failure();
  }

  FailureOr<Init> init = parseInit(e, *initArg, type->dims);
  if (failed(init))
    return failure();
  if (failed(e.beginParamCall(call.getLoc(), "param")))
    return failure();
  return result(e.addParam(type->dims, "", *init, call.getLoc()), a);
}

//===----------------------------------------------------------------------===//
// Ops without parameters
//===----------------------------------------------------------------------===//

template <typename OpT>
static FailureOr<Value> buildUnary(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  if (failed(x))
    return failure();
  return result(e.getBuilder().create<OpT>(e.location(a.loc()), *x), a);
}

/// gelu(x) (the erf form, as torch's default) or gelu(x, approximate:
/// "tanh") (GPT-2's).
static FailureOr<Value> buildGelu(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<std::string> form = a.choice("approximate", {"none", "tanh"});
  if (failed(x) || failed(form))
    return failure();
  mlir::Location loc = e.location(a.loc());
  if (*form == "tanh")
    return result(e.getBuilder().create<GeluTanhOp>(loc, *x), a);
  return result(e.getBuilder().create<GeluOp>(loc, *x), a);
}

static FailureOr<Value> buildMatmul(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> lhs = f32Arg(e, a, "a");
  FailureOr<mlir::Value> rhs = f32Arg(e, a, "b");
  if (failed(lhs) || failed(rhs))
    return failure();
  if (failed(e.check(matmulShape(shapeOf(*lhs), shapeOf(*rhs)), a.loc())))
    return failure();
  return result(
      e.getBuilder().create<MatmulOp>(e.location(a.loc()), *lhs, *rhs), a);
}

template <typename OpT>
static FailureOr<Value> buildSoftmax(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<int64_t> axis = a.integer("axis", -1);
  if (failed(x) || failed(axis))
    return failure();
  if (!normalizeAxis(*axis, shapeOf(*x).size())) {
    e.error(a.argLoc("axis"))
        << a.getCall().callee << ": axis " << *axis << " is out of range for "
        << formatShape(shapeOf(*x));
    return failure();
  }
  return result(
      e.getBuilder().create<OpT>(e.location(a.loc()), *x,
                                 e.getBuilder().getI64IntegerAttr(*axis)),
      a);
}

template <typename OpT>
static FailureOr<Value> buildReduce(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<bool> keepdim = a.boolean("keepdim", false);
  if (failed(x) || failed(keepdim))
    return failure();
  FailureOr<std::vector<int64_t>> axes = a.axes("axis", shapeOf(*x).size());
  if (failed(axes))
    return failure();
  if (failed(
          e.check(reduceShape(shapeOf(*x), *axes, *keepdim), a.argLoc("axis"))))
    return failure();
  return result(
      e.getBuilder().create<OpT>(e.location(a.loc()), *x, *axes, *keepdim), a);
}

static FailureOr<Value> reshapeTo(Elaborator &e, const Args &a, mlir::Value x,
                                  llvm::ArrayRef<int64_t> target) {
  FailureOr<Shape> shape = e.check(reshapeShape(shapeOf(x), target), a.loc());
  if (failed(shape))
    return failure();
  return result(e.getBuilder().create<ReshapeOp>(e.location(a.loc()),
                                                 e.f32Tensor(*shape), x),
                a);
}

static FailureOr<Value> buildReshape(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<std::vector<int64_t>> target = a.axes("shape", 0);
  if (failed(x) || failed(target))
    return failure();
  if (!a.get("shape").isSeq()) {
    e.error(a.get("shape").loc) << "reshape: the shape must be a list such as "
                                   "[-1, 4, 7] (-1 is inferred)";
    return failure();
  }
  return reshapeTo(e, a, *x, *target);
}

static FailureOr<Value> buildFlatten(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  if (failed(x))
    return failure();
  llvm::ArrayRef<int64_t> shape = shapeOf(*x);
  if (shape.size() < 2) {
    e.error(a.loc()) << "flatten keeps the batch axis and needs rank 2 or "
                        "more, got "
                     << a.get("x").describe();
    return failure();
  }
  int64_t rest = 1;
  for (int64_t d : shape.drop_front())
    rest *= d;
  return reshapeTo(e, a, *x, {shape[0], rest});
}

static FailureOr<Value> buildTranspose(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> x = f32Arg(e, a, "x");
  FailureOr<std::vector<int64_t>> perm = a.axes("perm", 0);
  if (failed(x) || failed(perm))
    return failure();
  if (failed(e.check(transposeShape(shapeOf(*x), *perm), a.argLoc("perm"))))
    return failure();
  return result(
      e.getBuilder().create<TransposeOp>(e.location(a.loc()), *x, *perm), a);
}

static FailureOr<Value> buildConcat(Elaborator &e, const Args &a) {
  FailureOr<int64_t> axis = a.integer("axis", 1);
  if (failed(axis))
    return failure();
  if (a.rest().empty()) {
    e.error(a.loc()) << "concat: needs the tensors to join, as in "
                        "concat(a, b, axis: 1)";
    return failure();
  }
  llvm::SmallVector<mlir::Value> inputs;
  llvm::SmallVector<Shape> shapes;
  for (const Value &v : a.rest()) {
    if (!v.isTensor() || !isF32(v.tensor)) {
      e.error(v.loc) << "concat: each input must be an f32 tensor, got "
                     << v.describe();
      return failure();
    }
    inputs.push_back(v.tensor);
    shapes.emplace_back(shapeOf(v.tensor));
  }
  llvm::SmallVector<llvm::ArrayRef<int64_t>> refs(shapes.begin(), shapes.end());
  if (failed(e.check(concatShape(refs, *axis), a.loc())))
    return failure();
  return result(
      e.getBuilder().create<ConcatOp>(e.location(a.loc()), inputs, *axis), a);
}

//===----------------------------------------------------------------------===//
// Losses and metrics
//===----------------------------------------------------------------------===//

/// `logits [B, C]` and i32 class indices `[B]`, or a sequence's `logits
/// [B, T, C]` and `[B, T]`, seen as `[B * T, C]` and `[B * T]`.
static mlir::LogicalResult classifierArgs(Elaborator &e, const Args &a,
                                          mlir::Value &logits,
                                          mlir::Value &labels) {
  FailureOr<mlir::Value> l = f32Arg(e, a, "logits");
  FailureOr<mlir::Value> y = a.tensor("labels");
  if (failed(l) || failed(y))
    return failure();
  if (isF32(*y)) {
    e.error(a.get("labels").loc)
        << a.getCall().callee << ": labels must be i32 class indices, got "
        << a.get("labels").describe();
    return failure();
  }
  llvm::ArrayRef<int64_t> ls = shapeOf(*l), ys = shapeOf(*y);
  if (!ls.empty() && !mlir::ShapedType::isDynamic(ls.back()))
    e.boundIds(*y, ls.back());
  if (ls.size() >= 3 && ys.size() + 1 == ls.size() && ls.drop_back() == ys &&
      !mlir::ShapedType::isDynamic(ls.back())) {
    // A sequence: each position is a sample, as PyTorch on logits
    // [B * T, C] and labels [B * T].
    mlir::OpBuilder &b = e.getBuilder();
    mlir::Location loc = e.location(a.loc());
    int64_t dyn = mlir::ShapedType::kDynamic;
    logits = b.create<ReshapeOp>(loc, e.f32Tensor({dyn, ls.back()}), *l);
    labels = b.create<ReshapeOp>(
        loc, mlir::RankedTensorType::get({dyn}, b.getI32Type()), *y);
    return mlir::success();
  }
  if (failed(e.check(classifierShape(ls, ys), a.loc())))
    return failure();
  logits = *l;
  labels = *y;
  return mlir::success();
}

/// Two f32 tensors of one shape.
static mlir::LogicalResult pairArgs(Elaborator &e, const Args &a,
                                    mlir::Value &pred, mlir::Value &target) {
  FailureOr<mlir::Value> p = f32Arg(e, a, "pred");
  FailureOr<mlir::Value> t = f32Arg(e, a, "target");
  if (failed(p) || failed(t))
    return failure();
  if (p->getType() != t->getType()) {
    e.error(a.loc()) << a.getCall().callee << ": pred "
                     << formatShape(shapeOf(*p)) << " and target "
                     << formatShape(shapeOf(*t)) << " must have the same shape";
    return failure();
  }
  pred = *p;
  target = *t;
  return mlir::success();
}

static FailureOr<Value> buildCrossEntropy(Elaborator &e, const Args &a) {
  mlir::Value logits, labels;
  FailureOr<double> smoothing = a.number("smoothing", 0.0);
  if (failed(classifierArgs(e, a, logits, labels)) || failed(smoothing))
    return failure();
  ShapeResult range = smoothingRange(*smoothing);
  if (!range.ok()) {
    e.error(a.argLoc("smoothing")) << "cross_entropy: " << range.message();
    return failure();
  }
  mlir::OpBuilder &b = e.getBuilder();
  return result(b.create<CrossEntropyOp>(e.location(a.loc()), logits, labels,
                                         b.getF64FloatAttr(*smoothing)),
                a);
}

static Value pairResult(mlir::Operation *op, const Args &a) {
  Value v;
  v.kind = Value::Kind::Tuple;
  v.loc = a.loc();
  v.elements = {Value::ofTensor(op->getResult(0), a.loc()),
                Value::ofTensor(op->getResult(1), a.loc())};
  return v;
}

static FailureOr<Value> buildAccuracy(Elaborator &e, const Args &a) {
  FailureOr<mlir::Value> labels = a.tensor("labels");
  if (failed(labels))
    return failure();
  mlir::Value logits, targets;
  if (isF32(*labels)) {
    // Binary accuracy: logits [B, 1] against 0/1 targets [B, 1].
    FailureOr<mlir::Value> l = f32Arg(e, a, "logits");
    if (failed(l))
      return failure();
    ShapeResult binary = binaryAccuracyShape(shapeOf(*l), shapeOf(*labels));
    if (!binary.ok()) {
      e.error(a.loc()) << "accuracy: " << binary.message();
      return failure();
    }
    logits = *l;
    targets = *labels;
    e.boundTargets(targets, 0, 1); // 0/1 targets
  } else if (failed(classifierArgs(e, a, logits, targets))) {
    return failure();
  }
  return pairResult(
      e.getBuilder().create<AccuracyOp>(e.location(a.loc()), logits, targets),
      a);
}

static FailureOr<Value> buildTopK(Elaborator &e, const Args &a) {
  mlir::Value logits, labels;
  FailureOr<int64_t> k = a.integer("k", 5);
  if (failed(classifierArgs(e, a, logits, labels)) || failed(k))
    return failure();
  int64_t classes = shapeOf(logits).back();
  if (*k < 1 || *k > classes) {
    e.error(a.argLoc("k")) << "top_k: k must lie in [1, " << classes
                           << "], got " << *k;
    return failure();
  }
  mlir::OpBuilder &b = e.getBuilder();
  return pairResult(b.create<TopKOp>(e.location(a.loc()), logits, labels,
                                     b.getI64IntegerAttr(*k)),
                    a);
}

/// Ops on a prediction and a target of one shape: losses (one result) and
/// error metrics (a sum and a count).
template <typename OpT>
static FailureOr<Value> buildPair(Elaborator &e, const Args &a) {
  mlir::Value pred, target;
  if (failed(pairArgs(e, a, pred, target)))
    return failure();
  // Binary cross-entropy's targets are probabilities.
  if constexpr (std::is_same_v<OpT, BceOp>)
    e.boundTargets(target, 0, 1);
  mlir::Operation *op =
      e.getBuilder().create<OpT>(e.location(a.loc()), pred, target);
  if (op->getNumResults() == 1)
    return result(op->getResult(0), a);
  return pairResult(op, a);
}

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

/// `NAME(x)` for an op with the Builtin trait, named by its mnemonic.
template <typename OpT> static void addBuiltin(std::vector<LayerSpec> &specs) {
  if constexpr (OpT::template hasTrait<trait::Builtin>())
    specs.push_back({OpT::getOperationName().drop_front(
                         MassDialect::getDialectNamespace().size() + 1),
                     {"x"},
                     buildUnary<OpT>});
}

template <typename... Ops> static std::vector<LayerSpec> builtins() {
  std::vector<LayerSpec> specs;
  (addBuiltin<Ops>(specs), ...);
  return specs;
}

/// The built-ins with entries of their own (unary elementwise ops come from
/// the dialect: see builtins()).
static const std::vector<LayerSpec> &written() {
  static const std::vector<LayerSpec> specs = {
      {"dense", {"x", "out", "?bias", "?share"}, buildDense},
      {"param", {"type", "?init"}, buildParam},
      {"gelu", {"x", "?approximate"}, buildGelu},
      {"matmul", {"a", "b"}, buildMatmul},
      {"softmax", {"x", "?axis"}, buildSoftmax<SoftmaxOp>},
      {"log_softmax", {"x", "?axis"}, buildSoftmax<LogSoftmaxOp>},
      {"sum", {"x", "?axis", "?keepdim"}, buildReduce<SumOp>},
      {"mean", {"x", "?axis", "?keepdim"}, buildReduce<MeanOp>},
      {"max", {"x", "?axis", "?keepdim"}, buildReduce<MaxOp>},
      {"reshape", {"x", "shape"}, buildReshape},
      {"flatten", {"x"}, buildFlatten},
      {"transpose", {"x", "perm"}, buildTranspose},
      {"concat", {"?axis"}, buildConcat, /*variadic=*/true},
      {"cross_entropy", {"logits", "labels", "?smoothing"}, buildCrossEntropy},
      {"mse", {"pred", "target"}, buildPair<MseOp>},
      {"bce", {"pred", "target"}, buildPair<BceOp>},
      {"l1", {"pred", "target"}, buildPair<L1Op>},
      {"accuracy", {"logits", "labels"}, buildAccuracy, false, true},
      {"top_k", {"logits", "labels", "?k"}, buildTopK, false, true},
      {"mae", {"pred", "target"}, buildPair<AbsErrorOp>, false, true},
      {"rmse", {"pred", "target"}, buildPair<SquaredErrorOp>, false, true},
      {"conv2d",
       {"x", "out", "?kernel", "?stride", "?pad", "?bias", "?groups",
        "?dilation"},
       buildConv2d},
      {"maxpool", {"x", "k", "?stride", "?pad"}, buildPool<MaxPoolOp>},
      {"avgpool", {"x", "k", "?stride", "?pad"}, buildPool<AvgPoolOp>},
      {"global_avgpool", {"x"}, buildGlobalAvgPool},
      {"batchnorm", {"x", "?momentum", "?eps"}, buildBatchNorm},
      {"layernorm", {"x", "?eps"}, buildLayerNorm},
      {"embedding", {"ids", "?vocab", "?dim", "?init"}, buildEmbedding},
      {"dropout", {"x", "?p"}, buildDropout},
      {"attention", {"q", "k", "v", "?heads", "?causal"}, buildAttention},
  };
  return specs;
}

static const std::vector<LayerSpec> &table() {
  static const std::vector<LayerSpec> specs = [] {
    std::vector<LayerSpec> all = builtins<
#define GET_OP_LIST
#include "dialects/Mass/MassOps.cpp.inc"
        >();
    all.insert(all.end(), written().begin(), written().end());
    return all;
  }();
  return specs;
}

const LayerSpec *mass::lookupLayer(llvm::StringRef name) {
  for (const LayerSpec &spec : table())
    if (spec.name == name)
      return &spec;
  return nullptr;
}

std::vector<llvm::StringRef> mass::layerNames() {
  std::vector<llvm::StringRef> names;
  for (const LayerSpec &spec : table())
    names.push_back(spec.name);
  return names;
}
