#include "runtime/tokenizer/jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "runtime/tokenizer/jinja/builtins.h"

namespace fusec::rt::jinja {
namespace {

/// Statements jinja2 has that this interpreter does not: refused by name.
constexpr std::string_view kUnsupportedStatements[] = {"include", "import",     "from",  "extends",   "block", "with",
                                                       "do",      "autoescape", "trans", "pluralize", "print"};

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Body Template() {
    std::string ended;
    Body body = Statements({}, &ended);
    return body;
  }

 private:
  // ---- tokens
  const Token& Cur() const { return t_[i_]; }
  const Token& Peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void Next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool IsOp(std::string_view op) const { return Cur().kind == TokenKind::Operator && Cur().text == op; }
  bool IsName(std::string_view name) const { return Cur().kind == TokenKind::Name && Cur().text == name; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  [[noreturn]] void FailHere(const std::string& message) const { throw Failure{Cur().line, message, false}; }
  std::string Describe(const Token& t) const {
    switch (t.kind) {
      case TokenKind::Data:
        return "text";
      case TokenKind::VariableBegin:
        return "`{{`";
      case TokenKind::VariableEnd:
        return "`}}`";
      case TokenKind::BlockBegin:
        return "`{%`";
      case TokenKind::BlockEnd:
        return "`%}`";
      case TokenKind::Name:
        return "`" + t.text + "`";
      case TokenKind::String:
        return "a string";
      case TokenKind::Integer:
      case TokenKind::Float:
        return "a number";
      case TokenKind::Operator:
        return "`" + t.text + "`";
      case TokenKind::End:
        return "the end of the template";
    }
    return "?";
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) FailHere("expected `" + std::string(op) + "`, found " + Describe(Cur()));
  }
  std::string ExpectName(std::string_view what) {
    if (Cur().kind != TokenKind::Name) FailHere("expected " + std::string(what) + ", found " + Describe(Cur()));
    std::string name = Cur().text;
    Next();
    return name;
  }
  void ExpectBlockEnd() {
    if (Cur().kind != TokenKind::BlockEnd) FailHere("expected `%}`, found " + Describe(Cur()));
    Next();
  }

  struct Nest {
    explicit Nest(Parser* p) : p_(p) {
      if (++p_->nesting_ > kMaxNesting) p_->FailHere("the template nests too deeply");
    }
    ~Nest() { --p_->nesting_; }
    Parser* p_;
  };

  ExprPtr Node(ExprKind kind, int line, std::vector<ExprPtr> children = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    e->children = std::move(children);
    Finish(*e);
    return e;
  }
  void Finish(Expr& e) {
    int depth = 0;
    for (const auto& c : e.children)
      if (c) depth = std::max(depth, c->depth);
    for (const auto& [name, c] : e.keyword) depth = std::max(depth, c->depth);
    e.depth = depth + 1;
    if (e.depth > kMaxExprDepth) throw Failure{e.line, "the expression nests too deeply", false};
  }

  // ---- statements

  /// Statements up to a `{% name %}` with name in `ends` (consumed up to the name; its arguments and `%}` are
  /// the caller's). `ends` empty: up to the end of the template.
  Body Statements(std::initializer_list<std::string_view> ends, std::string* ended) {
    Nest nest(this);
    Body body;
    while (true) {
      const Token& t = Cur();
      if (t.kind == TokenKind::End) {
        if (ends.size() == 0) return body;
        std::string names;
        for (std::string_view e : ends) names += (names.empty() ? "`" : " or `") + std::string(e) + "`";
        FailHere("the template ended where " + names + " was expected");
      }
      if (t.kind == TokenKind::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        Next();
        continue;
      }
      if (t.kind == TokenKind::VariableBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Output;
        s->line = t.line;
        Next();
        s->expr = Tuple(/*with_condexpr=*/true, /*explicit_parentheses=*/false);
        if (Cur().kind != TokenKind::VariableEnd) FailHere("expected `}}`, found " + Describe(Cur()));
        Next();
        body.push_back(std::move(s));
        continue;
      }
      if (t.kind != TokenKind::BlockBegin) FailHere("unexpected " + Describe(t));
      Next();
      if (Cur().kind != TokenKind::Name) FailHere("expected a statement name, found " + Describe(Cur()));
      std::string keyword = Cur().text;
      for (std::string_view e : ends)
        if (keyword == e) {
          *ended = keyword;
          Next();
          return body;
        }
      body.push_back(Statement());
    }
  }

