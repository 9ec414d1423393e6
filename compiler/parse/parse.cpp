// The parse phase: ANTLR lexer and parser, error reporting, and the parse-tree-to-AST transformer.
//
// Order of work for one file:
//   1. reject invalid UTF-8 (ANTLR's converter would throw on it);
//   2. lex everything, and check the tokens ANTLR accepts loosely: numbers with unit suffixes, strings with
//      escapes, unterminated strings and comments (lexical errors, reported once, by token);
//   3. parse, turning ANTLR's syntax errors into diagnostics (at most one per token);
//   4. when nothing was reported, transform the tree into ast::Module.
// Every step costs time linear in the file: positions come from ANTLR's token lines or one binary search,
// never from a scan of the line per error, and after kMaxErrorsPerFile lexical and syntax errors the phase
// reports `TooManyErrors` at the next one and stops (ANTLR's recovery would otherwise go on reporting, and
// each rendered error prints its line, so the output would grow with errors x line length).
// ANTLR positions are code-point indices; CodePointMap turns them into the byte offsets of SourceSpan.

#include "compiler/parse/parse.h"

#include <antlr4-runtime.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "FuseLexer.h"
#include "FuseParser.h"

namespace fusec {
namespace {

using fuse_grammar::FuseLexer;
using fuse_grammar::FuseParser;

constexpr size_t kMaxErrorsPerFile = 25;
/// Deepest AST the transformer builds. Left-associative chains (`a + b + c ...`) do not recurse in the
/// parser but do nest in the tree, so the transformer bounds them itself.
constexpr int kMaxTreeDepth = 256;

/// Code-point index (ANTLR) to byte offset (SourceSpan).
class CodePointMap {
 public:
  explicit CodePointMap(std::string_view text) {
    bool ascii = true;
    for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii) {
      size_ = static_cast<uint32_t>(text.size());
      return;
    }
    for (uint32_t i = 0; i < text.size(); ++i) {
      if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) offsets_.push_back(i);
    }
    offsets_.push_back(static_cast<uint32_t>(text.size()));
    size_ = static_cast<uint32_t>(text.size());
  }
  uint32_t ByteOffset(size_t code_point_index) const {
    if (offsets_.empty()) return static_cast<uint32_t>(std::min<size_t>(code_point_index, size_));
    if (code_point_index >= offsets_.size()) return size_;
    return offsets_[code_point_index];
  }

 private:
  std::vector<uint32_t> offsets_;  // empty for pure ASCII: identity
  uint32_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Literals

struct NumberValue {
  bool is_int = true;
  int64_t int_value = 0;
  double float_value = 0;
};

/// Parses a NUMBER token's text: digits with `_` separators, optional fraction and exponent, optional
/// unit (`k` = x1024, `M` = x1024^2, `%` = /100). On failure returns nullopt and sets `error` and `help`.
std::optional<NumberValue> ParseNumber(std::string_view text, std::string* error, std::string* help) {
  size_t unit_begin = 0;
  bool has_fraction = false;
  bool has_exponent = false;
  // Find where the numeric part ends: digits, `_`, one `.` followed by a digit, one exponent.
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '_')) ++i;
  if (i < text.size() && text[i] == '.' && i + 1 < text.size() &&
      std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
    has_fraction = true;
    ++i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '_')) ++i;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    size_t j = i + 1;
    if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
    if (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) {
      has_exponent = true;
      i = j;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    }
  }
  unit_begin = i;
  std::string_view numeric = text.substr(0, unit_begin);
  std::string_view unit = text.substr(unit_begin);
  if (numeric.back() == '_' || numeric.find("_.") != std::string_view::npos ||
      numeric.find("._") != std::string_view::npos || numeric.find("_e") != std::string_view::npos ||
      numeric.find("_E") != std::string_view::npos) {
    *error = "invalid number `" + std::string(text) + "`: a `_` separator must sit between digits";
    return std::nullopt;
  }
  std::string digits;
  for (char c : numeric) {
    if (c != '_') digits.push_back(c);
  }
  double scale = 1;
  bool percent = false;
  if (unit == "k" || unit == "K") {
    scale = 1024;
  } else if (unit == "M") {
    scale = 1024.0 * 1024.0;
  } else if (unit == "%") {
    percent = true;
  } else if (!unit.empty()) {
    *error = "invalid number `" + std::string(text) + "`: unknown unit `" + std::string(unit) + "`";
    *help = "units are `k` (x1024, so `2k` = 2048), `M` (x1024^2) and `%` (`10%` = 0.1)";
    return std::nullopt;
  }
  NumberValue value;
  if (!has_fraction && !has_exponent && !percent) {
    int64_t parsed = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), parsed);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      *error = "number `" + std::string(text) + "` is too large";
      return std::nullopt;
    }
    auto multiplier = static_cast<int64_t>(scale);
    if (__builtin_mul_overflow(parsed, multiplier, &value.int_value)) {
      *error = "number `" + std::string(text) + "` is too large";
      return std::nullopt;
    }
    return value;
  }
  double parsed = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), parsed);
  if (ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(parsed * scale)) {
    *error = "number `" + std::string(text) + "` is out of range";
    return std::nullopt;
  }
  parsed *= scale;
  if (percent) parsed /= 100;
  // `1.5k` is a whole number of tokens; keep it an int so it fits `max_len`.
  if (!percent && scale > 1 && parsed == std::floor(parsed) && parsed < 9.0e15) {
    value.int_value = static_cast<int64_t>(parsed);
    return value;
  }
  value.is_int = false;
  value.float_value = parsed;
  return value;
}

