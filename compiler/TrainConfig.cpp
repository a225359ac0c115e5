//===- TrainConfig.cpp - Checking and recording the train block -----------===//
//
// Values become attributes: numbers, strings, bools, lists and tuples as
// themselves, bare and dotted names as strings, and calls such as
// `adam(lr: 1e-3)` as dictionaries {kind = "adam", args = [...], lr = ...}.
//
//===----------------------------------------------------------------------===//

#include "compiler/TrainConfig.h"
#include "compiler/Diagnostics.h"
#include "mass/vocabulary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Casting.h"

#include <cmath>
#include <cstdio>
#include <limits>

using namespace mass;
using llvm::cast;
using llvm::dyn_cast;
using mlir::failure;
using mlir::LogicalResult;
using mlir::success;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
/// The largest integer a double holds exactly: counts of steps, seeds.
constexpr double kMaxExact = 9007199254740992.0; // 2^53
constexpr double kMaxCount = 2147483647.0;       // 2^31 - 1

/// A number as messages show it: integers up to 2^53 in full, others in
/// their shortest exact-enough form ("1e+20", "0.9", "inf").
std::string formatNumber(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.16g", v);
  return text;
}

/// One parameter of a call in a train value, or a scalar train key: its
/// type and, for numbers, the range it must lie in.
struct ParamForm {
  enum Type { Number, Integer, Bool, Name, Path, Globs, Betas };
  llvm::StringRef name;
  Type type;
  double lo = -kInf, hi = kInf; // numbers are finite, within [lo, hi]
  bool loOpen = false;          // lo itself is excluded
  bool hiOpen = false;          // hi itself is excluded
  bool optional = false;

  /// "a number > 0", "an integer in [1, 2147483647]", ...
  std::string expected() const {
    auto num = formatNumber;
    switch (type) {
    case Bool:
      return "true or false";
    case Name:
      return "a name";
    case Path:
      return "a path string";
    case Globs:
      return "a list of glob strings";
    case Betas:
      return "a tuple of two numbers in [0, 1)";
    case Number:
    case Integer:
      break;
    }
    std::string what = type == Integer ? "an integer" : "a number";
    if (hi == kInf)
      return what + (loOpen ? " > " : " >= ") + num(lo);
    return what + " in " + (loOpen ? "(" : "[") + num(lo) + ", " + num(hi) +
           (hiOpen ? ")" : "]");
  }
};

ParamForm optional(ParamForm p) {
  p.optional = true;
  return p;
}
ParamForm positive(llvm::StringRef n) {
  return {n, ParamForm::Number, 0, kInf, /*loOpen=*/true};
}
ParamForm nonNegative(llvm::StringRef n) {
  return {n, ParamForm::Number, 0, kInf};
}
ParamForm fraction(llvm::StringRef n, bool oneIncluded) {
  return {n, ParamForm::Number, 0, 1, false, /*hiOpen=*/!oneIncluded};
}
ParamForm count(llvm::StringRef n, double lo, double hi = kMaxCount) {
  return {n, ParamForm::Integer, lo, hi};
}
ParamForm ofType(llvm::StringRef n, ParamForm::Type type) { return {n, type}; }

/// What a call in a train value may look like: its kind and its parameters
/// in positional order.
struct CallForm {
  llvm::StringRef kind;
  std::vector<ParamForm> params;
  bool anyKeywords = false; // sample(TASK: p, ...)
};

struct KeyForm {
  llvm::StringRef key;
  enum Kind { Scalar, Data, Call, CallList, StringList, ScaleList } kind;
  // Call and CallList; a bare name is the call without arguments.
  std::vector<CallForm> calls = {};
  // Scalar: its type and range.
  std::optional<ParamForm> scalar = std::nullopt;
};

KeyForm scalarKey(ParamForm form) {
  return {form.name, KeyForm::Scalar, {}, form};
}

