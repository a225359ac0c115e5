//===- AST.cpp - Printing the Mass AST ------------------------------------===//

#include "compiler/AST.h"

#include "llvm/Support/Casting.h"
#include "llvm/Support/Format.h"

using namespace mass::ast;
using llvm::cast;

std::string NameExpr::str() const {
  std::string s;
  for (const std::string &part : parts)
    s += (s.empty() ? "" : ".") + part;
  return s;
}

const KeywordArg *CallExpr::findKeyword(llvm::StringRef key) const {
  for (const KeywordArg &kw : kwargs)
    if (kw.key == key)
      return &kw;
  return nullptr;
}

llvm::StringRef mass::ast::spelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add:
    return "+";
  case BinaryOp::Sub:
    return "-";
  case BinaryOp::Mul:
    return "*";
  case BinaryOp::Div:
    return "/";
  case BinaryOp::Eq:
    return "==";
  case BinaryOp::Ne:
    return "!=";
  case BinaryOp::Lt:
    return "<";
  case BinaryOp::Le:
    return "<=";
  case BinaryOp::Gt:
    return ">";
  case BinaryOp::Ge:
    return ">=";
  case BinaryOp::And:
    return "and";
  case BinaryOp::Or:
    return "or";
  }
  return "?";
}

namespace {

class Printer {
public:
  explicit Printer(llvm::raw_ostream &os) : os(os) {}

  void module(const Module &m) {
    os << "module \"" << m.file << "\"\n";
    ++depth;
    for (const ImportDecl &imp : m.imports)
      line(imp.loc) << "import \"" << imp.path << "\"\n";
    for (const auto &b : m.blocks) {
      line(b->loc) << "block " << b->name << "\n";
      ++depth;
      for (const BlockParam &p : b->params) {
        line(p.loc) << "param " << p.name << "\n";
        if (p.defaultValue)
          nested([&] { expr(*p.defaultValue); });
      }
      stmts(b->body);
      line(b->result->getLoc()) << "return\n";
      nested([&] { expr(*b->result); });
      --depth;
    }
    for (const auto &m : m.models) {
      line(m->loc) << "model " << m->name << "\n";
      nested([&] { stmts(m->body); });
    }
    for (const auto &t : m.trains) {
      line(t->loc) << "train " << t->model << "\n";
      ++depth;
      for (const TrainEntry &e : t->entries) {
        line(e.loc) << "key " << e.key << "\n";
        nested([&] { expr(*e.value); });
      }
      --depth;
    }
    --depth;
  }

private:
  llvm::raw_ostream &os;
  unsigned depth = 0;

  template <typename F> void nested(F f) {
    ++depth;
    f();
    --depth;
  }

  llvm::raw_ostream &line(const Loc &loc) {
    os.indent(2 * depth);
    os << "@" << loc.line << ":" << loc.col << " ";
    return os;
  }

  void stmts(const StmtList &list) {
    for (const StmtPtr &s : list)
      stmt(*s);
  }

  void stmt(const Stmt &s) {
    switch (s.getKind()) {
    case Stmt::Kind::Input:
    case Stmt::Kind::Label: {
      auto &d = cast<DeclStmt>(s);
      line(s.getLoc()) << (s.getKind() == Stmt::Kind::Input ? "input "
                                                            : "label ")
                       << d.name << "\n";
      nested([&] { expr(*d.type); });
      return;
    }
    case Stmt::Kind::Bind: {
      auto &b = cast<BindStmt>(s);
      line(s.getLoc()) << "bind " << b.name << "\n";
      nested([&] { expr(*b.value); });
      return;
    }
    case Stmt::Kind::If: {
      auto &i = cast<IfStmt>(s);
      line(s.getLoc()) << "if\n";
      ++depth;
      expr(*i.cond);
      os.indent(2 * depth) << "then\n";
      nested([&] { stmts(i.thenBody); });
      if (!i.elseBody.empty()) {
        os.indent(2 * depth) << "else\n";
        nested([&] { stmts(i.elseBody); });
      }
      --depth;
      return;
    }
    case Stmt::Kind::Task: {
      auto &t = cast<TaskStmt>(s);
      line(s.getLoc()) << "task " << t.name << "\n";
      ++depth;
      keywords(t.options);
      stmts(t.body);
      --depth;
      return;
    }
    case Stmt::Kind::Metric:
      line(s.getLoc()) << "metric\n";
      nested([&] { expr(*cast<MetricStmt>(s).call); });
      return;
    }
  }

  void keywords(const std::vector<KeywordArg> &kwargs) {
    for (const KeywordArg &kw : kwargs) {
      line(kw.loc) << "keyword " << kw.key << "\n";
      nested([&] { expr(*kw.value); });
    }
  }

  void expr(const Expr &e) {
    switch (e.getKind()) {
    case Expr::Kind::Number: {
      auto &n = cast<NumberExpr>(e);
      line(e.getLoc()) << "number ";
      if (n.isInteger)
        os << static_cast<long long>(n.value);
      else
        os << llvm::format("%g", n.value);
      os << "\n";
      return;
    }
    case Expr::Kind::String:
      line(e.getLoc()) << "string \"" << cast<StringExpr>(e).value << "\"\n";
      return;
    case Expr::Kind::Bool:
      line(e.getLoc()) << "bool "
                       << (cast<BoolExpr>(e).value ? "true" : "false") << "\n";
      return;
    case Expr::Kind::Name:
      line(e.getLoc()) << "name " << cast<NameExpr>(e).str() << "\n";
      return;
    case Expr::Kind::Call: {
      auto &c = cast<CallExpr>(e);
      line(e.getLoc()) << "call " << c.callee << (c.piped ? " (piped)" : "")
                       << "\n";
      ++depth;
      for (const ExprPtr &a : c.args)
        expr(*a);
      keywords(c.kwargs);
      --depth;
      return;
    }
    case Expr::Kind::Binary: {
      auto &b = cast<BinaryExpr>(e);
      line(e.getLoc()) << "binary " << spelling(b.op) << "\n";
      nested([&] {
        expr(*b.lhs);
        expr(*b.rhs);
      });
      return;
    }
    case Expr::Kind::Unary: {
      auto &u = cast<UnaryExpr>(e);
      line(e.getLoc()) << "unary " << (u.op == UnaryOp::Neg ? "-" : "not")
                       << "\n";
      nested([&] { expr(*u.operand); });
      return;
    }
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
      auto &s = cast<SeqExpr>(e);
      line(e.getLoc()) << (e.getKind() == Expr::Kind::List ? "list" : "tuple")
                       << "\n";
      nested([&] {
        for (const ExprPtr &el : s.elements)
          expr(*el);
      });
      return;
    }
    case Expr::Kind::Type: {
      auto &t = cast<TypeExpr>(e);
      line(e.getLoc()) << "type " << t.dtype << "\n";
      nested([&] {
        for (const ExprPtr &d : t.dims)
          expr(*d);
      });
      return;
    }
    }
  }
};

} // namespace

void mass::ast::print(const Module &module, llvm::raw_ostream &os) {
  Printer(os).module(module);
}
