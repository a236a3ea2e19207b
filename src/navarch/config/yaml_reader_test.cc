#include "navarch/config/yaml_reader.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/config/config_error.h"

namespace navarch::yaml {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<std::string> Strings(const std::vector<ConfigError>& errors) {
  std::vector<std::string> out;
  for (const ConfigError& e : errors) out.push_back(e.ToString());
  return out;
}

TEST(YamlReaderTest, UnknownKeyNamesTheKnownOnes) {
  YamlReader r("f.yaml");
  std::optional<YAML::Node> root = r.Load("a: 1\nb: 2\nzz: 3\n");
  ASSERT_TRUE(root.has_value());
  int64_t a = 0;
  r.ReadMap(*root, Site{1, 1, ""}, "",
            {{{"a"}, "", [&](const Entry& e) { a = *r.Int(e, 0, 9); }},
             {{"b", "bee"}, "", [](const Entry&) {}},
             {{"x-*"}, "", [](const Entry&) {}}});
  EXPECT_EQ(a, 1);
  EXPECT_THAT(Strings(r.TakeErrors()),
              ElementsAre("f.yaml:3:1: unknown key 'zz' (known: a, b)"));
}

// A wildcard name matches many keys, and each is a setting of its own: two
// x- keys are not two spellings of one.
TEST(YamlReaderTest, EachKeyAWildcardMatchesIsItsOwn) {
  YamlReader r("f.yaml");
  std::optional<YAML::Node> root = r.Load("x-a: 1\nx-b: 2\n");
  ASSERT_TRUE(root.has_value());
  std::vector<std::string> seen;
  r.ReadMap(*root, Site{1, 1, ""}, "",
            {{{"x-*"}, "", [&](const Entry& e) { seen.push_back(e.slot); }}});
  EXPECT_THAT(Strings(r.TakeErrors()), ElementsAre());
  EXPECT_THAT(seen, ElementsAre("x-a", "x-b"));
}

// Reads nested lists the way the loaders read nested values, with an error
// for each leaf when `report`.
int64_t ReadLeaves(YamlReader& r, const YAML::Node& list, bool report) {
  int64_t leaves = 0;
  for (const Entry& item : r.ListItems(list, Site{1, 1, "l"}, "l")) {
    if (item.value.IsSequence()) {
      leaves += ReadLeaves(r, item.value, report);
    } else {
      ++leaves;
      if (report) r.Error(item.site, "a leaf");
    }
  }
  return leaves;
}

// Every list item and every mapping key, merged ones included, is a node
// visited. Past the budget nothing more is read and nothing more is
// reported: errors about a half-read file would mislead.
TEST(YamlReaderTest, RepeatedAliasesSpendTheNodeBudget) {
  std::string text = "l0: &l0 [a, b]\n";
  for (int i = 1; i <= 24; ++i) {
    absl::StrAppend(&text, "l", i, ": &l", i, " [*l", i - 1, ", *l", i - 1,
                    "]\n");
  }
  YamlReader r("f.yaml");
  std::optional<YAML::Node> root = r.Load(text);
  ASSERT_TRUE(root.has_value());
  const int64_t leaves = ReadLeaves(r, (*root)["l24"], /*report=*/true);
  EXPECT_LT(leaves, kMinNodeBudget);
  std::vector<std::string> errors = Strings(r.TakeErrors());
  ASSERT_THAT(errors, SizeIs(leaves + 1));
  EXPECT_THAT(errors, Contains(HasSubstr(
                          "YAML expands to more than 50000 nodes (aliases "
                          "or merge keys repeat the same nodes)")));
}

// Merge keys spend it too, and so does the `<<` list itself.
TEST(YamlReaderTest, MergeKeysSpendTheNodeBudget) {
  std::string text = "m0: &m0 {}\n";
  for (int i = 1; i <= 24; ++i) {
    absl::StrAppend(&text, "m", i, ": &m", i, " {<<: [*m", i - 1, ", *m", i - 1,
                    "]}\n");
  }
  YamlReader r("f.yaml");
  std::optional<YAML::Node> root = r.Load(text);
  ASSERT_TRUE(root.has_value());
  EXPECT_THAT(r.MapEntries((*root)["m24"], Site{1, 1, "m"}, "m"), IsEmpty());
  EXPECT_THAT(Strings(r.TakeErrors()),
              ElementsAre(HasSubstr("YAML expands to more than 50000")));
}

// A large file without aliases is read whole: the budget grows with it.
TEST(YamlReaderTest, TheNodeBudgetGrowsWithTheFile) {
  std::string text = "[";
  for (int i = 0; i < 80000; ++i) absl::StrAppend(&text, "a,");
  text.back() = ']';
  YamlReader r("f.yaml");
  std::optional<YAML::Node> root = r.Load(text);
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(ReadLeaves(r, *root, /*report=*/false), 80000);
  EXPECT_THAT(r.TakeErrors(), IsEmpty());
}

TEST(YamlReaderTest, SyntaxErrorsHaveAPosition) {
  YamlReader r("f.yaml");
  EXPECT_FALSE(r.Load("a: [1\n").has_value());
  std::vector<ConfigError> errors = r.TakeErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_GT(errors[0].line, 0);
  EXPECT_THAT(errors[0].ToString(), HasSubstr("f.yaml:"));
  EXPECT_THAT(errors[0].message, HasSubstr("invalid YAML"));
}

TEST(YamlReaderTest, OneDocumentOnly) {
  YamlReader r("f.yaml");
  std::optional<YAML::Node> root = r.Load("a: 1\n---\na: 2\n");
  ASSERT_TRUE(root.has_value());  // The first is still read.
  EXPECT_THAT(Strings(r.TakeErrors()),
              ElementsAre(HasSubstr("only one YAML document is allowed")));
}

// yaml-cpp 0.7 reports empty documents without end on some malformed input
// (these two, found by config_fuzz and scenario_fuzz): YAML::LoadAll looped
// until memory ran out. Load looks at two documents at most, so each file
// is refused (or read) at once.
TEST(YamlReaderTest, MalformedInputWithEndlessDocumentsEnds) {
  for (const char* name :
       {"endless-documents-nul.yaml", "endless-documents-comma.yaml"}) {
    std::ifstream in(
        std::string(NAVARCH_SOURCE_DIR "/src/navarch/config/testdata/"
                                       "fuzz-regressions/") +
            name,
        std::ios::binary);
    ASSERT_TRUE(in) << name;
    std::stringstream text;
    text << in.rdbuf();
    YamlReader r(name);
    r.Load(text.str());
    EXPECT_FALSE(r.TakeErrors().empty()) << name;
  }
}

TEST(YamlReaderTest, BoundsTheSize) {
  YamlReader r("f.yaml");
  EXPECT_FALSE(r.Load(std::string(100, 'a'), 10).has_value());
  EXPECT_THAT(Strings(r.TakeErrors()),
              ElementsAre("f.yaml: file is larger than 10 bytes"));
}

TEST(YamlReaderTest, GuardTurnsExceptionsIntoErrors) {
  YamlReader r("f.yaml");
  r.Guard([] { YAML::Node("x").as<int>(); });
  EXPECT_TRUE(r.has_errors());
  r.Guard([] {});
  EXPECT_EQ(r.TakeErrors().size(), 1u);
}

TEST(ConfigErrorTest, StatusListsEveryErrorInOrder) {
  EXPECT_TRUE(ErrorsToStatus({}).ok());
  absl::Status s = ErrorsToStatus(
      {{"f.yaml", 2, 3, "a.b", "bad"}, {"f.yaml", 0, 0, "", "no place"}});
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(), "f.yaml:2:3: a.b: bad\nf.yaml: no place");
}

}  // namespace
}  // namespace navarch::yaml