  StmtPtr Statement() {
    int line = Cur().line;
    std::string keyword = Cur().text;
    Next();
    auto s = std::make_unique<Stmt>();
    s->line = line;
    std::string ended;
    if (keyword == "if") {
      s->kind = StmtKind::If;
      ExprPtr condition = Tuple(/*with_condexpr=*/false, false);
      while (true) {
        ExpectBlockEnd();
        Body branch = Statements({"elif", "else", "endif"}, &ended);
        s->branches.emplace_back(std::move(condition), std::move(branch));
        if (ended == "elif") {
          condition = Tuple(false, false);
          continue;
        }
        if (ended == "else") {
          ExpectBlockEnd();
          s->else_body = Statements({"endif"}, &ended);
        }
        ExpectBlockEnd();
        return s;
      }
    }
    if (keyword == "for") {
      s->kind = StmtKind::For;
      AssignTarget(s.get(), /*allow_namespace=*/false, "in");
      if (!SkipName("in")) FailHere("expected `in` in the `for` statement, found " + Describe(Cur()));
      s->expr = Tuple(/*with_condexpr=*/false, false, /*extra_end=*/"recursive");
      if (SkipName("if")) s->condition = Expression(true);
      if (IsName("recursive")) FailHere("recursive `for` loops are not supported");
      ExpectBlockEnd();
      ++loop_depth_;
      s->body = Statements({"else", "endfor"}, &ended);
      --loop_depth_;
      if (ended == "else") {
        ExpectBlockEnd();
        s->else_body = Statements({"endfor"}, &ended);
      }
      ExpectBlockEnd();
      return s;
    }
    if (keyword == "set") {
      AssignTarget(s.get(), /*allow_namespace=*/true, "");
      if (SkipOp("=")) {
        s->kind = StmtKind::Set;
        s->expr = Tuple(true, false);
        ExpectBlockEnd();
        return s;
      }
      if (!s->attribute.empty() || s->unpack) FailHere("a block `set` assigns one plain name");
      s->kind = StmtKind::SetBlock;
      if (IsOp("|")) s->expr = FilterChain(BodyPlaceholder(line));
      ExpectBlockEnd();
      s->body = Statements({"endset"}, &ended);
      ExpectBlockEnd();
      return s;
    }
    if (keyword == "macro") {
      s->kind = StmtKind::Macro;
      s->name = ExpectName("a macro name");
      Signature(s.get());
      ExpectBlockEnd();
      int saved_loops = loop_depth_;
      loop_depth_ = 0;
      s->body = Statements({"endmacro"}, &ended);
      loop_depth_ = saved_loops;
      ExpectBlockEnd();
      return s;
    }
    if (keyword == "call") {
      s->kind = StmtKind::CallBlock;
      if (IsOp("(")) Signature(s.get());
      s->expr = Expression(true);
      if (s->expr->kind != ExprKind::Call) throw Failure{line, "expected a call after `{% call`", false};
      ExpectBlockEnd();
      s->body = Statements({"endcall"}, &ended);
      ExpectBlockEnd();
      return s;
    }
    if (keyword == "filter") {
      s->kind = StmtKind::FilterBlock;
      s->expr = FilterChain(BodyPlaceholder(line), /*leading_pipe=*/false);
      ExpectBlockEnd();
      s->body = Statements({"endfilter"}, &ended);
      ExpectBlockEnd();
      return s;
    }
    if (keyword == "break" || keyword == "continue") {
      if (loop_depth_ == 0) throw Failure{line, "`" + keyword + "` outside a `for` loop", false};
      s->kind = keyword == "break" ? StmtKind::Break : StmtKind::Continue;
      ExpectBlockEnd();
      return s;
    }
    if (keyword == "generation") {
      s->kind = StmtKind::Generation;
      ExpectBlockEnd();
      s->body = Statements({"endgeneration"}, &ended);
      ExpectBlockEnd();
      return s;
    }
    for (std::string_view unsupported : kUnsupportedStatements)
      if (keyword == unsupported) throw Failure{line, "statement `" + keyword + "` is not supported", false};
    if (keyword.rfind("end", 0) == 0 || keyword == "elif" || keyword == "else")
      throw Failure{line, "unexpected `{% " + keyword + " %}`", false};
    throw Failure{line, "unknown statement `" + keyword + "`", false};
  }

