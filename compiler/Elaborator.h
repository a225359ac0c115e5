//===- Elaborator.h - Expanding a model into the mass dialect ---*- C++ -*-===//
//
// The elaborator runs a model's statements at compile time: it resolves
// names, expands blocks and compile-time `if`s, infers shapes (the batch
// stays symbolic), names parameters as the spec prescribes, and emits mass
// ops into one function. Layers and ops are built by the table in Layers.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_COMPILER_ELABORATOR_H
#define MASS_COMPILER_ELABORATOR_H

#include "compiler/Graph.h"
#include "compiler/Program.h"
#include "compiler/Value.h"
#include "mass/vocabulary.h"

#include "dialects/Mass/Shapes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"

namespace mass {

class Elaborator;

/// The arguments of one call, bound to the callee's parameter names.
class Args {
public:
  Args(Elaborator &elab, const ast::CallExpr &call) : elab(elab), call(call) {}

  const ast::CallExpr &getCall() const { return call; }
  const ast::Loc &loc() const { return call.getLoc(); }
  bool has(llvm::StringRef name) const { return bound.count(name); }
  const Value &get(llvm::StringRef name) const {
    return bound.find(name)->second;
  }
  /// Extra positional arguments of a variadic callee.
  const std::vector<Value> &rest() const { return extra; }
  /// Where argument `name` was written; the call when it was not.
  const ast::Loc &argLoc(llvm::StringRef name) const;

  mlir::FailureOr<mlir::Value> tensor(llvm::StringRef name) const;
  mlir::FailureOr<int64_t> integer(llvm::StringRef name, int64_t dflt) const;
  mlir::FailureOr<double> number(llvm::StringRef name, double dflt) const;
  mlir::FailureOr<bool> boolean(llvm::StringRef name, bool dflt) const;
  /// A string argument that must be one of `choices` (the first is the
  /// default).
  mlir::FailureOr<std::string>
  choice(llvm::StringRef name, llvm::ArrayRef<llvm::StringRef> choices) const;
  /// An axis or a list of axes; `all` when the argument is absent.
  mlir::FailureOr<std::vector<int64_t>> axes(llvm::StringRef name,
                                             int64_t rank) const;

private:
  friend class Elaborator;
  Elaborator &elab;
  const ast::CallExpr &call;
  llvm::StringMap<Value> bound;
  std::vector<Value> extra;
};

using LayerBuilder = mlir::FailureOr<Value> (*)(Elaborator &, const Args &);

/// A built-in callable: its parameters in positional order (a leading '?'
/// marks an optional one) and how to build it. Without a builder, the
/// callable is part of the language but not supported yet.
struct LayerSpec {
  llvm::StringRef name;
  std::vector<llvm::StringRef> params;
  LayerBuilder build = nullptr;
  bool variadic = false; // positional arguments are inputs, `params` keywords
  bool isMetric = false; // only in `metric` statements
};

/// The table of built-in layers and ops, in Layers.cpp.
const LayerSpec *lookupLayer(llvm::StringRef name);
/// Built-in names for "did you mean" suggestions.
std::vector<llvm::StringRef> layerNames();

/// How a parameter is initialised: U(-scale, scale), N(0, scale), or a
/// constant.
struct Init {
  enum class Kind { Uniform, Normal, Zeros, Ones } kind = Kind::Zeros;
  double scale = 0;
};

class Elaborator {
public:
  /// With `graph`, records which call and which block or task builds each
  /// op, for `--emit=dot`.
  Elaborator(mlir::MLIRContext &context, const Program &program,
             ModelGraph *graph = nullptr);

  /// Builds the module for the model that the main file selects.
  mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> run();

  // Services for the layer builders.
  mlir::MLIRContext *getContext() { return &context; }
  mlir::OpBuilder &getBuilder() { return builder; }
  mlir::Location location(const ast::Loc &loc);
  mlir::InFlightDiagnostic error(const ast::Loc &loc);
  /// A note that follows the error just reported.
  void note(const ast::Loc &loc, const llvm::Twine &message);
  mlir::RankedTensorType f32Tensor(llvm::ArrayRef<int64_t> shape);
  /// A rank-0 f32 constant.
  mlir::Value scalar(double value, const ast::Loc &loc);
  /// Turns a shape rule's verdict into a diagnostic at `loc`.
  mlir::FailureOr<Shape> check(const ShapeResult &result, const ast::Loc &loc);
  /// Fails, with a message, for shapes beyond kMaxDim or kMaxElements.
  mlir::LogicalResult checkSize(llvm::ArrayRef<int64_t> shape,
                                const ast::Loc &loc);

  /// Starts a call that holds parameters: it takes the next number in the
  /// binding being evaluated. Fails when no binding receives the call.
  mlir::LogicalResult beginParamCall(const ast::Loc &loc,
                                     llvm::StringRef callee);
  /// Adds a parameter of the current param-holding call; `suffix` is its
  /// name below the call ("weight", "bias"; empty for `param(...)`).
  mlir::Value addParam(llvm::ArrayRef<int64_t> shape, llvm::StringRef suffix,
                       Init init, const ast::Loc &loc);
  /// Adds a buffer of the current call: state that training updates but
  /// the optimizer does not (batch norm's running statistics), named and
  /// saved like a parameter.
  mlir::Value addBuffer(llvm::ArrayRef<int64_t> shape, llvm::StringRef suffix,
                        Init init, const ast::Loc &loc);
  /// A fresh number for each random op (dropout), so that each draws its
  /// own stream.
  int64_t nextStream() { return streams++; }
  /// The parameter named `name` (its full name, as the checkpoint has it)
  /// among those bound so far; null when there is none, with a located
  /// error that suggests the nearest names.
  mlir::Value sharedParam(llvm::StringRef name, const ast::Loc &loc,
                          llvm::StringRef callee);
  /// `ids` index a table of `rows` rows (an embedding's, or the classes of
  /// logits): when they are an input, the runtime checks its data against
  /// [0, rows); when a label, against [-1, rows).
  void boundIds(mlir::Value ids, int64_t rows);
  /// Records that `target`, when it is a label, must hold values in
  /// [lo, hi] (the runtime checks the data once when it opens it).
  void boundTargets(mlir::Value target, double lo, double hi);
  /// Evaluates an expression in the current scope.
  mlir::FailureOr<Value> eval(const ast::Expr &expr);
  mlir::FailureOr<Value> evalUnbounded(const ast::Expr &expr);

private:
  struct Scope;
  struct Frame;
  struct Task;

