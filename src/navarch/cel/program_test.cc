#include "navarch/cel/program.h"

#include <pthread.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/cel/activation.h"

namespace navarch::cel {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

Program MustCompile(absl::string_view expr) {
  absl::StatusOr<Program> p = Program::Compile(expr);
  EXPECT_TRUE(p.ok()) << expr << ": " << p.status();
  return *std::move(p);
}

std::string Repeat(absl::string_view s, int n) {
  std::string out;
  out.reserve(s.size() * n);
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, s);
  return out;
}

TEST(CelProgramTest, CompileOnceEvaluateMany) {
  const Program p = MustCompile("x * 2 + 1");
  EXPECT_EQ(p.source(), "x * 2 + 1");
  for (int i = -5; i < 5; ++i) {
    Activation a;
    a.Bind("x", Value::Int(i));
    absl::StatusOr<Value> v = p.Evaluate(a);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->int_value(), i * 2 + 1);
  }
}

TEST(CelProgramTest, CopiesShareTheCompiledForm) {
  Program a = MustCompile("'abc'.size()");
  Program b = a;
  EXPECT_EQ(&a.source(), &b.source());
  EXPECT_EQ(b.Evaluate(Activation())->int_value(), 3);
}

TEST(CelProgramTest, ResultOutlivesActivation) {
  const Program p = MustCompile("m.list");
  absl::StatusOr<Value> v;
  {
    Activation a;
    a.Bind("m", *Value::Map({{Value::String("list"),
                              Value::List({Value::String("kept")})}}));
    v = p.Evaluate(a);
  }
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->DebugString(), R"(["kept"])");
}

TEST(CelProgramTest, RebindingReplaces) {
  Activation a;
  a.Bind("x", Value::Int(1));
  a.Bind("x", Value::String("s"));
  EXPECT_EQ(MustCompile("x").Evaluate(a)->DebugString(), R"("s")");
}

TEST(CelProgramTest, EvaluationErrorsAreInvalidArgument) {
  absl::StatusOr<Value> v = MustCompile("1 / 0").Evaluate(Activation());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(), "division by zero");
}

TEST(CelProgramTest, CompileErrorsCarryPositions) {
  absl::StatusOr<Program> p = Program::Compile("event.a &&\n  event.b ==");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(),
            "2:13: Syntax error: unexpected end of input");
}

TEST(CelProgramTest, ConstantErrorsWaitForEvaluation) {
  // Folding must not turn a runtime error into a compile error: the operand
  // may never be needed.
  const Program p = MustCompile("x || 1 / 0 == 1");
  Activation a;
  a.Bind("x", Value::Bool(true));
  EXPECT_TRUE(p.Evaluate(a)->bool_value());
  a.Bind("x", Value::Bool(false));
  EXPECT_EQ(p.Evaluate(a).status().message(), "division by zero");
}

