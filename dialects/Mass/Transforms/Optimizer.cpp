//===- Optimizer.cpp - Generating the optimizer step ----------------------===//
//
// Builds @update(params, grads, states, hypers) -> (params, states[,
// grad_norm with clipping]) from the module's train configuration, with
// PyTorch's update rules (torch.optim.SGD, Adam, AdamW) and
// clip_grad_norm_.
//
//===----------------------------------------------------------------------===//

#include "dialects/Mass/Builders.h"
#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Passes.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/GlobPattern.h"

namespace mass {
#define GEN_PASS_DEF_MASSOPTIMIZER
#include "dialects/Mass/Passes.h.inc"
} // namespace mass

using namespace mass;
using namespace mlir;

namespace {

/// The optimizer's constants, from `optimizer = kind(...)`.
struct Settings {
  std::string kind = "sgd";
  double momentum = 0, weightDecay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool nesterov = false;
  double clip = 0; // 0: no clipping
};

double number(DictionaryAttr dict, StringRef key, double dflt) {
  Attribute a = dict ? dict.get(key) : Attribute();
  if (auto f = dyn_cast_or_null<FloatAttr>(a))
    return f.getValueAsDouble();
  if (auto i = dyn_cast_or_null<IntegerAttr>(a))
    return static_cast<double>(i.getInt());
  return dflt;
}

struct Param {
  std::string name;
  RankedTensorType type;
  double lrScale = 1;
};

void buildUpdate(OpBuilder &b, Location loc, const Settings &s,
                 ArrayRef<Param> params, ArrayRef<StringRef> stateNames,
                 StringRef name);
void buildSquares(OpBuilder &b, Location loc, ArrayRef<Param> params);

class OptimizerPass : public mass::impl::MassOptimizerBase<OptimizerPass> {
public:
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(abi::kForward);
    if (!forward) {
      module.emitError("mass-optimizer needs a function @forward");
      return signalPassFailure();
    }
    if (module.lookupSymbol(abi::kUpdate)) {
      module.emitError("the module already has @update");
      return signalPassFailure();
    }
    if (failed(generate(module, forward)))
      signalPassFailure();
  }

private:
  LogicalResult generate(ModuleOp module, func::FuncOp forward);
};

} // namespace

