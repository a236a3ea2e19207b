#include "navarch/cel/parser.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/interpreter.h"
#include "navarch/cel/lexer.h"
#include "re2/re2.h"

namespace navarch::cel::internal {
namespace {

// Identifiers reserved for embedding CEL in host languages (langdef.md
// "Syntax"); true, false, null and in are tokens of their own.
bool IsReserved(absl::string_view name) {
  static const auto* const kReserved = new absl::flat_hash_set<std::string>{
      "as",        "break",  "const",  "continue", "else", "for",
      "function",  "if",     "import", "let",      "loop", "package",
      "namespace", "return", "var",    "void",     "while"};
  return kReserved->contains(name);
}

// Recursive descent over the grammar of langdef.md "Syntax", one token of
// lookahead, no backtracking. Recursion that grows with the input only
// happens through ParseExpr, which counts its depth; chains of operators,
// selections and unary operators are loops.
class Parser {
 public:
  Parser(absl::string_view source, std::vector<Token> tokens)
      : src_(source), tokens_(std::move(tokens)) {}

  absl::StatusOr<ExprPtr> Parse() {
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr expr, ParseExpr());
    if (!At(TokenKind::kEnd)) return Unexpected();
    return expr;
  }

 private:
  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Ahead(size_t n) const {
    return tokens_[std::min(pos_ + n, tokens_.size() - 1)];
  }
  bool At(TokenKind kind) const { return Cur().kind == kind; }
  bool Accept(TokenKind kind) {
    if (!At(kind)) return false;
    ++pos_;
    return true;
  }

  // Errors are built out of line so that their temporaries do not enlarge
  // the frames of the recursive functions.
  ABSL_ATTRIBUTE_NOINLINE absl::Status Error(uint32_t offset,
                                             absl::string_view message) const {
    return SourceError(src_, offset, message);
  }
  ABSL_ATTRIBUTE_NOINLINE absl::Status Unexpected() const {
    if (At(TokenKind::kEnd)) {
      return Error(Cur().offset, "Syntax error: unexpected end of input");
    }
    return Error(Cur().offset, absl::StrCat("Syntax error: unexpected ",
                                            Describe(src_, Cur())));
  }
  absl::Status Expect(TokenKind kind, absl::string_view what) {
    if (Accept(kind)) return absl::OkStatus();
    return ExpectedError(what);
  }
  ABSL_ATTRIBUTE_NOINLINE absl::Status ExpectedError(
      absl::string_view what) const {
    return Error(Cur().offset,
                 absl::StrCat("Syntax error: expected ", what, " but found ",
                              Describe(src_, Cur())));
  }

  // Sets the height and enforces the nesting limit on every node built.
  absl::StatusOr<ExprPtr> Finish(ExprPtr e) {
    uint32_t tallest = 0;
    for (const auto& arg : e->args) tallest = std::max(tallest, arg->height);
    e->height = tallest + 1;
    if (e->height > kMaxNesting) return TooDeep(e->offset);
    return e;
  }
  ABSL_ATTRIBUTE_NOINLINE absl::Status TooDeep(uint32_t offset) const {
    return Error(offset, absl::StrCat("expression nests deeper than the limit "
                                      "of ",
                                      kMaxNesting));
  }

  static ExprPtr Node(ExprKind kind, uint32_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
  }
  absl::StatusOr<ExprPtr> Call(Builtin fn, uint32_t offset,
                               std::vector<ExprPtr> args) {
    ExprPtr e = Node(ExprKind::kCall, offset);
    e->fn = fn;
    e->args = std::move(args);
    return Finish(std::move(e));
  }
  static ExprPtr Const(Value value, uint32_t offset) {
    ExprPtr e = Node(ExprKind::kConst, offset);
    e->value = std::move(value);
    return e;
  }

  // Expr = ConditionalOr ["?" ConditionalOr ":" Expr]. Every nested
  // expression (brackets, arguments, branches) comes through here, so this is
  // where nesting is counted.
  absl::StatusOr<ExprPtr> ParseExpr() {
    if (depth_ >= kMaxNesting) return TooDeep(Cur().offset);
    ++depth_;
    absl::StatusOr<ExprPtr> result = ParseConditional();
    --depth_;
    return result;
  }

  absl::StatusOr<ExprPtr> ParseConditional() {
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr cond, ParseBinary(1));
    if (!At(TokenKind::kQuestion)) return cond;
    return ParseConditionalBranches(std::move(cond));
  }

