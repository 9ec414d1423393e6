// The grammar of the .fuse experiment language (docs/language.md is the reference).
//
// Generated at build time with Debian's ANTLR 4.7.2 tool into its own library (grammar/CMakeLists.txt).
// Only compiler/parse/ sees the generated types: it turns the parse tree into fusec's own AST at once.
//
// Shape of the language: a file is imports, then declarations (let, objective, weighting, stage template,
// experiment, sweep). Statements need no terminator; `;` may separate several on one line. Newlines are not
// significant: every statement starts with a keyword or `name =`, which no expression can swallow.
//
// Rules for this grammar:
// - No token is named like a C macro (NULL, EOF, ...): the generated C++ would not compile.
// - Soft keywords (`objective`, `stage`, `by`, `group`, ...) are usable as field, argument and parameter
//   names through the `name` rule, so `objective = dpo(...)` and `top_k(4, by: reward)` parse.
// - `expr` tracks its nesting depth (NestingGuard in the members block) so that no input can recurse the
//   parser into a stack overflow; the transformer reports the limit as an ordinary diagnostic.

grammar Fuse;

@parser::members {
  /// Deepest expression nesting accepted. Real experiments nest a handful of levels; the limit only exists
  /// so that adversarial input cannot exhaust the stack of this recursive-descent parser.
  static constexpr int kMaxExprNesting = 200;
  int expr_nesting_ = 0;
  /// Thrown (and caught by compiler/parse) when an expression nests deeper than kMaxExprNesting.
  struct NestingLimitExceeded {
    size_t token_index;
  };
  /// Counts one level of `expr` for as long as the rule function runs; RAII so that the count also
  /// unwinds when a rule exits through error recovery or an exception.
  class ExprNestingScope {
   public:
    explicit ExprNestingScope(FuseParser* parser) : parser_(parser) {
      if (++parser_->expr_nesting_ > kMaxExprNesting) {
        --parser_->expr_nesting_;
        throw NestingLimitExceeded{parser_->getCurrentToken()->getTokenIndex()};
      }
    }
    ~ExprNestingScope() { --parser_->expr_nesting_; }
    ExprNestingScope(const ExprNestingScope&) = delete;
    ExprNestingScope& operator=(const ExprNestingScope&) = delete;
   private:
    FuseParser* parser_;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Files and declarations

file : importDecl* decl* EOF ;

// A command-line override: `fusec plan x.fuse --set po.optim.lr=1e-6` (a separate entry rule).
setting : name (DOT name)* ASSIGN expr EOF ;

// import std.objectives.{dpo, simpo as sp}    import std.weighting    import "lib/common.fuse" as common
importDecl
  : KW_IMPORT modulePath (DOT LBRACE importItem (COMMA importItem)* COMMA? RBRACE | KW_AS ID)? SEMI?
  ;
modulePath : name (DOT name)* | STRING ;
importItem : ID (KW_AS ID)? ;

decl
  : letDecl
  | objectiveDecl
  | weightingDecl
  | stageTemplateDecl
  | experimentDecl
  | sweepDecl
  | SEMI
  ;

// let parts = split(data, sft: 0.4, po: 0.6)      let h(y) = logp(y) - ref_logp(y)
letDecl : KW_LET name funcParams? ASSIGN expr ;
funcParams : LPAREN (funcParam (COMMA funcParam)* COMMA?)? RPAREN ;
funcParam : name (COLON typeExpr)? ;

// objective dpo(beta: float > 0, length_norm: bool = false) per pair(chosen, rejected) { ... loss = ... }
objectiveDecl : KW_OBJECTIVE name params unitClause? LBRACE bodyItem* RBRACE ;
unitClause : KW_PER (KW_GROUP KW_OF)? ID LPAREN name (COMMA name)* COMMA? RPAREN ;

// weighting softmax_over_sources(tau: float > 0 = 1.0) = softmax(max(reward) over source / tau) over sources
weightingDecl : KW_WEIGHTING name params? ASSIGN expr ;

// stage fuserl_po(tau: float > 0 = 1.0) = fuse_po { objective = dpo(beta: 10, length_norm: true) }
stageTemplateDecl : KW_STAGE name params ASSIGN stageBase LBRACE bodyItem* RBRACE ;
stageBase : name (LPAREN argList? RPAREN)? ;

// experiment name { ... }   experiment template(p: T = default) { ... }   experiment name = template(args)
experimentDecl
  : KW_EXPERIMENT name params? LBRACE bodyItem* RBRACE      # experimentBody
  | KW_EXPERIMENT name ASSIGN name LPAREN argList? RPAREN   # experimentInstance
  ;

// sweep taus = fuserl over {tau: [0.1, 1.0], seed: [1, 2, 3]}     sweep s = fuserl over grid("grid.toml")
sweepDecl : KW_SWEEP name ASSIGN name (LPAREN argList? RPAREN)? KW_OVER expr ;

// The statements of experiment, stage and objective bodies. Which ones a body accepts is semantic.
bodyItem
  : letDecl
  | stageDecl
  | fieldAssign
  | checkStmt
  | SEMI
  ;
stageDecl : KW_STAGE name ASSIGN stageBase LBRACE bodyItem* RBRACE ;
fieldAssign : name ASSIGN expr ;
checkStmt : level=(KW_WARN | KW_ERROR) KW_IF expr COLON STRING ;

// ---------------------------------------------------------------------------------------------------------
// Parameters and types

params : LPAREN (param (COMMA param)* COMMA?)? RPAREN ;
param : name COLON typeExpr constraint? (ASSIGN expr)? ;
// beta: float > 0      warmup: float in [0, 1)
constraint
  : op=(GT | GE | LT | LE) expr                                              # boundConstraint
  | KW_IN lo=(LBRACK | LPAREN) expr COMMA expr hi=(RBRACK | RPAREN)          # intervalConstraint
  ;
// int  float  list[float]  {lr: float, epochs: int}
typeExpr
@init { ExprNestingScope type_nesting_scope(this); }
  : name (LBRACK typeExpr (COMMA typeExpr)* RBRACK)?                          # namedType
  | LBRACE typeField (COMMA typeField)* COMMA? RBRACE                         # recordType
  ;
typeField : name COLON typeExpr ;

// ---------------------------------------------------------------------------------------------------------
// Expressions, loosest binding last. `over` is postfix and binds like a call, so
// `max(reward) over source / tau` is `(max(reward) over source) / tau`.

expr
@init { ExprNestingScope expr_nesting_scope(this); }
  : primary                                                    # atomExpr
  | expr DOT name                                              # memberExpr
  | expr LPAREN argList? RPAREN                                # callExpr
  | expr LBRACK expr RBRACK                                    # indexExpr
  | expr KW_OVER name                                          # overExpr
  | <assoc=right> expr CARET expr                              # powExpr
  | op=(MINUS | PLUS) expr                                     # signExpr
  | expr op=(STAR | SLASH) expr                                # mulExpr
  | expr op=(PLUS | MINUS) expr                                # addExpr
  | expr op=(EQ | NE | LT | LE | GT | GE) expr                 # compareExpr
  | KW_NOT expr                                                # notExpr
  | expr KW_AND expr                                           # andExpr
  | expr KW_OR expr                                            # orExpr
  | expr KW_WHERE expr                                         # whereExpr
  | KW_IF expr KW_THEN expr KW_ELSE expr                       # ifExpr
  ;

primary
  : NUMBER                                                              # numberLit
  | STRING                                                              # stringLit
  | (KW_TRUE | KW_FALSE)                                                # boolLit
  | KW_NONE                                                             # noneLit
  | name                                                                # nameRef
  | LPAREN expr RPAREN                                                  # parenExpr
  | LBRACK (expr (COMMA expr)* COMMA?)? RBRACK                          # listLit
  | LBRACE (recordField (COMMA recordField)* COMMA?)? RBRACE            # recordLit
  | KW_WITHIN name LBRACE recordField (COMMA recordField)* COMMA? RBRACE  # withinExpr
  | KW_BY name                                                          # byExpr
  ;
recordField : name COLON expr ;
argList : arg (COMMA arg)* COMMA? ;
arg : (name COLON)? expr ;

// Identifiers, plus the keywords that only start declarations or clauses and are therefore safe as names.
name
  : ID | KW_OBJECTIVE | KW_WEIGHTING | KW_STAGE | KW_EXPERIMENT | KW_SWEEP | KW_PER | KW_GROUP | KW_OF
  | KW_BY | KW_IN | KW_WARN | KW_ERROR | KW_AS | KW_IMPORT
  ;

// ---------------------------------------------------------------------------------------------------------
// Lexer

KW_IMPORT : 'import' ;
KW_AS : 'as' ;
KW_LET : 'let' ;
KW_OBJECTIVE : 'objective' ;
KW_WEIGHTING : 'weighting' ;
KW_STAGE : 'stage' ;
KW_EXPERIMENT : 'experiment' ;
KW_SWEEP : 'sweep' ;
KW_PER : 'per' ;
KW_GROUP : 'group' ;
KW_OF : 'of' ;
KW_OVER : 'over' ;
KW_WHERE : 'where' ;
KW_WITHIN : 'within' ;
KW_BY : 'by' ;
KW_IF : 'if' ;
KW_THEN : 'then' ;
KW_ELSE : 'else' ;
KW_AND : 'and' ;
KW_OR : 'or' ;
KW_NOT : 'not' ;
KW_TRUE : 'true' ;
KW_FALSE : 'false' ;
KW_NONE : 'none' ;
KW_IN : 'in' ;
KW_WARN : 'warn' ;
KW_ERROR : 'error' ;

LPAREN : '(' ;
RPAREN : ')' ;
LBRACK : '[' ;
RBRACK : ']' ;
LBRACE : '{' ;
RBRACE : '}' ;
COMMA : ',' ;
COLON : ':' ;
SEMI : ';' ;
DOT : '.' ;
ASSIGN : '=' ;
EQ : '==' ;
NE : '!=' ;
LE : '<=' ;
GE : '>=' ;
LT : '<' ;
GT : '>' ;
PLUS : '+' ;
MINUS : '-' ;
STAR : '*' ;
SLASH : '/' ;
CARET : '^' ;

// Digits with `_` separators, an optional fraction and exponent, then any letters or `%`: the unit suffix
// (`2k`, `10%`) is validated by the transformer, so `2kb` is one token with a clear error, not two tokens.
NUMBER : DIGIT (DIGIT | '_')* ('.' DIGIT (DIGIT | '_')*)? ([eE] [+-]? DIGIT+)? [a-zA-Z%]* ;
STRING : '"' ('\\' ~[\r\n] | ~["\\\r\n])* '"' ;
// A string that reaches the end of its line; reported as "unterminated string" by compiler/parse.
UNTERMINATED_STRING : '"' ('\\' ~[\r\n] | ~["\\\r\n])* ;
// Identifiers may use any letter, so `τ` and `β` can be written as in the paper.
ID : [\p{L}_] [\p{L}\p{N}_]* ;

LINE_COMMENT : ('#' | '//') ~[\r\n]* -> channel(HIDDEN) ;
// A block comment that never closes runs to the end of the file; compiler/parse reports it.
BLOCK_COMMENT : '/*' .*? ('*/' | EOF) -> channel(HIDDEN) ;
WS : [ \t\r\n\f]+ -> channel(HIDDEN) ;

fragment DIGIT : [0-9] ;