LogicalResult OptimizerPass::generate(ModuleOp module, func::FuncOp forward) {
  auto train = module->getAttrOfType<DictionaryAttr>("mass.train");
  Settings s;
  auto opt = train ? train.getAs<DictionaryAttr>("optimizer") : nullptr;
  if (opt)
    s.kind = opt.getAs<StringAttr>("kind").getValue().str();
  s.momentum = number(opt, "momentum", 0);
  s.weightDecay = number(opt, "weight_decay", s.kind == "adamw" ? 0.01 : 0);
  s.eps = number(opt, "eps", 1e-8);
  if (auto nesterov = opt ? opt.getAs<BoolAttr>("nesterov") : nullptr)
    s.nesterov = nesterov.getValue();
  if (auto betas = opt ? opt.getAs<ArrayAttr>("betas") : nullptr) {
    if (betas.size() != 2)
      return module.emitError("betas must be a pair (beta1, beta2)");
    auto value = [](Attribute a) {
      if (auto f = dyn_cast<FloatAttr>(a))
        return f.getValueAsDouble();
      return static_cast<double>(cast<IntegerAttr>(a).getInt());
    };
    s.beta1 = value(betas[0]);
    s.beta2 = value(betas[1]);
  }
  s.clip = number(train, "clip_grad_norm", 0);
  if (s.nesterov && s.momentum <= 0)
    return module.emitError("sgd: nesterov needs a momentum > 0");
  // The settings as resolved here, defaults applied, go to the runtime
  // through the descriptor: it computes the learning rate and Adam's bias
  // corrections that this update takes, and must use the same constants.
  OpBuilder attrs(module.getContext());
  module->setAttr(
      abi::kOptimizerAttr,
      attrs.getDictionaryAttr({
          attrs.getNamedAttr(abi::kOptimizerKind, attrs.getStringAttr(s.kind)),
          attrs.getNamedAttr(abi::kOptimizerLr,
                             attrs.getF64FloatAttr(number(
                                 opt, "lr", s.kind == "sgd" ? 0.01 : 1e-3))),
          attrs.getNamedAttr(abi::kOptimizerBeta1,
                             attrs.getF64FloatAttr(s.beta1)),
          attrs.getNamedAttr(abi::kOptimizerBeta2,
                             attrs.getF64FloatAttr(s.beta2)),
      }));

  // The parameters that train: all but the frozen ones.
  std::vector<llvm::GlobPattern> frozen;
  std::vector<std::pair<llvm::GlobPattern, double>> scales;
  auto compile = [&](StringRef glob) -> FailureOr<llvm::GlobPattern> {
    auto pattern = llvm::GlobPattern::create(glob);
    if (!pattern) {
      llvm::consumeError(pattern.takeError());
      return module.emitError("invalid glob '") << glob << "'";
    }
    return std::move(*pattern);
  };
  if (auto list = train ? train.getAs<ArrayAttr>("freeze") : nullptr)
    for (Attribute a : list) {
      auto p = compile(cast<StringAttr>(a).getValue());
      if (failed(p))
        return failure();
      frozen.push_back(std::move(*p));
    }
  if (auto list = train ? train.getAs<ArrayAttr>("lr_scale") : nullptr)
    for (Attribute a : list) {
      auto pair = cast<ArrayAttr>(a);
      auto p = compile(cast<StringAttr>(pair[0]).getValue());
      if (failed(p))
        return failure();
      Attribute f = pair[1];
      double factor = isa<FloatAttr>(f) ? cast<FloatAttr>(f).getValueAsDouble()
                                        : cast<IntegerAttr>(f).getInt();
      scales.push_back({std::move(*p), factor});
    }
  std::vector<Param> params;
  for (unsigned i = 0; i < forward.getNumArguments(); ++i) {
    auto name =
        forward.getArgAttrOfType<StringAttr>(i, abi::attr(abi::Role::Param));
    if (!name)
      continue;
    if (llvm::any_of(frozen, [&](const llvm::GlobPattern &g) {
          return g.match(name.getValue());
        }))
      continue;
    Param p{name.getValue().str(),
            cast<RankedTensorType>(forward.getArgumentTypes()[i])};
    for (auto &[glob, factor] : scales)
      if (glob.match(p.name)) {
        p.lrScale = factor;
        break;
      }
    params.push_back(p);
  }

  std::vector<StringRef> stateNames;
  if (s.kind == "adam" || s.kind == "adamw")
    stateNames = {"exp_avg", "exp_avg_sq"};
  else if (s.momentum > 0)
    stateNames = {"momentum_buffer"};
  // The learning-rate scales the runtime applies to @update_slice's lr.
  SmallVector<NamedAttribute> lrScales;
  int64_t trained = 0;
  for (const Param &p : params) {
    trained += p.type.getNumElements();
    if (p.lrScale != 1)
      lrScales.push_back(
          attrs.getNamedAttr(p.name, attrs.getF64FloatAttr(p.lrScale)));
  }
  if (!lrScales.empty()) {
    NamedAttrList optimizer(
        module->getAttrOfType<DictionaryAttr>(abi::kOptimizerAttr));
    optimizer.set(abi::kOptimizerLrScales, attrs.getDictionaryAttr(lrScales));
    module->setAttr(abi::kOptimizerAttr,
                    optimizer.getDictionary(module.getContext()));
  }

  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  Location loc = forward.getLoc();
  buildUpdate(b, loc, s, params, stateNames, abi::kUpdate);
  // A flat slice of SLICE values (the largest a call takes) as one
  // parameter: the runtime's --shard-optimizer updates its share of all
  // the parameters, cut anywhere, in such calls.
  int64_t slice = std::clamp<int64_t>(trained, 1, abi::kSliceValues);
  Param flat{std::string(abi::kSliceName),
             RankedTensorType::get({slice}, b.getF32Type())};
  buildUpdate(b, loc, s, {flat}, stateNames, abi::kUpdateSlice);
  if (s.clip > 0)
    buildSquares(b, loc, params);
  return success();
}

