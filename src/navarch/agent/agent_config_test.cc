#include "navarch/agent/agent_config.h"

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

TEST(AgentConfigTest, EmptyFileIsTheDefaults) {
  auto c = ParseAgentConfig("", "agent.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->hooks.cordon.empty());
  EXPECT_EQ(c->hooks.timeout, absl::Minutes(5));
  EXPECT_EQ(c->event_queue_size, 1000u);
  EXPECT_EQ(c->gpu_poll_interval, absl::Seconds(10));
  EXPECT_EQ(c->command_poll_interval, absl::Seconds(10));
  EXPECT_FALSE(c->log_level.has_value());
}

TEST(AgentConfigTest, ReadsEverything) {
  auto c = ParseAgentConfig(R"(
hooks:
  cordon: "scontrol update nodename=$(hostname -s) state=drain reason=navarch"
  uncordon: scontrol update nodename=$(hostname -s) state=resume
  drain: /usr/local/bin/drain --timeout $NAVARCH_DRAIN_TIMEOUT
  timeout: 90s
diagnostic:
  command: dcgmi diag -r 2
  timeout: 20m
shutdown:
  command: systemctl poweroff
  timeout: 1m
events:
  queue_size: 50
  xid_dedup_window: 5s
intervals:
  gpu_poll: 2s
  command_poll: 15s
  kmsg_poll: 100ms
logging:
  level: debug
  format: text
)",
                            "agent.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(
      c->hooks.cordon,
      "scontrol update nodename=$(hostname -s) state=drain reason=navarch");
  EXPECT_EQ(c->hooks.uncordon,
            "scontrol update nodename=$(hostname -s) state=resume");
  EXPECT_EQ(c->hooks.timeout, absl::Seconds(90));
  EXPECT_EQ(c->diagnostic_command, "dcgmi diag -r 2");
  EXPECT_EQ(c->diagnostic_timeout, absl::Minutes(20));
  EXPECT_EQ(c->shutdown_command, "systemctl poweroff");
  EXPECT_EQ(c->event_queue_size, 50u);
  EXPECT_EQ(c->xid_dedup_window, absl::Seconds(5));
  EXPECT_EQ(c->gpu_poll_interval, absl::Seconds(2));
  EXPECT_EQ(c->kmsg_poll_interval, absl::Milliseconds(100));
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_EQ(c->log_format, LogFormat::kText);
}

TEST(AgentConfigTest, EveryProblemIsReportedWithItsPlace) {
  auto c = ParseAgentConfig(R"(hooks:
  cordn: x
  timeout: soon
events:
  queue_size: -1
intervals:
  gpu_poll: 1ms
logging:
  level: loud
extra: 1
)",
                            "agent.yaml");
  ASSERT_FALSE(c.ok());
  std::string m(c.status().message());
  EXPECT_NE(m.find("agent.yaml:2:3: hooks: unknown key 'cordn'"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("agent.yaml:3:12: hooks.timeout"), std::string::npos) << m;
  EXPECT_NE(m.find("agent.yaml:5:15: events.queue_size"), std::string::npos)
      << m;
  EXPECT_NE(m.find("intervals.gpu_poll: must be at least 100ms"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("logging.level"), std::string::npos) << m;
  EXPECT_NE(m.find("agent.yaml:10:1: unknown key 'extra'"), std::string::npos)
      << m;
}

TEST(AgentConfigTest, ReadByTheSharedStrictReader) {
  auto typo = ParseAgentConfig("hooks:\n  cordn: x\n", "agent.yaml");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().message(),
            "agent.yaml:2:3: hooks: unknown key 'cordn' (known: cordon, "
            "uncordon, drain, timeout)");
  auto quoted = ParseAgentConfig("events:\n  queue_size: \"5\"\n", "a.yaml");
  ASSERT_FALSE(quoted.ok());
  EXPECT_NE(quoted.status().message().find(
                "a.yaml:2:15: events.queue_size: expected an integer"),
            std::string::npos)
      << quoted.status();
  EXPECT_FALSE(ParseAgentConfig("hooks: {}\n---\nhooks: {}\n", "a.yaml").ok());
}

TEST(AgentConfigTest, NodeIdAndItsSources) {
  auto c = ParseAgentConfig("", "agent.yaml");
  EXPECT_TRUE(c->identity.node_id.empty());
  EXPECT_EQ(c->identity.timeout, absl::Seconds(2));
  EXPECT_EQ(c->identity.connect_timeout, absl::Seconds(1));
  c = ParseAgentConfig(R"(node_id: auto
node_identity:
  source: file:/run/navarch/id
  allow_hostname: true
  timeout: 500ms
  connect_timeout: 200ms
)",
                       "agent.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity.node_id, "auto");
  EXPECT_EQ(c->identity.source, "file:/run/navarch/id");
  EXPECT_TRUE(c->identity.allow_hostname);
  EXPECT_EQ(c->identity.timeout, absl::Milliseconds(500));
  EXPECT_EQ(c->identity.connect_timeout, absl::Milliseconds(200));
  EXPECT_EQ(ParseAgentConfig("node_id: gpu-7\n", "a.yaml")->identity.node_id,
            "gpu-7");
  auto bad = ParseAgentConfig(
      "node_id: two words\nnode_identity:\n  source: aws\n", "a.yaml");
  ASSERT_FALSE(bad.ok());
  std::string m(bad.status().message());
  EXPECT_NE(m.find("a.yaml:1:10: node_id:"), std::string::npos) << m;
  EXPECT_NE(m.find("(or \"auto\": from the cloud)"), std::string::npos) << m;
  EXPECT_NE(m.find("a.yaml:3:11: node_identity.source: unknown node id "
                   "source \"aws\""),
            std::string::npos)
      << m;
}

// The example of docs/agent.md ("Configuration file") is a valid file.
TEST(AgentConfigTest, TheDocumentedExampleLoads) {
  std::ifstream in(NAVARCH_SOURCE_DIR "/docs/agent.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const size_t section = doc.find("## Configuration file");
  const size_t start = doc.find("```yaml\n", section);
  ASSERT_NE(start, std::string::npos);
  const size_t end = doc.find("```", start + 8);
  auto c = ParseAgentConfig(doc.substr(start + 8, end - start - 8), "agent.md");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity.node_id, "auto");
  EXPECT_EQ(c->hooks.timeout, absl::Minutes(5));
}

TEST(AgentConfigTest, SyntaxErrorsAndMissingFiles) {
  auto bad = ParseAgentConfig("hooks: [unclosed", "agent.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("agent.yaml:"), std::string::npos);
  EXPECT_FALSE(ParseAgentConfig("- a list", "agent.yaml").ok());
  EXPECT_TRUE(
      absl::IsNotFound(LoadAgentConfig("/nonexistent/agent.yaml").status()));
}

}  // namespace
}  // namespace navarch::agent