  mlir::MLIRContext &context;
  const Program &program;
  mlir::OpBuilder builder;
  mlir::Block *body = nullptr;
  llvm::StringMap<const ast::BlockDecl *> blocks;
  std::vector<const ast::BlockDecl *> callStack;
  /// Expressions being evaluated, through block calls: bounded so that a
  /// long chain of blocks calling blocks cannot exhaust the stack.
  unsigned evalNesting = 0;
  /// Set when a parameter or buffer was too large (reported where made).
  bool tooLarge = false;
  std::vector<Frame> frames;
  Scope *scope = nullptr;
  Task *task = nullptr;
  bool inMetric = false;

  /// The graph view's record (null unless --emit=dot asks for it): the
  /// cluster and the call being elaborated, and a listener that files each
  /// op the builder inserts under them.
  struct Recorder : mlir::OpBuilder::Listener {
    Elaborator &elab;
    explicit Recorder(Elaborator &elab) : elab(elab) {}
    void notifyOperationInserted(mlir::Operation *op,
                                 mlir::OpBuilder::InsertPoint) override;
  };
  ModelGraph *graph = nullptr;
  Recorder recorder{*this};
  int currentCluster = 0;
  int currentCall = -1;
  /// Enters a call of `callee` (a layer, or an operator between tensors)
  /// in the graph's record; returns what leaveCall restores.
  int enterCall(llvm::StringRef callee, const ast::Loc &loc);
  void leaveCall(int previous) { currentCall = previous; }
  int enterCluster(ModelGraph::Cluster cluster);
  void leaveCluster(int previous) { currentCluster = previous; }
  int64_t streams = 0;

  mlir::Value addState(abi::Role role, llvm::ArrayRef<int64_t> shape,
                       llvm::StringRef suffix, Init init, const ast::Loc &loc);

  struct ArgInfo {
    abi::Role role; // input, label, param or buffer
    std::string name;
    Init init;
    int64_t idBound = 0; // ids (an input) or classes (a label) < idBound
    std::optional<std::pair<double, double>> targetRange; // an f32 label's
  };
  std::vector<ArgInfo> argInfo;
  struct Output {
    std::string name;
    mlir::Value value;
  };
  std::vector<Output> outputs;
  std::vector<std::pair<std::string, double>> taskWeights;
  /// The label input whose -1 entries a task's cross-entropy skips, by
  /// task: a data-parallel rank weights its share of the loss by the
  /// labelled rows it holds before its step runs.
  llvm::StringMap<std::string> taskLabels;

  mlir::FailureOr<const ast::ModelDecl *> selectModel();
  mlir::LogicalResult collectBlocks();

  mlir::LogicalResult runStmts(const ast::StmtList &stmts);
  mlir::LogicalResult runStmt(const ast::Stmt &stmt);
  mlir::LogicalResult runDecl(const ast::DeclStmt &decl);
  mlir::LogicalResult declare(const ast::DeclStmt &decl);
  mlir::LogicalResult runBind(const ast::BindStmt &bind);
  mlir::LogicalResult runIf(const ast::IfStmt &stmt);
  mlir::LogicalResult runTask(const ast::TaskStmt &task);
  mlir::LogicalResult runMetric(const ast::MetricStmt &metric);
  mlir::LogicalResult bindName(const std::string &name, Value value,
                               const ast::Loc &loc);

  mlir::FailureOr<Value> evalName(const ast::NameExpr &name);
  mlir::FailureOr<Value> evalCall(const ast::CallExpr &call);
  mlir::FailureOr<Value> evalBinary(const ast::BinaryExpr &expr);
  mlir::FailureOr<Value> evalUnary(const ast::UnaryExpr &expr);
  mlir::FailureOr<Value> evalType(const ast::TypeExpr &expr);
  mlir::FailureOr<Value> callBlock(const ast::BlockDecl &block,
                                   const ast::CallExpr &call,
                                   std::vector<Value> positional,
                                   llvm::StringMap<Value> keywords);
  mlir::FailureOr<Value> arithmetic(ast::BinaryOp op, const Value &lhs,
                                    const Value &rhs, const ast::Loc &loc);
  mlir::FailureOr<Value> evalIntrinsic(const ast::CallExpr &call,
                                       std::vector<Value> &args, bool &handled);
  mlir::FailureOr<bool> condition(const ast::Expr &expr);

  void pushFrame();
  /// Names the parameters created while evaluating `binding`.
  void popFrame(llvm::StringRef binding);

  friend class Args;
};

/// Elaborates the program's model into a module of the mass dialect.
/// With `graph`, also records the model's structure for printDot.
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
buildModule(mlir::MLIRContext &context, const Program &program,
            ModelGraph *graph = nullptr);

} // namespace mass

#endif // MASS_COMPILER_ELABORATOR_H