namespace {

/// `start` plus the squares of every element of `grads`, added gradient
/// after gradient.
Value addSquares(MassBuilder &m, Value start, ValueRange grads) {
  Value squares = start;
  for (Value g : grads) {
    SmallVector<int64_t> all;
    for (int64_t d = 0; d < cast<RankedTensorType>(g.getType()).getRank(); ++d)
      all.push_back(d);
    Value g2 = m.mul(g, g);
    Value total = all.empty() ? g2 : m.sum(g2, all, false);
    squares = m.add(squares, total);
  }
  return squares;
}

/// Builds @grad_squares(grads) -> squares: the squares @update adds for
/// its norm on one process, as it adds them (the runtime's sharded
/// optimizer takes them from here when every process holds all the
/// gradients, as with --replicas, to keep one process's bits).
void buildSquares(OpBuilder &b, Location loc, ArrayRef<Param> params) {
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  for (const Param &p : params) {
    argTypes.push_back(p.type);
    argAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr(abi::attr(abi::Role::Grad), b.getStringAttr(p.name))));
  }
  auto scalarType = RankedTensorType::get({}, b.getF32Type());
  auto func = b.create<func::FuncOp>(loc, abi::kGradSquaresEntry,
                                     b.getFunctionType(argTypes, {scalarType}));
  Block *body = func.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(body);
  MassBuilder m(b, loc);
  Value zero = m.constant(0.0);
  Value squares = addSquares(m, zero, body->getArguments());
  b.create<func::ReturnOp>(loc, squares);
  func.setAllArgAttrs(argAttrs);
  func.setResultAttrs(0, b.getDictionaryAttr(b.getNamedAttr(
                             abi::attr(abi::Role::Output),
                             b.getStringAttr(abi::kGradSquares))));
}