const std::vector<KeyForm> &keyForms() {
  static const std::vector<KeyForm> forms = {
      {"train_data", KeyForm::Data},
      {"val_data", KeyForm::Data},
      scalarKey(count("batch", 1, 16777216)), // the runtime's --batch bound
      scalarKey(count("epochs", 1)),
      scalarKey(count("steps", 1, kMaxExact)),
      scalarKey(count("val_every", 1, kMaxExact)),
      scalarKey(count("seed", 0, kMaxExact)),
      scalarKey(positive("clip_grad_norm")),
      {"optimizer",
       KeyForm::Call,
       {{"sgd",
         {positive("lr"), optional(fraction("momentum", false)),
          optional(ofType("nesterov", ParamForm::Bool)),
          optional(nonNegative("weight_decay"))}},
        {"adam",
         {optional(positive("lr")), optional(ofType("betas", ParamForm::Betas)),
          optional(positive("eps")), optional(nonNegative("weight_decay"))}},
        {"adamw",
         {optional(positive("lr")), optional(ofType("betas", ParamForm::Betas)),
          optional(positive("eps")), optional(nonNegative("weight_decay"))}}}},
      {"schedule",
       KeyForm::Call,
       {{"constant", {}},
        {"step", {count("every", 1, kMaxExact), optional(positive("gamma"))}},
        {"exponential", {positive("gamma")}},
        {"cosine",
         {optional(count("warmup", 0, kMaxExact)),
          optional(nonNegative("min_lr"))}}}},
      {"strategy",
       KeyForm::Call,
       {{"joint", {}},
        {"alternate", {}},
        {"sample", {}, /*anyKeywords=*/true}}},
      {"augment",
       KeyForm::CallList,
       {{"random_crop",
         {ofType("input", ParamForm::Name), count("pad", 0, 4096)}},
        {"flip", {ofType("input", ParamForm::Name)}},
        {"noise", {ofType("input", ParamForm::Name), nonNegative("std")}}}},
      {"sampling",
       KeyForm::Call,
       {{"shuffle", {}}, {"balanced", {ofType("label", ParamForm::Name)}}}},
      {"checkpoint",
       KeyForm::Call,
       {{"best", {ofType("metric", ParamForm::Name)}}, {"last", {}}}},
      {"early_stop", KeyForm::Call, {{"patience", {count("n", 0)}}}},
      {"init",
       KeyForm::Call,
       {{"load",
         {ofType("path", ParamForm::Path),
          optional(ofType("skip", ParamForm::Globs))}}}},
      {"freeze", KeyForm::StringList},
      {"lr_scale", KeyForm::ScaleList},
  };
  return forms;
}

/// The probability of a task under `sample(TASK: p, ...)`.
const ParamForm &sampleForm() {
  static const ParamForm form = fraction("probability", true);
  return form;
}

class Checker {
public:
  /// Without a module (its model failed to elaborate), names of the
  /// model's inputs, labels, tasks and metrics are taken on trust, so that
  /// only the train block's own errors are reported.
  Checker(mlir::MLIRContext *context, mlir::ModuleOp module)
      : module(module), b(context) {
    if (module)
      collectModelNames();
  }

  LogicalResult run(const ast::TrainDecl &train,
                    llvm::SmallVectorImpl<mlir::NamedAttribute> &out) {
    // Each entry is checked on its own: every bad one is reported.
    bool ok = true;
    llvm::StringMap<ast::Loc> seen;
    for (const ast::TrainEntry &entry : train.entries) {
      auto [it, inserted] = seen.try_emplace(entry.key, entry.loc);
      if (!inserted) {
        error(entry.loc) << "train key '" << entry.key << "' is set twice";
        ok = false;
        continue;
      }
      const KeyForm *form = nullptr;
      for (const KeyForm &f : keyForms())
        if (f.key == entry.key)
          form = &f;
      if (!form) {
        auto diag = error(entry.loc)
                    << "unknown train key '" << entry.key << "'";
        suggest(diag, entry.key);
        ok = false;
        continue;
      }
      mlir::FailureOr<mlir::Attribute> value = check(*form, *entry.value);
      if (mlir::failed(value)) {
        ok = false;
        continue;
      }
      out.push_back(b.getNamedAttr(entry.key, *value));
    }
    return mlir::success(ok);
  }

private:
  mlir::ModuleOp module;
  mlir::Builder b;
  llvm::StringSet<> inputs, labels, tasks, metrics; // metrics: "TASK.METRIC"