  /// assign_target ::= name ('.' name)? | name (',' name)* | '(' names ')'
  void AssignTarget(Stmt* s, bool allow_namespace, std::string_view end_name) {
    bool parenthesized = SkipOp("(");
    s->targets.push_back(ExpectName("a variable name"));
    if (allow_namespace && !parenthesized && IsOp(".")) {
      Next();
      s->attribute = ExpectName("an attribute name");
      return;
    }
    while (SkipOp(",")) {
      s->unpack = true;
      if ((parenthesized && IsOp(")")) || (!end_name.empty() && IsName(end_name)) || IsOp("=")) break;
      s->targets.push_back(ExpectName("a variable name"));
    }
    if (parenthesized) {
      ExpectOp(")");
      s->unpack = s->unpack || s->targets.size() > 1;
    }
  }

  /// signature ::= '(' (name ('=' expression)?) % ',' ')'
  void Signature(Stmt* s) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!s->params.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      MacroParam param;
      param.name = ExpectName("a parameter name");
      if (SkipOp("="))
        param.default_value = Expression(true);
      else if (!s->params.empty() && s->params.back().default_value)
        FailHere("parameter `" + param.name + "` without a default follows one with a default");
      s->params.push_back(std::move(param));
    }
    Next();
  }

  ExprPtr BodyPlaceholder(int line) {
    auto e = Node(ExprKind::Literal, line);
    e->name = "__body__";
    return e;
  }

  // ---- expressions (jinja2's parser.py, production by production)

  /// tuple ::= expression (',' expression)* ','?   (a tuple only with a comma)
  ExprPtr Tuple(bool with_condexpr, bool explicit_parentheses, std::string_view extra_end = "") {
    int line = Cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      if (Cur().kind == TokenKind::VariableEnd || Cur().kind == TokenKind::BlockEnd || IsOp(")") ||
          (!extra_end.empty() && IsName(extra_end)) || (!with_condexpr && IsName("if") && !items.empty()))
        break;
      items.push_back(Expression(with_condexpr));
      if (IsOp(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) FailHere("expected an expression, found " + Describe(Cur()));
    }
    return Node(ExprKind::Tuple, line, std::move(items));
  }

  ExprPtr Expression(bool with_condexpr) {
    Nest nest(this);
    return with_condexpr ? Conditional() : Or();
  }

  /// condexpr ::= or ('if' or ('else' condexpr)?)*
  ExprPtr Conditional() {
    ExprPtr expr = Or();
    while (IsName("if")) {
      int line = Cur().line;
      Next();
      ExprPtr condition = Or();
      ExprPtr otherwise;
      if (SkipName("else")) otherwise = Conditional();
      std::vector<ExprPtr> children;
      children.push_back(std::move(condition));
      children.push_back(std::move(expr));
      children.push_back(std::move(otherwise));
      expr = Node(ExprKind::Conditional, line, std::move(children));
    }
    return expr;
  }

  ExprPtr Binary(ExprKind kind, ExprPtr a, ExprPtr b, int line, std::string op = "") {
    std::vector<ExprPtr> children;
    children.push_back(std::move(a));
    children.push_back(std::move(b));
    auto e = Node(kind, line, std::move(children));
    e->name = std::move(op);
    return e;
  }

  ExprPtr Or() {
    ExprPtr left = And();
    while (IsName("or")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::Or, std::move(left), And(), line);
    }
    return left;
  }
  ExprPtr And() {
    ExprPtr left = NotExpr();
    while (IsName("and")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::And, std::move(left), NotExpr(), line);
    }
    return left;
  }
  ExprPtr NotExpr() {
    if (IsName("not")) {
      Nest nest(this);
      int line = Cur().line;
      Next();
      std::vector<ExprPtr> children;
      children.push_back(NotExpr());
      return Node(ExprKind::Not, line, std::move(children));
    }
    return CompareExpr();
  }
  /// compare ::= math1 (('==' | '!=' | '<' | '>' | '<=' | '>=' | 'in' | 'not' 'in') math1)*
  ExprPtr CompareExpr() {
    int line = Cur().line;
    ExprPtr first = Math1();
    std::vector<ExprPtr> children;
    std::vector<std::string> ops;
    while (true) {
      std::string op;
      if (Cur().kind == TokenKind::Operator && (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
                                                Cur().text == ">" || Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek().kind == TokenKind::Name && Peek().text == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (children.empty()) children.push_back(std::move(first));
      children.push_back(Math1());
      ops.push_back(op);
    }
    if (ops.empty()) return first;
    auto e = Node(ExprKind::Compare, line, std::move(children));
    e->ops = std::move(ops);
    return e;
  }
  ExprPtr Math1() {
    ExprPtr left = Concat();
    while (IsOp("+") || IsOp("-")) {
      std::string op = Cur().text;
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::Binary, std::move(left), Concat(), line, op);
    }
    return left;
  }
  ExprPtr Concat() {
    ExprPtr left = Math2();
    while (IsOp("~")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::Binary, std::move(left), Math2(), line, "~");
    }
    return left;
  }
  ExprPtr Math2() {
    ExprPtr left = Pow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Cur().text;
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::Binary, std::move(left), Pow(), line, op);
    }
    return left;
  }
  ExprPtr Pow() {  // left-associative, as in jinja2 (not Python)
    ExprPtr left = Unary(true);
    while (IsOp("**")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::Binary, std::move(left), Unary(true), line, "**");
    }
    return left;
  }
  /// unary ::= ('-' | '+') unary | primary postfix* ; then filters and tests when `with_filter`
  ExprPtr Unary(bool with_filter) {
    Nest nest(this);
    int line = Cur().line;
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      ExprKind kind = IsOp("-") ? ExprKind::Negate : ExprKind::Plus;
      Next();
      std::vector<ExprPtr> children;
      children.push_back(Unary(false));
      node = Node(kind, line, std::move(children));
    } else {
      node = Primary();
    }
    node = Postfix(std::move(node));
    if (with_filter) node = FilterExpr(std::move(node));
    return node;
  }

  ExprPtr Literal(Value v, int line) {
    auto e = Node(ExprKind::Literal, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr Primary() {
    const Token& t = Cur();
    int line = t.line;
    switch (t.kind) {
      case TokenKind::Name: {
        std::string name = t.text;
        Next();
        if (name == "true" || name == "True") return Literal(Value::Bool(true), line);
        if (name == "false" || name == "False") return Literal(Value::Bool(false), line);
        if (name == "none" || name == "None") return Literal(Value::None(), line);
        auto e = Node(ExprKind::Name, line);
        e->name = std::move(name);
        return e;
      }
      case TokenKind::String: {
        std::string text = t.text;
        Next();
        while (Cur().kind == TokenKind::String) {  // adjacent literals concatenate
          text += Cur().text;
          Next();
        }
        return Literal(Value::String(std::move(text)), line);
      }
      case TokenKind::Integer: {
        int64_t value = t.integer;
        Next();
        return Literal(Value::Int(value), line);
      }
      case TokenKind::Float: {
        double value = t.number;
        Next();
        return Literal(Value::Float(value), line);
      }
      case TokenKind::Operator:
        if (t.text == "(") {
          Next();
          ExprPtr e = Tuple(true, /*explicit_parentheses=*/true);
          ExpectOp(")");
          return e;
        }
        if (t.text == "[") {
          Next();
          std::vector<ExprPtr> items;
          while (!IsOp("]")) {
            if (!items.empty()) ExpectOp(",");
            if (IsOp("]")) break;
            items.push_back(Expression(true));
          }
          Next();
          return Node(ExprKind::List, line, std::move(items));
        }
        if (t.text == "{") {
          Next();
          std::vector<ExprPtr> items;
          while (!IsOp("}")) {
            if (!items.empty()) ExpectOp(",");
            if (IsOp("}")) break;
            items.push_back(Expression(true));
            ExpectOp(":");
            items.push_back(Expression(true));
          }
          Next();
          return Node(ExprKind::Dict, line, std::move(items));
        }
        break;
      default:
        break;
    }
    FailHere("expected an expression, found " + Describe(t));
  }

  ExprPtr Postfix(ExprPtr node) {
    while (true) {
      int line = Cur().line;
      if (IsOp(".")) {
        Next();
        if (Cur().kind == TokenKind::Name) {
          std::vector<ExprPtr> children;
          children.push_back(std::move(node));
          node = Node(ExprKind::GetAttr, line, std::move(children));
          node->name = Cur().text;
          Next();
        } else if (Cur().kind == TokenKind::Integer) {
          std::vector<ExprPtr> children;
          children.push_back(std::move(node));
          children.push_back(Literal(Value::Int(Cur().integer), line));
          Next();
          node = Node(ExprKind::GetItem, line, std::move(children));
        } else {
          FailHere("expected an attribute name after `.`, found " + Describe(Cur()));
        }
      } else if (IsOp("[")) {
        Next();
        node = Subscript(std::move(node), line);
      } else if (IsOp("(")) {
        node = CallExpr(std::move(node));
      } else {
        return node;
      }
    }
  }

  /// subscript ::= '[' (expression | expression? ':' expression? (':' expression?)?) ']'
  ExprPtr Subscript(ExprPtr object, int line) {
    Nest nest(this);
    std::vector<ExprPtr> parts;
    parts.push_back(std::move(object));
    auto part = [&]() -> ExprPtr { return (IsOp(":") || IsOp("]")) ? nullptr : Expression(true); };
    ExprPtr start = part();
    if (!IsOp(":")) {
      if (!start) FailHere("expected an index, found " + Describe(Cur()));
      if (IsOp(",")) FailHere("tuple subscripts are not supported");
      ExpectOp("]");
      parts.push_back(std::move(start));
      return Node(ExprKind::GetItem, line, std::move(parts));
    }
    Next();
    ExprPtr stop = part();
    ExprPtr step;
    if (SkipOp(":")) step = part();
    ExpectOp("]");
    parts.push_back(std::move(start));
    parts.push_back(std::move(stop));
    parts.push_back(std::move(step));
    return Node(ExprKind::Slice, line, std::move(parts));
  }

  /// call_args ::= '(' (expression | name '=' expression) % ',' ')'; into children[first..] and keyword.
  void CallArgs(Expr* e) {
    ExpectOp("(");
    bool any = false;
    while (!IsOp(")")) {
      if (any) ExpectOp(",");
      if (IsOp(")")) break;
      any = true;
      if (IsOp("*") || IsOp("**")) FailHere("`*args` and `**kwargs` in calls are not supported");
      if (Cur().kind == TokenKind::Name && Peek().kind == TokenKind::Operator && Peek().text == "=") {
        std::string name = Cur().text;
        Next();
        Next();
        e->keyword.emplace_back(std::move(name), Expression(true));
      } else {
        if (!e->keyword.empty()) FailHere("a positional argument follows a keyword argument");
        e->children.push_back(Expression(true));
      }
    }
    Next();
    Finish(*e);
  }

  ExprPtr CallExpr(ExprPtr callee) {
    Nest nest(this);
    int line = Cur().line;
    std::vector<ExprPtr> children;
    children.push_back(std::move(callee));
    auto e = Node(ExprKind::Call, line, std::move(children));
    CallArgs(e.get());
    return e;
  }

  ExprPtr FilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        node = FilterChain(std::move(node));
      } else if (IsName("is")) {
        node = TestExpr(std::move(node));
      } else if (IsOp("(")) {
        node = CallExpr(std::move(node));
      } else {
        return node;
      }
    }
  }

  /// filter ::= '|' name ('.' name)* call_args?   (`leading_pipe` false: the first `|` is implied)
  ExprPtr FilterChain(ExprPtr node, bool leading_pipe = true) {
    bool first = true;
    while ((first && !leading_pipe) || IsOp("|")) {
      if (!(first && !leading_pipe)) Next();
      first = false;
      int line = Cur().line;
      std::string name = ExpectName("a filter name");
      while (IsOp(".") && Peek().kind == TokenKind::Name) {
        Next();
        name += "." + Cur().text;
        Next();
      }
      const FilterSpec* spec = FindFilter(name);
      if (!spec) throw Failure{line, "filter `" + name + "` is not supported", false};
      std::vector<ExprPtr> children;
      children.push_back(std::move(node));
      node = Node(ExprKind::Filter, line, std::move(children));
      node->name = name;
      node->filter = spec;
      if (IsOp("(")) CallArgs(node.get());
      if (!leading_pipe) break;  // {% filter a|b %}: the loop continues on the explicit pipes
    }
    if (!leading_pipe && IsOp("|")) return FilterChain(std::move(node));
    return node;
  }

  /// test ::= 'is' 'not'? name ('.' name)* (call_args | primary)?
  ExprPtr TestExpr(ExprPtr node) {
    int line = Cur().line;
    Next();
    bool negated = SkipName("not");
    std::string name = ExpectName("a test name");
    while (IsOp(".") && Peek().kind == TokenKind::Name) {
      Next();
      name += "." + Cur().text;
      Next();
    }
    const TestSpec* spec = FindTest(name);
    if (!spec) throw Failure{line, "test `" + name + "` is not supported", false};
    std::vector<ExprPtr> children;
    children.push_back(std::move(node));
    auto e = Node(ExprKind::Test, line, std::move(children));
    e->name = name;
    e->test = spec;
    e->negated = negated;
    if (IsOp("(")) {
      CallArgs(e.get());
    } else {
      const Token& t = Cur();
      bool starts_primary = t.kind == TokenKind::String || t.kind == TokenKind::Integer || t.kind == TokenKind::Float ||
                            (t.kind == TokenKind::Operator && (t.text == "[" || t.text == "{")) ||
                            (t.kind == TokenKind::Name && t.text != "else" && t.text != "or" && t.text != "and" &&
                             t.text != "if" && t.text != "is");
      if (starts_primary) {
        Nest nest(this);
        e->children.push_back(Postfix(Primary()));
        Finish(*e);
      }
    }
    return e;
  }

  const std::vector<Token>& t_;
  size_t i_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body Parse(const std::vector<Token>& tokens) { return Parser(tokens).Template(); }

}  // namespace fusec::rt::jinja
