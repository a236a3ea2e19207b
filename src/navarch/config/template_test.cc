#include "navarch/config/template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TemplateTest, RendersUpstreamsSpellingWithOrWithoutSpaces) {
  auto out = RenderTemplate(
      "#!/bin/sh\nnode-agent --server {{.ControlPlane}} --pool {{ .Pool }}"
      " # {{.Pool}}\n",
      {{"ControlPlane", "https://cp:50051"}, {"Pool", "train"}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "#!/bin/sh\nnode-agent --server https://cp:50051 --pool train"
            " # train\n");
  EXPECT_EQ(*RenderTemplate("no variables { } }}", {}), "no variables { } }}");
}

TEST(TemplateTest, ListsTheVariablesUsedAndRefusesUnknownOnes) {
  auto used = TemplateVariables("{{.Pool}} {{.BootstrapToken}} {{.Pool}}",
                                BootstrapTemplateVariables());
  ASSERT_TRUE(used.ok());
  EXPECT_THAT(*used, ElementsAre("Pool", "BootstrapToken"));
  auto unknown =
      TemplateVariables("x {{.Secret}}", BootstrapTemplateVariables());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("unknown variable {{.Secret}}"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("{{.InstanceType}}"));
}

TEST(TemplateTest, RefusesWhatIsNotAVariable) {
  for (const char* bad : {"{{if .Pool}}x{{end}}", "{{ Pool }}", "{{.}}",
                          "{{.Pool | printf}}", "oops {{.Pool", "{{}}"}) {
    EXPECT_EQ(
        TemplateVariables(bad, BootstrapTemplateVariables()).status().code(),
        absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_FALSE(RenderTemplate(bad, {{"Pool", "p"}}).ok()) << bad;
  }
  EXPECT_THAT(RenderTemplate("{{.Pool}}", {}).status().message(),
              HasSubstr("no value for {{.Pool}}"));
}

}  // namespace
}  // namespace navarch
