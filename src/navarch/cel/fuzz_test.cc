// Deterministic fuzzing of the compiler and evaluator: a few thousand random
// and mutated expressions from a fixed seed, so every run of `make test`
// checks the same inputs. cel_fuzz.cc is the open-ended libFuzzer version.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/json.h"
#include "navarch/cel/program.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace navarch::cel {
namespace {

// Valid expressions to mutate: every feature of the language appears.
const char* const kSeeds[] = {
    R"(event.event_type == "xid" && event.metrics.xid_code in [13, 31, 79])",
    "has(event.metrics.temperature) && event.metrics.temperature >= 95",
    "[1, 2, 3].map(x, x * 2).filter(y, y > 2).exists_one(z, z == 4)",
    "{'a': 1u, 2: [true, null], true: 3.5}['a'] + 2u",
    R"('héllo\n\u00e9\U0001F431\x41\101'.size() + size(b'\xff\000'))",
    "r'raw\\d+' + '''triple ' quote''' + \"\"\"x\"\"\"",
    "x.all(k, k.startsWith('a') || k.endsWith('b') || k.contains('c'))",
    "int('12') + int(3.9) + int(2u) - uint(1) / 0u % 7u",
    "double('1e3') * 2.5 - -0.5 / 0.0 < string(1.5).size()",
    "true ? !false : 1 / 0 == 0 ? 'a' : 'b'",
    "[1, 2].map(x, x > 1, x + 1) == [3] && 'x'.matches('^[a-z]+$')",
    "-9223372036854775808 - 1 + 0x7fffffffffffffff * 18446744073709551615u",
    "bool('true') != (dyn(1) == 1.0) || bytes('a') < b'b'",
    "a.b.c[0][1] + m.a.size() * -x",
    "m.k1.k2 >= 1 && l[0] in [1u, 2.0, 'x'] && s + s == s",
};

// Building blocks for token soup.
const char* const kTokens[] = {
    "x",
    "m",
    "l",
    "s",
    "event",
    "metrics",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    "?",
    "+",
    "-",
    "*",
    "/",
    "%",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    " in ",
    "1",
    "0",
    "2u",
    "1.5",
    "1e9",
    "'s'",
    "\"t\"",
    "r'\\d'",
    "b'b'",
    "true",
    "false",
    "null",
    "size",
    "has(",
    "all",
    "exists",
    "map",
    "filter",
    "exists_one",
    "int(",
    "uint(",
    "double(",
    "string(",
    "bool(",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    " ",
    "\n",
    "//c\n",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615u",
    "'\\u00e9'",
    "'\\x'",
    "'''",
    "\"",
    "\\",
    "é",
    "\xff",
    "0x",
    "1e",
    ".5",
};

Activation FuzzActivation() {
  Activation a;
  a.Bind("x", Value::Int(3));
  a.Bind("s", Value::String("abc"));
  a.Bind("l", Value::List({Value::Int(1), Value::String("x"), Value()}));
  a.Bind("m", *ValueFromJson(nlohmann::json::parse(
                  R"({"k1": {"k2": 2}, "a": [1, 2], "b": {"c": null}})")));
  a.Bind("event", *ValueFromJson(nlohmann::json::parse(
                      R"({"event_type": "xid", "metrics": {"xid_code": 79,
                          "temperature": 97.5}})")));
  a.Bind("a.b", *ValueFromJson(nlohmann::json::parse(R"({"c": [[0, 1]]})")));
  return a;
}

std::string Mutate(std::string s, std::mt19937_64& rng) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits; ++i) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0:  // flip a byte
        if (!s.empty()) s[pos % s.size()] = static_cast<char>(rng() % 256);
        break;
      case 1:  // insert a token
        s.insert(pos, kTokens[rng() % std::size(kTokens)]);
        break;
      case 2:  // delete a span
        if (!s.empty()) s.erase(pos % s.size(), 1 + rng() % 8);
        break;
      case 3:  // duplicate a span
        if (!s.empty()) {
          const size_t from = rng() % s.size();
          s.insert(pos, s.substr(from, 1 + rng() % 16));
        }
        break;
      case 4:  // truncate
        s.resize(pos % (s.size() + 1));
        break;
      default:  // splice in another seed
        s.insert(pos, kSeeds[rng() % std::size(kSeeds)]);
        break;
    }
  }
  return s;
}

std::string TokenSoup(std::mt19937_64& rng) {
  std::string s;
  const int n = 1 + static_cast<int>(rng() % 40);
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&s, kTokens[rng() % std::size(kTokens)]);
    if (rng() % 3 == 0) s.push_back(' ');
  }
  return s;
}

