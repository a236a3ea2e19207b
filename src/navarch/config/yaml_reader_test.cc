#include "navarch/config/yaml_reader.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/config/config_error.h"

namespace navarch::yaml {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

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
