//===- Elaborator.cpp - Elaborating a model into the mass dialect ---------===//
//
// Statements, names, blocks, `if`, tasks and parameter naming. The layers
// and ops themselves are built in Layers.cpp.
//
//===----------------------------------------------------------------------===//

#include "compiler/Elaborator.h"

#include "compiler/Diagnostics.h"
#include "dialects/Mass/MassOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Casting.h"

#include <cmath>
#include <cstdio>

using namespace mass;
using llvm::cast;
using llvm::dyn_cast;
using mlir::failure;
using mlir::FailureOr;
using mlir::LogicalResult;
using mlir::success;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

std::string Value::describe() const {
  switch (kind) {
  case Kind::Tensor: {
    auto type = mlir::cast<mlir::RankedTensorType>(tensor.getType());
    std::string dtype = type.getElementType().isF32() ? "f32" : "i32";
    return "a tensor " + dtype + formatShape(type.getShape());
  }
  case Kind::Number: {
    char text[32];
    std::snprintf(text, sizeof text, "%.10g", number);
    return std::string("the number ") + text;
  }
  case Kind::Bool:
    return "a bool";
  case Kind::String:
    return "a string";
  case Kind::List:
    return "a list";
  case Kind::Tuple:
    return "a tuple";
  case Kind::Type:
    return "a type";
  case Kind::Poison:
    return "a value in error";
  }
  return "a value";
}

static std::string joinName(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string &p : parts)
    if (!p.empty())
      out += (out.empty() ? "" : ".") + p;
  return out;
}

/// Names bound in `stmts` that survive them: plain bindings, and names
/// bound in both arms of a nested `if`.
static llvm::StringSet<> boundNames(const ast::StmtList &stmts) {
  llvm::StringSet<> names;
  for (const ast::StmtPtr &s : stmts) {
    if (auto *b = dyn_cast<ast::BindStmt>(s.get()))
      names.insert(b->name);
    else if (auto *i = dyn_cast<ast::IfStmt>(s.get())) {
      llvm::StringSet<> a = boundNames(i->thenBody),
                        b = boundNames(i->elseBody);
      for (auto &n : a)
        if (b.contains(n.getKey()))
          names.insert(n.getKey());
    }
  }
  return names;
}

//===----------------------------------------------------------------------===//
// Scopes, frames and tasks
//===----------------------------------------------------------------------===//

struct Elaborator::Scope {
  Scope *parent = nullptr; // a task sees its model's names; blocks see none
  struct Entry {
    Value value;
    ast::Loc loc;
  };
  llvm::StringMap<Entry> names;
  llvm::StringMap<ast::Loc> oneBranch; // bound in only one arm of an `if`

  const Entry *lookup(llvm::StringRef name) const {
    for (const Scope *s = this; s; s = s->parent) {
      auto it = s->names.find(name);
      if (it != s->names.end())
        return &it->second;
    }
    return nullptr;
  }
};

/// Parameters created while evaluating one binding (or collected from one
/// block call), before their final names are known.
struct Elaborator::Frame {
  bool isBinding = true; // false: collects the parameters of a block call
  int nextSlot = 0;      // param-holding calls seen so far
  int currentSlot = -1;
  struct Entry {
    unsigned arg;
    int slot;
    std::string suffix;
  };
  std::vector<Entry> entries = {};
};

struct Elaborator::Task {
  std::string name;
  ast::Loc loc;
  bool hasLoss = false;
};

void Elaborator::pushFrame() { frames.push_back(Frame{}); }

void Elaborator::popFrame(llvm::StringRef binding) {
  Frame frame = std::move(frames.back());
  frames.pop_back();
  for (Frame::Entry &e : frame.entries) {
    std::string slot = frame.nextSlot > 1 ? std::to_string(e.slot) : "";
    std::string name = joinName({binding.str(), slot, e.suffix});
    if (!frames.empty()) {
      frames.back().entries.push_back({e.arg, -1, name});
      continue;
    }
    argInfo[e.arg].name = joinName({task ? task->name : "", name});
  }
}

LogicalResult Elaborator::beginParamCall(const ast::Loc &loc,
                                         llvm::StringRef callee) {
  if (frames.empty() || !frames.back().isBinding) {
    error(loc) << "'" << callee
               << "' holds parameters, so its result must be bound to a name "
                  "(parameters are named after the binding)";
    return failure();
  }
  Frame &frame = frames.back();
  frame.currentSlot = frame.nextSlot++;
  return success();
}

mlir::Value Elaborator::addState(abi::Role role, llvm::ArrayRef<int64_t> shape,
                                 llvm::StringRef suffix, Init init,
                                 const ast::Loc &loc) {
  if (mlir::failed(checkSize(shape, loc)))
    tooLarge = true;
  mlir::Value arg = body->addArgument(f32Tensor(shape), location(loc));
  argInfo.push_back({role, "", init, 0, std::nullopt});
  if (graph && currentCall >= 0)
    graph->ownerOf[mlir::cast<mlir::BlockArgument>(arg).getArgNumber()] =
        currentCall;
  Frame &frame = frames.back();
  frame.entries.push_back({mlir::cast<mlir::BlockArgument>(arg).getArgNumber(),
                           frame.currentSlot, suffix.str()});
  return arg;
}

mlir::Value Elaborator::sharedParam(llvm::StringRef name, const ast::Loc &loc,
                                    llvm::StringRef callee) {
  std::vector<llvm::StringRef> names;
  for (auto [i, info] : llvm::enumerate(argInfo)) {
    // A parameter's name is known once its binding ends.
    if (info.role != abi::Role::Param || info.name.empty())
      continue;
    if (info.name == name)
      return body->getArgument(i);
    names.push_back(info.name);
  }
  auto diag = error(loc) << callee << ": no parameter named '" << name
                         << "' is bound before this call";
  suggest(diag, name, names);
  return {};
}

void Elaborator::boundIds(mlir::Value ids, int64_t rows) {
  auto arg = mlir::dyn_cast<mlir::BlockArgument>(ids);
  if (!arg || arg.getOwner() != body)
    return;
  ArgInfo &info = argInfo[arg.getArgNumber()];
  if (info.role == abi::Role::Input || info.role == abi::Role::Label)
    info.idBound = info.idBound ? std::min(info.idBound, rows) : rows;
}