  // Every nesting level of the input passes through the functions from
  // ParseExpr to ParsePrimary, so they keep small frames: whatever is not on
  // every path lives in a helper that is not inlined into them. That keeps
  // a compile at the nesting limit within ~256 KiB of stack.
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseConditionalBranches(
      ExprPtr cond) {
    const uint32_t offset = Cur().offset;
    ++pos_;  // "?"
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr yes, ParseBinary(1));
    NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kColon, "':'"));
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr no, ParseExpr());
    ExprPtr e = Node(ExprKind::kConditional, offset);
    e->args.push_back(std::move(cond));
    e->args.push_back(std::move(yes));
    e->args.push_back(std::move(no));
    return Finish(std::move(e));
  }

  // The binary levels of the grammar, loosest first:
  //   ConditionalOr  = [ConditionalOr "||"] ConditionalAnd         (1)
  //   ConditionalAnd = [ConditionalAnd "&&"] Relation              (2)
  //   Relation       = [Relation Relop] Addition                   (3)
  //   Addition       = [Addition ("+" | "-")] Multiplication       (4)
  //   Multiplication = [Multiplication ("*" | "/" | "%")] Unary    (5)
  // parsed by precedence climbing: one function instead of five keeps the
  // stack used per nesting level small.
  static int Precedence(TokenKind kind) {
    switch (kind) {
      case TokenKind::kOr:
        return 1;
      case TokenKind::kAnd:
        return 2;
      case TokenKind::kEq:
      case TokenKind::kNe:
      case TokenKind::kLt:
      case TokenKind::kLe:
      case TokenKind::kGt:
      case TokenKind::kGe:
      case TokenKind::kIn:
        return 3;
      case TokenKind::kPlus:
      case TokenKind::kMinus:
        return 4;
      case TokenKind::kStar:
      case TokenKind::kSlash:
      case TokenKind::kPercent:
        return 5;
      default:
        return 0;
    }
  }

  static Builtin BinaryBuiltin(TokenKind kind) {
    switch (kind) {
      case TokenKind::kEq:
        return Builtin::kEqual;
      case TokenKind::kNe:
        return Builtin::kNotEqual;
      case TokenKind::kLt:
        return Builtin::kLess;
      case TokenKind::kLe:
        return Builtin::kLessEqual;
      case TokenKind::kGt:
        return Builtin::kGreater;
      case TokenKind::kGe:
        return Builtin::kGreaterEqual;
      case TokenKind::kIn:
        return Builtin::kIn;
      case TokenKind::kPlus:
        return Builtin::kAdd;
      case TokenKind::kMinus:
        return Builtin::kSubtract;
      case TokenKind::kStar:
        return Builtin::kMultiply;
      case TokenKind::kSlash:
        return Builtin::kDivide;
      default:
        return Builtin::kModulo;
    }
  }

  // Parses operators binding at least as tightly as `min_precedence`; all
  // are left-associative, so a chain is a loop, not recursion.
  absl::StatusOr<ExprPtr> ParseBinary(int min_precedence) {
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr lhs, ParseUnary());
    while (true) {
      const int precedence = Precedence(Cur().kind);
      if (precedence == 0 || precedence < min_precedence) return lhs;
      NAVARCH_ASSIGN_OR_RETURN(lhs, ParseOperator(std::move(lhs), precedence));
    }
  }

  // The operator at the current token and its right operand.
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseOperator(
      ExprPtr lhs, int precedence) {
    const TokenKind op = Cur().kind;
    const uint32_t offset = Cur().offset;
    if (op == TokenKind::kOr || op == TokenKind::kAnd) {
      // `a || b || c` becomes one node with three operands: evaluation is
      // the same for any grouping (langdef.md "Logical Operators") and a
      // long chain stays shallow.
      ExprPtr e =
          Node(op == TokenKind::kOr ? ExprKind::kOr : ExprKind::kAnd, offset);
      e->args.push_back(std::move(lhs));
      while (Accept(op)) {
        NAVARCH_ASSIGN_OR_RETURN(ExprPtr next, ParseBinary(precedence + 1));
        e->args.push_back(std::move(next));
      }
      return Finish(std::move(e));
    }
    ++pos_;
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr rhs, ParseBinary(precedence + 1));
    std::vector<ExprPtr> args;
    args.push_back(std::move(lhs));
    args.push_back(std::move(rhs));
    return Call(BinaryBuiltin(op), offset, std::move(args));
  }

  // Unary = Member | "!" {"!"} Member | "-" {"-"} Member. As in cel-go and
  // cel-cpp, an even run of the same operator cancels out and an odd run is
  // one application; a minus directly before a number literal is part of the
  // literal, which is how -9223372036854775808 is written.
  absl::StatusOr<ExprPtr> ParseUnary() {
    if (!At(TokenKind::kNot) && !At(TokenKind::kMinus)) return ParseMember();
    return ParseUnaryOperators();
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseUnaryOperators() {
    const TokenKind op = Cur().kind;
    const uint32_t offset = Cur().offset;
    size_t count = 0;
    while (Accept(op)) ++count;
    const bool odd = count % 2 == 1;
    if (op == TokenKind::kMinus && odd &&
        (At(TokenKind::kInt) || At(TokenKind::kDouble)) && !IsPostfix(1)) {
      const Token& t = Cur();
      ++pos_;
      if (t.kind == TokenKind::kDouble) {
        return Const(Value::Double(-t.dbl), offset);
      }
      // -2^63 wraps to INT64_MIN, the one magnitude beyond INT64_MAX allowed.
      return Const(Value::Int(static_cast<int64_t>(0 - t.uint)), offset);
    }
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr operand, ParseMember());
    if (!odd) return operand;
    std::vector<ExprPtr> args;
    args.push_back(std::move(operand));
    return Call(op == TokenKind::kNot ? Builtin::kNot : Builtin::kNegate,
                offset, std::move(args));
  }

  // Whether the token `n` ahead continues a member expression.
  bool IsPostfix(size_t n) const {
    const TokenKind k = Ahead(n).kind;
    return k == TokenKind::kDot || k == TokenKind::kLBracket ||
           k == TokenKind::kLParen || k == TokenKind::kLBrace;
  }

  // Member = Primary | Member "." IDENT ["(" [ExprList] ")"]
  //        | Member "[" Expr "]"
  absl::StatusOr<ExprPtr> ParseMember() {
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr e, ParsePrimary());
    while (true) {
      if (At(TokenKind::kDot)) {
        NAVARCH_ASSIGN_OR_RETURN(e, ParseSelection(std::move(e)));
      } else if (At(TokenKind::kLBracket)) {
        NAVARCH_ASSIGN_OR_RETURN(e, ParseIndex(std::move(e)));
      } else if (At(TokenKind::kLBrace)) {
        return Error(Cur().offset,
                     "Syntax error: message construction is not supported");
      } else {
        return e;
      }
    }
  }

  // "." IDENT ["(" [ExprList] ")"] after `e`.
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseSelection(ExprPtr e) {
    const uint32_t offset = Cur().offset;
    ++pos_;  // "."
    if (At(TokenKind::kQuestion)) {
      return Error(Cur().offset,
                   "Syntax error: optional field selection is not supported");
    }
    if (!At(TokenKind::kIdent)) {
      return Error(
          Cur().offset,
          absl::StrCat("Syntax error: expected a field name but found ",
                       Describe(src_, Cur())));
    }
    std::string name = Cur().text;
    const uint32_t name_offset = Cur().offset;
    ++pos_;
    if (Accept(TokenKind::kLParen)) {
      NAVARCH_ASSIGN_OR_RETURN(std::vector<ExprPtr> args, ParseArgs());
      return MemberCall(std::move(e), name, name_offset, std::move(args));
    }
    ExprPtr select = Node(ExprKind::kSelect, offset);
    select->name = std::move(name);
    select->args.push_back(std::move(e));
    return Finish(std::move(select));
  }

  // "[" Expr "]" after `e`.
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseIndex(ExprPtr e) {
    const uint32_t offset = Cur().offset;
    ++pos_;  // "["
    if (At(TokenKind::kQuestion)) {
      return Error(Cur().offset,
                   "Syntax error: optional indexing is not supported");
    }
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr index, ParseExpr());
    NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kRBracket, "']'"));
    ExprPtr node = Node(ExprKind::kIndex, offset);
    node->args.push_back(std::move(e));
    node->args.push_back(std::move(index));
    return Finish(std::move(node));
  }

  // Primary = ["."] IDENT ["(" [ExprList] ")"] | "(" Expr ")"
  //         | "[" [ExprList] "]" | "{" [MapInits] "}" | LITERAL
  absl::StatusOr<ExprPtr> ParsePrimary() {
    switch (Cur().kind) {
      case TokenKind::kDot:
      case TokenKind::kIdent:
        return ParseIdentOrCall();
      case TokenKind::kLParen:
        return ParseParenthesized();
      case TokenKind::kLBracket:
        return ParseList();
      case TokenKind::kLBrace:
        return ParseMap();
      default:
        return ParseLiteral();
    }
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseIdentOrCall() {
    // A leading dot resolves in the root scope; with no containers that is
    // the only scope there is.
    if (Accept(TokenKind::kDot) && !At(TokenKind::kIdent)) {
      return Error(Cur().offset,
                   absl::StrCat("Syntax error: expected an identifier but "
                                "found ",
                                Describe(src_, Cur())));
    }
    std::string name = Cur().text;
    const uint32_t offset = Cur().offset;
    ++pos_;
    if (Accept(TokenKind::kLParen)) {
      NAVARCH_ASSIGN_OR_RETURN(std::vector<ExprPtr> args, ParseArgs());
      return GlobalCall(name, offset, std::move(args));
    }
    if (IsReserved(name)) {
      return Error(offset,
                   absl::StrCat("Syntax error: reserved identifier: ", name));
    }
    ExprPtr e = Node(ExprKind::kIdent, offset);
    e->name = std::move(name);
    return e;
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseParenthesized() {
    ++pos_;  // "("
    NAVARCH_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
    NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kRParen, "')'"));
    return e;
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseList() {
    ExprPtr e = Node(ExprKind::kList, Cur().offset);
    ++pos_;  // "["
    // A trailing comma is allowed, as in cel-go.
    while (!At(TokenKind::kRBracket)) {
      NAVARCH_ASSIGN_OR_RETURN(ExprPtr element, ParseElement());
      e->args.push_back(std::move(element));
      if (!Accept(TokenKind::kComma)) break;
    }
    NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kRBracket, "']'"));
    return Finish(std::move(e));
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseMap() {
    ExprPtr e = Node(ExprKind::kMap, Cur().offset);
    ++pos_;  // "{"
    while (!At(TokenKind::kRBrace)) {
      NAVARCH_ASSIGN_OR_RETURN(ExprPtr key, ParseElement());
      NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kColon, "':'"));
      NAVARCH_ASSIGN_OR_RETURN(ExprPtr value, ParseExpr());
      e->args.push_back(std::move(key));
      e->args.push_back(std::move(value));
      if (!Accept(TokenKind::kComma)) break;
    }
    NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kRBrace, "'}'"));
    return Finish(std::move(e));
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> ParseLiteral() {
    const Token& t = Cur();
    const uint32_t offset = t.offset;
    switch (t.kind) {
      case TokenKind::kInt:
        if (t.int_overflow) {
          return Error(offset, absl::StrCat("invalid int literal: ",
                                            src_.substr(offset, t.length)));
        }
        ++pos_;
        return Const(Value::Int(static_cast<int64_t>(t.uint)), offset);
      case TokenKind::kUint:
        ++pos_;
        return Const(Value::Uint(t.uint), offset);
      case TokenKind::kDouble:
        ++pos_;
        return Const(Value::Double(t.dbl), offset);
      case TokenKind::kString:
        ++pos_;
        return Const(Value::String(t.text), offset);
      case TokenKind::kBytes:
        ++pos_;
        return Const(Value::Bytes(t.text), offset);
      case TokenKind::kTrue:
      case TokenKind::kFalse:
        ++pos_;
        return Const(Value::Bool(t.kind == TokenKind::kTrue), offset);
      case TokenKind::kNull:
        ++pos_;
        return Const(Value::Null(), offset);
      default:
        return Unexpected();
    }
  }

  // A list element or map key; `?` marks optional entries, which we lack.
  absl::StatusOr<ExprPtr> ParseElement() {
    if (At(TokenKind::kQuestion)) {
      return Error(Cur().offset,
                   "Syntax error: optional entries are not supported");
    }
    return ParseExpr();
  }

  // After "(": ExprList ")".
  absl::StatusOr<std::vector<ExprPtr>> ParseArgs() {
    std::vector<ExprPtr> args;
    if (Accept(TokenKind::kRParen)) return args;
    while (true) {
      NAVARCH_ASSIGN_OR_RETURN(ExprPtr arg, ParseExpr());
      args.push_back(std::move(arg));
      if (Accept(TokenKind::kComma)) continue;
      NAVARCH_RETURN_IF_ERROR(Expect(TokenKind::kRParen, "',' or ')'"));
      return args;
    }
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> GlobalCall(
      const std::string& name, uint32_t offset, std::vector<ExprPtr> args) {
    if (name == "has") {
      // has(e.f) (langdef.md "Macros").
      if (args.size() != 1 || args[0]->kind != ExprKind::kSelect) {
        return Error(offset, "invalid argument to has() macro");
      }
      ExprPtr select = std::move(args[0]);
      select->kind = ExprKind::kHas;
      select->offset = offset;
      return Finish(std::move(select));
    }
    struct Function {
      const char* name;
      Builtin fn;
      size_t arity;
    };
    static constexpr Function kFunctions[] = {
        {"size", Builtin::kSize, 1},       {"int", Builtin::kToInt, 1},
        {"uint", Builtin::kToUint, 1},     {"double", Builtin::kToDouble, 1},
        {"string", Builtin::kToString, 1}, {"bool", Builtin::kToBool, 1},
        {"bytes", Builtin::kToBytes, 1},   {"dyn", Builtin::kDyn, 1},
        {"matches", Builtin::kMatches, 2},
    };
    for (const Function& f : kFunctions) {
      if (name != f.name) continue;
      if (args.size() != f.arity) return BadArity(name, offset, args.size());
      return Call(f.fn, offset, std::move(args));
    }
    if (name == "contains" || name == "startsWith" || name == "endsWith") {
      return Error(offset,
                   absl::StrCat("found no matching overload for '", name,
                                "': call it as a method, e.g. "
                                "s.",
                                name, "(x)"));
    }
    return Error(offset, absl::StrCat("undeclared reference to '", name, "'"));
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<ExprPtr> MemberCall(
      ExprPtr target, const std::string& name, uint32_t offset,
      std::vector<ExprPtr> args) {
    struct MacroDef {
      const char* name;
      size_t arity;
      Macro macro;
    };
    static constexpr MacroDef kMacros[] = {
        {"all", 2, Macro::kAll},
        {"exists", 2, Macro::kExists},
        {"exists_one", 2, Macro::kExistsOne},
        {"map", 2, Macro::kMap},
        {"map", 3, Macro::kMapFilter},
        {"filter", 2, Macro::kFilter},
    };
    for (const MacroDef& m : kMacros) {
      if (name != m.name || args.size() != m.arity) continue;
      if (args[0]->kind != ExprKind::kIdent) {
        return Error(args[0]->offset, "argument must be a simple name");
      }
      ExprPtr e = Node(ExprKind::kComprehension, offset);
      e->macro = m.macro;
      e->name = std::move(args[0]->name);
      e->args.push_back(std::move(target));
      for (size_t i = 1; i < args.size(); ++i)
        e->args.push_back(std::move(args[i]));
      return Finish(std::move(e));
    }
    struct Method {
      const char* name;
      Builtin fn;
      size_t arity;  // not counting the receiver
    };
    static constexpr Method kMethods[] = {
        {"size", Builtin::kSize, 0},
        {"contains", Builtin::kContains, 1},
        {"startsWith", Builtin::kStartsWith, 1},
        {"endsWith", Builtin::kEndsWith, 1},
        {"matches", Builtin::kMatches, 1},
    };
    for (const Method& m : kMethods) {
      if (name != m.name) continue;
      if (args.size() != m.arity) return BadArity(name, offset, args.size());
      args.insert(args.begin(), std::move(target));
      return Call(m.fn, offset, std::move(args));
    }
    static const auto* const kMacroNames = new absl::flat_hash_set<std::string>{
        "all", "exists", "exists_one", "map", "filter"};
    if (kMacroNames->contains(name)) return BadArity(name, offset, args.size());
    static const auto* const kGlobalOnly = new absl::flat_hash_set<std::string>{
        "int", "uint", "double", "string", "bool", "bytes", "dyn", "has"};
    if (kGlobalOnly->contains(name)) {
      return Error(
          offset, absl::StrCat("found no matching overload for '", name,
                               "': call it as a function, e.g. ", name, "(x)"));
    }
    return Error(offset, absl::StrCat("undeclared reference to '", name, "'"));
  }

  ABSL_ATTRIBUTE_NOINLINE absl::Status BadArity(absl::string_view name,
                                                uint32_t offset,
                                                size_t count) const {
    return Error(offset, absl::StrCat("found no matching overload for '", name,
                                      "' with ", count,
                                      count == 1 ? " argument" : " arguments"));
  }

  absl::string_view src_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  uint32_t depth_ = 0;
};

// Binds macro variables to slots, names qualified selections, compiles
// constant regular expressions and folds constant subtrees. The tree is at
// most kMaxNesting tall, so recursion here is bounded.
class Resolver {
 public:
  explicit Resolver(absl::string_view source) : src_(source) {}

  absl::Status Resolve(Expr* e) {
    switch (e->kind) {
      case ExprKind::kIdent:
        // The innermost macro variable of that name shadows everything.
        for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
          if (it->first == e->name) {
            e->kind = ExprKind::kIterVar;
            e->slot = it->second;
            break;
          }
        }
        return absl::OkStatus();
      case ExprKind::kComprehension: {
        // The range is outside the variable's scope: in `x.all(x, p)` the
        // first x is the outer one.
        NAVARCH_RETURN_IF_ERROR(Resolve(e->args[0].get()));
        e->slot = static_cast<uint32_t>(scopes_.size());
        num_slots_ = std::max(num_slots_, e->slot + 1);
        scopes_.emplace_back(e->name, e->slot);
        for (size_t i = 1; i < e->args.size(); ++i) {
          absl::Status status = Resolve(e->args[i].get());
          if (!status.ok()) return status;
        }
        scopes_.pop_back();
        return absl::OkStatus();
      }
      default:
        break;
    }
    for (auto& arg : e->args) NAVARCH_RETURN_IF_ERROR(Resolve(arg.get()));

    if (e->kind == ExprKind::kSelect) {
      const Expr& operand = *e->args[0];
      if (operand.kind == ExprKind::kIdent) {
        e->qualified = absl::StrCat(operand.name, ".", e->name);
      } else if (operand.kind == ExprKind::kSelect &&
                 !operand.qualified.empty()) {
        e->qualified = absl::StrCat(operand.qualified, ".", e->name);
      }
    }
    if (e->kind == ExprKind::kCall && e->fn == Builtin::kMatches &&
        e->args[1]->kind == ExprKind::kConst && e->args[1]->value.is_string()) {
      // cel-go also compiles a constant pattern when the program is built,
      // so a bad one is reported before any evaluation.
      auto re = std::make_shared<const re2::RE2>(
          re2::StringPiece(e->args[1]->value.string_value().data(),
                           e->args[1]->value.string_value().size()),
          RegexOptions());
      if (!re->ok()) {
        return SourceError(
            src_, e->offset,
            absl::StrCat("invalid regular expression: ", re->error()));
      }
      e->regex = std::move(re);
    }
    Fold(e);
    return absl::OkStatus();
  }

  uint32_t num_slots() const { return num_slots_; }

 private:
  static re2::RE2::Options RegexOptions() {
    re2::RE2::Options options;
    options.set_log_errors(false);
    return options;
  }

  // Evaluates a node whose operands are all constants once, now, instead of
  // on every evaluation (list literals of the policies above all). A node
  // that fails stays as it is, so the error still happens, and only, at
  // evaluation time (it may sit under a && that never needs it).
  static void Fold(Expr* e) {
    switch (e->kind) {
      case ExprKind::kConst:
      case ExprKind::kIdent:
      case ExprKind::kIterVar:
      case ExprKind::kComprehension:
        return;
      default:
        break;
    }
    for (const auto& arg : e->args) {
      if (arg->kind != ExprKind::kConst) return;
    }
    static const Activation* const kEmpty = new Activation();
    Frame frame{kEmpty, nullptr};
    Result result;
    if (!Eval(*e, frame, &result).ok()) return;
    e->value = result.Take();
    e->kind = ExprKind::kConst;
    e->args.clear();
    e->regex.reset();
    e->height = 1;
  }

  absl::string_view src_;
  std::vector<std::pair<std::string, uint32_t>> scopes_;
  uint32_t num_slots_ = 0;
};

}  // namespace

absl::StatusOr<CompiledExpr> Compile(absl::string_view source) {
  NAVARCH_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  Parser parser(source, std::move(tokens));
  NAVARCH_ASSIGN_OR_RETURN(ExprPtr root, parser.Parse());
  Resolver resolver(source);
  NAVARCH_RETURN_IF_ERROR(resolver.Resolve(root.get()));
  CompiledExpr compiled;
  compiled.root = std::move(root);
  compiled.num_slots = resolver.num_slots();
  return compiled;
}

}  // namespace navarch::cel::internal
