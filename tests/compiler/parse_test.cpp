// The parse phase: precedence, literals with units, declarations, and that bad input becomes diagnostics.
#include <gtest/gtest.h>

#include "compiler/parse/parse.h"

namespace fusec {
namespace {

/// An s-expression of an expression, to assert the tree's shape compactly.
std::string Sexp(const ast::Expr& expr) {
  struct Printer {
    std::string operator()(const ast::ErrorExpr&) const { return "<error>"; }
    std::string operator()(const ast::IntExpr& e) const { return std::to_string(e.value); }
    std::string operator()(const ast::FloatExpr& e) const {
      std::string text = std::to_string(e.value);
      while (text.back() == '0') text.pop_back();
      return text;
    }
    std::string operator()(const ast::BoolExpr& e) const { return e.value ? "true" : "false"; }
    std::string operator()(const ast::StringExpr& e) const { return "\"" + e.value + "\""; }
    std::string operator()(const ast::NoneExpr&) const { return "none"; }
    std::string operator()(const ast::NameExpr& e) const { return e.name; }
    std::string operator()(const ast::MemberExpr& e) const { return "(. " + Sexp(*e.object) + " " + e.member.text + ")"; }
    std::string operator()(const ast::CallExpr& e) const {
      std::string out = "(call " + Sexp(*e.callee);
      for (const auto& arg : e.args) out += " " + (arg.name ? arg.name->text + ":" : "") + Sexp(*arg.value);
      return out + ")";
    }
    std::string operator()(const ast::IndexExpr& e) const { return "([] " + Sexp(*e.object) + " " + Sexp(*e.index) + ")"; }
    std::string operator()(const ast::OverExpr& e) const { return "(over " + Sexp(*e.operand) + " " + e.scope.text + ")"; }
    std::string operator()(const ast::UnaryExpr& e) const {
      return std::string("(") + ast::Spelling(e.op) + " " + Sexp(*e.operand) + ")";
    }
    std::string operator()(const ast::BinaryExpr& e) const {
      return std::string("(") + ast::Spelling(e.op) + " " + Sexp(*e.lhs) + " " + Sexp(*e.rhs) + ")";
    }
    std::string operator()(const ast::WhereExpr& e) const {
      return "(where " + Sexp(*e.subject) + " " + Sexp(*e.condition) + ")";
    }
    std::string operator()(const ast::IfExpr& e) const {
      return "(if " + Sexp(*e.condition) + " " + Sexp(*e.then_branch) + " " + Sexp(*e.else_branch) + ")";
    }
    std::string operator()(const ast::ListExpr& e) const {
      std::string out = "[";
      for (size_t i = 0; i < e.elements.size(); ++i) out += (i ? " " : "") + Sexp(*e.elements[i]);
      return out + "]";
    }
    std::string operator()(const ast::RecordExpr& e) const {
      std::string out = "{";
      for (size_t i = 0; i < e.fields.size(); ++i) out += (i ? " " : "") + e.fields[i].name.text + ":" + Sexp(*e.fields[i].value);
      return out + "}";
    }
    std::string operator()(const ast::WithinExpr& e) const {
      std::string out = "(within " + e.scope.text;
      for (const auto& role : e.roles) out += " " + role.name.text + ":" + Sexp(*role.value);
      return out + ")";
    }
    std::string operator()(const ast::ByExpr& e) const { return "(by " + e.scope.text + ")"; }
  };
  return std::visit(Printer{}, expr.node);
}

struct Parsed {
  SourceManager sources;
  Diagnostics diagnostics;
  ast::Module module;
};

std::unique_ptr<Parsed> ParseText(const std::string& text) {
  auto parsed = std::make_unique<Parsed>();
  FileId file = parsed->sources.Add("t.fuse", "", text);
  parsed->module = Parse(parsed->sources, file, parsed->diagnostics);
  return parsed;
}

/// The expression of `let x = <text>`.
std::string ExprOf(const std::string& text) {
  auto parsed = ParseText("let x = " + text);
  EXPECT_FALSE(parsed->diagnostics.has_errors()) << RenderAll(parsed->diagnostics, parsed->sources);
  if (parsed->module.decls.empty()) return "<nothing>";
  return Sexp(*std::get<ast::LetDecl>(parsed->module.decls[0]).value);
}

std::string FirstError(const std::string& text) {
  auto parsed = ParseText(text);
  if (parsed->diagnostics.all().empty()) return "<none>";
  const Diagnostic& first = parsed->diagnostics.all().front();
  return std::string(DiagnosticKindName(first.kind)) + ": " + first.message;
}

TEST(Parse, OperatorPrecedence) {
  EXPECT_EQ(ExprOf("a + b * c"), "(+ a (* b c))");
  EXPECT_EQ(ExprOf("a - b - c"), "(- (- a b) c)");
  EXPECT_EQ(ExprOf("-x ^ 2"), "(- (^ x 2))");
  EXPECT_EQ(ExprOf("2 ^ 3 ^ 2"), "(^ 2 (^ 3 2))");
  EXPECT_EQ(ExprOf("a < b and not c or d"), "(or (and (< a b) (not c)) d)");
  EXPECT_EQ(ExprOf("-log_sigmoid(h(chosen) - h(rejected))"),
            "(- (call log_sigmoid (- (call h chosen) (call h rejected))))");
}

TEST(Parse, OverBindsLikeACallAndWhereBindsLoosest) {
  EXPECT_EQ(ExprOf("max(reward) over source / tau"), "(/ (over (call max reward) source) tau)");
  EXPECT_EQ(ExprOf("softmax(reward / 1.0) over prompt"), "(over (call softmax (/ reward 1.)) prompt)");
  EXPECT_EQ(ExprOf("top_k(4, by: reward) where reward > 0.5 and len < 100"),
            "(where (call top_k 4 by:reward) (and (> reward 0.5) (< len 100)))");
  EXPECT_EQ(ExprOf("uniform over sources"), "(over uniform sources)");
}

TEST(Parse, IfExtendsAsFarAsPossible) {
  EXPECT_EQ(ExprOf("if c then 1 else 2 + 3"), "(if c 1 (+ 2 3))");
  EXPECT_EQ(ExprOf("x / (if n then len(y) else 1)"), "(/ x (if n (call len y) 1))");
}

TEST(Parse, NumbersWithUnits) {
  EXPECT_EQ(ExprOf("2k"), "2048");
  EXPECT_EQ(ExprOf("1_000"), "1000");
  EXPECT_EQ(ExprOf("1.5k"), "1536");  // a whole number of tokens stays an int
  EXPECT_EQ(ExprOf("10%"), "0.1");
  EXPECT_EQ(ExprOf("5e-6"), "0.000005");
  EXPECT_EQ(ExprOf("4M"), "4194304");
  EXPECT_EQ(FirstError("let x = 2kb"), "InvalidNumber: invalid number `2kb`: unknown unit `kb`");
  EXPECT_EQ(FirstError("let x = 1_"), "InvalidNumber: invalid number `1_`: a `_` separator must sit between digits");
  EXPECT_EQ(FirstError("let x = 99999999999999999999"), "InvalidNumber: number `99999999999999999999` is too large");
  EXPECT_EQ(FirstError("let x = 9999999999999999k"), "InvalidNumber: number `9999999999999999k` is too large");
}

TEST(Parse, LiteralsListsRecordsAndRules) {
  EXPECT_EQ(ExprOf("\"a\\\"b\\n\""), "\"a\"b\n\"");
  EXPECT_EQ(ExprOf("[1, 2.5, true, none,]"), "[1 2.5 true none]");
  EXPECT_EQ(ExprOf("{lr: 1e-5, name: \"x\"}"), "{lr:0.00001 name:\"x\"}");
  EXPECT_EQ(ExprOf("within source { chosen: argmax(reward), rejected: argmin(reward) }"),
            "(within source chosen:(call argmax reward) rejected:(call argmin reward))");
  EXPECT_EQ(ExprOf("by source"), "(by source)");
  EXPECT_EQ(ExprOf("parts.sft"), "(. parts sft)");
  EXPECT_EQ(ExprOf("xs[0]"), "([] xs 0)");
  // Soft keywords are names where a name is expected.
  EXPECT_EQ(ExprOf("f(objective: objective, by: group)"), "(call f objective:objective by:group)");
}

TEST(Parse, Declarations) {
  auto parsed = ParseText(
      "import std.objectives.{dpo, simpo as s}\n"
      "import std.weighting\n"
      "import \"lib/common.fuse\" as common\n"
      "objective o(beta: float > 0, eps: float in [0, 0.5) = 0.1) per group of pair(chosen, rejected) {\n"
      "  let h(r) = logp(r); loss = -h(chosen)\n"
      "}\n"
      "weighting w(tau: float > 0 = 1.0) = softmax(reward / tau) over prompt\n"
      "stage k(n: int >= 1 = 4) = fuse_sft(k: n) { epochs = 1 }\n"
      "experiment t(tau: float = 1.0) { target = hf_model(\"m\"); stage s = k() { init = target } }\n"
      "experiment i = t(tau: 0.5)\n"
      "sweep taus = t over {tau: [0.1, 1.0]}\n");
  ASSERT_FALSE(parsed->diagnostics.has_errors()) << RenderAll(parsed->diagnostics, parsed->sources);
  const ast::Module& module = parsed->module;
  ASSERT_EQ(module.imports.size(), 3u);
  EXPECT_EQ(module.imports[0].dotted_path.size(), 2u);
  ASSERT_TRUE(module.imports[0].items);
  EXPECT_EQ((*module.imports[0].items)[1].alias->text, "s");
  EXPECT_EQ(module.imports[1].dotted_path[1].text, "weighting");
  EXPECT_EQ(*module.imports[2].file_path, "lib/common.fuse");
  EXPECT_EQ(module.imports[2].alias->text, "common");
  ASSERT_EQ(module.decls.size(), 6u);
  const auto& objective = std::get<ast::ObjectiveDecl>(module.decls[0]);
  ASSERT_TRUE(objective.unit);
  EXPECT_TRUE(objective.unit->group);
  EXPECT_EQ(objective.unit->unit.text, "pair");
  EXPECT_EQ(objective.params[0].constraint->kind, ast::Constraint::Kind::Greater);
  EXPECT_EQ(objective.params[1].constraint->kind, ast::Constraint::Kind::Interval);
  EXPECT_TRUE(objective.params[1].constraint->low_inclusive);
  EXPECT_FALSE(objective.params[1].constraint->high_inclusive);
  EXPECT_EQ(objective.body.size(), 2u);
  const auto& stage = std::get<ast::StageTemplateDecl>(module.decls[2]);
  EXPECT_EQ(stage.base.name.text, "fuse_sft");
  const auto& experiment = std::get<ast::ExperimentDecl>(module.decls[3]);
  EXPECT_TRUE(experiment.params);
  EXPECT_EQ(experiment.body.size(), 2u);
  const auto& instance = std::get<ast::ExperimentDecl>(module.decls[4]);
  EXPECT_EQ(instance.instance_of->text, "t");
  const auto& sweep = std::get<ast::SweepDecl>(module.decls[5]);
  EXPECT_EQ(sweep.template_name.text, "t");
  EXPECT_EQ(sweep.grid->kind(), ast::ExprKind::Record);
}

TEST(Parse, SpansAreByteRangesOfTheSource) {
  auto parsed = ParseText("let τ_rate = 1 + 2");
  ASSERT_FALSE(parsed->diagnostics.has_errors());
  const auto& let = std::get<ast::LetDecl>(parsed->module.decls[0]);
  EXPECT_EQ(parsed->sources.Text(let.name.span), "τ_rate");
  EXPECT_EQ(parsed->sources.Text(let.value->span), "1 + 2");
}

TEST(Parse, BadInputBecomesDiagnostics) {
  EXPECT_EQ(FirstError("let x = \"open"), "InvalidString: unterminated string");
  EXPECT_EQ(FirstError("let x = \"a\\q\""), "InvalidString: unknown escape `\\q` in string");
  EXPECT_EQ(FirstError("let x = 1 /* open"), "UnterminatedComment: unterminated comment");
  EXPECT_EQ(FirstError("let x = 1 @ 2"), "SyntaxError: unexpected character `@`");
  EXPECT_EQ(FirstError("let x = \xff"), "InvalidEncoding: file is not valid UTF-8 (byte 8)");
  EXPECT_EQ(FirstError("let x = " + std::string(300, '(') + "1" + std::string(300, ')')),
            "NestingTooDeep: expression is nested more than 200 levels deep");
  EXPECT_EQ(FirstError("experiment e { epochs: 3 }"), "SyntaxError: unexpected `:`, expected `=`");
}

TEST(Parse, ReportsEverySyntaxErrorOnceAndKeepsGoing) {
  auto parsed = ParseText("let a = (1 +\nlet b = 2 ]\nlet c = 3\n");
  EXPECT_GE(parsed->diagnostics.error_count(), 2u);
  EXPECT_LE(parsed->diagnostics.error_count(), 4u);
}

}  // namespace
}  // namespace fusec