std::string RandomBytes(std::mt19937_64& rng) {
  std::string s(rng() % 64, '\0');
  for (char& c : s) c = static_cast<char>(rng() % 256);
  return s;
}

// Random syntactically valid expressions, so that most inputs reach the
// evaluator with every operator applied to every kind of operand.
class Generator {
 public:
  explicit Generator(std::mt19937_64& rng) : rng_(rng) {}

  // Every random draw is its own statement: argument evaluation order is
  // unspecified, and the inputs must not depend on the compiler.
  std::string Expr(int depth) {
    if (depth <= 0 || Pick(4) == 0) return Leaf();
    const int d = depth - 1;
    switch (Pick(12)) {
      case 0:
      case 1: {
        static const char* const kOps[] = {" + ",  " - ",  " * ",  " / ",
                                           " % ",  " == ", " != ", " < ",
                                           " <= ", " > ",  " >= ", " in ",
                                           " && ", " || "};
        const std::string lhs = Expr(d);
        const char* op = kOps[Pick(std::size(kOps))];
        const std::string rhs = Expr(d);
        return absl::StrCat("(", lhs, op, rhs, ")");
      }
      case 2: {
        // The grammar has no `!-x`: Unary = "!" {"!"} Member.
        const char* op = Pick(2) == 0 ? "!" : "-";
        return absl::StrCat(op, "(", Expr(d), ")");
      }
      case 3: {
        const std::string cond = Expr(d);
        const std::string yes = Expr(d);
        const std::string no = Expr(d);
        return absl::StrCat("(", cond, " ? ", yes, " : ", no, ")");
      }
      case 4: {
        std::string list = "[";
        for (int i = static_cast<int>(Pick(4)); i > 0; --i) {
          absl::StrAppend(&list, Expr(d), ", ");
        }
        return list + "]";
      }
      case 5: {
        std::string map = "{";
        for (int i = static_cast<int>(Pick(4)); i > 0; --i) {
          const std::string key = Expr(d);
          absl::StrAppend(&map, key, ": ", Expr(d), ", ");
        }
        return map + "}";
      }
      case 6: {
        const std::string container = Expr(d);
        return absl::StrCat(container, "[", Expr(d), "]");
      }
      case 7: {
        static const char* const kFields[] = {"k1", "k2",      "a",       "b",
                                              "c",  "metrics", "xid_code"};
        const char* field = kFields[Pick(std::size(kFields))];
        const bool has = Pick(3) == 0;
        const std::string operand = Expr(d);
        return has ? absl::StrCat("has(", operand, ".", field, ")")
                   : absl::StrCat(operand, ".", field);
      }
      case 8: {
        static const char* const kFunctions[] = {
            "size", "int", "uint", "double", "string", "bool", "bytes", "dyn"};
        const char* function = kFunctions[Pick(std::size(kFunctions))];
        return absl::StrCat(function, "(", Expr(d), ")");
      }
      case 9: {
        static const char* const kMethods[] = {"contains", "startsWith",
                                               "endsWith", "matches"};
        const std::string receiver = Expr(d);
        const char* method = kMethods[Pick(std::size(kMethods))];
        const std::string arg = Pick(2) == 0 ? "'a'" : Expr(d);
        return absl::StrCat(receiver, ".", method, "(", arg, ")");
      }
      default: {
        static const char* const kMacros[] = {"all", "exists", "exists_one",
                                              "map", "filter"};
        const std::string macro = kMacros[Pick(std::size(kMacros))];
        const std::string range = Expr(d);
        const std::string var = Pick(2) == 0 ? "v" : "w";
        vars_.push_back(var);
        std::string args = absl::StrCat(var, ", ", Expr(d));
        if (macro == "map" && Pick(3) == 0) {
          absl::StrAppend(&args, ", ", Expr(d));  // map(v, p, t)
        }
        vars_.pop_back();
        return absl::StrCat(range, ".", macro, "(", args, ")");
      }
    }
  }

 private:
  size_t Pick(size_t n) { return static_cast<size_t>(rng_() % n); }

  std::string Leaf() {
    static const char* const kLeaves[] = {"0",
                                          "1",
                                          "(-1)",
                                          "7",
                                          "2u",
                                          "0u",
                                          "1.5",
                                          "0.0",
                                          "(-2.5)",
                                          "1e300",
                                          "'a'",
                                          "'abc'",
                                          "''",
                                          "'é🐱'",
                                          "b'\\xff'",
                                          "true",
                                          "false",
                                          "null",
                                          "x",
                                          "s",
                                          "l",
                                          "m",
                                          "m.k1",
                                          "event",
                                          "event.metrics",
                                          "[]",
                                          "{}",
                                          "[1, 'x']",
                                          "{'a': 1}",
                                          "9223372036854775807",
                                          "(-9223372036854775808)",
                                          "18446744073709551615u"};
    if (!vars_.empty() && Pick(3) == 0) return vars_[Pick(vars_.size())];
    return kLeaves[Pick(std::size(kLeaves))];
  }

