//===- AST.h - The Mass abstract syntax tree ------------------------------===//
//
// The parse tree of one `.mass` file, with a source location on every node.
// Pipelines are desugared while building it: `x |> f(a)` is the call
// `f(x, a)` with `piped` set, so later stages see one form of call.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_COMPILER_AST_H
#define MASS_COMPILER_AST_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mass::ast {

/// A position in a source file: 1-based line and column.
struct Loc {
  std::string file;
  unsigned line = 0;
  unsigned col = 0;
};

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

class Expr {
public:
  enum class Kind {
    Number,
    String,
    Bool,
    Name,
    Call,
    Binary,
    Unary,
    List,
    Tuple,
    Type
  };
  Expr(Kind kind, Loc loc) : kind(kind), loc(std::move(loc)) {}
  virtual ~Expr() = default;
  Kind getKind() const { return kind; }
  const Loc &getLoc() const { return loc; }

  /// 1 for a leaf, else 1 + the deepest operand's: the parser bounds it so
  /// that every later recursive walk over the tree fits on the stack.
  unsigned nesting = 1;

private:
  Kind kind;
  Loc loc;
};
using ExprPtr = std::unique_ptr<Expr>;

struct NumberExpr : Expr {
  NumberExpr(Loc loc, double value, bool isInteger)
      : Expr(Kind::Number, std::move(loc)), value(value), isInteger(isInteger) {
  }
  double value;
  bool isInteger; // written without '.' or exponent
  static bool classof(const Expr *e) { return e->getKind() == Kind::Number; }
};

struct StringExpr : Expr {
  StringExpr(Loc loc, std::string value)
      : Expr(Kind::String, std::move(loc)), value(std::move(value)) {}
  std::string value; // escapes already resolved
  static bool classof(const Expr *e) { return e->getKind() == Kind::String; }
};

struct BoolExpr : Expr {
  BoolExpr(Loc loc, bool value)
      : Expr(Kind::Bool, std::move(loc)), value(value) {}
  bool value;
  static bool classof(const Expr *e) { return e->getKind() == Kind::Bool; }
};

/// A value name, or a dotted path such as `val.classify.accuracy`.
struct NameExpr : Expr {
  NameExpr(Loc loc, std::vector<std::string> parts)
      : Expr(Kind::Name, std::move(loc)), parts(std::move(parts)) {}
  std::vector<std::string> parts;
  bool isDotted() const { return parts.size() > 1; }
  std::string str() const;
  static bool classof(const Expr *e) { return e->getKind() == Kind::Name; }
};

struct KeywordArg {
  Loc loc;
  std::string key;
  ExprPtr value;
};

/// `callee(args..., key: value...)`; also a pipeline stage.
struct CallExpr : Expr {
  CallExpr(Loc loc, std::string callee)
      : Expr(Kind::Call, std::move(loc)), callee(std::move(callee)) {}
  std::string callee;
  std::vector<ExprPtr> args;
  std::vector<KeywordArg> kwargs;
  bool piped = false; // args[0] came from the left side of `|>`
  const KeywordArg *findKeyword(llvm::StringRef key) const;
  static bool classof(const Expr *e) { return e->getKind() == Kind::Call; }
};

enum class BinaryOp { Add, Sub, Mul, Div, Eq, Ne, Lt, Le, Gt, Ge, And, Or };
llvm::StringRef spelling(BinaryOp op);

struct BinaryExpr : Expr {
  BinaryExpr(Loc loc, BinaryOp op, ExprPtr lhs, ExprPtr rhs)
      : Expr(Kind::Binary, std::move(loc)), op(op), lhs(std::move(lhs)),
        rhs(std::move(rhs)) {}
  BinaryOp op;
  ExprPtr lhs, rhs;
  static bool classof(const Expr *e) { return e->getKind() == Kind::Binary; }
};

enum class UnaryOp { Neg, Not };

struct UnaryExpr : Expr {
  UnaryExpr(Loc loc, UnaryOp op, ExprPtr operand)
      : Expr(Kind::Unary, std::move(loc)), op(op), operand(std::move(operand)) {
  }
  UnaryOp op;
  ExprPtr operand;
  static bool classof(const Expr *e) { return e->getKind() == Kind::Unary; }
};