  mlir::InFlightDiagnostic error(const ast::Loc &loc) {
    return emitError(loc, b.getContext());
  }

  static void suggest(mlir::InFlightDiagnostic &diag, llvm::StringRef key) {
    std::vector<llvm::StringRef> keys;
    for (const KeyForm &f : keyForms())
      keys.push_back(f.key);
    mass::suggest(diag, key, keys);
  }
  static void suggest(mlir::InFlightDiagnostic &diag, llvm::StringRef name,
                      const llvm::StringSet<> &names) {
    std::vector<llvm::StringRef> candidates;
    for (auto &n : names)
      candidates.push_back(n.getKey());
    llvm::sort(candidates);
    mass::suggest(diag, name, candidates);
  }
  /// Whether the model has `name` (taken on trust without a model).
  bool known(const llvm::StringSet<> &set, llvm::StringRef name) const {
    return !module || set.contains(name);
  }

  void collectModelNames() {
    auto func = module.lookupSymbol<mlir::func::FuncOp>(abi::kForward);
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      if (auto n = func.getArgAttrOfType<mlir::StringAttr>(
              i, abi::attr(abi::Role::Input)))
        inputs.insert(n.getValue());
      if (auto n = func.getArgAttrOfType<mlir::StringAttr>(
              i, abi::attr(abi::Role::Label)))
        labels.insert(n.getValue());
    }
    for (unsigned i = 0; i < func.getNumResults(); ++i) {
      auto n = func.getResultAttrOfType<mlir::StringAttr>(
          i, abi::attr(abi::Role::Output));
      llvm::StringRef name = n.getValue();
      if (name.consume_front(abi::kMetricPrefix) && name.consume_back(".sum"))
        metrics.insert(name);
    }
    for (mlir::Attribute t :
         module->getAttrOfType<mlir::ArrayAttr>("mass.tasks"))
      tasks.insert(cast<mlir::DictionaryAttr>(t)
                       .getAs<mlir::StringAttr>(abi::key::kName)
                       .getValue());
  }

  /// Any value, as an attribute.
  mlir::FailureOr<mlir::Attribute> convert(const ast::Expr &e) {
    switch (e.getKind()) {
    case ast::Expr::Kind::Number: {
      auto &n = cast<ast::NumberExpr>(e);
      if (!std::isfinite(n.value)) {
        error(e.getLoc()) << "this number is too large for a double";
        return failure();
      }
      if (n.isInteger && std::fabs(n.value) <= kMaxExact)
        return mlir::Attribute(
            b.getI64IntegerAttr(static_cast<int64_t>(n.value)));
      return mlir::Attribute(b.getF64FloatAttr(n.value));
    }
    case ast::Expr::Kind::String:
      return mlir::Attribute(b.getStringAttr(cast<ast::StringExpr>(e).value));
    case ast::Expr::Kind::Bool:
      return mlir::Attribute(b.getBoolAttr(cast<ast::BoolExpr>(e).value));
    case ast::Expr::Kind::Name:
      return mlir::Attribute(b.getStringAttr(cast<ast::NameExpr>(e).str()));
    case ast::Expr::Kind::List:
    case ast::Expr::Kind::Tuple: {
      llvm::SmallVector<mlir::Attribute> items;
      for (const ast::ExprPtr &el : cast<ast::SeqExpr>(e).elements) {
        auto a = convert(*el);
        if (mlir::failed(a))
          return failure();
        items.push_back(*a);
      }
      return mlir::Attribute(b.getArrayAttr(items));
    }
    case ast::Expr::Kind::Call: {
      auto &c = cast<ast::CallExpr>(e);
      llvm::SmallVector<mlir::NamedAttribute> fields;
      fields.push_back(b.getNamedAttr("kind", b.getStringAttr(c.callee)));
      llvm::SmallVector<mlir::Attribute> args;
      for (const ast::ExprPtr &a : c.args) {
        auto v = convert(*a);
        if (mlir::failed(v))
          return failure();
        args.push_back(*v);
      }
      fields.push_back(b.getNamedAttr("args", b.getArrayAttr(args)));
      for (const ast::KeywordArg &kw : c.kwargs) {
        auto v = convert(*kw.value);
        if (mlir::failed(v))
          return failure();
        fields.push_back(b.getNamedAttr(kw.key, *v));
      }
      return mlir::Attribute(b.getDictionaryAttr(fields));
    }
    case ast::Expr::Kind::Unary:
    case ast::Expr::Kind::Binary:
    case ast::Expr::Kind::Type:
      break;
    }
    error(e.getLoc()) << "train values are literals, names, lists and calls";
    return failure();
  }

  mlir::FailureOr<mlir::Attribute> check(const KeyForm &form,
                                         const ast::Expr &e) {
    switch (form.kind) {
    case KeyForm::Scalar:
      if (mlir::failed(checkValue(*form.scalar, e, "")))
        return failure();
      return convert(e);
    case KeyForm::Data:
      return checkData(form, e);
    case KeyForm::Call:
      return checkCall(form, e);
    case KeyForm::CallList: {
      auto *list = dyn_cast<ast::SeqExpr>(&e);
      if (!list || list->getKind() != ast::Expr::Kind::List) {
        error(e.getLoc()) << "'" << form.key << "' must be a list";
        return failure();
      }
      llvm::SmallVector<mlir::Attribute> items;
      for (const ast::ExprPtr &el : list->elements) {
        auto a = checkCall(form, *el);
        if (mlir::failed(a))
          return failure();
        items.push_back(*a);
      }
      return mlir::Attribute(b.getArrayAttr(items));
    }
    case KeyForm::StringList:
    case KeyForm::ScaleList:
      return checkList(form, e);
    }
    return failure();
  }

  mlir::FailureOr<mlir::Attribute> checkData(const KeyForm &form,
                                             const ast::Expr &e) {
    if (e.getKind() == ast::Expr::Kind::String)
      return convert(e);
    auto *call = dyn_cast<ast::CallExpr>(&e);
    if (call && call->callee == "csv") {
      if (call->args.size() != 1 ||
          call->args[0]->getKind() != ast::Expr::Kind::String) {
        error(call->getLoc()) << "csv takes a path, then NAME: [columns] for "
                                 "each input and label";
        return failure();
      }
      for (const ast::KeywordArg &kw : call->kwargs)
        if (!known(inputs, kw.key) && !known(labels, kw.key)) {
          error(kw.loc) << "csv: '" << kw.key
                        << "' is not an input or label of the model";
          return failure();
        }
      return convert(e);
    }
    if (call && call->callee == "idx") {
      if (!call->args.empty() || !call->findKeyword("images") ||
          !call->findKeyword("labels") || call->kwargs.size() != 2) {
        error(call->getLoc()) << "idx takes images: PATH and labels: PATH";
        return failure();
      }
      return convert(e);
    }
    if (call && call->callee == "tokens") {
      if (call->args.size() != 1 || !call->kwargs.empty() ||
          call->args[0]->getKind() != ast::Expr::Kind::String) {
        error(call->getLoc()) << "tokens takes the path of a token stream "
                                 "(llm.c's .bin or a 1-D .npy)";
        return failure();
      }
      if (failed(checkTokenModel(call->getLoc())))
        return failure();
      return convert(e);
    }
    error(e.getLoc()) << "'" << form.key
                      << "' must be a directory of .npy files, "
                         "csv(path, ...), idx(images: ..., labels: ...) or "
                         "tokens(path)";
    return failure();
  }

  /// A token stream feeds a model with one i32 [B, T] input and one i32
  /// [B, T] label: windows of T ids and the same windows shifted by one.
  LogicalResult checkTokenModel(const ast::Loc &loc) {
    if (!module)
      return success();
    auto func = module.lookupSymbol<mlir::func::FuncOp>(abi::kForward);
    llvm::SmallVector<mlir::Type> streams;
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (func.getArgAttr(i, abi::attr(abi::Role::Input)) ||
          func.getArgAttr(i, abi::attr(abi::Role::Label)))
        streams.push_back(func.getArgumentTypes()[i]);
    auto sequence = [](mlir::Type t) {
      auto r = mlir::cast<mlir::RankedTensorType>(t);
      return r.getRank() == 2 && r.getElementType().isInteger(32) &&
             !r.isDynamicDim(1);
    };
    if (streams.size() != 2 || !sequence(streams[0]) ||
        streams[0] != streams[1]) {
      error(loc) << "tokens feeds a model with one input and one label, both "
                    "i32[B, T] with the same T";
      return failure();
    }
    return success();
  }

  mlir::FailureOr<mlir::Attribute> checkCall(const KeyForm &form,
                                             const ast::Expr &e) {
    llvm::StringRef kind;
    auto *call = dyn_cast<ast::CallExpr>(&e);
    auto *name = dyn_cast<ast::NameExpr>(&e);
    if (call)
      kind = call->callee;
    else if (name && !name->isDotted())
      kind = name->parts[0];
    const CallForm *match = nullptr;
    for (const CallForm &c : form.calls)
      if (c.kind == kind)
        match = &c;
    if (!match) {
      auto diag = error(e.getLoc()) << "'" << form.key << "' must be one of ";
      for (auto [i, c] : llvm::enumerate(form.calls))
        diag << (i ? ", " : "") << c.kind;
      return failure();
    }
    auto required = [](const ParamForm &p) { return !p.optional; };
    llvm::SmallVector<mlir::NamedAttribute> fields;
    fields.push_back(b.getNamedAttr("kind", b.getStringAttr(kind)));
    if (name) { // a bare name: the call without arguments
      if (llvm::any_of(match->params, required)) {
        error(e.getLoc()) << kind << " needs arguments: " << kind << "(...)";
        return failure();
      }
      return mlir::Attribute(b.getDictionaryAttr(fields));
    }
    if (call->args.size() > match->params.size()) {
      error(call->args[match->params.size()]->getLoc())
          << kind << " takes at most " << match->params.size()
          << " positional argument" << (match->params.size() == 1 ? "" : "s");
      return failure();
    }
    if (mlir::failed(checkReferences(kind, *call)))
      return failure();
    // Positional arguments are recorded under their parameter names.
    auto add = [&](const ParamForm &param, llvm::StringRef key,
                   const ast::Expr &value,
                   const ast::Loc &loc) -> LogicalResult {
      for (const mlir::NamedAttribute &f : fields)
        if (f.getName() == key) {
          error(loc) << kind << ": argument '" << key << "' is given twice";
          return failure();
        }
      if (mlir::failed(checkValue(param, value, kind)))
        return failure();
      auto v = convert(value);
      if (mlir::failed(v))
        return failure();
      fields.push_back(b.getNamedAttr(key, *v));
      return success();
    };
    for (auto [i, arg] : llvm::enumerate(call->args))
      if (mlir::failed(add(match->params[i], match->params[i].name, *arg,
                           arg->getLoc())))
        return failure();
    for (const ast::KeywordArg &kw : call->kwargs) {
      const ParamForm *param = nullptr;
      for (const ParamForm &p : match->params)
        if (p.name == kw.key)
          param = &p;
      ParamForm probability = sampleForm();
      if (!param && match->anyKeywords) {
        probability.name = kw.key; // named by its task in messages
        param = &probability;
      }
      if (!param) {
        auto diag = error(kw.loc)
                    << kind << " has no argument '" << kw.key << "'";
        for (auto [i, p] : llvm::enumerate(match->params))
          diag << (i ? ", " : "; it takes ") << p.name;
        return failure();
      }
      if (mlir::failed(add(*param, kw.key, *kw.value, kw.loc)))
        return failure();
    }
    for (const ParamForm &p : match->params)
      if (required(p) && !llvm::any_of(fields, [&](mlir::NamedAttribute f) {
            return f.getName() == p.name;
          })) {
        error(call->getLoc()) << kind << " needs argument '" << p.name << "'";
        return failure();
      }
    if (match->anyKeywords && mlir::failed(checkProbabilities(*call)))
      return failure();
    return mlir::Attribute(b.getDictionaryAttr(fields));
  }

  /// `value` has `param`'s type and lies in its range; `kind` names the
  /// call (empty for a scalar train key).
  LogicalResult checkValue(const ParamForm &param, const ast::Expr &value,
                           llvm::StringRef kind) {
    auto *n = dyn_cast<ast::NumberExpr>(&value);
    auto isString = [](const ast::Expr &e) {
      return e.getKind() == ast::Expr::Kind::String;
    };
    auto *seq = dyn_cast<ast::SeqExpr>(&value);
    bool ok = false;
    switch (param.type) {
    case ParamForm::Number:
    case ParamForm::Integer:
      ok = n && std::isfinite(n->value) &&
           (param.type == ParamForm::Number || n->isInteger) &&
           (param.loOpen ? n->value > param.lo : n->value >= param.lo) &&
           (param.hiOpen ? n->value < param.hi : n->value <= param.hi);
      break;
    case ParamForm::Bool:
      ok = value.getKind() == ast::Expr::Kind::Bool;
      break;
    case ParamForm::Name:
      ok = value.getKind() == ast::Expr::Kind::Name;
      break;
    case ParamForm::Path:
      ok = isString(value);
      break;
    case ParamForm::Globs:
      ok = seq && seq->getKind() == ast::Expr::Kind::List &&
           llvm::all_of(seq->elements,
                        [&](const ast::ExprPtr &g) { return isString(*g); });
      break;
    case ParamForm::Betas:
      ok = seq && seq->getKind() == ast::Expr::Kind::Tuple &&
           seq->elements.size() == 2 &&
           llvm::all_of(seq->elements, [&](const ast::ExprPtr &beta) {
             auto *v = dyn_cast<ast::NumberExpr>(beta.get());
             return v && v->value >= 0 && v->value < 1;
           });
      break;
    }
    if (ok)
      return success();
    auto diag = error(value.getLoc());
    if (!kind.empty())
      diag << kind << ": ";
    diag << "'" << param.name << "' must be " << param.expected();
    if (n)
      diag << ", got " << formatNumber(n->value);
    return failure();
  }

  /// sample(TASK: p, ...): probabilities that add up to 1.
  LogicalResult checkProbabilities(const ast::CallExpr &call) {
    double total = 0;
    for (const ast::KeywordArg &kw : call.kwargs)
      total += cast<ast::NumberExpr>(*kw.value).value;
    if (std::fabs(total - 1) > 1e-6) {
      error(call.getLoc()) << "sample: the tasks' probabilities add up to "
                           << formatNumber(total) << "; they must add up to 1";
      return failure();
    }
    return success();
  }

  /// Names in train values that must exist in the model.
  LogicalResult checkReferences(llvm::StringRef kind,
                                const ast::CallExpr &call) {
    auto argument = [&](size_t pos, llvm::StringRef key) -> const ast::Expr * {
      if (pos < call.args.size())
        return call.args[pos].get();
      const ast::KeywordArg *kw = call.findKeyword(key);
      return kw ? kw->value.get() : nullptr;
    };
    auto mustName = [&](const ast::Expr *e, const llvm::StringSet<> &set,
                        llvm::StringRef what) -> LogicalResult {
      auto *n = e ? dyn_cast<ast::NameExpr>(e) : nullptr;
      if (!n || !known(set, n->str())) {
        auto diag = error(e ? e->getLoc() : call.getLoc())
                    << kind << ": expected the name of " << what
                    << " of the model";
        if (n)
          suggest(diag, n->str(), set);
        return failure();
      }
      return success();
    };
    if (kind == "random_crop" || kind == "flip" || kind == "noise")
      return mustName(argument(0, "input"), inputs, "an input");
    if (kind == "balanced")
      return mustName(argument(0, "label"), labels, "a label");
    if (kind == "sample") {
      for (const ast::KeywordArg &kw : call.kwargs)
        if (!known(tasks, kw.key)) {
          auto diag = error(kw.loc)
                      << "sample: '" << kw.key << "' is not a task";
          suggest(diag, kw.key, tasks);
          return failure();
        }
      return success();
    }
    if (kind == "best") {
      const ast::Expr *e = argument(0, "metric");
      auto *n = e ? dyn_cast<ast::NameExpr>(e) : nullptr;
      std::vector<std::string> parts =
          n ? n->parts : std::vector<std::string>{};
      bool ok =
          parts.size() >= 2 && parts[0] == "val" &&
          ((parts.size() == 2 && parts[1] == "loss") ||
           (parts.size() == 3 && known(tasks, parts[1]) &&
            (parts[2] == "loss" || known(metrics, parts[1] + "." + parts[2]))));
      if (!ok) {
        error(e ? e->getLoc() : call.getLoc())
            << "best: expected val.loss, val.TASK.loss or val.TASK.METRIC "
               "naming a task and metric of the model";
        return failure();
      }
    }
    return success();
  }

  mlir::FailureOr<mlir::Attribute> checkList(const KeyForm &form,
                                             const ast::Expr &e) {
    auto *list = dyn_cast<ast::SeqExpr>(&e);
    bool ok = list && list->getKind() == ast::Expr::Kind::List;
    for (size_t i = 0; ok && i < list->elements.size(); ++i) {
      const ast::Expr &el = *list->elements[i];
      if (form.kind == KeyForm::StringList) {
        ok = el.getKind() == ast::Expr::Kind::String;
        continue;
      }
      auto *pair = dyn_cast<ast::SeqExpr>(&el);
      ok = pair && pair->getKind() == ast::Expr::Kind::Tuple &&
           pair->elements.size() == 2 &&
           pair->elements[0]->getKind() == ast::Expr::Kind::String &&
           pair->elements[1]->getKind() == ast::Expr::Kind::Number;
      if (ok) {
        double factor = cast<ast::NumberExpr>(*pair->elements[1]).value;
        ok = std::isfinite(factor) && factor >= 0;
      }
    }
    if (!ok) {
      error(e.getLoc()) << "'" << form.key << "' must be "
                        << (form.kind == KeyForm::StringList
                                ? "a list of glob strings"
                                : "a list of (glob, factor) tuples, each "
                                  "factor a finite number >= 0");
      return failure();
    }
    return convert(e);
  }
};

} // namespace