TEST(CelProgramTest, ConcurrentEvaluation) {
  const Program p = MustCompile(
      "[1, 2, 3].map(i, i * n).exists(v, v == 3 * n) && "
      "s.matches('^n[0-9]+$') && {'k': n}.k == n");
  constexpr int kThreads = 8;
  constexpr int kIterations = 2000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Activation a;
      a.Bind("n", Value::Int(t));
      a.Bind("s", Value::String(absl::StrCat("n", t)));
      for (int i = 0; i < kIterations; ++i) {
        absl::StatusOr<Value> v = p.Evaluate(a);
        if (!v.ok() || !v->bool_value()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(CelProgramTest, SharedActivationAcrossThreads) {
  const Program p = MustCompile("event.metrics.xid_code in [13, 31, 79]");
  Activation a;
  a.Bind("event",
         *Value::Map(
             {{Value::String("metrics"),
               *Value::Map({{Value::String("xid_code"), Value::Int(79)}})}}));
  std::atomic<int> trues{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (p.Evaluate(a)->bool_value()) ++trues;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(trues.load(), 4000);
}

// langdef.md §Syntax: at least 32 levels must work; beyond our limit of 250
// the compiler reports an error instead of exhausting the stack.
struct DeepCase {
  const char* name;
  std::string (*make)(int depth);
};

const DeepCase kDeepCases[] = {
    {"parentheses",
     [](int n) { return Repeat("(", n) + "1" + Repeat(")", n); }},
    {"lists", [](int n) { return Repeat("[", n) + "1" + Repeat("]", n); }},
    {"maps", [](int n) { return Repeat("{1: ", n) + "1" + Repeat("}", n); }},
    {"calls", [](int n) { return Repeat("int(", n) + "1" + Repeat(")", n); }},
    {"methods", [](int n) { return "'a'" + Repeat(".size().size()", n); }},
    {"selections", [](int n) { return "a" + Repeat(".b", n); }},
    {"indexes", [](int n) { return "a" + Repeat("[0]", n); }},
    {"additions", [](int n) { return "1" + Repeat(" + 1", n); }},
    {"relations", [](int n) { return "1" + Repeat(" < 1", n); }},
    {"conditionals", [](int n) { return Repeat("true ? 1 : ", n) + "2"; }},
    {"negated parentheses",
     [](int n) { return Repeat("-(", n) + "1" + Repeat(")", n); }},
    {"macros",
     [](int n) { return Repeat("[1].all(x, ", n) + "true" + Repeat(")", n); }},
    {"has", [](int n) { return Repeat("has(", n) + "a.b" + Repeat(".c)", n); }},
};

TEST(CelProgramTest, NestingWithinLimitCompiles) {
  for (const DeepCase& c : kDeepCases) {
    SCOPED_TRACE(c.name);
    for (int depth : {32, 100}) {
      const std::string expr = c.make(depth);
      EXPECT_TRUE(Program::Compile(expr).ok())
          << Program::Compile(expr).status();
    }
  }
}

TEST(CelProgramTest, DeepNestingIsAnErrorNotACrash) {
  for (const DeepCase& c : kDeepCases) {
    SCOPED_TRACE(c.name);
    for (int depth : {251, 5'000}) {
      absl::StatusOr<Program> p = Program::Compile(c.make(depth));
      ASSERT_FALSE(p.ok());
      EXPECT_THAT(std::string(p.status().message()),
                  HasSubstr("nests deeper than the limit of 250"));
      EXPECT_THAT(std::string(p.status().message()), StartsWith("1:"));
    }
  }
}

// Policies may be compiled and evaluated on threads with small stacks: at
// the nesting limit both must fit in 512 KiB (sanitizers enlarge frames).
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kSmallStack = 4 << 20;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr size_t kSmallStack = 4 << 20;
#else
constexpr size_t kSmallStack = 512 << 10;
#endif
#else
constexpr size_t kSmallStack = 512 << 10;
#endif

void* CompileAndEvaluateAtTheLimit(void* ok) {
  Activation a;
  a.Bind("x", Value::Int(1));
  bool all_ok = true;
  for (const DeepCase& c : kDeepCases) {
    absl::StatusOr<Program> p = Program::Compile(c.make(240));
    if (!p.ok()) {
      // Chains count two levels per repetition; halve them.
      p = Program::Compile(c.make(120));
    }
    all_ok = all_ok && p.ok();
    if (p.ok()) (void)p->Evaluate(a);
  }
  *static_cast<bool*>(ok) = all_ok;
  return nullptr;
}

TEST(CelProgramTest, NestingLimitFitsASmallStack) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, kSmallStack), 0);
  bool ok = false;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, CompileAndEvaluateAtTheLimit, &ok),
            0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
  EXPECT_TRUE(ok);
}

TEST(CelProgramTest, TenThousandDeep) {
  for (const std::string& expr :
       {Repeat("(", 10'000) + "1" + Repeat(")", 10'000),
        Repeat("[", 10'000) + Repeat("]", 10'000), "a" + Repeat(".b", 10'000),
        "1" + Repeat("+1", 10'000),
        Repeat("-(", 10'000) + "1" + Repeat(")", 10'000)}) {
    absl::StatusOr<Program> p = Program::Compile(expr);
    ASSERT_FALSE(p.ok());
    EXPECT_THAT(std::string(p.status().message()),
                HasSubstr("nests deeper than the limit of 250"));
  }
}

TEST(CelProgramTest, LongLogicalChainsAreFlat) {
  // && and || chains evaluate the same whatever the grouping, so they are
  // one node and may be as long as the source allows.
  absl::StatusOr<Program> p =
      Program::Compile(Repeat("true && ", 10'000) + "true");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Evaluate(Activation())->bool_value());
  p = Program::Compile(Repeat("x == 1 || ", 9'000) + "x == 2");
  ASSERT_TRUE(p.ok()) << p.status();
  Activation a;
  a.Bind("x", Value::Int(2));
  EXPECT_TRUE(p->Evaluate(a)->bool_value());
}

TEST(CelProgramTest, LongUnaryRunsCollapse) {
  absl::StatusOr<Program> p = Program::Compile(Repeat("!", 10'001) + "true");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->Evaluate(Activation())->bool_value());
  p = Program::Compile(Repeat("-", 10'000) + "x");
  ASSERT_TRUE(p.ok()) << p.status();
  Activation a;
  a.Bind("x", Value::Int(7));
  EXPECT_EQ(p->Evaluate(a)->int_value(), 7);
}

TEST(CelProgramTest, WideLiteralsAreFine) {
  std::string list = "[";
  for (int i = 0; i < 10'000; ++i) absl::StrAppend(&list, i, ",");
  list += "]";
  absl::StatusOr<Program> p = Program::Compile(list + ".size()");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->Evaluate(Activation())->int_value(), 10'000);
}

TEST(CelProgramTest, QualifiedNames) {
  Activation a;
  a.Bind("a.b", *Value::Map({{Value::String("c"), Value::String("from map")}}));
  EXPECT_EQ(MustCompile("a.b.c").Evaluate(a)->string_value(), "from map");
  a.Bind("a.b.c", Value::String("qualified"));
  EXPECT_EQ(MustCompile("a.b.c").Evaluate(a)->string_value(), "qualified");
  // A macro variable is never a qualified name's prefix.
  EXPECT_EQ(
      MustCompile("[{'b': {'c': 1}}].map(a, a.b.c)").Evaluate(a)->DebugString(),
      "[1]");
}

TEST(CelProgramTest, ReturnsVariablesAndConstantsByValue) {
  Activation a;
  a.Bind("s", Value::String("abc"));
  EXPECT_EQ(MustCompile("s").Evaluate(a)->string_value(), "abc");
  EXPECT_EQ(MustCompile("[1, 2]").Evaluate(a)->DebugString(), "[1, 2]");
  EXPECT_EQ(MustCompile("true ? s : 'x'").Evaluate(a)->string_value(), "abc");
  EXPECT_EQ(MustCompile("[s][0]").Evaluate(a)->string_value(), "abc");
  EXPECT_EQ(MustCompile("{'k': [s]}.k[0]").Evaluate(a)->string_value(), "abc");
}

}  // namespace
}  // namespace navarch::cel