/// `[a, b]` (List) or `(a, b)` (Tuple).
struct SeqExpr : Expr {
  SeqExpr(Kind kind, Loc loc) : Expr(kind, std::move(loc)) {}
  std::vector<ExprPtr> elements;
  static bool classof(const Expr *e) {
    return e->getKind() == Kind::List || e->getKind() == Kind::Tuple;
  }
};

/// A tensor type such as `f32[B, 1, 28, 28]`.
struct TypeExpr : Expr {
  TypeExpr(Loc loc, std::string dtype)
      : Expr(Kind::Type, std::move(loc)), dtype(std::move(dtype)) {}
  std::string dtype;
  std::vector<ExprPtr> dims;
  static bool classof(const Expr *e) { return e->getKind() == Kind::Type; }
};

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

class Stmt {
public:
  enum class Kind { Input, Label, Bind, If, Task, Metric };
  Stmt(Kind kind, Loc loc) : kind(kind), loc(std::move(loc)) {}
  virtual ~Stmt() = default;
  Kind getKind() const { return kind; }
  const Loc &getLoc() const { return loc; }

private:
  Kind kind;
  Loc loc;
};
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

/// `input NAME: TYPE` or `label NAME: TYPE`.
struct DeclStmt : Stmt {
  DeclStmt(Kind kind, Loc loc, std::string name, std::unique_ptr<TypeExpr> type)
      : Stmt(kind, std::move(loc)), name(std::move(name)),
        type(std::move(type)) {}
  std::string name;
  std::unique_ptr<TypeExpr> type;
  static bool classof(const Stmt *s) {
    return s->getKind() == Kind::Input || s->getKind() == Kind::Label;
  }
};

struct BindStmt : Stmt {
  BindStmt(Loc loc, std::string name, ExprPtr value)
      : Stmt(Kind::Bind, std::move(loc)), name(std::move(name)),
        value(std::move(value)) {}
  std::string name;
  ExprPtr value;
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Bind; }
};

struct IfStmt : Stmt {
  IfStmt(Loc loc, ExprPtr cond)
      : Stmt(Kind::If, std::move(loc)), cond(std::move(cond)) {}
  ExprPtr cond;
  StmtList thenBody, elseBody; // `else if` is an IfStmt alone in elseBody
  static bool classof(const Stmt *s) { return s->getKind() == Kind::If; }
};

struct TaskStmt : Stmt {
  TaskStmt(Loc loc, std::string name)
      : Stmt(Kind::Task, std::move(loc)), name(std::move(name)) {}
  std::string name;
  std::vector<KeywordArg> options; // `weight: W`
  StmtList body;
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Task; }
};

struct MetricStmt : Stmt {
  MetricStmt(Loc loc, std::unique_ptr<CallExpr> call)
      : Stmt(Kind::Metric, std::move(loc)), call(std::move(call)) {}
  std::unique_ptr<CallExpr> call;
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Metric; }
};

//===----------------------------------------------------------------------===//
// Top-level declarations
//===----------------------------------------------------------------------===//

struct ImportDecl {
  Loc loc;
  std::string path; // as written, relative to the importing file
};

struct BlockParam {
  Loc loc;
  std::string name;
  ExprPtr defaultValue; // may be null
};

struct BlockDecl {
  Loc loc;
  std::string name;
  std::vector<BlockParam> params;
  StmtList body;
  ExprPtr result;
};

struct ModelDecl {
  Loc loc;
  std::string name;
  StmtList body;
};

struct TrainEntry {
  Loc loc;
  std::string key;
  ExprPtr value;
};

struct TrainDecl {
  Loc loc;
  std::string model;
  std::vector<TrainEntry> entries;
};

/// One parsed `.mass` file.
struct Module {
  std::string file;
  std::vector<ImportDecl> imports;
  std::vector<std::unique_ptr<BlockDecl>> blocks;
  std::vector<std::unique_ptr<ModelDecl>> models;
  std::vector<std::unique_ptr<TrainDecl>> trains;
};

/// Prints the tree, one node a line, each with its `line:col`.
void print(const Module &module, llvm::raw_ostream &os);

} // namespace mass::ast

#endif // MASS_COMPILER_AST_H
