// The Mass language, v1 (see spec/README.md in the shared folder).
// Newlines are whitespace: a statement ends where its expression ends.
grammar Mass;

file : topItem* EOF ;

topItem
  : importDecl
  | blockDecl
  | modelDecl
  | trainDecl
  ;

importDecl : IMPORT STRING ;

blockDecl
  : BLOCK name=ID '(' (blockParam (',' blockParam)* ','?)? ')'
    '{' stmt* RETURN ret=expr '}'
  ;

blockParam : name=ID ('=' value=expr)? ;

modelDecl : MODEL name=ID '{' stmt* '}' ;

trainDecl : TRAIN name=ID '{' trainEntry* '}' ;

trainEntry : key=ID '=' value=expr ;

stmt
  : INPUT name=ID ':' type=typeLit                          # inputStmt
  | LABEL name=ID ':' type=typeLit                          # labelStmt
  | name=ID '=' value=expr                                  # bindStmt
  | ifBranch                                                # ifStmt
  | TASK name=ID ('(' taskOption (',' taskOption)* ')')?
    '{' stmt* '}'                                           # taskStmt
  | METRIC name=ID '(' argList? ')'                         # metricStmt
  ;

// `else if` chains are a loop, not a recursion, so that a long chain
// cannot exhaust the parser's stack.
ifBranch
  : IF cond=expr '{' thenBody+=stmt* '}' elseIfBranch*
    (ELSE '{' elseBody+=stmt* '}')?
  ;

elseIfBranch : ELSE IF cond=expr '{' body+=stmt* '}' ;

taskOption : key=ID ':' value=expr ;

// Precedence, loosest first: |>, or, and, not, comparisons, + -, * /,
// unary -, call and primary.
expr : pipeExpr ;

pipeExpr : orExpr (PIPE pipeTarget)* ;

pipeTarget : callee=ID ('(' argList? ')')? ;

orExpr : andExpr (OR andExpr)* ;

andExpr : notExpr (AND notExpr)* ;

notExpr
  : NOT notExpr
  | cmpExpr
  ;

cmpExpr : addExpr (op=(EQ | NE | LT | LE | GT | GE) addExpr)? ;

addExpr : mulExpr (('+' | '-') mulExpr)* ;

mulExpr : unaryExpr (('*' | '/') unaryExpr)* ;

unaryExpr
  : '-' unaryExpr
  | primary
  ;

primary
  : NUMBER                                        # numberLit
  | STRING                                        # stringLit
  | (TRUE | FALSE)                                # boolLit
  | dtype=ID '[' typeDim (',' typeDim)* ']'       # typeExpr
  | callee=ID '(' argList? ')'                    # callExpr
  | ID ('.' ID)*                                  # nameExpr
  // One alternative for `(a)` and `(a, b)`: told apart by the comma after
  // the first element, so that the parser never looks ahead across a whole
  // parenthesised expression to choose (which made nesting quadratic).
  | '(' expr (comma=',' (expr (',' expr)* ','?)?)? ')'   # parenExpr
  | '[' (expr (',' expr)* ','?)? ']'              # listExpr
  ;

typeLit : dtype=ID '[' typeDim (',' typeDim)* ']' ;

typeDim : expr ;

argList : arg (',' arg)* ','? ;

arg
  : key=ID ':' value=expr    # keywordArg
  | value=expr               # positionalArg
  ;

IMPORT : 'import' ;
BLOCK  : 'block' ;
MODEL  : 'model' ;
TRAIN  : 'train' ;
INPUT  : 'input' ;
LABEL  : 'label' ;
TASK   : 'task' ;
METRIC : 'metric' ;
RETURN : 'return' ;
IF     : 'if' ;
ELSE   : 'else' ;
AND    : 'and' ;
OR     : 'or' ;
NOT    : 'not' ;
TRUE   : 'true' ;
FALSE  : 'false' ;

PIPE : '|>' ;
EQ   : '==' ;
NE   : '!=' ;
LE   : '<=' ;
GE   : '>=' ;
LT   : '<' ;
GT   : '>' ;

ID : [A-Za-z_] [A-Za-z0-9_]* ;

NUMBER
  : DIGITS ('.' DIGITS?)? EXPONENT?
  | '.' DIGITS EXPONENT?
  ;
fragment DIGITS   : [0-9]+ ;
fragment EXPONENT : [eE] [+-]? DIGITS ;

STRING : '"' ( '\\' ["\\] | ~["\\\r\n] )* '"' ;

COMMENT : '#' ~[\r\n]* -> skip ;
WS      : [ \t\r\n]+ -> skip ;

// Any other character becomes a token the parser rejects, so that the
// lexer never silently drops input.
ERROR_CHAR : . ;