  std::mt19937_64& rng_;
  std::vector<std::string> vars_;
};

// Whatever the input: no crash, a compile error is InvalidArgument with a
// position, an evaluation error is InvalidArgument, and a value prints as a
// literal that compiles again.
void Check(const std::string& input, const Activation& activation,
           int* compiled, int* evaluated) {
  static const re2::RE2 kPosition(R"(^\d+:\d+: [^\n]+)");
  absl::StatusOr<Program> program = Program::Compile(input);
  if (!program.ok()) {
    ASSERT_EQ(program.status().code(), absl::StatusCode::kInvalidArgument)
        << input;
    // Only the size limit has no position; fuzz inputs stay below it.
    ASSERT_TRUE(
        re2::RE2::FullMatch(std::string(program.status().message()), kPosition))
        << input << " -> " << program.status();
    return;
  }
  ++*compiled;
  absl::StatusOr<Value> value = program->Evaluate(activation);
  if (!value.ok()) {
    ASSERT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument)
        << input << " -> " << value.status();
    ASSERT_FALSE(value.status().message().empty()) << input;
    return;
  }
  ++*evaluated;
  const std::string literal = value->DebugString();
  absl::StatusOr<Program> again = Program::Compile(literal);
  ASSERT_TRUE(again.ok()) << input << " -> " << literal << ": "
                          << again.status();
  absl::StatusOr<Value> same = again->Evaluate(Activation());
  ASSERT_TRUE(same.ok()) << literal << ": " << same.status();
  ASSERT_EQ(same->DebugString(), literal) << input;
}

TEST(CelFuzzTest, SeedsAreValid) {
  const Activation activation = FuzzActivation();
  for (const char* seed : kSeeds) {
    EXPECT_TRUE(Program::Compile(seed).ok())
        << seed << ": " << Program::Compile(seed).status();
  }
  (void)activation;
}

TEST(CelFuzzTest, MutatedAndRandomInputs) {
  std::mt19937_64 rng(20261127);  // fixed: every run checks the same inputs
  const Activation activation = FuzzActivation();
  int compiled = 0;
  int evaluated = 0;
  constexpr int kInputs = 20000;
  Generator generator(rng);
  for (int i = 0; i < kInputs; ++i) {
    std::string input;
    switch (i % 4) {
      case 3:
        input = generator.Expr(1 + static_cast<int>(rng() % 6));
        if (rng() % 4 == 0) input = Mutate(input, rng);
        break;
      case 0:
        input = Mutate(kSeeds[rng() % std::size(kSeeds)], rng);
        break;
      case 1:
        input = TokenSoup(rng);
        break;
      default:
        input = rng() % 4 == 0 ? RandomBytes(rng) : Mutate(TokenSoup(rng), rng);
        break;
    }
    ASSERT_NO_FATAL_FAILURE(Check(input, activation, &compiled, &evaluated));
  }
  // The inputs reach the evaluator, not just the parser's error paths.
  EXPECT_GT(compiled, kInputs / 5);
  EXPECT_GT(evaluated, kInputs / 25);
  std::printf("%d inputs: %d compiled, %d evaluated to a value\n", kInputs,
              compiled, evaluated);
}

TEST(CelFuzzTest, RandomDeepNesting) {
  std::mt19937_64 rng(7);
  const char* const kOpen[] = {"(",  "[",    "{1: ",        "int(",       "-(",
                               "!(", "has(", "[1].all(x, ", "true ? 1 : "};
  const char* const kClose[] = {")", "]", "}", ")", ")", ")", ".a)", ")", ""};
  const Activation activation = FuzzActivation();
  int compiled = 0;
  int evaluated = 0;
  for (int i = 0; i < 200; ++i) {
    std::vector<int> stack;
    std::string input;
    const int depth = static_cast<int>(rng() % 600);
    for (int d = 0; d < depth; ++d) {
      const int k = static_cast<int>(rng() % std::size(kOpen));
      stack.push_back(k);
      input += kOpen[k];
    }
    input += rng() % 2 == 0 ? "m" : "1";
    while (!stack.empty()) {
      input += kClose[stack.back()];
      stack.pop_back();
    }
    ASSERT_NO_FATAL_FAILURE(Check(input, activation, &compiled, &evaluated));
  }
}

}  // namespace
}  // namespace navarch::cel