/// Unquotes a STRING token's text. On a bad escape returns nullopt with the escape's byte offset in `text`.
std::optional<std::string> Unquote(std::string_view text, size_t* bad_escape) {
  std::string out;
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    char c = text[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    char next = text[++i];
    switch (next) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      default:
        *bad_escape = i - 1;
        return std::nullopt;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Error reporting

/// Human names for tokens in "expected ..." lists.
std::string TokenDisplay(const antlr4::dfa::Vocabulary& vocabulary, size_t type) {
  switch (type) {
    case antlr4::Token::EOF:
      return "end of file";
    case FuseLexer::ID:
      return "a name";
    case FuseLexer::NUMBER:
      return "a number";
    case FuseLexer::STRING:
      return "a string";
    default:
      break;
  }
  std::string literal = vocabulary.getLiteralName(type);
  if (literal.size() >= 2 && literal.front() == '\'') literal = literal.substr(1, literal.size() - 2);
  return "`" + literal + "`";
}

std::string JoinAlternatives(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " or " : ", ";
    out += items[i];
  }
  return out;
}

/// What the parser was reading, for error messages whose expected-token list is too long to print.
std::string DescribeRule(size_t rule_index) {
  switch (rule_index) {
    case FuseParser::RuleFile:
    case FuseParser::RuleDecl:
      return "a declaration (`experiment`, `stage`, `objective`, `weighting`, `sweep` or `let`)";
    case FuseParser::RuleImportDecl:
    case FuseParser::RuleModulePath:
      return "a module path such as `std.objectives` or `\"lib/common.fuse\"`";
    case FuseParser::RuleBodyItem:
      return "a field (`name = value`), `let`, `stage` or `}`";
    case FuseParser::RuleParams:
    case FuseParser::RuleParam:
      return "a parameter such as `beta: float > 0 = 0.1`";
    case FuseParser::RuleTypeExpr:
    case FuseParser::RuleTypeField:
      return "a type such as `float` or `list[string]`";
    case FuseParser::RuleArgList:
    case FuseParser::RuleArg:
      return "an argument such as `lr: 1e-5`";
    default:
      return "an expression";
  }
}

/// Thrown by the parser's error listener once the file has too many errors: ANTLR unwinds its rules (they
/// exit through RAII) and ParseWith catches it.
struct TooManyErrors {};

struct ErrorState {
  const SourceManager* sources;
  FileId file;
  const CodePointMap* map;
  Diagnostics* diagnostics;
  size_t reported = 0;  // lexical and syntax errors of this file
  bool stopped = false;  // TooManyErrors was reported: nothing more is
  std::set<size_t> tokens_with_errors;  // token index, so recovery does not report one spot twice
  /// Tokens already reported as lexical errors; syntax errors at them would only repeat the news.
  std::set<size_t> lexical_error_tokens;
  /// Offset from which everything is inside an unterminated comment.
  std::optional<uint32_t> unterminated_comment_from;
  /// Lines with characters the lexer skipped: the parser's complaints there would only repeat the news.
  std::set<uint32_t> lines_with_bad_characters;

  /// End of the last token before the end of the file: "unexpected end of file" points just after the
  /// last thing written, not at trailing comments.
  uint32_t end_of_last_token = 0;

  /// Whether one more error at `span` may be reported. The first refused one reports `TooManyErrors` there.
  bool Admit(SourceSpan span) {
    if (stopped) return false;
    if (reported < kMaxErrorsPerFile) {
      ++reported;
      return true;
    }
    stopped = true;
    diagnostics
        ->Report(DiagnosticKind::TooManyErrors, span,
                 "too many errors in this file (" + std::to_string(kMaxErrorsPerFile) + "); stopped reading here")
        .Help("fix the errors above and check again");
    return false;
  }

  SourceSpan SpanOf(const antlr4::Token* token) const {
    if (token == nullptr) return SourceSpan{};
    if (token->getType() == antlr4::Token::EOF) return SourceSpan{file, end_of_last_token, end_of_last_token};
    uint32_t begin = map->ByteOffset(token->getStartIndex());
    uint32_t end = map->ByteOffset(token->getStopIndex() + 1);
    return SourceSpan{file, begin, std::max(begin, end)};
  }
};

/// Collects characters the lexer skipped; adjacent ones are reported together (`&&` is one error).
class LexerErrorListener : public antlr4::BaseErrorListener {
 public:
  explicit LexerErrorListener(ErrorState* state) : state_(state) {}

  void syntaxError(antlr4::Recognizer* recognizer, antlr4::Token* /*offending*/, size_t line,
                   size_t /*char_position*/, const std::string& /*message*/, std::exception_ptr /*e*/) override {
    // The lexer reports at the character it skips: its index, not OffsetOf(line, column), which would scan
    // the line once per bad character.
    auto* lexer = static_cast<antlr4::Lexer*>(recognizer);
    uint32_t begin = state_->map->ByteOffset(lexer->tokenStartCharIndex);
    const std::string& text = state_->sources->file(state_->file).text();
    uint32_t end = std::min<uint32_t>(begin + 1, static_cast<uint32_t>(text.size()));
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    if (!ranges_.empty() && ranges_.back().end == begin) {
      ranges_.back().end = end;
    } else {
      ranges_.push_back(Range{begin, end, static_cast<uint32_t>(line)});
    }
  }

  /// Reports the collected characters; returns the lines they are on.
  std::set<uint32_t> Report() {
    std::set<uint32_t> lines;
    const SourceFile& file = state_->sources->file(state_->file);
    for (const auto& [begin, end, line] : ranges_) {
      lines.insert(line);
      if (!state_->Admit(SourceSpan{state_->file, begin, end})) continue;
      std::string characters = file.text().substr(begin, end - begin);
      auto builder = state_->diagnostics->Report(
          DiagnosticKind::SyntaxError, SourceSpan{state_->file, begin, end},
          std::string("unexpected character") + (end - begin > 1 ? "s" : "") + " `" + characters + "`");
      if (characters.find('\'') != std::string::npos) builder.Help("strings use double quotes: \"text\"");
      if (characters.find_first_of("&|!") != std::string::npos) {
        builder.Help("logical operators are spelled `and`, `or` and `not`");
      }
    }
    return lines;
  }

 private:
  struct Range {
    uint32_t begin;
    uint32_t end;
    uint32_t line;  // 1-based, as ANTLR counts
  };
  ErrorState* state_;
  std::vector<Range> ranges_;
};

/// Whether the token at `index` follows `(` or `,` and a name: the `lr =` of `adamw(lr = 1e-5)`.
bool AfterArgumentName(FuseParser& parser, size_t index) {
  auto* stream = dynamic_cast<antlr4::BufferedTokenStream*>(parser.getTokenStream());
  if (stream == nullptr) return false;
  std::vector<antlr4::Token*> before;
  for (size_t i = index; i > 0 && before.size() < 2; --i) {
    antlr4::Token* token = stream->get(i - 1);
    if (token->getChannel() == antlr4::Token::DEFAULT_CHANNEL) before.push_back(token);
  }
  return before.size() == 2 && before[0]->getType() == FuseLexer::ID &&
         (before[1]->getType() == FuseLexer::LPAREN || before[1]->getType() == FuseLexer::COMMA);
}

class ParserErrorListener : public antlr4::BaseErrorListener {
 public:
  explicit ParserErrorListener(ErrorState* state) : state_(state) {}

  void syntaxError(antlr4::Recognizer* recognizer, antlr4::Token* offending, size_t /*line*/,
                   size_t /*char_position*/, const std::string& /*message*/, std::exception_ptr /*e*/) override {
    if (offending == nullptr) return;
    size_t index = offending->getTokenIndex();
    if (state_->lexical_error_tokens.count(index) > 0) return;
    SourceSpan span = state_->SpanOf(offending);
    if (state_->unterminated_comment_from && span.begin >= *state_->unterminated_comment_from) return;
    // ANTLR's line, not Locate(): that scans the line, once per error.
    if (state_->lines_with_bad_characters.count(static_cast<uint32_t>(offending->getLine())) > 0) return;
    if (!state_->tokens_with_errors.insert(index).second) return;
    if (!state_->Admit(span)) throw TooManyErrors{};

    auto* parser = static_cast<FuseParser*>(recognizer);
    std::string found = offending->getType() == antlr4::Token::EOF
                            ? "end of file"
                            : "`" + std::string(state_->sources->Text(span)) + "`";
    std::vector<std::string> expected;
    bool expects_name = false;
    antlr4::misc::IntervalSet expected_set;
    try {
      expected_set = parser->getExpectedTokens();
    } catch (...) {
      // getExpectedTokens can throw for states left by recovery; the message then names the rule only.
    }
    for (size_t type : expected_set.toList()) {
      if (type == FuseLexer::ID) expects_name = true;
    }
    for (size_t type : expected_set.toList()) {
      bool soft_keyword = type != FuseLexer::ID && type >= FuseLexer::KW_IMPORT && type <= FuseLexer::KW_ERROR;
      if (expects_name && soft_keyword) continue;  // `name` accepts keywords; "a name" covers them
      expected.push_back(TokenDisplay(parser->getVocabulary(), type));
    }
    std::string message = "unexpected " + found;
    if (!expected.empty() && expected.size() <= 4) {
      message += ", expected " + JoinAlternatives(expected);
    } else {
      antlr4::ParserRuleContext* context = parser->getContext();
      message += ", expected " + DescribeRule(context != nullptr ? context->getRuleIndex() : 0);
    }
    auto builder = state_->diagnostics->Report(DiagnosticKind::SyntaxError, span, message);
    bool expected_assign = expected_set.contains(static_cast<size_t>(FuseLexer::ASSIGN));
    bool expected_colon = expected_set.contains(static_cast<size_t>(FuseLexer::COLON));
    if (offending->getType() == FuseLexer::COLON && expected_assign) {
      builder.Help("fields are set with `=`, as in `epochs = 3`");
    } else if (offending->getType() == FuseLexer::ASSIGN && (expected_colon || AfterArgumentName(*parser, index))) {
      builder.Help("arguments and record fields are named with `:`, as in `adamw(lr: 1e-5)`");
    } else if (offending->getType() == FuseLexer::ASSIGN) {
      builder.Help("compare with `==`; `=` only sets a field or a `let`");
    }
  }

 private:
  ErrorState* state_;
};

// ---------------------------------------------------------------------------------------------------------
// Transformer: parse tree to AST

class Transformer {
 public:
  Transformer(const SourceManager& sources, FileId file, const CodePointMap& map, Diagnostics& diagnostics)
      : sources_(sources), file_(file), map_(map), diagnostics_(diagnostics) {}

  ast::Setting TransformSetting(FuseParser::SettingContext* ctx) {
    ast::Setting setting;
    for (auto* name : ctx->name()) setting.path.push_back(Ident(name));
    setting.value = TransformExpr(ctx->expr(), 0);
    setting.span = Span(ctx);
    return setting;
  }

  ast::Module TransformFile(FuseParser::FileContext* ctx) {
    ast::Module module;
    module.file = file_;
    for (auto* import : ctx->importDecl()) module.imports.push_back(TransformImport(import));
    for (auto* decl : ctx->decl()) {
      if (auto transformed = TransformDecl(decl)) module.decls.push_back(std::move(*transformed));
    }
    return module;
  }

 private:
  SourceSpan Span(antlr4::ParserRuleContext* ctx) const {
    if (ctx == nullptr || ctx->getStart() == nullptr) return SourceSpan{};
    uint32_t begin = map_.ByteOffset(ctx->getStart()->getStartIndex());
    antlr4::Token* stop = ctx->getStop();
    uint32_t end = begin;
    if (stop != nullptr && stop->getType() != antlr4::Token::EOF && stop->getStopIndex() + 1 > 0) {
      end = map_.ByteOffset(stop->getStopIndex() + 1);
    }
    return SourceSpan{file_, begin, std::max(begin, end)};
  }
  SourceSpan Span(antlr4::tree::TerminalNode* node) const {
    if (node == nullptr) return SourceSpan{};
    antlr4::Token* token = node->getSymbol();
    uint32_t begin = map_.ByteOffset(token->getStartIndex());
    uint32_t end = map_.ByteOffset(token->getStopIndex() + 1);
    return SourceSpan{file_, begin, std::max(begin, end)};
  }
  SourceSpan Span(antlr4::Token* token) const {
    if (token == nullptr) return SourceSpan{};
    uint32_t begin = map_.ByteOffset(token->getStartIndex());
    uint32_t end = map_.ByteOffset(token->getStopIndex() + 1);
    return SourceSpan{file_, begin, std::max(begin, end)};
  }
  std::string Text(SourceSpan span) const { return std::string(sources_.Text(span)); }

  ast::Identifier Ident(FuseParser::NameContext* ctx) const {
    SourceSpan span = Span(ctx);
    return ast::Identifier{Text(span), span};
  }
  ast::Identifier Ident(antlr4::tree::TerminalNode* node) const {
    SourceSpan span = Span(node);
    return ast::Identifier{Text(span), span};
  }

  // importDecl ::= 'import' modulePath ('.' '{' importItem, ... '}' | 'as' ID)?
  ast::ImportDecl TransformImport(FuseParser::ImportDeclContext* ctx) {
    ast::ImportDecl import;
    import.span = Span(ctx);
    auto* path = ctx->modulePath();
    import.path_span = Span(path);
    if (path->STRING() != nullptr) {
      size_t bad = 0;
      import.file_path = Unquote(Text(Span(path->STRING())), &bad).value_or("");
    } else {
      for (auto* id : path->name()) import.dotted_path.push_back(Ident(id));
    }
    if (ctx->LBRACE() != nullptr) {
      std::vector<ast::ImportItem> items;
      for (auto* item : ctx->importItem()) {
        auto ids = item->ID();
        ast::ImportItem import_item{Ident(ids[0]), std::nullopt};
        if (ids.size() > 1) import_item.alias = Ident(ids[1]);
        items.push_back(std::move(import_item));
      }
      import.items = std::move(items);
    } else if (ctx->KW_AS() != nullptr) {
      import.alias = Ident(ctx->ID());
    }
    return import;
  }

  std::optional<ast::Decl> TransformDecl(FuseParser::DeclContext* ctx) {
    if (auto* let = ctx->letDecl()) return ast::Decl(TransformLet(let));
    if (auto* objective = ctx->objectiveDecl()) return ast::Decl(TransformObjective(objective));
    if (auto* weighting = ctx->weightingDecl()) return ast::Decl(TransformWeighting(weighting));
    if (auto* stage = ctx->stageTemplateDecl()) return ast::Decl(TransformStageTemplate(stage));
    if (auto* experiment = ctx->experimentDecl()) return ast::Decl(TransformExperiment(experiment));
    if (auto* sweep = ctx->sweepDecl()) return ast::Decl(TransformSweep(sweep));
    return std::nullopt;  // a stray `;`
  }

  // letDecl ::= 'let' name funcParams? '=' expr
  ast::LetDecl TransformLet(FuseParser::LetDeclContext* ctx) {
    ast::LetDecl let;
    let.name = Ident(ctx->name());
    let.span = Span(ctx);
    if (auto* params = ctx->funcParams()) {
      std::vector<ast::FuncParam> list;
      for (auto* param : params->funcParam()) {
        ast::FuncParam func_param{Ident(param->name()), std::nullopt};
        if (param->typeExpr() != nullptr) func_param.type = TransformType(param->typeExpr(), 0);
        list.push_back(std::move(func_param));
      }
      let.params = std::move(list);
    }
    let.value = TransformExpr(ctx->expr(), 0);
    return let;
  }

  // objectiveDecl ::= 'objective' name params unitClause? '{' bodyItem* '}'
  ast::ObjectiveDecl TransformObjective(FuseParser::ObjectiveDeclContext* ctx) {
    ast::ObjectiveDecl objective;
    objective.name = Ident(ctx->name());
    objective.span = Span(ctx);
    objective.params = TransformParams(ctx->params());
    if (auto* unit = ctx->unitClause()) {
      ast::UnitClause clause;
      clause.group = unit->KW_GROUP() != nullptr;
      clause.unit = Ident(unit->ID());
      for (auto* name : unit->name()) clause.names.push_back(Ident(name));
      clause.span = Span(unit);
      objective.unit = std::move(clause);
    }
    objective.body = TransformBody(ctx->bodyItem());
    return objective;
  }

  // weightingDecl ::= 'weighting' name params? '=' expr
  ast::WeightingDecl TransformWeighting(FuseParser::WeightingDeclContext* ctx) {
    ast::WeightingDecl weighting;
    weighting.name = Ident(ctx->name());
    weighting.span = Span(ctx);
    if (ctx->params() != nullptr) weighting.params = TransformParams(ctx->params());
    weighting.body = TransformExpr(ctx->expr(), 0);
    return weighting;
  }

  // stageTemplateDecl ::= 'stage' name params '=' stageBase '{' bodyItem* '}'
  ast::StageTemplateDecl TransformStageTemplate(FuseParser::StageTemplateDeclContext* ctx) {
    ast::StageTemplateDecl stage;
    stage.name = Ident(ctx->name());
    stage.span = Span(ctx);
    stage.params = TransformParams(ctx->params());
    stage.base = TransformStageBase(ctx->stageBase());
    stage.body = TransformBody(ctx->bodyItem());
    return stage;
  }

  // stageBase ::= name ('(' argList? ')')?
  ast::StageBase TransformStageBase(FuseParser::StageBaseContext* ctx) {
    ast::StageBase base;
    base.name = Ident(ctx->name());
    base.span = Span(ctx);
    if (ctx->LPAREN() != nullptr) base.args = TransformArgs(ctx->argList());
    return base;
  }

  // experimentDecl ::= 'experiment' name params? '{' bodyItem* '}' | 'experiment' name '=' name '(' args ')'
  ast::ExperimentDecl TransformExperiment(FuseParser::ExperimentDeclContext* ctx) {
    ast::ExperimentDecl experiment;
    experiment.span = Span(ctx);
    if (auto* body = dynamic_cast<FuseParser::ExperimentBodyContext*>(ctx)) {
      experiment.name = Ident(body->name());
      if (body->params() != nullptr) experiment.params = TransformParams(body->params());
      experiment.body = TransformBody(body->bodyItem());
    } else if (auto* instance = dynamic_cast<FuseParser::ExperimentInstanceContext*>(ctx)) {
      experiment.name = Ident(instance->name(0));
      experiment.instance_of = Ident(instance->name(1));
      experiment.args = TransformArgs(instance->argList());
    }
    return experiment;
  }

  // sweepDecl ::= 'sweep' name '=' name ('(' argList? ')')? 'over' expr
  ast::SweepDecl TransformSweep(FuseParser::SweepDeclContext* ctx) {
    ast::SweepDecl sweep;
    sweep.span = Span(ctx);
    sweep.name = Ident(ctx->name(0));
    sweep.template_name = Ident(ctx->name(1));
    sweep.fixed_args = TransformArgs(ctx->argList());
    sweep.grid = TransformExpr(ctx->expr(), 0);
    return sweep;
  }

  std::vector<ast::BodyItem> TransformBody(const std::vector<FuseParser::BodyItemContext*>& items) {
    std::vector<ast::BodyItem> body;
    for (auto* item : items) {
      if (auto* let = item->letDecl()) {
        body.push_back(ast::BodyItem{TransformLet(let)});
      } else if (auto* field = item->fieldAssign()) {
        body.push_back(ast::BodyItem{
            ast::FieldAssign{Ident(field->name()), TransformExpr(field->expr(), 0), Span(field)}});
      } else if (auto* check = item->checkStmt()) {
        ast::CheckStmt stmt;
        stmt.is_error = check->KW_ERROR() != nullptr;
        stmt.condition = TransformExpr(check->expr(), 0);
        size_t bad = 0;
        stmt.message = Unquote(Text(Span(check->STRING())), &bad).value_or("");
        stmt.span = Span(check);
        body.push_back(ast::BodyItem{std::move(stmt)});
      } else if (auto* stage = item->stageDecl()) {
        ast::StageDecl decl;
        decl.name = Ident(stage->name());
        decl.base = TransformStageBase(stage->stageBase());
        decl.body = TransformBody(stage->bodyItem());
        decl.span = Span(stage);
        body.push_back(ast::BodyItem{std::move(decl)});
      }
    }
    return body;
  }

  // params ::= '(' param, ... ')'     param ::= name ':' typeExpr constraint? ('=' expr)?
  std::vector<ast::Param> TransformParams(FuseParser::ParamsContext* ctx) {
    std::vector<ast::Param> params;
    if (ctx == nullptr) return params;
    for (auto* param_ctx : ctx->param()) {
      ast::Param param;
      param.name = Ident(param_ctx->name());
      param.span = Span(param_ctx);
      param.type = TransformType(param_ctx->typeExpr(), 0);
      if (auto* constraint = param_ctx->constraint()) param.constraint = TransformConstraint(constraint);
      if (param_ctx->expr() != nullptr) param.default_value = TransformExpr(param_ctx->expr(), 0);
      params.push_back(std::move(param));
    }
    return params;
  }

  ast::Constraint TransformConstraint(FuseParser::ConstraintContext* ctx) {
    ast::Constraint constraint;
    constraint.span = Span(ctx);
    if (auto* bound = dynamic_cast<FuseParser::BoundConstraintContext*>(ctx)) {
      switch (bound->op->getType()) {
        case FuseLexer::GT:
          constraint.kind = ast::Constraint::Kind::Greater;
          break;
        case FuseLexer::GE:
          constraint.kind = ast::Constraint::Kind::GreaterEqual;
          break;
        case FuseLexer::LT:
          constraint.kind = ast::Constraint::Kind::Less;
          break;
        default:
          constraint.kind = ast::Constraint::Kind::LessEqual;
          break;
      }
      constraint.low = TransformExpr(bound->expr(), 0);
    } else if (auto* interval = dynamic_cast<FuseParser::IntervalConstraintContext*>(ctx)) {
      constraint.kind = ast::Constraint::Kind::Interval;
      constraint.low = TransformExpr(interval->expr(0), 0);
      constraint.high = TransformExpr(interval->expr(1), 0);
      constraint.low_inclusive = interval->lo->getType() == FuseLexer::LBRACK;
      constraint.high_inclusive = interval->hi->getType() == FuseLexer::RBRACK;
    }
    return constraint;
  }

  ast::TypeExpr TransformType(FuseParser::TypeExprContext* ctx, int depth) {
    ast::TypeExpr type;
    type.span = Span(ctx);
    if (depth > kMaxTreeDepth) {
      ReportTooDeep(type.span);
      return type;
    }
    if (auto* named = dynamic_cast<FuseParser::NamedTypeContext*>(ctx)) {
      type.name = Ident(named->name());
      for (auto* arg : named->typeExpr()) type.args.push_back(TransformType(arg, depth + 1));
    } else if (auto* record = dynamic_cast<FuseParser::RecordTypeContext*>(ctx)) {
      type.is_record = true;
      for (auto* field : record->typeField()) {
        type.record_fields.push_back(ast::TypeField{Ident(field->name()), TransformType(field->typeExpr(), depth + 1)});
      }
    }
    return type;
  }

  std::vector<ast::Argument> TransformArgs(FuseParser::ArgListContext* ctx) {
    std::vector<ast::Argument> args;
    if (ctx == nullptr) return args;
    for (auto* arg_ctx : ctx->arg()) args.push_back(TransformArg(arg_ctx, 0));
    return args;
  }

  ast::Argument TransformArg(FuseParser::ArgContext* ctx, int depth) {
    ast::Argument arg;
    arg.span = Span(ctx);
    if (ctx->name() != nullptr) arg.name = Ident(ctx->name());
    arg.value = TransformExpr(ctx->expr(), depth + 1);
    return arg;
  }

  std::vector<ast::RecordField> TransformFields(const std::vector<FuseParser::RecordFieldContext*>& fields,
                                                int depth) {
    std::vector<ast::RecordField> out;
    for (auto* field : fields) {
      out.push_back(ast::RecordField{Ident(field->name()), TransformExpr(field->expr(), depth + 1)});
    }
    return out;
  }

  void ReportTooDeep(SourceSpan span) {
    if (reported_too_deep_) return;
    reported_too_deep_ = true;
    diagnostics_
        .Report(DiagnosticKind::NestingTooDeep, span,
                "expression is nested more than " + std::to_string(kMaxTreeDepth) + " levels deep")
        .Help("split it with `let` bindings");
  }

  ast::ExprPtr Binary(ast::BinaryOp op, antlr4::tree::TerminalNode* op_node, antlr4::Token* op_token,
                      FuseParser::ExprContext* lhs, FuseParser::ExprContext* rhs, SourceSpan span, int depth) {
    ast::BinaryExpr binary{op, TransformExpr(lhs, depth + 1), TransformExpr(rhs, depth + 1),
                           op_token != nullptr ? Span(op_token) : Span(op_node)};
    return ast::MakeExpr(span, std::move(binary));
  }

  ast::ExprPtr TransformExpr(FuseParser::ExprContext* ctx, int depth) {
    SourceSpan span = Span(ctx);
    if (ctx == nullptr) return ast::MakeExpr(span, ast::ErrorExpr{});
    if (depth > kMaxTreeDepth) {
      ReportTooDeep(span);
      return ast::MakeExpr(span, ast::ErrorExpr{});
    }
    if (auto* atom = dynamic_cast<FuseParser::AtomExprContext*>(ctx)) {
      return TransformPrimary(atom->primary(), depth + 1);
    }
    if (auto* member = dynamic_cast<FuseParser::MemberExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::MemberExpr{TransformExpr(member->expr(), depth + 1), Ident(member->name())});
    }
    if (auto* call = dynamic_cast<FuseParser::CallExprContext*>(ctx)) {
      ast::CallExpr node{TransformExpr(call->expr(), depth + 1), {}};
      if (auto* args = call->argList()) {
        for (auto* arg : args->arg()) node.args.push_back(TransformArg(arg, depth + 1));
      }
      return ast::MakeExpr(span, std::move(node));
    }
    if (auto* index = dynamic_cast<FuseParser::IndexExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::IndexExpr{TransformExpr(index->expr(0), depth + 1),
                                                TransformExpr(index->expr(1), depth + 1)});
    }
    if (auto* over = dynamic_cast<FuseParser::OverExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::OverExpr{TransformExpr(over->expr(), depth + 1), Ident(over->name())});
    }
    if (auto* pow = dynamic_cast<FuseParser::PowExprContext*>(ctx)) {
      return Binary(ast::BinaryOp::Pow, pow->CARET(), nullptr, pow->expr(0), pow->expr(1), span, depth);
    }
    if (auto* sign = dynamic_cast<FuseParser::SignExprContext*>(ctx)) {
      ast::UnaryOp op = sign->op->getType() == FuseLexer::MINUS ? ast::UnaryOp::Negate : ast::UnaryOp::Plus;
      return ast::MakeExpr(span, ast::UnaryExpr{op, TransformExpr(sign->expr(), depth + 1)});
    }
    if (auto* mul = dynamic_cast<FuseParser::MulExprContext*>(ctx)) {
      ast::BinaryOp op = mul->op->getType() == FuseLexer::STAR ? ast::BinaryOp::Mul : ast::BinaryOp::Div;
      return Binary(op, nullptr, mul->op, mul->expr(0), mul->expr(1), span, depth);
    }
    if (auto* add = dynamic_cast<FuseParser::AddExprContext*>(ctx)) {
      ast::BinaryOp op = add->op->getType() == FuseLexer::PLUS ? ast::BinaryOp::Add : ast::BinaryOp::Sub;
      return Binary(op, nullptr, add->op, add->expr(0), add->expr(1), span, depth);
    }
    if (auto* compare = dynamic_cast<FuseParser::CompareExprContext*>(ctx)) {
      ast::BinaryOp op = ast::BinaryOp::Eq;
      switch (compare->op->getType()) {
        case FuseLexer::EQ:
          op = ast::BinaryOp::Eq;
          break;
        case FuseLexer::NE:
          op = ast::BinaryOp::Ne;
          break;
        case FuseLexer::LT:
          op = ast::BinaryOp::Lt;
          break;
        case FuseLexer::LE:
          op = ast::BinaryOp::Le;
          break;
        case FuseLexer::GT:
          op = ast::BinaryOp::Gt;
          break;
        default:
          op = ast::BinaryOp::Ge;
          break;
      }
      return Binary(op, nullptr, compare->op, compare->expr(0), compare->expr(1), span, depth);
    }
    if (auto* not_expr = dynamic_cast<FuseParser::NotExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::UnaryExpr{ast::UnaryOp::Not, TransformExpr(not_expr->expr(), depth + 1)});
    }
    if (auto* and_expr = dynamic_cast<FuseParser::AndExprContext*>(ctx)) {
      return Binary(ast::BinaryOp::And, and_expr->KW_AND(), nullptr, and_expr->expr(0), and_expr->expr(1), span,
                    depth);
    }
    if (auto* or_expr = dynamic_cast<FuseParser::OrExprContext*>(ctx)) {
      return Binary(ast::BinaryOp::Or, or_expr->KW_OR(), nullptr, or_expr->expr(0), or_expr->expr(1), span,
                    depth);
    }
    if (auto* where = dynamic_cast<FuseParser::WhereExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::WhereExpr{TransformExpr(where->expr(0), depth + 1),
                                                TransformExpr(where->expr(1), depth + 1)});
    }
    if (auto* if_expr = dynamic_cast<FuseParser::IfExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::IfExpr{TransformExpr(if_expr->expr(0), depth + 1),
                                             TransformExpr(if_expr->expr(1), depth + 1),
                                             TransformExpr(if_expr->expr(2), depth + 1)});
    }
    return ast::MakeExpr(span, ast::ErrorExpr{});
  }

  ast::ExprPtr TransformPrimary(FuseParser::PrimaryContext* ctx, int depth) {
    SourceSpan span = Span(ctx);
    if (ctx == nullptr) return ast::MakeExpr(span, ast::ErrorExpr{});
    if (dynamic_cast<FuseParser::NumberLitContext*>(ctx) != nullptr) {
      std::string text = Text(span);
      std::string error;
      std::string help;
      auto number = ParseNumber(text, &error, &help);
      if (!number) return ast::MakeExpr(span, ast::ErrorExpr{});  // reported by the token scan
      if (number->is_int) return ast::MakeExpr(span, ast::IntExpr{number->int_value, text});
      return ast::MakeExpr(span, ast::FloatExpr{number->float_value, text});
    }
    if (dynamic_cast<FuseParser::StringLitContext*>(ctx) != nullptr) {
      size_t bad = 0;
      auto value = Unquote(Text(span), &bad);
      if (!value) return ast::MakeExpr(span, ast::ErrorExpr{});  // reported by the token scan
      return ast::MakeExpr(span, ast::StringExpr{std::move(*value)});
    }
    if (auto* boolean = dynamic_cast<FuseParser::BoolLitContext*>(ctx)) {
      return ast::MakeExpr(span, ast::BoolExpr{boolean->KW_TRUE() != nullptr});
    }
    if (dynamic_cast<FuseParser::NoneLitContext*>(ctx) != nullptr) return ast::MakeExpr(span, ast::NoneExpr{});
    if (dynamic_cast<FuseParser::NameRefContext*>(ctx) != nullptr) {
      return ast::MakeExpr(span, ast::NameExpr{Text(span)});
    }
    if (auto* paren = dynamic_cast<FuseParser::ParenExprContext*>(ctx)) {
      // Parentheses only group; the inner node keeps its own span.
      return TransformExpr(paren->expr(), depth + 1);
    }
    if (auto* list = dynamic_cast<FuseParser::ListLitContext*>(ctx)) {
      ast::ListExpr node;
      for (auto* element : list->expr()) node.elements.push_back(TransformExpr(element, depth + 1));
      return ast::MakeExpr(span, std::move(node));
    }
    if (auto* record = dynamic_cast<FuseParser::RecordLitContext*>(ctx)) {
      return ast::MakeExpr(span, ast::RecordExpr{TransformFields(record->recordField(), depth)});
    }
    if (auto* within = dynamic_cast<FuseParser::WithinExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::WithinExpr{Ident(within->name()), TransformFields(within->recordField(), depth)});
    }
    if (auto* by = dynamic_cast<FuseParser::ByExprContext*>(ctx)) {
      return ast::MakeExpr(span, ast::ByExpr{Ident(by->name())});
    }
    return ast::MakeExpr(span, ast::ErrorExpr{});
  }

  const SourceManager& sources_;
  FileId file_;
  const CodePointMap& map_;
  Diagnostics& diagnostics_;
  bool reported_too_deep_ = false;
};

