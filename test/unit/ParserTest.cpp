//===- ParserTest.cpp - The AST the parser builds -------------------------===//

#include "compiler/Parser.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/Casting.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace mass;
using namespace mass::ast;
using llvm::cast;
using llvm::dyn_cast;

namespace {

class ParserTest : public ::testing::Test {
protected:
  mlir::MLIRContext context;
  llvm::SourceMgr sourceMgr;
  std::string errors;

  std::unique_ptr<Module> parse(llvm::StringRef text) {
    context.getDiagEngine().registerHandler([&](mlir::Diagnostic &d) {
      errors += d.str();
      return mlir::success();
    });
    unsigned id = sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(text, "test.mass"), llvm::SMLoc());
    auto module = parseFile(sourceMgr, id, context);
    return mlir::succeeded(module) ? std::move(*module) : nullptr;
  }

  /// The value bound by the first statement of the first model.
  const Expr &firstBinding(const Module &m) {
    return *cast<BindStmt>(*m.models.at(0)->body.at(0)).value;
  }
};

TEST_F(ParserTest, PipelineBecomesNestedCalls) {
  auto m = parse("model m { y = x |> f(1) |> g }");
  ASSERT_TRUE(m) << errors;
  auto &g = cast<CallExpr>(firstBinding(*m));
  EXPECT_EQ(g.callee, "g");
  EXPECT_TRUE(g.piped);
  ASSERT_EQ(g.args.size(), 1u);
  auto &f = cast<CallExpr>(*g.args[0]);
  EXPECT_EQ(f.callee, "f");
  ASSERT_EQ(f.args.size(), 2u);
  EXPECT_EQ(cast<NameExpr>(*f.args[0]).str(), "x");
  EXPECT_EQ(cast<NumberExpr>(*f.args[1]).value, 1.0);
}

TEST_F(ParserTest, PipeIsLoosestAndProductBindsTighterThanSum) {
  auto m = parse("model m { y = a + b * c |> f }");
  ASSERT_TRUE(m) << errors;
  auto &f = cast<CallExpr>(firstBinding(*m));
  auto &sum = cast<BinaryExpr>(*f.args[0]);
  EXPECT_EQ(sum.op, BinaryOp::Add);
  EXPECT_EQ(cast<BinaryExpr>(*sum.rhs).op, BinaryOp::Mul);
}

TEST_F(ParserTest, SubtractionIsLeftAssociative) {
  auto m = parse("model m { y = a - b - c }");
  ASSERT_TRUE(m) << errors;
  auto &outer = cast<BinaryExpr>(firstBinding(*m));
  EXPECT_EQ(cast<NameExpr>(*outer.rhs).str(), "c");
  EXPECT_EQ(cast<BinaryExpr>(*outer.lhs).op, BinaryOp::Sub);
}

TEST_F(ParserTest, NotIsLooserThanComparison) {
  auto m = parse("model m { if not a == 1 and b { y = 1 } }");
  ASSERT_TRUE(m) << errors;
  auto &ifs = cast<IfStmt>(*m->models[0]->body[0]);
  auto &conj = cast<BinaryExpr>(*ifs.cond);
  EXPECT_EQ(conj.op, BinaryOp::And);
  auto &neg = cast<UnaryExpr>(*conj.lhs);
  EXPECT_EQ(neg.op, UnaryOp::Not);
  EXPECT_EQ(cast<BinaryExpr>(*neg.operand).op, BinaryOp::Eq);
}

TEST_F(ParserTest, LiteralsAndSequences) {
  auto m = parse(R"(train t {
    a = -1
    b = 1e-3
    c = "q\"x\\y"
    d = (0.9, 0.95)
    e = (2)
    f = [true, false]
    g = val.t.accuracy
  })");
  ASSERT_TRUE(m) << errors;
  auto &entries = m->trains.at(0)->entries;
  auto &a = cast<NumberExpr>(*entries[0].value);
  EXPECT_EQ(a.value, -1.0);
  EXPECT_TRUE(a.isInteger);
  auto &b = cast<NumberExpr>(*entries[1].value);
  EXPECT_DOUBLE_EQ(b.value, 1e-3);
  EXPECT_FALSE(b.isInteger);
  EXPECT_EQ(cast<StringExpr>(*entries[2].value).value, "q\"x\\y");
  EXPECT_EQ(entries[3].value->getKind(), Expr::Kind::Tuple);
  EXPECT_EQ(cast<SeqExpr>(*entries[3].value).elements.size(), 2u);
  EXPECT_EQ(entries[4].value->getKind(), Expr::Kind::Number);
  EXPECT_EQ(entries[5].value->getKind(), Expr::Kind::List);
  EXPECT_EQ(cast<NameExpr>(*entries[6].value).parts.size(), 3u);
}

TEST_F(ParserTest, KeywordArgumentsFollowPositionalOnes) {
  auto m = parse("model m { y = conv2d(x, 8, kernel: 3, pad: 1) }");
  ASSERT_TRUE(m) << errors;
  auto &call = cast<CallExpr>(firstBinding(*m));
  EXPECT_EQ(call.args.size(), 2u);
  ASSERT_EQ(call.kwargs.size(), 2u);
  ASSERT_TRUE(call.findKeyword("pad"));
  EXPECT_EQ(cast<NumberExpr>(*call.findKeyword("pad")->value).value, 1.0);
  EXPECT_FALSE(call.findKeyword("stride"));
}

TEST_F(ParserTest, BlocksTasksAndDeclarations) {
  auto m = parse(R"(
block b(x, n = 2) { h = x return h }
model m {
  input x: f32[B, 4]
  label y: i32[B]
  task t(weight: 0.5) { loss = f(x, y) metric accuracy(x, y) }
})");
  ASSERT_TRUE(m) << errors;
  auto &block = *m->blocks.at(0);
  EXPECT_EQ(block.params.size(), 2u);
  EXPECT_FALSE(block.params[0].defaultValue);
  EXPECT_TRUE(block.params[1].defaultValue);
  auto &body = m->models.at(0)->body;
  ASSERT_EQ(body.size(), 3u);
  auto &input = cast<DeclStmt>(*body[0]);
  EXPECT_EQ(input.type->dtype, "f32");
  EXPECT_EQ(input.type->dims.size(), 2u);
  auto &task = cast<TaskStmt>(*body[2]);
  EXPECT_EQ(task.options.at(0).key, "weight");
  ASSERT_EQ(task.body.size(), 2u);
  EXPECT_EQ(task.body[1]->getKind(), Stmt::Kind::Metric);
}

TEST_F(ParserTest, LocationsAreOneBased) {
  auto m = parse("model m {\n  y = f(x)\n}");
  ASSERT_TRUE(m) << errors;
  const Expr &call = firstBinding(*m);
  EXPECT_EQ(call.getLoc().line, 2u);
  EXPECT_EQ(call.getLoc().col, 7u);
}

TEST_F(ParserTest, SyntaxErrorIsReportedOnce) {
  EXPECT_FALSE(parse("model m { y = f(x,, ) z = }"));
  EXPECT_NE(errors.find("unexpected ','"), std::string::npos) << errors;
  EXPECT_EQ(errors.find("unexpected", errors.find("unexpected") + 1),
            std::string::npos)
      << errors;
}

} // namespace