/// Builds the function `name`: (params, grads, states, hypers) -> (params,
/// states[, grad_norm]) for `params`. @update_slice has no lr scales (the
/// runtime scales its lr), takes the squares of all the gradients
/// (`grad_squares`) instead of adding its own (a slice holds only part of
/// them), and returns no norm.
void buildUpdate(OpBuilder &b, Location loc, const Settings &s,
                 ArrayRef<Param> params, ArrayRef<StringRef> stateNames,
                 StringRef name) {
  bool adam = s.kind == "adam" || s.kind == "adamw";
  bool sliced = name == StringRef(abi::kUpdateSlice);
  std::vector<StringRef> hyperNames = {abi::kLr};
  // (Adam's bias corrections stay last: the update finds them there.)
  if (s.clip > 0 && sliced)
    hyperNames.push_back(abi::kGradSquares);
  if (adam) {
    hyperNames.push_back(abi::kBiasCorrection1);
    hyperNames.push_back(abi::kBiasCorrection2);
  }

  // The signature: params, grads, states, hyper-parameters.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  auto named = [&](StringRef key, StringRef value) {
    return b.getDictionaryAttr(b.getNamedAttr(key, b.getStringAttr(value)));
  };
  for (const Param &p : params) {
    argTypes.push_back(p.type);
    argAttrs.push_back(named(abi::attr(abi::Role::Param), p.name));
  }
  for (const Param &p : params) {
    argTypes.push_back(p.type);
    argAttrs.push_back(named(abi::attr(abi::Role::Grad), p.name));
  }
  for (StringRef state : stateNames)
    for (const Param &p : params) {
      argTypes.push_back(p.type);
      argAttrs.push_back(
          named(abi::attr(abi::Role::State), p.name + "." + state.str()));
    }
  auto scalarType = RankedTensorType::get({}, b.getF32Type());
  for (StringRef h : hyperNames) {
    argTypes.push_back(scalarType);
    argAttrs.push_back(named(abi::attr(abi::Role::Hyper), h));
  }

  auto func =
      b.create<func::FuncOp>(loc, name, b.getFunctionType(argTypes, {}));
  Block *body = func.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(body);
  MassBuilder m(b, loc);
  size_t n = params.size();
  auto param = [&](size_t i) { return body->getArgument(i); };
  auto grad = [&](size_t i) { return body->getArgument(n + i); };
  auto state = [&](size_t k, size_t i) {
    return body->getArgument(2 * n + k * n + i);
  };
  Value lr = body->getArgument(argTypes.size() - hyperNames.size());

  // Each op is built in its own statement: the order of a call's arguments
  // is unspecified in C++, and nested builder calls would print the IR in a
  // different order under another compiler.
  // With clipping: the global gradient norm, and clip_grad_norm_'s factor
  // min(1, max_norm / (norm + 1e-6)) = 1 - relu(1 - max_norm / (norm + 1e-6)).
  // Without, no pass over the gradients for it (torch.optim does none).
  Value norm, clipFactor;
  if (s.clip > 0) {
    // A slice is given the squares of every gradient.
    Value squares;
    if (sliced) {
      squares = body->getArgument(argTypes.size() - hyperNames.size() + 1);
    } else {
      Value zero = m.constant(0.0);
      squares = addSquares(m, zero, body->getArguments().slice(n, n));
    }
    norm = m.sqrt(squares);
    Value one = m.constant(1.0);
    Value maxNorm = m.constant(s.clip);
    Value tiny = m.constant(1e-6);
    Value ratio = m.div(maxNorm, m.add(norm, tiny));
    Value excess = m.relu(m.sub(one, ratio));
    clipFactor = m.sub(one, excess);
  }

  // a * x, with the constant built first.
  auto scaled = [&](double a, Value x) {
    Value c = m.constant(a);
    return m.mul(c, x);
  };
  SmallVector<Value> newParams, newStates(stateNames.size() * n);
  for (size_t i = 0; i < n; ++i) {
    Value p = param(i), g = grad(i);
    if (clipFactor)
      g = m.mul(g, clipFactor);
    Value stepLr = lr;
    if (params[i].lrScale != 1) {
      Value scale = m.constant(params[i].lrScale);
      stepLr = m.mul(lr, scale);
    }
    if (!adam) {
      if (s.weightDecay > 0)
        g = m.add(g, scaled(s.weightDecay, p));
      if (s.momentum > 0) {
        // buf = momentum * buf + g (a zero buffer makes the first step g)
        Value buf = m.add(scaled(s.momentum, state(0, i)), g);
        newStates[i] = buf;
        g = s.nesterov ? m.add(g, scaled(s.momentum, buf)) : buf;
      }
      newParams.push_back(m.sub(p, m.mul(stepLr, g)));
      continue;
    }
    if (s.kind == "adamw" && s.weightDecay > 0) {
      Value one = m.constant(1.0);
      Value decay = m.constant(s.weightDecay);
      p = m.mul(p, m.sub(one, m.mul(stepLr, decay)));
    } else if (s.weightDecay > 0) {
      g = m.add(g, scaled(s.weightDecay, p));
    }
    Value bc1 = body->getArgument(argTypes.size() - 2);
    Value bc2 = body->getArgument(argTypes.size() - 1);
    Value oldM = scaled(s.beta1, state(0, i));
    Value newM = scaled(1 - s.beta1, g);
    Value mt = m.add(oldM, newM);
    Value oldV = scaled(s.beta2, state(1, i));
    Value g2 = m.mul(g, g);
    Value newV = scaled(1 - s.beta2, g2);
    Value vt = m.add(oldV, newV);
    newStates[i] = mt;
    newStates[n + i] = vt;
    // p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
    Value rootV = m.sqrt(vt);
    Value rootBc2 = m.sqrt(bc2);
    Value eps = m.constant(s.eps);
    Value denom = m.add(m.div(rootV, rootBc2), eps);
    Value rate = m.div(stepLr, bc1);
    Value direction = m.div(mt, denom);
    newParams.push_back(m.sub(p, m.mul(rate, direction)));
  }

  SmallVector<Value> results(newParams);
  results.append(newStates.begin(), newStates.end());
  if (norm && !sliced)
    results.push_back(norm);
  b.create<func::ReturnOp>(loc, results);
  func.setFunctionType(
      b.getFunctionType(argTypes, ValueRange(results).getTypes()));
  func.setAllArgAttrs(argAttrs);
  SmallVector<DictionaryAttr> resultAttrs;
  for (size_t i = 0; i < n; ++i)
    resultAttrs.push_back(named(abi::attr(abi::Role::Param), params[i].name));
  for (StringRef state : stateNames)
    for (const Param &p : params)
      resultAttrs.push_back(
          named(abi::attr(abi::Role::State), p.name + "." + state.str()));
  if (norm && !sliced)
    resultAttrs.push_back(named(abi::attr(abi::Role::Output), abi::kGradNorm));
  func.setAllResultAttrs(resultAttrs);
}

} // namespace