/// Checks the tokens that the lexer accepts loosely, and records where lexical errors are.
void ScanTokens(antlr4::CommonTokenStream& tokens, ErrorState& state) {
  const SourceManager& sources = *state.sources;
  for (antlr4::Token* token : tokens.getTokens()) {
    SourceSpan span = state.SpanOf(token);
    if (token->getChannel() == antlr4::Token::DEFAULT_CHANNEL && token->getType() != antlr4::Token::EOF) {
      state.end_of_last_token = span.end;
    }
    switch (token->getType()) {
      case FuseLexer::NUMBER: {
        std::string error;
        std::string help;
        if (!ParseNumber(sources.Text(span), &error, &help) && state.Admit(span)) {
          auto builder = state.diagnostics->Report(DiagnosticKind::InvalidNumber, span, error);
          if (!help.empty()) builder.Help(help);
        }
        break;
      }
      case FuseLexer::STRING: {
        size_t bad = 0;
        std::string_view text = sources.Text(span);
        if (!Unquote(text, &bad) && state.Admit(span)) {
          SourceSpan escape{span.file, span.begin + static_cast<uint32_t>(bad),
                            span.begin + static_cast<uint32_t>(bad) + 2};
          state.diagnostics
              ->Report(DiagnosticKind::InvalidString, escape,
                       "unknown escape `" + std::string(text.substr(bad, 2)) + "` in string")
              .Help("escapes are `\\\"`, `\\\\`, `\\n`, `\\t` and `\\r`");
        }
        break;
      }
      case FuseLexer::UNTERMINATED_STRING:
        state.lexical_error_tokens.insert(token->getTokenIndex());
        if (!state.Admit(span)) break;
        state.diagnostics
            ->Report(DiagnosticKind::InvalidString, SourceSpan{span.file, span.begin, span.begin + 1},
                     "unterminated string")
            .Help("close it with `\"` on the same line");
        break;
      case FuseLexer::BLOCK_COMMENT: {
        std::string_view text = sources.Text(span);
        if (text.size() < 4 || text.substr(text.size() - 2) != "*/") {
          state.unterminated_comment_from = span.begin;
          if (!state.Admit(span)) break;
          state.diagnostics
              ->Report(DiagnosticKind::UnterminatedComment, SourceSpan{span.file, span.begin, span.begin + 2},
                       "unterminated comment")
              .Help("close it with `*/`");
        }
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace

namespace {

/// Runs the lexer and parser over a file and hands the tree of `entry` to `transform` when nothing was
/// reported. Shared by files and command-line settings.
template <typename Entry, typename Transform>
void ParseWith(const SourceManager& sources, FileId file, Diagnostics& diagnostics, Entry entry,
               Transform transform) {
  const std::string& text = sources.file(file).text();
  if (auto bad = FindInvalidUtf8(text)) {
    auto offset = static_cast<uint32_t>(*bad);
    diagnostics
        .Report(DiagnosticKind::InvalidEncoding, SourceSpan{file, offset, offset + 1},
                "file is not valid UTF-8 (byte " + std::to_string(offset) + ")")
        .Help("save the file as UTF-8");
    return;
  }
  CodePointMap map(text);
  size_t errors_before = diagnostics.error_count();
  ErrorState state{&sources, file, &map, &diagnostics};

  antlr4::ANTLRInputStream input(text);
  FuseLexer lexer(&input);
  LexerErrorListener lexer_listener(&state);
  lexer.removeErrorListeners();
  lexer.addErrorListener(&lexer_listener);
  antlr4::CommonTokenStream tokens(&lexer);
  tokens.fill();
  state.lines_with_bad_characters = lexer_listener.Report();
  ScanTokens(tokens, state);
  if (state.stopped) return;

  FuseParser parser(&tokens);
  ParserErrorListener parser_listener(&state);
  parser.removeErrorListeners();
  parser.addErrorListener(&parser_listener);
  decltype(entry(parser)) tree = nullptr;
  try {
    tree = entry(parser);
  } catch (const FuseParser::NestingLimitExceeded& limit) {
    antlr4::Token* token = tokens.get(limit.token_index);
    diagnostics
        .Report(DiagnosticKind::NestingTooDeep, state.SpanOf(token),
                "expression is nested more than " + std::to_string(FuseParser::kMaxExprNesting) +
                    " levels deep")
        .Help("split it with `let` bindings");
    return;
  } catch (const TooManyErrors&) {
    return;
  }
  if (diagnostics.error_count() > errors_before || tree == nullptr) return;
  Transformer transformer(sources, file, map, diagnostics);
  transform(transformer, tree);
}

}  // namespace

ast::Module Parse(const SourceManager& sources, FileId file, Diagnostics& diagnostics) {
  ast::Module module;
  module.file = file;
  ParseWith(
      sources, file, diagnostics, [](FuseParser& parser) { return parser.file(); },
      [&](Transformer& transformer, FuseParser::FileContext* tree) { module = transformer.TransformFile(tree); });
  return module;
}

std::optional<ast::Setting> ParseSetting(const SourceManager& sources, FileId file, Diagnostics& diagnostics) {
  std::optional<ast::Setting> setting;
  ParseWith(
      sources, file, diagnostics, [](FuseParser& parser) { return parser.setting(); },
      [&](Transformer& transformer, FuseParser::SettingContext* tree) { setting = transformer.TransformSetting(tree); });
  return setting;
}

}  // namespace fusec