void Elaborator::boundTargets(mlir::Value target, double lo, double hi) {
  auto arg = mlir::dyn_cast<mlir::BlockArgument>(target);
  if (!arg || arg.getOwner() != body)
    return;
  ArgInfo &info = argInfo[arg.getArgNumber()];
  if (info.role != abi::Role::Label)
    return;
  if (info.targetRange)
    info.targetRange = std::make_pair(std::max(info.targetRange->first, lo),
                                      std::min(info.targetRange->second, hi));
  else
    info.targetRange = std::make_pair(lo, hi);
}

mlir::Value Elaborator::addParam(llvm::ArrayRef<int64_t> shape,
                                 llvm::StringRef suffix, Init init,
                                 const ast::Loc &loc) {
  return addState(abi::Role::Param, shape, suffix, init, loc);
}

mlir::Value Elaborator::addBuffer(llvm::ArrayRef<int64_t> shape,
                                  llvm::StringRef suffix, Init init,
                                  const ast::Loc &loc) {
  return addState(abi::Role::Buffer, shape, suffix, init, loc);
}

//===----------------------------------------------------------------------===//
// Services
//===----------------------------------------------------------------------===//

Elaborator::Elaborator(mlir::MLIRContext &context, const Program &program,
                       ModelGraph *graph)
    : context(context), program(program), builder(&context), graph(graph) {
  if (!graph)
    return;
  graph->clusters.push_back(ModelGraph::Cluster{});
  builder.setListener(&recorder);
}

void Elaborator::Recorder::notifyOperationInserted(
    mlir::Operation *op, mlir::OpBuilder::InsertPoint) {
  if (mlir::isa<mlir::func::FuncOp, mlir::func::ReturnOp>(op))
    return;
  int call = elab.currentCall;
  if (call < 0) {
    // An op the elaborator adds of its own accord: a node of its own.
    ast::Loc loc;
    if (auto file = mlir::dyn_cast<mlir::FileLineColLoc>(op->getLoc()))
      loc = {file.getFilename().str(), file.getLine(), file.getColumn()};
    llvm::StringRef name = op->getName().getStringRef();
    name.consume_front("mass.");
    call = elab.graph->calls.size();
    elab.graph->calls.push_back({elab.currentCluster, name.str(), loc});
  }
  elab.graph->callOf[op] = call;
}

int Elaborator::enterCall(llvm::StringRef callee, const ast::Loc &loc) {
  int previous = currentCall;
  if (graph) {
    currentCall = graph->calls.size();
    graph->calls.push_back({currentCluster, callee.str(), loc});
  }
  return previous;
}

int Elaborator::enterCluster(ModelGraph::Cluster cluster) {
  int previous = currentCluster;
  if (graph) {
    cluster.parent = currentCluster;
    currentCluster = graph->clusters.size();
    graph->clusters.push_back(std::move(cluster));
  }
  return previous;
}

mlir::Location Elaborator::location(const ast::Loc &loc) {
  return toLocation(loc, &context);
}

mlir::InFlightDiagnostic Elaborator::error(const ast::Loc &loc) {
  return emitError(loc, &context);
}

void Elaborator::note(const ast::Loc &loc, const llvm::Twine &message) {
  mlir::Diagnostic diag(location(loc), mlir::DiagnosticSeverity::Note);
  diag << message;
  context.getDiagEngine().emit(std::move(diag));
}

mlir::RankedTensorType Elaborator::f32Tensor(llvm::ArrayRef<int64_t> shape) {
  return mlir::RankedTensorType::get(shape, builder.getF32Type());
}

mlir::Value Elaborator::scalar(double value, const ast::Loc &loc) {
  auto type = f32Tensor({});
  return builder.create<mlir::arith::ConstantOp>(
      location(loc), type,
      mlir::DenseElementsAttr::get(type, static_cast<float>(value)));
}

FailureOr<Shape> Elaborator::check(const ShapeResult &result,
                                   const ast::Loc &loc) {
  if (!result.ok()) {
    error(loc) << result.message();
    return failure();
  }
  if (mlir::failed(checkSize(result.shape(), loc)))
    return failure();
  return result.shape();
}

