//===- Parser.cpp - From Mass source text to the AST ----------------------===//
//
// Runs the ANTLR4 parser generated from grammar/Mass.g4 and turns its parse
// tree into the AST. ANTLR reports syntax errors to a listener and recovers;
// each becomes an MLIR diagnostic, the first of each line only (the rest of
// a line is usually an echo of its first error).
//
// The text is hostile until checked: bytes that are not UTF-8 (or NUL) are
// located errors before ANTLR sees them, and nesting is bounded twice, on
// the tokens before the recursive-descent parser runs (brackets and prefix
// operators are what make it recurse) and on the AST while it is built
// (operator and `|>` chains, `else if` chains), so that no recursive walk
// in the parser, the elaborator or a destructor can exhaust the stack.
//
//===----------------------------------------------------------------------===//

#include "compiler/Parser.h"
#include "compiler/Diagnostics.h"

#include "MassLexer.h"
#include "MassParser.h"
#include "antlr4-runtime.h"

#include "llvm/Support/Casting.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/Format.h"

using namespace mass;
using namespace mass::ast;
using G = mass::grammar::MassParser;

namespace {

/// The deepest nesting the frontend accepts, in brackets, prefix operators,
/// chained operators or `|>` stages, and `else if` branches.
constexpr unsigned kMaxNesting = 256;

struct SyntaxError {
  unsigned line = 0, col = 0;
  std::string message;
};

/// The first byte that is not part of valid UTF-8, or a NUL byte. Columns
/// count code points, as ANTLR's do.
std::optional<SyntaxError> checkEncoding(llvm::StringRef text) {
  const auto *bytes = reinterpret_cast<const llvm::UTF8 *>(text.data());
  size_t size = text.size();
  unsigned line = 1, col = 1;
  for (size_t i = 0; i < size;) {
    unsigned char c = bytes[i];
    if (c == 0)
      return SyntaxError{line, col, "unexpected NUL byte"};
    size_t length = 1;
    if (c >= 0x80) {
      length = llvm::getNumBytesForUTF8(c);
      if (length > size - i ||
          !llvm::isLegalUTF8Sequence(bytes + i, bytes + i + length)) {
        std::string message;
        llvm::raw_string_ostream os(message);
        os << "invalid UTF-8 byte 0x" << llvm::format_hex_no_prefix(c, 2, true)
           << "; Mass files are UTF-8 text";
        return SyntaxError{line, col, message};
      }
    }
    if (c == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    i += length;
  }
  return std::nullopt;
}

/// ANTLR's recursive-descent parser recurses once per open bracket and per
/// prefix operator (`-`, `not`) still waiting for its operand; chains of
/// binary operators, `|>` stages and `else if` branches are loops. This
/// bounds that depth on the token stream before the parser runs.
std::optional<SyntaxError>
checkNesting(const std::vector<antlr4::Token *> &tokens) {
  using L = grammar::MassLexer;
  auto text = [](antlr4::Token *t) { return t->getText(); };
  auto isOpen = [&](antlr4::Token *t) {
    std::string s = text(t);
    return s == "(" || s == "[" || s == "{";
  };
  auto isClose = [&](antlr4::Token *t) {
    std::string s = text(t);
    return s == ")" || s == "]" || s == "}";
  };
  auto isOperand = [](antlr4::Token *t) {
    size_t type = t->getType();
    return type == L::ID || type == L::NUMBER || type == L::STRING ||
           type == L::TRUE || type == L::FALSE;
  };

  unsigned depth = 0;     // brackets open plus prefix operators pending
  unsigned run = 0;       // prefix operators pending since the last operand
  unsigned beforeRun = 0; // the depth before that run
  std::vector<unsigned> restore; // the depth to return to at each close
  antlr4::Token *previous = nullptr;
  for (size_t i = 0; i < tokens.size(); ++i) {
    antlr4::Token *t = tokens[i];
    if (t->getType() == antlr4::Token::EOF)
      break;
    bool prefix = (t->getType() == L::NOT || text(t) == "-") &&
                  !(previous && (isOperand(previous) || text(previous) == ")" ||
                                 text(previous) == "]"));
    if (prefix) {
      if (run++ == 0)
        beforeRun = depth;
      ++depth;
    } else if (isOpen(t)) {
      // Prefix operators before a bracket wait until it closes.
      restore.push_back(run ? beforeRun : depth);
      run = 0;
      ++depth;
    } else if (isClose(t)) {
      if (!restore.empty()) {
        depth = restore.back();
        restore.pop_back();
      }
      run = 0;
    } else if (run) {
      // An operand ends the run unless a call, type or dotted name goes on.
      bool continues = false;
      if (isOperand(t) && i + 1 < tokens.size()) {
        std::string next = text(tokens[i + 1]);
        continues = next == "(" || next == "[" || next == ".";
      }
      if (!continues) {
        depth = beforeRun;
        run = 0;
      }
    }
    if (depth > kMaxNesting)
      return SyntaxError{
          static_cast<unsigned>(t->getLine()),
          static_cast<unsigned>(t->getCharPositionInLine()) + 1,
          std::string(text(t) == "{" ? "statements" : "expression") +
              " nested deeper than " + std::to_string(kMaxNesting) + " levels"};
    previous = t;
  }
  return std::nullopt;
}

/// Records syntax errors, the first of each line, instead of printing
/// them to stderr.
class ErrorCollector : public antlr4::BaseErrorListener {
public:
  std::vector<SyntaxError> errors;

  void syntaxError(antlr4::Recognizer *, antlr4::Token *offending, size_t line,
                   size_t charPositionInLine, const std::string &msg,
                   std::exception_ptr) override {
    // Past the error limit of any run: a hostile file cannot make the
    // list grow without bound.
    constexpr size_t kMaxKept = 1000;
    if (errors.size() >= kMaxKept ||
        (!errors.empty() && errors.back().line == line))
      return;
    errors.push_back(SyntaxError{static_cast<unsigned>(line),
                                 static_cast<unsigned>(charPositionInLine) + 1,
                                 rewrite(offending, msg)});
  }

private:
  /// ANTLR's messages name token sets; say what a reader wants to know.
  static std::string rewrite(antlr4::Token *offending, const std::string &msg) {
    if (offending && offending->getType() == antlr4::Token::EOF)
      return "unexpected end of file";
    if (offending && offending->getType() == grammar::MassLexer::ERROR_CHAR)
      return "unexpected character '" + offending->getText() + "'";
    if (msg.rfind("token recognition error", 0) == 0)
      return "unexpected character";
    std::string text = offending ? offending->getText() : std::string();
    std::string::size_type expecting = msg.find(" expecting ");
    if (!text.empty() && expecting != std::string::npos)
      return "unexpected '" + text + "', expected " +
             msg.substr(expecting + 11);
    if (!text.empty() && msg.rfind("no viable alternative", 0) == 0)
      return "unexpected '" + text + "'";
    if (!text.empty() && msg.rfind("extraneous input", 0) == 0)
      return "unexpected '" + text + "'";
    return msg;
  }
};

class Builder {
public:
  explicit Builder(std::string file) : file(std::move(file)) {}

  /// Where the AST first grew deeper than kMaxNesting, if it did; building
  /// stops extending chains from there.
  std::optional<SyntaxError> tooDeep;

  std::unique_ptr<Module> build(G::FileContext *ctx) {
    auto module = std::make_unique<Module>();
    module->file = file;
    for (G::TopItemContext *item : ctx->topItem()) {
      if (auto *imp = item->importDecl())
        module->imports.push_back(
            {loc(imp->getStart()), unquote(imp->STRING()->getText())});
      else if (auto *block = item->blockDecl())
        module->blocks.push_back(buildBlock(block));
      else if (auto *model = item->modelDecl())
        module->models.push_back(buildModel(model));
      else if (auto *train = item->trainDecl())
        module->trains.push_back(buildTrain(train));
    }
    return module;
  }

private:
  std::string file;
  unsigned stmtNesting = 0;

  void markTooDeep(const Loc &at, const char *what) {
    if (!tooDeep)
      tooDeep = SyntaxError{at.line, at.col,
                            std::string(what) + " nested deeper than " +
                                std::to_string(kMaxNesting) + " levels" +
                                (std::string(what) == "expression"
                                     ? "; split it with named steps"
                                     : "")};
  }

  /// Sets `e`'s nesting from its operands' (built before it).
  ExprPtr finish(ExprPtr e) {
    unsigned deepest = 0;
    auto see = [&](const ExprPtr &operand) {
      if (operand)
        deepest = std::max(deepest, operand->nesting);
    };
    if (auto *call = llvm::dyn_cast<CallExpr>(e.get())) {
      llvm::for_each(call->args, see);
      for (const KeywordArg &kw : call->kwargs)
        see(kw.value);
    } else if (auto *binary = llvm::dyn_cast<BinaryExpr>(e.get())) {
      see(binary->lhs);
      see(binary->rhs);
    } else if (auto *unary = llvm::dyn_cast<UnaryExpr>(e.get())) {
      see(unary->operand);
    } else if (auto *seq = llvm::dyn_cast<SeqExpr>(e.get())) {
      llvm::for_each(seq->elements, see);
    } else if (auto *type = llvm::dyn_cast<TypeExpr>(e.get())) {
      llvm::for_each(type->dims, see);
    }
    e->nesting = deepest + 1;
    if (e->nesting > kMaxNesting)
      markTooDeep(e->getLoc(), "expression");
    return e;
  }

  Loc loc(antlr4::Token *token) const {
    return Loc{file, static_cast<unsigned>(token->getLine()),
               static_cast<unsigned>(token->getCharPositionInLine()) + 1};
  }
  Loc loc(antlr4::ParserRuleContext *ctx) const { return loc(ctx->getStart()); }

  static std::string unquote(const std::string &text) {
    std::string out;
    for (size_t i = 1; i + 1 < text.size(); ++i) {
      if (text[i] == '\\' && i + 2 < text.size())
        ++i;
      out.push_back(text[i]);
    }
    return out;
  }

  std::unique_ptr<BlockDecl> buildBlock(G::BlockDeclContext *ctx) {
    auto block = std::make_unique<BlockDecl>();
    block->loc = loc(ctx);
    block->name = ctx->name->getText();
    for (G::BlockParamContext *p : ctx->blockParam())
      block->params.push_back({loc(p), p->name->getText(),
                               p->value ? buildExpr(p->value) : nullptr});
    block->body = buildStmts(ctx->stmt());
    block->result = buildExpr(ctx->ret);
    return block;
  }

  std::unique_ptr<ModelDecl> buildModel(G::ModelDeclContext *ctx) {
    auto model = std::make_unique<ModelDecl>();
    model->loc = loc(ctx);
    model->name = ctx->name->getText();
    model->body = buildStmts(ctx->stmt());
    return model;
  }

  std::unique_ptr<TrainDecl> buildTrain(G::TrainDeclContext *ctx) {
    auto train = std::make_unique<TrainDecl>();
    train->loc = loc(ctx);
    train->model = ctx->name->getText();
    for (G::TrainEntryContext *e : ctx->trainEntry())
      train->entries.push_back(
          {loc(e), e->key->getText(), buildExpr(e->value)});
    return train;
  }

  StmtList buildStmts(const std::vector<G::StmtContext *> &ctxs) {
    StmtList stmts;
    ++stmtNesting;
    for (G::StmtContext *s : ctxs)
      stmts.push_back(buildStmt(s));
    --stmtNesting;
    return stmts;
  }

  StmtPtr buildStmt(G::StmtContext *ctx) {
    if (auto *s = dynamic_cast<G::InputStmtContext *>(ctx))
      return std::make_unique<DeclStmt>(Stmt::Kind::Input, loc(s),
                                        s->name->getText(), buildType(s->type));
    if (auto *s = dynamic_cast<G::LabelStmtContext *>(ctx))
      return std::make_unique<DeclStmt>(Stmt::Kind::Label, loc(s),
                                        s->name->getText(), buildType(s->type));
    if (auto *s = dynamic_cast<G::BindStmtContext *>(ctx))
      return std::make_unique<BindStmt>(loc(s), s->name->getText(),
                                        buildExpr(s->value));
    if (auto *s = dynamic_cast<G::IfStmtContext *>(ctx))
      return buildIf(s->ifBranch());
    if (auto *s = dynamic_cast<G::TaskStmtContext *>(ctx)) {
      auto task = std::make_unique<TaskStmt>(loc(s), s->name->getText());
      for (G::TaskOptionContext *o : s->taskOption())
        task->options.push_back(
            {loc(o), o->key->getText(), buildExpr(o->value)});
      task->body = buildStmts(s->stmt());
      return task;
    }
    auto *s = dynamic_cast<G::MetricStmtContext *>(ctx);
    auto call = std::make_unique<CallExpr>(loc(s->name), s->name->getText());
    if (s->argList())
      buildArgs(s->argList(), *call);
    return std::make_unique<MetricStmt>(loc(s), std::move(call));
  }

  /// `if a {} else if b {} else {}` becomes an IfStmt whose else body holds
  /// the IfStmt of `b`, each `else if` one level deeper.
  StmtPtr buildIf(G::IfBranchContext *ctx) {
    auto head = std::make_unique<IfStmt>(loc(ctx), buildExpr(ctx->cond));
    head->thenBody = buildStmts(ctx->thenBody);
    IfStmt *last = head.get();
    unsigned saved = stmtNesting;
    for (G::ElseIfBranchContext *branch : ctx->elseIfBranch()) {
      if (++stmtNesting > kMaxNesting) {
        markTooDeep(loc(branch->IF()->getSymbol()), "statements");
        break;
      }
      auto next = std::make_unique<IfStmt>(loc(branch->IF()->getSymbol()),
                                           buildExpr(branch->cond));
      next->thenBody = buildStmts(branch->body);
      IfStmt *raw = next.get();
      last->elseBody.push_back(std::move(next));
      last = raw;
    }
    last->elseBody = buildStmts(ctx->elseBody);
    stmtNesting = saved;
    return head;
  }

  std::unique_ptr<TypeExpr> buildType(G::TypeLitContext *ctx) {
    auto type = std::make_unique<TypeExpr>(loc(ctx), ctx->dtype->getText());
    for (G::TypeDimContext *d : ctx->typeDim())
      type->dims.push_back(buildExpr(d->expr()));
    return type;
  }

  void buildArgs(G::ArgListContext *ctx, CallExpr &call) {
    for (G::ArgContext *a : ctx->arg()) {
      if (auto *kw = dynamic_cast<G::KeywordArgContext *>(a))
        call.kwargs.push_back(
            {loc(kw), kw->key->getText(), buildExpr(kw->value)});
      else
        call.args.push_back(
            buildExpr(static_cast<G::PositionalArgContext *>(a)->value));
    }
  }

  ExprPtr buildExpr(G::ExprContext *ctx) { return buildPipe(ctx->pipeExpr()); }

  ExprPtr buildPipe(G::PipeExprContext *ctx) {
    ExprPtr value = buildOr(ctx->orExpr());
    for (G::PipeTargetContext *t : ctx->pipeTarget()) {
      auto call =
          std::make_unique<CallExpr>(loc(t->callee), t->callee->getText());
      call->piped = true;
      call->args.push_back(std::move(value));
      if (t->argList())
        buildArgs(t->argList(), *call);
      value = finish(std::move(call));
      if (tooDeep)
        break;
    }
    return value;
  }

  /// Folds `a op b op c` left to right; `operand` builds one operand.
  template <typename Ctx, typename F> ExprPtr foldLeft(Ctx *ctx, F operand) {
    ExprPtr lhs;
    std::optional<BinaryOp> pending;
    Loc opLoc;
    for (antlr4::tree::ParseTree *child : ctx->children) {
      if (tooDeep)
        break;
      if (auto *term = dynamic_cast<antlr4::tree::TerminalNode *>(child)) {
        pending = binaryOp(term->getSymbol()->getText());
        opLoc = loc(term->getSymbol());
        continue;
      }
      ExprPtr value = operand(child);
      if (!lhs)
        lhs = std::move(value);
      else
        lhs = finish(std::make_unique<BinaryExpr>(
            opLoc, *pending, std::move(lhs), std::move(value)));
    }
    return lhs;
  }

  static BinaryOp binaryOp(const std::string &s) {
    static const std::pair<const char *, BinaryOp> table[] = {
        {"+", BinaryOp::Add}, {"-", BinaryOp::Sub},   {"*", BinaryOp::Mul},
        {"/", BinaryOp::Div}, {"==", BinaryOp::Eq},   {"!=", BinaryOp::Ne},
        {"<", BinaryOp::Lt},  {"<=", BinaryOp::Le},   {">", BinaryOp::Gt},
        {">=", BinaryOp::Ge}, {"and", BinaryOp::And}, {"or", BinaryOp::Or}};
    for (auto &[text, op] : table)
      if (s == text)
        return op;
    return BinaryOp::Add; // the grammar admits no other operator
  }

  ExprPtr buildOr(G::OrExprContext *ctx) {
    return foldLeft(ctx, [&](antlr4::tree::ParseTree *t) {
      return buildAnd(static_cast<G::AndExprContext *>(t));
    });
  }
  ExprPtr buildAnd(G::AndExprContext *ctx) {
    return foldLeft(ctx, [&](antlr4::tree::ParseTree *t) {
      return buildNot(static_cast<G::NotExprContext *>(t));
    });
  }
  ExprPtr buildNot(G::NotExprContext *ctx) {
    if (ctx->NOT())
      return finish(std::make_unique<UnaryExpr>(loc(ctx), UnaryOp::Not,
                                                buildNot(ctx->notExpr())));
    return buildCmp(ctx->cmpExpr());
  }
  ExprPtr buildCmp(G::CmpExprContext *ctx) {
    return foldLeft(ctx, [&](antlr4::tree::ParseTree *t) {
      return buildAdd(static_cast<G::AddExprContext *>(t));
    });
  }
  ExprPtr buildAdd(G::AddExprContext *ctx) {
    return foldLeft(ctx, [&](antlr4::tree::ParseTree *t) {
      return buildMul(static_cast<G::MulExprContext *>(t));
    });
  }
  ExprPtr buildMul(G::MulExprContext *ctx) {
    return foldLeft(ctx, [&](antlr4::tree::ParseTree *t) {
      return buildUnary(static_cast<G::UnaryExprContext *>(t));
    });
  }
  ExprPtr buildUnary(G::UnaryExprContext *ctx) {
    if (ctx->unaryExpr()) {
      ExprPtr operand = buildUnary(ctx->unaryExpr());
      // `-1` is a literal, so that `f32[-1]` and labels read naturally.
      if (auto *num = llvm::dyn_cast<NumberExpr>(operand.get())) {
        num->value = -num->value;
        return std::make_unique<NumberExpr>(loc(ctx), num->value,
                                            num->isInteger);
      }
      return finish(std::make_unique<UnaryExpr>(loc(ctx), UnaryOp::Neg,
                                                std::move(operand)));
    }
    return buildPrimary(ctx->primary());
  }

  ExprPtr buildPrimary(G::PrimaryContext *ctx) {
    Loc l = loc(ctx);
    if (auto *p = dynamic_cast<G::NumberLitContext *>(ctx)) {
      std::string text = p->NUMBER()->getText();
      bool isInteger = text.find_first_of(".eE") == std::string::npos;
      return std::make_unique<NumberExpr>(l, std::strtod(text.c_str(), nullptr),
                                          isInteger);
    }
    if (auto *p = dynamic_cast<G::StringLitContext *>(ctx))
      return std::make_unique<StringExpr>(l, unquote(p->STRING()->getText()));
    if (auto *p = dynamic_cast<G::BoolLitContext *>(ctx))
      return std::make_unique<BoolExpr>(l, p->TRUE() != nullptr);
    if (auto *p = dynamic_cast<G::TypeExprContext *>(ctx)) {
      auto type = std::make_unique<TypeExpr>(l, p->dtype->getText());
      for (G::TypeDimContext *d : p->typeDim())
        type->dims.push_back(buildExpr(d->expr()));
      return finish(std::move(type));
    }
    if (auto *p = dynamic_cast<G::CallExprContext *>(ctx)) {
      auto call = std::make_unique<CallExpr>(l, p->callee->getText());
      if (p->argList())
        buildArgs(p->argList(), *call);
      return finish(std::move(call));
    }
    if (auto *p = dynamic_cast<G::NameExprContext *>(ctx)) {
      std::vector<std::string> parts;
      for (antlr4::tree::TerminalNode *id : p->ID())
        parts.push_back(id->getText());
      return std::make_unique<NameExpr>(l, std::move(parts));
    }
    auto *paren = dynamic_cast<G::ParenExprContext *>(ctx);
    if (paren && !paren->comma)
      return buildExpr(paren->expr(0));
    auto seq = std::make_unique<SeqExpr>(
        paren ? Expr::Kind::Tuple : Expr::Kind::List, l);
    std::vector<G::ExprContext *> elements =
        paren ? paren->expr() : static_cast<G::ListExprContext *>(ctx)->expr();
    for (G::ExprContext *e : elements)
      seq->elements.push_back(buildExpr(e));
    return finish(std::move(seq));
  }
};

} // namespace

mlir::FailureOr<std::unique_ptr<Module>>
mass::parseFile(llvm::SourceMgr &sourceMgr, unsigned bufferId,
                mlir::MLIRContext &context) {
  const llvm::MemoryBuffer *buffer = sourceMgr.getMemoryBuffer(bufferId);
  std::string file = buffer->getBufferIdentifier().str();
  auto report = [&](const SyntaxError &error) {
    mlir::emitError(
        mlir::FileLineColLoc::get(&context, file, error.line, error.col))
        << error.message;
    return mlir::failure();
  };
  auto reportAll = [&](const std::vector<SyntaxError> &all) {
    for (const SyntaxError &error : all)
      (void)report(error);
    return mlir::failure();
  };

  llvm::StringRef text = buffer->getBuffer();
  if (std::optional<SyntaxError> bad = checkEncoding(text))
    return report(*bad);
  // A byte-order mark is not part of the text (some editors write one).
  text.consume_front("\xEF\xBB\xBF");

  antlr4::ANTLRInputStream input(text.data(), text.size());
  grammar::MassLexer lexer(&input);
  antlr4::CommonTokenStream tokens(&lexer);
  ErrorCollector errors;
  lexer.removeErrorListeners();
  lexer.addErrorListener(&errors);
  tokens.fill();
  if (!errors.errors.empty())
    return reportAll(errors.errors);
  if (std::optional<SyntaxError> deep = checkNesting(tokens.getTokens()))
    return report(*deep);

  grammar::MassParser parser(&tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&errors);
  G::FileContext *tree = parser.file();
  if (!errors.errors.empty())
    return reportAll(errors.errors);
  Builder builder(file);
  std::unique_ptr<Module> module = builder.build(tree);
  if (builder.tooDeep)
    return report(*builder.tooDeep);
  return module;
}