LogicalResult mass::attachTrainConfig(mlir::ModuleOp module,
                                      const Program &program) {
  llvm::StringRef model =
      module->getAttrOfType<mlir::StringAttr>("mass.model").getValue();
  // A train block in the main file must name a model of the program.
  for (const auto &t : program.main().trains) {
    bool known = false;
    for (const auto &m : program.modules)
      for (const auto &decl : m->models)
        known |= decl->name == t->model;
    if (!known) {
      emitError(t->loc, module.getContext())
          << "train block for unknown model '" << t->model << "'";
      return failure();
    }
  }
  // The main file comes first, so its train block replaces imported ones.
  const ast::TrainDecl *train = nullptr;
  for (const auto &m : program.modules) {
    const ast::TrainDecl *here = nullptr;
    for (const auto &t : m->trains) {
      if (t->model != model)
        continue;
      if (here) {
        emitError(t->loc, module.getContext())
            << "a second train block for model '" << model << "'";
        return failure();
      }
      here = t.get();
    }
    if (!train)
      train = here;
  }
  llvm::SmallVector<mlir::NamedAttribute> entries;
  if (train &&
      mlir::failed(Checker(module.getContext(), module).run(*train, entries)))
    return failure();
  module->setAttr("mass.train",
                  mlir::DictionaryAttr::get(module.getContext(), entries));
  return success();
}

LogicalResult mass::checkTrainBlocks(mlir::MLIRContext &context,
                                     const Program &program) {
  bool ok = true;
  for (const auto &t : program.main().trains) {
    llvm::SmallVector<mlir::NamedAttribute> entries;
    ok &= mlir::succeeded(Checker(&context, nullptr).run(*t, entries));
  }
  return mlir::success(ok);
}