LogicalResult Elaborator::checkSize(llvm::ArrayRef<int64_t> shape,
                                    const ast::Loc &loc) {
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (mlir::ShapedType::isDynamic(d))
      continue;
    if (d > kMaxDim || elements > kMaxElements / std::max<int64_t>(d, 1)) {
      error(loc) << "a tensor of shape " << formatShape(shape)
                 << " is larger than Mass supports (" << kMaxElements
                 << " elements per sample)";
      return failure();
    }
    elements *= d;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Selecting the model
//===----------------------------------------------------------------------===//

LogicalResult Elaborator::collectBlocks() {
  for (const auto &module : program.modules) {
    for (const auto &block : module->blocks) {
      if (lookupLayer(block->name)) {
        error(block->loc) << "block '" << block->name
                          << "' has the name of a built-in layer";
        return failure();
      }
      auto [it, inserted] = blocks.try_emplace(block->name, block.get());
      if (!inserted && it->second != block.get()) {
        error(block->loc) << "block '" << block->name << "' is defined twice";
        note(it->second->loc, "first defined here");
        return failure();
      }
      llvm::StringMap<const ast::BlockParam *> params;
      for (const ast::BlockParam &p : block->params) {
        auto [first, fresh] = params.try_emplace(p.name, &p);
        if (!fresh) {
          error(p.loc) << "block '" << block->name << "' has two parameters "
                       << "named '" << p.name << "'";
          note(first->second->loc, "the first is here");
          return failure();
        }
      }
    }
  }
  return success();
}

FailureOr<const ast::ModelDecl *> Elaborator::selectModel() {
  const ast::Module &main = program.main();
  if (main.models.size() > 1) {
    error(main.models[1]->loc) << "a file may define one model; '"
                               << main.models[0]->name << "' is defined above";
    return failure();
  }
  if (main.models.size() == 1)
    return main.models[0].get();
  // A file of train blocks trains the imported model they name.
  for (const auto &train : main.trains)
    for (const auto &module : program.modules)
      for (const auto &model : module->models)
        if (model->name == train->model)
          return model.get();
  if (!main.trains.empty()) {
    error(main.trains[0]->loc)
        << "train block for unknown model '" << main.trains[0]->model << "'";
    return failure();
  }
  mlir::emitError(mlir::FileLineColLoc::get(&context, main.file, 1, 1))
      << "no model to compile: the file defines no model and no train block";
  return failure();
}

FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> Elaborator::run() {
  if (mlir::failed(collectBlocks()))
    return failure();
  FailureOr<const ast::ModelDecl *> model = selectModel();
  if (mlir::failed(model))
    return failure();

  mlir::Location modelLoc = location((*model)->loc);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(modelLoc);
  auto func = builder.create<mlir::func::FuncOp>(
      modelLoc, abi::kForward, builder.getFunctionType({}, {}));
  body = func.addEntryBlock();
  builder.setInsertionPointToStart(body);

  Scope modelScope;
  scope = &modelScope;
  if (mlir::failed(runStmts((*model)->body))) {
    func.erase();
    return failure();
  }
  if (taskWeights.empty()) {
    error((*model)->loc) << "model '" << (*model)->name
                         << "' has no task: add `task NAME { loss = ... }`";
    func.erase();
    return failure();
  }

  llvm::SmallVector<mlir::Value> results;
  for (const Output &o : outputs)
    results.push_back(o.value);
  builder.create<mlir::func::ReturnOp>(modelLoc, results);
  func.setFunctionType(builder.getFunctionType(
      body->getArgumentTypes(), mlir::ValueRange(results).getTypes()));

  for (auto [i, info] : llvm::enumerate(argInfo)) {
    llvm::SmallVector<mlir::NamedAttribute> attrs;
    attrs.push_back(builder.getNamedAttr(abi::attr(info.role),
                                         builder.getStringAttr(info.name)));
    if (info.role == abi::Role::Param || info.role == abi::Role::Buffer) {
      static const char *kinds[] = {"uniform", "normal", "zeros", "ones"};
      attrs.push_back(builder.getNamedAttr(
          "mass.init",
          builder.getStringAttr(kinds[static_cast<int>(info.init.kind)])));
      if (info.init.kind == Init::Kind::Uniform ||
          info.init.kind == Init::Kind::Normal)
        attrs.push_back(builder.getNamedAttr(
            "mass.init_scale", builder.getF64FloatAttr(info.init.scale)));
    }
    if (info.idBound)
      attrs.push_back(
          builder.getNamedAttr(std::string("mass.") + abi::key::kIdBound,
                               builder.getI64IntegerAttr(info.idBound)));
    if (info.targetRange) {
      attrs.push_back(builder.getNamedAttr(
          std::string("mass.") + abi::key::kTargetMin,
          builder.getF64FloatAttr(info.targetRange->first)));
      attrs.push_back(builder.getNamedAttr(
          std::string("mass.") + abi::key::kTargetMax,
          builder.getF64FloatAttr(info.targetRange->second)));
    }
    func.setArgAttrs(i, builder.getDictionaryAttr(attrs));
  }
  for (auto [i, o] : llvm::enumerate(outputs))
    func.setResultAttrs(
        i, builder.getDictionaryAttr(builder.getNamedAttr(
               abi::attr(abi::Role::Output), builder.getStringAttr(o.name))));

  llvm::SmallVector<mlir::Attribute> tasks;
  for (auto &[name, weight] : taskWeights) {
    llvm::SmallVector<mlir::NamedAttribute> task = {
        builder.getNamedAttr(abi::key::kName, builder.getStringAttr(name)),
        builder.getNamedAttr(abi::key::kWeight,
                             builder.getF64FloatAttr(weight))};
    auto labels = taskLabels.find(name);
    if (labels != taskLabels.end())
      task.push_back(builder.getNamedAttr(
          abi::key::kLabels, builder.getStringAttr(labels->second)));
    tasks.push_back(builder.getDictionaryAttr(task));
  }
  (*module)->setAttr("mass.model", builder.getStringAttr((*model)->name));
  (*module)->setAttr("mass.tasks", builder.getArrayAttr(tasks));
  func->remove();
  module->push_back(func);
  return module;
}

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

LogicalResult Elaborator::runStmts(const ast::StmtList &stmts) {
  // A failed statement is reported and the next one runs, as a C compiler
  // goes on after an error: what the failed one would have bound is poison.
  bool ok = true;
  for (const ast::StmtPtr &s : stmts) {
    ok &= mlir::succeeded(runStmt(*s));
    if (tooLarge)
      return failure();
  }
  return mlir::success(ok);
}

LogicalResult Elaborator::runStmt(const ast::Stmt &stmt) {
  switch (stmt.getKind()) {
  case ast::Stmt::Kind::Input:
  case ast::Stmt::Kind::Label:
    return runDecl(cast<ast::DeclStmt>(stmt));
  case ast::Stmt::Kind::Bind:
    return runBind(cast<ast::BindStmt>(stmt));
  case ast::Stmt::Kind::If:
    return runIf(cast<ast::IfStmt>(stmt));
  case ast::Stmt::Kind::Task:
    return runTask(cast<ast::TaskStmt>(stmt));
  case ast::Stmt::Kind::Metric:
    return runMetric(cast<ast::MetricStmt>(stmt));
  }
  return failure();
}

LogicalResult Elaborator::bindName(const std::string &name, Value value,
                                   const ast::Loc &loc) {
  auto it = scope->names.find(name);
  if (it != scope->names.end()) {
    error(loc) << "'" << name << "' is already bound in this scope";
    note(it->second.loc, "previous binding is here");
    return failure();
  }
  scope->oneBranch.erase(name);
  scope->names[name] = {std::move(value), loc};
  return success();
}

LogicalResult Elaborator::runDecl(const ast::DeclStmt &decl) {
  if (mlir::succeeded(declare(decl)))
    return success();
  if (!scope->names.count(decl.name))
    (void)bindName(decl.name, Value::poison(decl.getLoc()), decl.getLoc());
  return failure();
}

LogicalResult Elaborator::declare(const ast::DeclStmt &decl) {
  bool isInput = decl.getKind() == ast::Stmt::Kind::Input;
  const char *what = isInput ? "input" : "label";
  if (!callStack.empty() || task) {
    error(decl.getLoc()) << what << " declarations belong at model level";
    return failure();
  }
  const ast::TypeExpr &type = *decl.type;
  mlir::Type element;
  if (type.dtype == "f32")
    element = builder.getF32Type();
  else if (type.dtype == "i32")
    element = builder.getI32Type();
  else {
    error(type.getLoc()) << "unknown element type '" << type.dtype
                         << "'; expected f32 or i32";
    return failure();
  }
  Shape shape;
  for (auto [i, dim] : llvm::enumerate(type.dims)) {
    if (i == 0) {
      auto *batch = dyn_cast<ast::NameExpr>(dim.get());
      if (!batch || batch->isDotted()) {
        error(dim->getLoc()) << "the first dimension of an " << what
                             << " is the batch: write a name such as B";
        return failure();
      }
      shape.push_back(mlir::ShapedType::kDynamic);
      continue;
    }
    FailureOr<Value> v = eval(*dim);
    if (mlir::failed(v))
      return failure();
    std::optional<int64_t> size = v->asInteger();
    if (!size || *size < 1) {
      error(dim->getLoc()) << "dimension " << i
                           << " must be an integer between 1 and " << kMaxDim;
      return failure();
    }
    shape.push_back(*size);
  }
  mlir::Value arg = body->addArgument(
      mlir::RankedTensorType::get(shape, element), location(decl.getLoc()));
  argInfo.push_back({isInput ? abi::Role::Input : abi::Role::Label, decl.name,
                     Init{}, 0, std::nullopt});
  return bindName(decl.name, Value::ofTensor(arg, decl.getLoc()),
                  decl.getLoc());
}

LogicalResult Elaborator::runBind(const ast::BindStmt &bind) {
  pushFrame();
  FailureOr<Value> value = eval(*bind.value);
  if (mlir::failed(value)) {
    frames.pop_back();
    (void)bindName(bind.name, Value::poison(bind.getLoc()), bind.getLoc());
    return failure();
  }
  popFrame(bind.name);
  if (task && callStack.empty() && bind.name == "loss") {
    if (!value->isTensor() ||
        mlir::cast<mlir::RankedTensorType>(value->tensor.getType()).getRank() !=
            0) {
      error(bind.value->getLoc())
          << "a task's loss must be a scalar tensor, got " << value->describe();
      return failure();
    }
    if (!task->hasLoss) {
      task->hasLoss = true;
      outputs.push_back(
          {std::string(abi::kLossPrefix) + task->name, value->tensor});
      // A cross-entropy is a mean over the labelled rows alone: the runtime
      // weights each batch's loss by their number ("labelled.TASK") when it
      // averages over an epoch, so the epoch's loss is the mean over every
      // labelled row whatever the batches hold.
      if (auto ce = value->tensor.getDefiningOp<mass::CrossEntropyOp>()) {
        // Part of the loss's node in the graph view.
        int previous = currentCall;
        if (graph)
          currentCall = graph->callOf.lookup(ce);
        auto restore = llvm::make_scope_exit([&] { leaveCall(previous); });
        auto counted = builder.create<mass::AccuracyOp>(
            ce.getLoc(), ce.getLogits(), ce.getLabels());
        outputs.push_back({std::string(abi::kLabelledPrefix) + task->name,
                           counted.getCount()});
        // A sequence loss flattens its labels [B, T] to [B * T] first: a
        // rank's rows are still one block of them.
        mlir::Value labelled = ce.getLabels();
        while (auto reshape = labelled.getDefiningOp<mass::ReshapeOp>())
          labelled = reshape.getInput();
        auto labels = mlir::dyn_cast<mlir::BlockArgument>(labelled);
        if (labels && labels.getOwner() == body &&
            argInfo[labels.getArgNumber()].role == abi::Role::Label)
          taskLabels[task->name] = argInfo[labels.getArgNumber()].name;
      }
    }
  }
  return bindName(bind.name, std::move(*value), bind.getLoc());
}

FailureOr<bool> Elaborator::condition(const ast::Expr &expr) {
  FailureOr<Value> cond = eval(expr);
  if (mlir::failed(cond))
    return failure();
  if (cond->kind != Value::Kind::Bool) {
    error(expr.getLoc()) << "an if condition must be a compile-time bool, got "
                         << cond->describe();
    return failure();
  }
  return cond->boolean;
}

LogicalResult Elaborator::runIf(const ast::IfStmt &stmt) {
  FailureOr<bool> cond = condition(*stmt.cond);
  if (mlir::failed(cond)) {
    // Either arm could have run: what either binds is poison.
    llvm::StringSet<> names = boundNames(stmt.thenBody);
    for (auto &name : boundNames(stmt.elseBody))
      names.insert(name.getKey());
    for (auto &name : names)
      if (!scope->names.count(name.getKey()))
        (void)bindName(name.getKey().str(), Value::poison(stmt.getLoc()),
                       stmt.getLoc());
    return failure();
  }
  const ast::StmtList &taken = *cond ? stmt.thenBody : stmt.elseBody;
  const ast::StmtList &other = *cond ? stmt.elseBody : stmt.thenBody;
  LogicalResult ran = runStmts(taken);
  // Only names bound in both arms are visible after the `if`.
  llvm::StringSet<> both = boundNames(other);
  for (auto &name : boundNames(taken)) {
    if (both.contains(name.getKey()))
      continue;
    auto it = scope->names.find(name.getKey());
    if (it == scope->names.end())
      continue;
    scope->oneBranch[name.getKey()] = it->second.loc;
    scope->names.erase(it);
  }
  return ran;
}

LogicalResult Elaborator::runTask(const ast::TaskStmt &stmt) {
  if (!callStack.empty() || task) {
    error(stmt.getLoc()) << "tasks belong at model level";
    return failure();
  }
  for (auto &[name, weight] : taskWeights)
    if (name == stmt.name) {
      error(stmt.getLoc()) << "task '" << stmt.name << "' is defined twice";
      return failure();
    }
  // A bad option is reported and the task's body still checked.
  double weight = 1.0;
  bool optionsOk = true;
  for (const ast::KeywordArg &opt : stmt.options) {
    if (opt.key != "weight") {
      auto diag = error(opt.loc) << "unknown task option '" << opt.key << "'";
      if (nearest(opt.key, {"weight"}).empty())
        diag << "; tasks take `weight`";
      else
        suggest(diag, opt.key, {"weight"});
      optionsOk = false;
      continue;
    }
    FailureOr<Value> w = eval(*opt.value);
    if (mlir::failed(w)) {
      optionsOk = false;
      continue;
    }
    if (!w->isNumber() || !std::isfinite(w->number) || w->number < 0) {
      error(opt.loc) << "a task weight must be a finite number >= 0, got "
                     << w->describe();
      optionsOk = false;
      continue;
    }
    weight = w->number;
  }
  Task current{stmt.name, stmt.getLoc()};
  Scope taskScope;
  taskScope.parent = scope;
  Scope *saved = scope;
  scope = &taskScope;
  task = &current;
  ModelGraph::Cluster cluster;
  cluster.isTask = true;
  cluster.name = stmt.name;
  cluster.loc = stmt.getLoc();
  cluster.weight = weight;
  int outer = enterCluster(std::move(cluster));
  LogicalResult result = runStmts(stmt.body);
  leaveCluster(outer);
  scope = saved;
  task = nullptr;
  if (mlir::failed(result) || !optionsOk)
    return failure(); // a loss that failed was reported as it failed
  if (!current.hasLoss) {
    error(stmt.getLoc()) << "task '" << stmt.name
                         << "' has no loss: bind one with `loss = ...`";
    return failure();
  }
  taskWeights.push_back({stmt.name, weight});
  return success();
}

LogicalResult Elaborator::runMetric(const ast::MetricStmt &stmt) {
  if (!task || !callStack.empty()) {
    error(stmt.getLoc()) << "metrics belong inside a task";
    return failure();
  }
  const LayerSpec *spec = lookupLayer(stmt.call->callee);
  if (!spec || !spec->isMetric) {
    auto diag = error(stmt.call->getLoc())
                << "unknown metric '" << stmt.call->callee << "'";
    std::vector<llvm::StringRef> metrics;
    for (llvm::StringRef name : layerNames())
      if (lookupLayer(name)->isMetric)
        metrics.push_back(name);
    suggest(diag, stmt.call->callee, metrics);
    return failure();
  }
  inMetric = true;
  FailureOr<Value> result = evalCall(*stmt.call);
  inMetric = false;
  if (mlir::failed(result))
    return failure();
  std::string name = stmt.call->callee;
  if (name == "top_k") {
    const ast::KeywordArg *k = stmt.call->findKeyword("k");
    auto *num = k ? dyn_cast<ast::NumberExpr>(k->value.get()) : nullptr;
    name = "top" + std::to_string(num ? static_cast<int64_t>(num->value) : 0);
  }
  std::string key = std::string(abi::kMetricPrefix) + task->name + "." + name;
  for (const Output &o : outputs)
    if (o.name == key + ".sum") {
      error(stmt.getLoc()) << "metric '" << name << "' is given twice in task '"
                           << task->name << "'";
      return failure();
    }
  outputs.push_back({key + ".sum", result->elements[0].tensor});
  outputs.push_back({key + ".count", result->elements[1].tensor});
  return success();
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

FailureOr<Value> Elaborator::eval(const ast::Expr &expr) {
  // The parser bounds one expression's nesting; blocks calling blocks add
  // up theirs.
  constexpr unsigned kMaxEvalNesting = 512;
  if (evalNesting >= kMaxEvalNesting) {
    error(expr.getLoc()) << "blocks and expressions nested deeper than "
                         << kMaxEvalNesting << " levels";
    return failure();
  }
  ++evalNesting;
  auto done = llvm::make_scope_exit([&] { --evalNesting; });
  return evalUnbounded(expr);
}

FailureOr<Value> Elaborator::evalUnbounded(const ast::Expr &expr) {
  switch (expr.getKind()) {
  case ast::Expr::Kind::Number: {
    auto &n = cast<ast::NumberExpr>(expr);
    return Value::ofNumber(n.value, n.isInteger, expr.getLoc());
  }
  case ast::Expr::Kind::Bool:
    return Value::ofBool(cast<ast::BoolExpr>(expr).value, expr.getLoc());
  case ast::Expr::Kind::String: {
    Value v;
    v.kind = Value::Kind::String;
    v.str = cast<ast::StringExpr>(expr).value;
    v.loc = expr.getLoc();
    return v;
  }
  case ast::Expr::Kind::Name:
    return evalName(cast<ast::NameExpr>(expr));
  case ast::Expr::Kind::Call:
    return evalCall(cast<ast::CallExpr>(expr));
  case ast::Expr::Kind::Binary:
    return evalBinary(cast<ast::BinaryExpr>(expr));
  case ast::Expr::Kind::Unary:
    return evalUnary(cast<ast::UnaryExpr>(expr));
  case ast::Expr::Kind::List:
  case ast::Expr::Kind::Tuple: {
    Value v;
    v.kind = expr.getKind() == ast::Expr::Kind::List ? Value::Kind::List
                                                     : Value::Kind::Tuple;
    v.loc = expr.getLoc();
    for (const ast::ExprPtr &e : cast<ast::SeqExpr>(expr).elements) {
      FailureOr<Value> element = eval(*e);
      if (mlir::failed(element))
        return failure();
      v.elements.push_back(std::move(*element));
    }
    return v;
  }
  case ast::Expr::Kind::Type:
    return evalType(cast<ast::TypeExpr>(expr));
  }
  return failure();
}

FailureOr<Value> Elaborator::evalName(const ast::NameExpr &expr) {
  if (expr.isDotted()) {
    error(expr.getLoc()) << "'" << expr.str()
                         << "': dotted names are only meaningful in train "
                            "blocks";
    return failure();
  }
  const std::string &name = expr.parts[0];
  if (const Scope::Entry *entry = scope->lookup(name)) {
    if (entry->value.kind == Value::Kind::Poison)
      return failure(); // its own statement's error says why
    Value v = entry->value;
    v.loc = expr.getLoc();
    return v;
  }
  for (const Scope *s = scope; s; s = s->parent) {
    auto it = s->oneBranch.find(name);
    if (it != s->oneBranch.end()) {
      error(expr.getLoc()) << "'" << name
                           << "' is bound in only one branch of an if; bind "
                              "it in both to use it after the if";
      note(it->second, "bound here");
      return failure();
    }
  }
  auto diag = error(expr.getLoc()) << "unknown name '" << name << "'";
  std::vector<llvm::StringRef> candidates;
  for (const Scope *s = scope; s; s = s->parent)
    for (auto &entry : s->names)
      candidates.push_back(entry.getKey());
  suggest(diag, name, candidates);
  if (lookupLayer(name) || blocks.count(name))
    diag << " ('" << name << "' is a layer; call it as " << name << "(...))";
  return failure();
}

FailureOr<Value> Elaborator::evalType(const ast::TypeExpr &expr) {
  if (expr.dtype != "f32") {
    error(expr.getLoc()) << "parameters are f32; got '" << expr.dtype << "'";
    return failure();
  }
  Value v;
  v.kind = Value::Kind::Type;
  v.str = expr.dtype;
  v.loc = expr.getLoc();
  for (const ast::ExprPtr &d : expr.dims) {
    FailureOr<Value> dim = eval(*d);
    if (mlir::failed(dim))
      return failure();
    std::optional<int64_t> size = dim->asInteger();
    if (!size || *size < 1) {
      error(d->getLoc()) << "a dimension must be an integer between 1 and "
                         << kMaxDim << ", got " << dim->describe();
      return failure();
    }
    v.dims.push_back(*size);
  }
  return v;
}

FailureOr<Value> Elaborator::evalUnary(const ast::UnaryExpr &expr) {
  FailureOr<Value> operand = eval(*expr.operand);
  if (mlir::failed(operand))
    return failure();
  if (expr.op == ast::UnaryOp::Not) {
    if (operand->kind != Value::Kind::Bool) {
      error(expr.getLoc()) << "'not' needs a bool, got " << operand->describe();
      return failure();
    }
    return Value::ofBool(!operand->boolean, expr.getLoc());
  }
  if (operand->isNumber())
    return Value::ofNumber(-operand->number, operand->isInteger, expr.getLoc());
  if (operand->isTensor() &&
      mlir::cast<mlir::RankedTensorType>(operand->tensor.getType())
          .getElementType()
          .isF32())
    return Value::ofTensor(
        builder.create<NegOp>(location(expr.getLoc()), operand->tensor),
        expr.getLoc());
  error(expr.getLoc()) << "cannot negate " << operand->describe();
  return failure();
}

FailureOr<Value> Elaborator::evalBinary(const ast::BinaryExpr &expr) {
  FailureOr<Value> lhs = eval(*expr.lhs);
  if (mlir::failed(lhs))
    return failure();
  FailureOr<Value> rhs = eval(*expr.rhs);
  if (mlir::failed(rhs))
    return failure();
  return arithmetic(expr.op, *lhs, *rhs, expr.getLoc());
}

FailureOr<Value> Elaborator::arithmetic(ast::BinaryOp op, const Value &lhs,
                                        const Value &rhs, const ast::Loc &loc) {
  using ast::BinaryOp;
  auto opText = ast::spelling(op);
  if (op == BinaryOp::And || op == BinaryOp::Or) {
    if (lhs.kind != Value::Kind::Bool || rhs.kind != Value::Kind::Bool) {
      error(loc) << "'" << opText << "' needs bools, got " << lhs.describe()
                 << " and " << rhs.describe();
      return failure();
    }
    return Value::ofBool(op == BinaryOp::And ? lhs.boolean && rhs.boolean
                                             : lhs.boolean || rhs.boolean,
                         loc);
  }
  bool comparison = op == BinaryOp::Eq || op == BinaryOp::Ne ||
                    op == BinaryOp::Lt || op == BinaryOp::Le ||
                    op == BinaryOp::Gt || op == BinaryOp::Ge;
  if (comparison) {
    if ((op == BinaryOp::Eq || op == BinaryOp::Ne) && lhs.kind == rhs.kind &&
        (lhs.kind == Value::Kind::String || lhs.kind == Value::Kind::Bool)) {
      bool equal = lhs.kind == Value::Kind::String ? lhs.str == rhs.str
                                                   : lhs.boolean == rhs.boolean;
      return Value::ofBool(op == BinaryOp::Eq ? equal : !equal, loc);
    }
    if (!lhs.isNumber() || !rhs.isNumber()) {
      error(loc) << "'" << opText << "' compares compile-time numbers, got "
                 << lhs.describe() << " and " << rhs.describe();
      return failure();
    }
    double a = lhs.number, b = rhs.number;
    bool r = op == BinaryOp::Eq   ? a == b
             : op == BinaryOp::Ne ? a != b
             : op == BinaryOp::Lt ? a < b
             : op == BinaryOp::Le ? a <= b
             : op == BinaryOp::Gt ? a > b
                                  : a >= b;
    return Value::ofBool(r, loc);
  }

  if (lhs.isNumber() && rhs.isNumber()) {
    double a = lhs.number, b = rhs.number;
    bool integer = lhs.isInteger && rhs.isInteger;
    switch (op) {
    case BinaryOp::Add:
      return Value::ofNumber(a + b, integer, loc);
    case BinaryOp::Sub:
      return Value::ofNumber(a - b, integer, loc);
    case BinaryOp::Mul:
      return Value::ofNumber(a * b, integer, loc);
    default:
      if (b == 0) {
        error(loc) << "division by zero";
        return failure();
      }
      return Value::ofNumber(a / b, integer && std::fmod(a, b) == 0, loc);
    }
  }

  int previous = enterCall(opText, loc);
  auto restore = llvm::make_scope_exit([&] { leaveCall(previous); });
  auto operand = [&](const Value &v) -> FailureOr<mlir::Value> {
    if (v.isNumber())
      return scalar(v.number, loc);
    if (v.isTensor()) {
      auto type = mlir::cast<mlir::RankedTensorType>(v.tensor.getType());
      if (type.getElementType().isF32())
        return v.tensor;
      error(v.loc) << "arithmetic needs f32 tensors; this is " << v.describe()
                   << " (i32 labels feed losses and metrics)";
      return failure();
    }
    error(v.loc) << "'" << opText << "' needs tensors or numbers, got "
                 << v.describe();
    return failure();
  };
  FailureOr<mlir::Value> a = operand(lhs);
  if (mlir::failed(a))
    return failure();
  FailureOr<mlir::Value> b = operand(rhs);
  if (mlir::failed(b))
    return failure();
  auto shapeA = mlir::cast<mlir::RankedTensorType>(a->getType()).getShape();
  auto shapeB = mlir::cast<mlir::RankedTensorType>(b->getType()).getShape();
  if (mlir::failed(check(broadcastShape(shapeA, shapeB), loc)))
    return failure();
  mlir::Location l = location(loc);
  mlir::Value result;
  switch (op) {
  case BinaryOp::Add:
    result = builder.create<AddOp>(l, *a, *b);
    break;
  case BinaryOp::Sub:
    result = builder.create<SubOp>(l, *a, *b);
    break;
  case BinaryOp::Mul:
    result = builder.create<MulOp>(l, *a, *b);
    break;
  default:
    result = builder.create<DivOp>(l, *a, *b);
    break;
  }
  return Value::ofTensor(result, loc);
}

//===----------------------------------------------------------------------===//
// Calls
//===----------------------------------------------------------------------===//

FailureOr<Value> Elaborator::evalCall(const ast::CallExpr &call) {
  bool metricCall = inMetric; // only the outermost call of a metric statement
  inMetric = false;
  // `param(TYPE, init: NAME)` reads its init syntactically.
  if (call.callee == "param") {
    int previous = enterCall(call.callee, call.getLoc());
    auto restore = llvm::make_scope_exit([&] { leaveCall(previous); });
    return lookupLayer("param")->build(*this, Args(*this, call));
  }

  const ast::BlockDecl *block = nullptr;
  const LayerSpec *layer = nullptr;
  auto it = blocks.find(call.callee);
  if (it != blocks.end())
    block = it->second;
  else
    layer = lookupLayer(call.callee);
  bool shapeQuery = call.callee == "channels" || call.callee == "dim";
  if (!block && !layer && !shapeQuery) {
    auto diag = error(call.getLoc())
                << "unknown layer or block '" << call.callee << "'";
    std::vector<llvm::StringRef> candidates = layerNames();
    candidates.push_back("channels");
    candidates.push_back("dim");
    for (auto &b : blocks)
      candidates.push_back(b.getKey());
    suggest(diag, call.callee, candidates);
    return failure();
  }
  if ((layer && layer->isMetric != metricCall) || (!layer && metricCall)) {
    error(call.getLoc()) << call.callee
                         << (metricCall ? " is not a metric"
                                        : " is a metric: use it as `metric " +
                                              call.callee + "(...)` in a task");
    return failure();
  }
  // Arguments first, left to right: inner calls take their numbers first.
  std::vector<Value> positional;
  for (const ast::ExprPtr &a : call.args) {
    FailureOr<Value> v = eval(*a);
    if (mlir::failed(v))
      return failure();
    positional.push_back(std::move(*v));
  }
  bool handled = false;
  FailureOr<Value> intrinsic = evalIntrinsic(call, positional, handled);
  if (handled)
    return intrinsic;

  llvm::StringMap<Value> keywords;
  for (const ast::KeywordArg &kw : call.kwargs) {
    if (keywords.count(kw.key)) {
      error(kw.loc) << "argument '" << kw.key << "' is given twice";
      return failure();
    }
    if (layer && kw.key == "init") {
      // An initialiser (normal(std: 0.02)) is not a value: the layer reads
      // its expression from the call.
      Value v;
      v.kind = Value::Kind::String;
      v.loc = kw.loc;
      keywords[kw.key] = std::move(v);
      continue;
    }
    FailureOr<Value> v = eval(*kw.value);
    if (mlir::failed(v))
      return failure();
    keywords[kw.key] = std::move(*v);
  }
  if (block)
    return callBlock(*block, call, std::move(positional), std::move(keywords));
  if (!layer->build) {
    error(call.getLoc()) << call.callee << ": not supported yet";
    return failure();
  }

  // Bind the arguments to the layer's parameters. A variadic layer takes
  // all of its positional arguments as its inputs and its parameters by
  // keyword (`concat(a, b, c, axis: 1)`).
  Args args(*this, call);
  size_t next = 0;
  for (Value &v : positional) {
    if (!layer->variadic && next < layer->params.size()) {
      args.bound[layer->params[next++].ltrim('?')] = std::move(v);
    } else if (layer->variadic) {
      args.extra.push_back(std::move(v));
    } else {
      error(v.loc) << call.callee << " takes at most " << layer->params.size()
                   << " positional argument"
                   << (layer->params.size() == 1 ? "" : "s");
      return failure();
    }
  }
  for (auto &kw : keywords) {
    auto match = llvm::find_if(layer->params, [&](llvm::StringRef p) {
      return p.ltrim('?') == kw.getKey();
    });
    if (match == layer->params.end()) {
      const ast::KeywordArg *where = call.findKeyword(kw.getKey());
      auto diag = error(where->loc)
                  << call.callee << " has no argument '" << kw.getKey() << "'";
      std::vector<llvm::StringRef> names;
      for (llvm::StringRef p : layer->params)
        names.push_back(p.ltrim('?'));
      suggest(diag, kw.getKey(), names);
      return failure();
    }
    if (args.bound.count(kw.getKey())) {
      error(call.findKeyword(kw.getKey())->loc)
          << "argument '" << kw.getKey() << "' is given twice";
      return failure();
    }
    args.bound[kw.getKey()] = std::move(kw.getValue());
  }
  for (llvm::StringRef p : layer->params)
    if (!p.starts_with("?") && !args.bound.count(p)) {
      error(call.getLoc()) << call.callee << " needs argument '" << p << "'";
      return failure();
    }
  int previous = enterCall(call.callee, call.getLoc());
  auto restore = llvm::make_scope_exit([&] { leaveCall(previous); });
  return layer->build(*this, args);
}

FailureOr<Value> Elaborator::evalIntrinsic(const ast::CallExpr &call,
                                           std::vector<Value> &args,
                                           bool &handled) {
  // Compile-time shape queries.
  if (call.callee == "channels" || call.callee == "dim") {
    handled = true;
    bool isDim = call.callee == "dim";
    if (args.size() != (isDim ? 2u : 1u) || !call.kwargs.empty() ||
        !args[0].isTensor()) {
      error(call.getLoc()) << (isDim ? "dim(x, axis)" : "channels(x)")
                           << " takes a tensor"
                           << (isDim ? " and an axis" : "");
      return failure();
    }
    auto shape =
        mlir::cast<mlir::RankedTensorType>(args[0].tensor.getType()).getShape();
    int64_t axis = 1;
    if (isDim) {
      std::optional<int64_t> given = args[1].asInteger();
      if (!given) {
        error(args[1].loc) << "the axis must be an integer";
        return failure();
      }
      axis = *given;
    }
    std::optional<int64_t> a = normalizeAxis(axis, shape.size());
    if (!a) {
      error(call.getLoc()) << "axis " << axis << " is out of range for "
                           << formatShape(shape);
      return failure();
    }
    if (mlir::ShapedType::isDynamic(shape[*a])) {
      error(call.getLoc()) << "axis " << axis
                           << " is the batch, which is not known at compile "
                              "time";
      return failure();
    }
    return Value::ofNumber(shape[*a], true, call.getLoc());
  }
  // Math on compile-time numbers folds: sqrt(16.0) is 4.
  static const llvm::StringSet<> foldable = {"exp", "log", "sqrt", "abs"};
  if (foldable.contains(call.callee) && args.size() == 1 &&
      call.kwargs.empty() && args[0].isNumber()) {
    handled = true;
    double x = args[0].number, r;
    if ((call.callee == "log" && x <= 0) || (call.callee == "sqrt" && x < 0)) {
      error(call.getLoc()) << call.callee << " of " << x << " is undefined";
      return failure();
    }
    if (call.callee == "exp")
      r = std::exp(x);
    else if (call.callee == "log")
      r = std::log(x);
    else if (call.callee == "sqrt")
      r = std::sqrt(x);
    else
      r = std::fabs(x);
    return Value::ofNumber(r, call.callee == "abs" && args[0].isInteger,
                           call.getLoc());
  }
  return failure();
}

FailureOr<Value> Elaborator::callBlock(const ast::BlockDecl &block,
                                       const ast::CallExpr &call,
                                       std::vector<Value> positional,
                                       llvm::StringMap<Value> keywords) {
  if (llvm::is_contained(callStack, &block)) {
    error(call.getLoc()) << "block '" << block.name
                         << "' calls itself; recursion is not allowed";
    return failure();
  }
  if (positional.size() > block.params.size()) {
    error(positional[block.params.size()].loc)
        << "block '" << block.name << "' takes " << block.params.size()
        << " argument" << (block.params.size() == 1 ? "" : "s");
    return failure();
  }

  Scope blockScope;
  for (auto [i, v] : llvm::enumerate(positional))
    blockScope.names[block.params[i].name] = {std::move(v),
                                              block.params[i].loc};
  for (auto &kw : keywords) {
    auto param = llvm::find_if(block.params, [&](const ast::BlockParam &p) {
      return p.name == kw.getKey();
    });
    const ast::KeywordArg *where = call.findKeyword(kw.getKey());
    if (param == block.params.end()) {
      auto diag = error(where->loc)
                  << "block '" << block.name << "' has no parameter '"
                  << kw.getKey() << "'";
      std::vector<llvm::StringRef> names;
      for (const ast::BlockParam &p : block.params)
        names.push_back(p.name);
      suggest(diag, kw.getKey(), names);
      return failure();
    }
    if (blockScope.names.count(kw.getKey())) {
      error(where->loc) << "argument '" << kw.getKey() << "' is given twice";
      return failure();
    }
    blockScope.names[kw.getKey()] = {std::move(kw.getValue()), param->loc};
  }

  // Defaults are evaluated in the block's scope, after the arguments.
  Scope *saved = scope;
  Task *savedTask = task;
  scope = &blockScope;
  callStack.push_back(&block);
  frames.push_back(Frame{/*isBinding=*/false});
  ModelGraph::Cluster cluster;
  cluster.name = block.name;
  cluster.loc = call.getLoc();
  int outerCluster = enterCluster(std::move(cluster));
  auto finish = [&](FailureOr<Value> result) -> FailureOr<Value> {
    if (graph && !frames.back().entries.empty()) {
      ModelGraph::Cluster &cluster = graph->clusters[currentCluster];
      cluster.anchorArg = frames.back().entries.front().arg;
      cluster.anchorSuffix = frames.back().entries.front().suffix;
    }
    leaveCluster(outerCluster);
    scope = saved;
    task = savedTask;
    callStack.pop_back();
    Frame collected = std::move(frames.back());
    frames.pop_back();
    if (mlir::failed(result)) {
      note(call.getLoc(), "in block '" + block.name + "' called here");
      return failure();
    }
    if (!collected.entries.empty()) {
      if (mlir::failed(beginParamCall(call.getLoc(), block.name)))
        return failure();
      Frame &outer = frames.back();
      for (Frame::Entry &e : collected.entries)
        outer.entries.push_back({e.arg, outer.currentSlot, e.suffix});
    }
    result->loc = call.getLoc();
    return result;
  };

  for (const ast::BlockParam &p : block.params) {
    if (blockScope.names.count(p.name))
      continue;
    if (!p.defaultValue) {
      error(call.getLoc()) << "block '" << block.name << "' needs argument '"
                           << p.name << "'";
      return finish(failure());
    }
    FailureOr<Value> v = eval(*p.defaultValue);
    if (mlir::failed(v))
      return finish(failure());
    blockScope.names[p.name] = {std::move(*v), p.loc};
  }
  // A task's name prefixes only bindings made at its own level.
  task = nullptr;
  if (mlir::failed(runStmts(block.body)))
    return finish(failure());
  pushFrame();
  FailureOr<Value> result = eval(*block.result);
  if (mlir::failed(result)) {
    frames.pop_back();
    return finish(failure());
  }
  popFrame("");
  return finish(std::move(result));
}

FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
mass::buildModule(mlir::MLIRContext &context, const Program &program,
                  ModelGraph *graph) {
  return Elaborator(context, program, graph).run();
}
