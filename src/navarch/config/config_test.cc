#include "navarch/config/config.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/config/config_loader.h"

namespace navarch {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Every error of a document, as printed.
std::vector<std::string> Errors(absl::string_view yaml) {
  std::vector<std::string> out;
  for (const ConfigError& e : ParseConfig(yaml, "navarch.yaml").errors) {
    out.push_back(e.ToString());
  }
  return out;
}

Config Load(absl::string_view yaml) {
  ConfigLoadResult r = ParseConfig(yaml, "test.yaml");
  EXPECT_TRUE(r.ok()) << r.status();
  return r.config;
}

Config LoadTestdata(absl::string_view name) {
  const std::string path =
      absl::StrCat(NAVARCH_CONFIG_TESTDATA, "/upstream/", name);
  absl::StatusOr<Config> config = LoadConfigFile(path);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : Config{};
}

// The smallest valid pool, for tests about something else.
constexpr char kPool[] = R"(providers:
  fake:
    type: fake
pools:
  p:
    provider: fake
    instance_type: gpu_8x_h100
    max_nodes: 4
)";

// ------------------------------------------------------ upstream documents

TEST(UpstreamExamplesTest, EveryDocumentExampleLoads) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           NAVARCH_CONFIG_TESTDATA "/upstream")) {
    ++files;
    absl::StatusOr<Config> config = LoadConfigFile(entry.path().string());
    EXPECT_TRUE(config.ok()) << entry.path() << ": " << config.status();
  }
  // configuration.md, pool-management.md, autoscaling.md and the rest.
  EXPECT_EQ(files, 56);
}

TEST(UpstreamExamplesTest, QuickStart) {
  const Config c = LoadTestdata("configuration-1.yaml");
  ASSERT_EQ(c.providers.size(), 1u);
  EXPECT_EQ(c.providers.at("lambda").type, ProviderType::kLambda);
  EXPECT_EQ(c.providers.at("lambda").api_key_env, "LAMBDA_API_KEY");
  EXPECT_FALSE(c.providers.at("lambda").implicit);
  ASSERT_EQ(c.pools.size(), 1u);
  const PoolConfig& p = c.pools.at("training");
  EXPECT_EQ(p.name, "training");
  ASSERT_THAT(p.providers, SizeIs(1));
  EXPECT_EQ(p.providers[0].name, "lambda");
  EXPECT_EQ(p.providers[0].weight, 1);
  EXPECT_EQ(p.instance_type, "gpu_8x_h100_sxm5");
  EXPECT_EQ(p.region, "us-west-2");
  EXPECT_EQ(p.min_nodes, 2);
  EXPECT_EQ(p.max_nodes, 20);
  EXPECT_EQ(p.cooldown, absl::Minutes(5));
  ASSERT_TRUE(p.autoscaling.has_value());
  EXPECT_EQ(p.autoscaling->type, AutoscalerType::kReactive);
  EXPECT_EQ(p.autoscaling->scale_up_at, 80);
  EXPECT_EQ(p.autoscaling->scale_down_at, 20);
  EXPECT_EQ(p.health.unhealthy_after, 2);
  EXPECT_TRUE(p.health.auto_replace);
  EXPECT_EQ(p.labels,
            (std::map<std::string, std::string>{{"pool", "training"}}));
  EXPECT_EQ(p.ssh_user, "ubuntu");
}

TEST(UpstreamExamplesTest, MultiProviderPool) {
  const Config c = LoadTestdata("configuration-5.yaml");
  const PoolConfig& p = c.pools.at("fungible");
  ASSERT_THAT(p.providers, SizeIs(2));
  EXPECT_EQ(p.providers[0].name, "lambda");
  EXPECT_EQ(p.providers[0].priority, 1);
  EXPECT_EQ(p.providers[0].regions,
            (std::vector<std::string>{"us-west-2", "us-east-1"}));
  EXPECT_EQ(p.providers[0].instance_type, "");
  EXPECT_EQ(p.providers[1].name, "gcp");
  EXPECT_EQ(p.providers[1].priority, 2);
  EXPECT_EQ(p.providers[1].instance_type, "a3-highgpu-8g");
  EXPECT_EQ(p.strategy, SelectionStrategy::kPriority);
  EXPECT_EQ(p.instance_type, "h100-8x");
  // lambda is not defined under providers: the pool gets an implicit one.
  EXPECT_TRUE(c.providers.at("lambda").implicit);
  EXPECT_EQ(c.providers.at("gcp").zone, "us-central1-a");
}

TEST(UpstreamExamplesTest, ListFormPoolWithScalingBlockAndThresholds) {
  const Config c = LoadTestdata("pool-management-1.yaml");
  ASSERT_EQ(c.pools.count("training"), 1u);
  const PoolConfig& p = c.pools.at("training");
  EXPECT_EQ(p.min_nodes, 2);
  EXPECT_EQ(p.max_nodes, 20);
  EXPECT_EQ(p.cooldown, absl::Minutes(5));
  ASSERT_TRUE(p.autoscaling.has_value());
  EXPECT_EQ(p.autoscaling->type, AutoscalerType::kReactive);
  EXPECT_EQ(p.autoscaling->scale_up_at, 80);
  EXPECT_EQ(p.autoscaling->scale_down_at, 20);
  EXPECT_EQ(p.health.unhealthy_after, 2);
  EXPECT_EQ(p.labels, (std::map<std::string, std::string>{
                          {"pool", "training"}, {"workload", "training"}}));
  EXPECT_EQ(c.providers.at("lambda").type, ProviderType::kLambda);
  EXPECT_TRUE(c.providers.at("lambda").implicit);
}

TEST(UpstreamExamplesTest, ScheduledWithHourAliasesAndFallback) {
  const Config c = LoadTestdata("pool-management-15.yaml");
  const PoolConfig& p = c.pools.at("training-batch");
  EXPECT_EQ(p.min_nodes, 0);
  EXPECT_EQ(p.cooldown, absl::Minutes(10));
  EXPECT_EQ(p.health.unhealthy_after, 3);
  ASSERT_TRUE(p.autoscaling.has_value());
  const AutoscalingConfig& a = *p.autoscaling;
  EXPECT_EQ(a.type, AutoscalerType::kScheduled);
  ASSERT_THAT(a.schedule, SizeIs(1));
  EXPECT_EQ(a.schedule[0].days,
            (std::vector<absl::Weekday>{
                absl::Weekday::monday, absl::Weekday::tuesday,
                absl::Weekday::wednesday, absl::Weekday::thursday,
                absl::Weekday::friday}));
  EXPECT_EQ(a.schedule[0].start, 8);
  EXPECT_EQ(a.schedule[0].end, 20);
  EXPECT_EQ(a.schedule[0].min_nodes, 5);
  EXPECT_EQ(a.schedule[0].max_nodes, 20);
  ASSERT_THAT(a.fallback, SizeIs(1));
  EXPECT_EQ(a.fallback[0].type, AutoscalerType::kReactive);
  EXPECT_EQ(a.fallback[0].scale_up_at, 90);
  EXPECT_EQ(a.fallback[0].scale_down_at, 10);
}

TEST(UpstreamExamplesTest, CompositeAutoscalersInsideScaling) {
  const Config c = LoadTestdata("pool-management-14.yaml");
  const AutoscalingConfig& a = *c.pools.at("inference-prod").autoscaling;
  EXPECT_EQ(a.type, AutoscalerType::kComposite);
  EXPECT_EQ(a.mode, CompositeMode::kMax);
  ASSERT_THAT(a.autoscalers, SizeIs(2));
  EXPECT_EQ(a.autoscalers[0].scale_up_at, 60);
  EXPECT_EQ(a.autoscalers[1].type, AutoscalerType::kQueue);
  EXPECT_EQ(a.autoscalers[1].jobs_per_node, 100);
  EXPECT_EQ(c.pools.at("inference-prod").health.unhealthy_after, 1);
}

TEST(UpstreamExamplesTest, StrategiesIsAnAliasOfAutoscalers) {
  const Config c = LoadTestdata("autoscaling-7.yaml");
  ASSERT_TRUE(c.defaults.autoscaling.has_value());
  const AutoscalingConfig& a = *c.defaults.autoscaling;
  EXPECT_EQ(a.type, AutoscalerType::kComposite);
  ASSERT_THAT(a.autoscalers, SizeIs(2));
  EXPECT_EQ(a.autoscalers[0].scale_down_at, 30);
  EXPECT_EQ(a.autoscalers[1].jobs_per_node, 10);
}

TEST(UpstreamExamplesTest, GlobalBlockIsDefaultsAndAgentSettings) {
  const Config c = LoadTestdata("pool-management-11.yaml");
  EXPECT_EQ(c.defaults.ssh_keys,
            (std::vector<std::string>{"ops-team", "ml-team"}));
  EXPECT_EQ(c.server.external_address, "https://control-plane.example.com");
  EXPECT_EQ(c.server.heartbeat_interval, absl::Seconds(30));
  EXPECT_EQ(c.server.health_check_interval, absl::Seconds(60));
}

TEST(UpstreamExamplesTest, TopLevelShorthandsAreDefaults) {
  EXPECT_EQ(LoadTestdata("pool-management-12.yaml").defaults.unhealthy_after,
            2);
  EXPECT_EQ(LoadTestdata("pool-management-12.yaml").defaults.auto_replace,
            true);
  EXPECT_EQ(LoadTestdata("pool-management-13.yaml").defaults.cooldown,
            absl::Minutes(5));
  EXPECT_EQ(LoadTestdata("configuration-9.yaml").defaults.autoscaling->type,
            AutoscalerType::kPredictive);
  EXPECT_EQ(
      LoadTestdata("configuration-9.yaml").defaults.autoscaling->growth_factor,
      1.5);
}

TEST(UpstreamExamplesTest, ProvidersWithoutTypeTakeItFromTheirName) {
  const Config lambda = LoadTestdata("pool-management-8.yaml");
  EXPECT_EQ(lambda.providers.at("lambda").type, ProviderType::kLambda);
  EXPECT_EQ(lambda.providers.at("lambda").api_key_secret,
            "navarch/lambda-api-key");
  const Config aws = LoadTestdata("pool-management-10.yaml");
  EXPECT_EQ(aws.providers.at("aws").type, ProviderType::kAws);
  EXPECT_EQ(aws.providers.at("aws").region, "us-east-1");
  EXPECT_EQ(aws.providers.at("aws").credentials_secret,
            "navarch/aws-credentials");
}

TEST(UpstreamExamplesTest, CoordinatorIsTheNotifier) {
  const Config c = LoadTestdata("configuration-coordinator-3.yaml");
  const NotifierConfig& n = c.server.notifier;
  EXPECT_EQ(n.type, NotifierType::kWebhook);
  EXPECT_EQ(n.webhook.cordon_url,
            "https://scheduler.example.com/api/v1/nodes/cordon");
  EXPECT_EQ(n.webhook.drain_status_url,
            "https://scheduler.example.com/api/v1/nodes/drain-status");
  EXPECT_EQ(n.webhook.timeout, absl::Seconds(30));
  EXPECT_EQ(n.webhook.headers,
            (std::map<std::string, std::string>{
                {"Authorization", "Bearer ${SCHEDULER_TOKEN}"}}));
}

TEST(UpstreamExamplesTest, KubernetesGuide) {
  const Config c = LoadTestdata("kubernetes-2.yaml");
  EXPECT_EQ(c.server.address, "0.0.0.0:50051");
  EXPECT_EQ(c.server.health_policy, "/etc/navarch/health-policy.yaml");
  EXPECT_FALSE(c.providers.at("lambda").implicit);
  EXPECT_EQ(c.pools.at("k8s-gpu-workers").max_nodes, 50);
}

TEST(UpstreamExamplesTest, BootstrapSettingsAndDefaults) {
  const Config timeouts = LoadTestdata("bootstrap-3.yaml");
  const PoolConfig& p = timeouts.pools.at("training");
  EXPECT_EQ(p.ip_wait_timeout, absl::Minutes(5));
  EXPECT_EQ(p.ssh_timeout, absl::Minutes(3));
  EXPECT_EQ(p.command_timeout, absl::Minutes(30));
  EXPECT_EQ(p.ssh_connect_timeout, absl::Seconds(30));
  EXPECT_THAT(p.setup_commands, ElementsAre("./long-running-setup.sh"));

  const Config full = LoadTestdata("bootstrap-2.yaml");
  const PoolConfig& q = full.pools.at("training");
  EXPECT_EQ(q.ssh_user, "ubuntu");
  EXPECT_EQ(q.ssh_private_key_path, "~/.ssh/navarch-key");
  EXPECT_THAT(q.setup_commands, SizeIs(4));
}

TEST(UpstreamExamplesTest, InstanceManager) {
  const Config c = LoadTestdata("lifecycle-1.yaml");
  EXPECT_EQ(c.instance_manager.registration_timeout, absl::Minutes(10));
  EXPECT_EQ(c.instance_manager.stale_check_interval, absl::Minutes(1));
  EXPECT_EQ(c.instance_manager.terminated_retention, absl::Hours(24));
}

TEST(UpstreamExamplesTest, DefaultsApplyToEveryPool) {
  const Config c = LoadTestdata("examples-config.yaml");
  ASSERT_EQ(c.pools.size(), 5u);
  for (const auto& [name, pool] : c.pools) {
    EXPECT_EQ(pool.ssh_keys, (std::vector<std::string>{"ops-team", "ml-team"}))
        << name;
    EXPECT_EQ(pool.labels.at("pool"), name);
  }
  EXPECT_EQ(c.pools.at("dev").cooldown, absl::Seconds(10));
  EXPECT_EQ(c.pools.at("inference").health.unhealthy_after, 3);
}

// Fragments of the docs that leave out required keys are completed in
// testdata; unchanged, they fail with exactly the missing keys.
TEST(UpstreamExamplesTest, IncompleteFragmentsNameWhatIsMissing) {
  EXPECT_THAT(Errors(R"(pools:
  - name: dev-pool
    provider: fake
    instance_type: gpu_8x_h100
    region: local
    # ... scaling and health config

providers:
  fake:
    gpu_count: 8  # GPUs per fake instance
)"),
              ElementsAre("navarch.yaml:2:5: pools.dev-pool: max_nodes is "
                          "required"));
  EXPECT_THAT(Errors(R"(pools:
  training:
    min_nodes: 2   # Never scale below this
    max_nodes: 20  # Never scale above this
)"),
              ElementsAre("navarch.yaml:2:3: pools.training: must specify "
                          "provider or providers",
                          "navarch.yaml:2:3: pools.training: instance_type is "
                          "required"));
}

TEST(ExampleConfigTest, MakeRunConfigLoads) {
  absl::StatusOr<Config> c =
      LoadConfigFile(NAVARCH_SOURCE_DIR "/examples/navarch.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.address, ":50051");
  EXPECT_EQ(c->server.http_address, ":8080");
  EXPECT_EQ(c->server.data_dir, "./navarch-data");
  EXPECT_EQ(c->storage.backend, StorageBackend::kSqlite);
  EXPECT_EQ(c->logging.format, LogFormat::kText);
  EXPECT_THAT(c->pools, IsEmpty());
  ResolveConfig(&*c);
  EXPECT_EQ(c->storage.path, "./navarch-data/navarch.db");
}

TEST(ExampleConfigTest, QuickStartLoads) {
  absl::StatusOr<Config> c =
      LoadConfigFile(NAVARCH_SOURCE_DIR "/examples/quickstart.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->providers.count("local"), 1u);
  EXPECT_EQ(c->providers.at("local").type, ProviderType::kLocal);
  // No auth in the quick start: it must not listen beyond this machine.
  EXPECT_EQ(c->server.address, "127.0.0.1:50051");
  EXPECT_EQ(c->server.http_address, "127.0.0.1:8080");
  const PoolConfig& p = c->pools.at("dev");
  EXPECT_EQ(p.min_nodes, 2);
  EXPECT_TRUE(p.health.auto_replace);
  EXPECT_EQ(p.health.unhealthy_after, 1);
  EXPECT_EQ(p.health.drain_timeout, absl::Seconds(30));
}

TEST(ExampleConfigTest, EveryYamlBlockOfTheReferenceLoads) {
  absl::StatusOr<std::string> doc =
      ReadConfigFile(NAVARCH_SOURCE_DIR "/docs/configuration.md");
  ASSERT_TRUE(doc.ok()) << doc.status();
  int blocks = 0;
  size_t pos = 0;
  while ((pos = doc->find("```yaml\n", pos)) != std::string::npos) {
    pos += 8;
    const size_t end = doc->find("```", pos);
    ASSERT_NE(end, std::string::npos);
    ++blocks;
    ConfigLoadResult r =
        ParseConfig(doc->substr(pos, end - pos),
                    absl::StrCat("configuration.md block ", blocks));
    EXPECT_TRUE(r.ok()) << r.status();
    pos = end + 3;
  }
  EXPECT_EQ(blocks, 11);
}

// --------------------------------------------------------------- errors

TEST(ConfigErrorTest, UnknownKeyNamesFileLineColumnAndPath) {
  EXPECT_THAT(Errors(R"(server:
  address: ":50051"

providers:
  lambda:
    type: lambda

pools:
  training:
    provider: lambda
    instance_type: gpu_8x_h100_sxm5
    min_nodes: 1
    max_nodes: 4
    instance_typo: x
)"),
              ElementsAre("navarch.yaml:14:5: pools.training: unknown key "
                          "'instance_typo'"));
  EXPECT_THAT(Errors("serverr:\n  address: x\n"),
              ElementsAre("navarch.yaml:1:1: unknown key 'serverr' (known: "
                          "server, storage, ha, logging, instance_manager, "
                          "auth, providers, pools, defaults, health, "
                          "autoscaling, scaling, notifier)"));
  EXPECT_THAT(Errors("server:\n  heartbeat: 30s\n"),
              ElementsAre("navarch.yaml:2:3: server: unknown key 'heartbeat'"));
}

TEST(ConfigErrorTest, WrongTypes) {
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    min_nodes: many\n")),
              ElementsAre("navarch.yaml:9:16: pools.p.min_nodes: expected an "
                          "integer, got 'many'"));
  // Quoted numbers are strings, as in Go's yaml package.
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    min_nodes: \"2\"\n")),
              ElementsAre("navarch.yaml:9:16: pools.p.min_nodes: expected an "
                          "integer, got '2'"));
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    labels: [a, b]\n")),
              ElementsAre("navarch.yaml:9:13: pools.p.labels: expected a "
                          "mapping, got a list"));
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    zones: us-east-1a\n")),
              ElementsAre("navarch.yaml:9:12: pools.p.zones: expected a list, "
                          "got 'us-east-1a'"));
  EXPECT_THAT(Errors("server:\n  address:\n    host: x\n"),
              ElementsAre("navarch.yaml:3:5: server.address: expected a "
                          "string, got a mapping"));
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    health:\n      auto_replace: "
                                  "sometimes\n")),
              ElementsAre("navarch.yaml:10:21: pools.p.health.auto_replace: "
                          "expected true or false, got 'sometimes'"));
  EXPECT_THAT(Errors("server: 5\n"),
              ElementsAre("navarch.yaml:1:9: server: expected a mapping, got "
                          "'5'"));
  EXPECT_THAT(Errors("- a\n- b\n"),
              ElementsAre("navarch.yaml:1:1: expected a mapping, got a list"));
}

TEST(ConfigErrorTest, BadDurations) {
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    cooldown: 5x\n")),
              ElementsAre("navarch.yaml:9:15: pools.p.cooldown: invalid "
                          "duration \"5x\": unknown unit \"x\""));
  EXPECT_THAT(Errors("server:\n  heartbeat_interval: 30\n"),
              ElementsAre("navarch.yaml:2:23: server.heartbeat_interval: "
                          "invalid duration \"30\": missing unit (use ns, us, "
                          "ms, s, m or h)"));
  EXPECT_THAT(Errors("server:\n  heartbeat_timeout: -5s\n"),
              ElementsAre("navarch.yaml:2:22: server.heartbeat_timeout: must "
                          "not be negative, got -5s"));
  EXPECT_THAT(Errors("server:\n  heartbeat_interval: 500ms\n"),
              ElementsAre("navarch.yaml:2:23: server.heartbeat_interval: must "
                          "be at least 1s, got 500ms"));
}

TEST(ConfigErrorTest, NodeLimits) {
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    min_nodes: 5\n")),
              ElementsAre("navarch.yaml:9:16: pools.p.min_nodes: min_nodes (5) "
                          "cannot exceed max_nodes (4)"));
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    min_nodes: -1\n")),
              ElementsAre("navarch.yaml:9:16: pools.p.min_nodes: must be >= 0, "
                          "got -1"));
  const std::string no_max = R"(pools:
  p:
    provider: fake
    instance_type: t
    max_nodes: )";
  EXPECT_THAT(Errors(no_max + "0\n"),
              ElementsAre("navarch.yaml:5:16: pools.p.max_nodes: must be > 0, "
                          "got 0"));
  EXPECT_THAT(Errors(no_max + "-3\n"),
              ElementsAre("navarch.yaml:5:16: pools.p.max_nodes: must be > 0, "
                          "got -3"));
  EXPECT_THAT(
      Errors("pools:\n  p:\n    provider: fake\n    instance_type: t\n"),
      ElementsAre("navarch.yaml:2:3: pools.p: max_nodes is required"));
  // The scaling block spells the same limits.
  EXPECT_THAT(Errors(R"(pools:
  - name: p
    provider: fake
    instance_type: t
    scaling:
      min_nodes: 9
      max_nodes: 3
)"),
              ElementsAre("navarch.yaml:6:18: pools.p.scaling.min_nodes: "
                          "min_nodes (9) cannot exceed max_nodes (3)"));
}

TEST(ConfigErrorTest, ProviderReferences) {
  EXPECT_THAT(Errors(R"(pools:
  p:
    provider: my-cloud
    instance_type: t
    max_nodes: 1
)"),
              ElementsAre("navarch.yaml:3:15: pools.p.provider: unknown "
                          "provider 'my-cloud'"));
  EXPECT_THAT(Errors(R"(providers:
  a:
    type: fake
pools:
  p:
    providers:
      - name: a
      - name: b
    instance_type: t
    max_nodes: 1
)"),
              ElementsAre("navarch.yaml:8:15: pools.p.providers[1].name: "
                          "unknown provider 'b'"));
  EXPECT_THAT(Errors(R"(pools:
  p:
    provider: gcp
    instance_type: t
    max_nodes: 1
)"),
              ElementsAre("navarch.yaml:3:15: pools.p.provider: unknown "
                          "provider 'gcp' (a gcp provider needs a project: "
                          "define it under providers)"));
}

TEST(ConfigErrorTest, ProviderAndProvidersAreExclusive) {
  EXPECT_THAT(Errors(R"(pools:
  p:
    provider: fake
    providers:
      - name: fake
    instance_type: t
    max_nodes: 1
)"),
              ElementsAre("navarch.yaml:5:7: pools.p.providers: cannot "
                          "specify both provider and providers"));
  EXPECT_THAT(Errors("pools:\n  p:\n    instance_type: t\n    max_nodes: 1\n"),
              ElementsAre("navarch.yaml:2:3: pools.p: must specify provider "
                          "or providers"));
  EXPECT_THAT(Errors(R"(pools:
  p:
    providers: []
    instance_type: t
    max_nodes: 1
)"),
              ElementsAre("navarch.yaml:3:16: pools.p.providers: needs at "
                          "least one provider"));
}

TEST(ConfigErrorTest, MissingInstanceType) {
  EXPECT_THAT(Errors("pools:\n  p:\n    provider: fake\n    max_nodes: 1\n"),
              ElementsAre("navarch.yaml:2:3: pools.p: instance_type is "
                          "required"));
}

TEST(ConfigErrorTest, EmptyRequiredKeysAreMissing) {
  EXPECT_THAT(Errors("pools:\n  p:\n    provider:\n    instance_type:\n    "
                     "max_nodes:\n"),
              ElementsAre("navarch.yaml:2:3: pools.p: must specify provider "
                          "or providers",
                          "navarch.yaml:2:3: pools.p: instance_type is "
                          "required",
                          "navarch.yaml:2:3: pools.p: max_nodes is required"));
  EXPECT_THAT(Errors("pools:\n  p:\n    provider: fake\n    instance_type: "
                     "\"\"\n    max_nodes: 1\n"),
              ElementsAre("navarch.yaml:4:20: pools.p.instance_type: must not "
                          "be empty"));
}

TEST(ConfigErrorTest, ProviderTypes) {
  EXPECT_THAT(Errors("providers:\n  my-cloud:\n    region: x\n"),
              ElementsAre("navarch.yaml:2:3: providers.my-cloud: type is "
                          "required"));
  EXPECT_THAT(Errors("providers:\n  p:\n    type: azure\n"),
              ElementsAre("navarch.yaml:3:11: providers.p.type: unknown "
                          "provider type 'azure' (lambda, gcp, aws, fake, "
                          "local)"));
  EXPECT_THAT(Errors("providers:\n  l:\n    type: lambda\n    project: x\n"),
              ElementsAre("navarch.yaml:4:5: providers.l: 'project' does not "
                          "apply to provider type 'lambda'"));
  EXPECT_THAT(Errors("providers:\n  g:\n    type: gcp\n"),
              ElementsAre("navarch.yaml:2:3: providers.g: project is required "
                          "for gcp providers"));
  EXPECT_THAT(Errors("providers:\n  f:\n    type: fake\n    gpu_count: 0\n"),
              ElementsAre("navarch.yaml:4:16: providers.f.gpu_count: must be > "
                          "0, got 0"));
}

TEST(ConfigErrorTest, UnknownChoices) {
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    strategy: fastest\n")),
              ElementsAre("navarch.yaml:9:15: pools.p.strategy: unknown "
                          "strategy 'fastest' (priority, cost, availability, "
                          "round-robin)"));
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    autoscaling:\n      type: "
                                  "magic\n")),
              ElementsAre("navarch.yaml:10:13: pools.p.autoscaling.type: "
                          "unknown autoscaler type 'magic' (reactive, queue, "
                          "scheduled, predictive, composite)"));
  EXPECT_THAT(Errors("server:\n  notifier:\n    type: slack\n"),
              ElementsAre("navarch.yaml:3:11: server.notifier.type: unknown "
                          "notifier type 'slack' (noop, webhook)"));
  EXPECT_THAT(Errors("autoscaling:\n  type: composite\n  mode: median\n  "
                     "autoscalers:\n    - type: queue\n"),
              ElementsAre("navarch.yaml:3:9: autoscaling.mode: unknown "
                          "composite mode 'median' (max, min, avg)"));
}

TEST(ConfigErrorTest, SetupCommandsNeedAKey) {
  const std::string yaml =
      absl::StrCat(kPool, "    setup_commands:\n      - echo hi\n");
  EXPECT_THAT(Errors(yaml),
              ElementsAre("navarch.yaml:10:7: pools.p.setup_commands: "
                          "ssh_private_key_path is required when "
                          "setup_commands are configured"));
  // A key from defaults is enough.
  EXPECT_THAT(
      Errors(absl::StrCat("defaults:\n  ssh_private_key_path: k\n", yaml)),
      IsEmpty());
}

TEST(ConfigTest, SshPortAndHostKeyPolicyAreInherited) {
  const std::string base = absl::StrCat(
      "defaults:\n  ssh_private_key_path: k\n  ssh_port: 2222\n"
      "  ssh_host_key_policy: known_hosts\n"
      "  ssh_known_hosts_file: /etc/ssh/ssh_known_hosts\n",
      kPool, "    setup_commands:\n      - echo hi\n");
  const Config c = Load(base);
  const PoolConfig& p = c.pools.at("p");
  EXPECT_EQ(p.ssh_port, 2222);
  EXPECT_EQ(p.ssh_host_key_policy, SshHostKeyPolicy::kKnownHosts);
  EXPECT_EQ(p.ssh_known_hosts_file, "/etc/ssh/ssh_known_hosts");
  const Config own = Load(absl::StrCat(base,
                                       "    ssh_host_key_policy: insecure\n"
                                       "    ssh_port: 22\n"));
  EXPECT_EQ(own.pools.at("p").ssh_host_key_policy, SshHostKeyPolicy::kInsecure);
  EXPECT_EQ(own.pools.at("p").ssh_port, 22);
  // The default: trust on first use, port 22.
  const Config plain = Load(kPool);
  EXPECT_EQ(plain.pools.at("p").ssh_host_key_policy, SshHostKeyPolicy::kTofu);
  EXPECT_EQ(plain.pools.at("p").ssh_port, 22);
}

TEST(ConfigErrorTest, SshHostKeyPolicyMistakes) {
  const std::string yaml =
      absl::StrCat("defaults:\n  ssh_private_key_path: k\n", kPool,
                   "    setup_commands:\n      - echo hi\n");
  EXPECT_THAT(Errors(absl::StrCat(yaml, "    ssh_host_key_policy: trust\n")),
              ElementsAre(::testing::HasSubstr(
                  "unknown ssh_host_key_policy 'trust' (known_hosts, tofu, "
                  "insecure)")));
  EXPECT_THAT(
      Errors(absl::StrCat(yaml, "    ssh_host_key_policy: known_hosts\n")),
      ElementsAre(::testing::HasSubstr(
          "ssh_host_key_policy known_hosts needs ssh_known_hosts_file")));
  EXPECT_THAT(Errors(absl::StrCat(yaml, "    ssh_port: 70000\n")),
              ElementsAre(::testing::HasSubstr("ssh_port")));
}

TEST(ConfigErrorTest, TemplatesTakeOnlyKnownVariables) {
  const std::string good =
      absl::StrCat(kPool,
                   "    user_data: |\n      #!/bin/sh\n      echo {{.Pool}} "
                   "{{ .BootstrapToken }}\n");
  EXPECT_THAT(Errors(good), IsEmpty());
  EXPECT_THAT(
      Errors(absl::StrCat(kPool, "    user_data: \"{{.Pool}} {{.Secret}}\"\n")),
      ElementsAre(::testing::HasSubstr(
          "pools.p.user_data: unknown variable {{.Secret}}; known: "
          "{{.ControlPlane}}")));
  EXPECT_THAT(
      Errors(absl::StrCat("defaults:\n  ssh_private_key_path: k\n", kPool,
                          "    setup_commands:\n      - ok {{.NodeID}}\n"
                          "      - \"{{if .Pool}}x{{end}}\"\n")),
      ElementsAre(::testing::HasSubstr(
          "pools.p.setup_commands: command 2: \"{{if .Pool}}\" is not a "
          "variable")));
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    user_data: x\n"
                                  "    user_data_file: /etc/u.sh\n")),
              ElementsAre(::testing::HasSubstr(
                  "cannot specify both user_data and user_data_file")));
}

TEST(ConfigErrorTest, ReactiveThresholds) {
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    autoscaling:\n      type: reactive\n"
                                  "      scale_up_at: 80\n"
                                  "      scale_down_at: 80\n")),
              ElementsAre("navarch.yaml:12:22: "
                          "pools.p.autoscaling.scale_down_at: scale_down_at "
                          "(80) must be below scale_up_at (80)"));
  // Against the default of the other threshold.
  EXPECT_THAT(Errors("autoscaling:\n  type: reactive\n  scale_up_at: 10\n"),
              ElementsAre("navarch.yaml:3:16: autoscaling.scale_up_at: "
                          "scale_up_at (10) must be above scale_down_at (20)"));
  EXPECT_THAT(Errors("autoscaling:\n  type: reactive\n  scale_up_at: 101\n"),
              ElementsAre("navarch.yaml:3:16: autoscaling.scale_up_at: must be "
                          "<= 100, got 101"));
}

TEST(ConfigErrorTest, Schedules) {
  EXPECT_THAT(Errors(R"(autoscaling:
  type: scheduled
  schedule:
    - days: [monday, funday, Sat]
      start: 9
      end: 25
      max_nodes: 3
)"),
              ElementsAre("navarch.yaml:4:22: autoscaling.schedule[0].days[1]: "
                          "unknown day 'funday' (monday..sunday or mon..sun)",
                          "navarch.yaml:6:12: autoscaling.schedule[0].end: "
                          "must be <= 24, got 25"));
  EXPECT_THAT(Errors(R"(autoscaling:
  type: scheduled
  schedule:
    - start: 22
      end: 6
      max_nodes: 3
)"),
              ElementsAre("navarch.yaml:4:14: autoscaling.schedule[0].start: "
                          "start (22) must be before end (6); split a window "
                          "that crosses midnight in two"));
  EXPECT_THAT(Errors(R"(autoscaling:
  type: scheduled
  schedule:
    - start_hour: -1
      max_nodes: 3
)"),
              ElementsAre("navarch.yaml:4:19: "
                          "autoscaling.schedule[0].start_hour: must be >= 0, "
                          "got -1"));
  EXPECT_THAT(Errors("autoscaling:\n  type: scheduled\n  schedule:\n    - "
                     "days: [mon]\n"),
              ElementsAre("navarch.yaml:4:7: autoscaling.schedule[0]: "
                          "max_nodes is required"));
}

TEST(ConfigErrorTest, AutoscalerKeysBelongToTheirType) {
  EXPECT_THAT(Errors("autoscaling:\n  type: reactive\n  jobs_per_node: 3\n"),
              ElementsAre("navarch.yaml:3:3: autoscaling: 'jobs_per_node' does "
                          "not apply to autoscaler type 'reactive'"));
  EXPECT_THAT(Errors("autoscaling:\n  scale_up_at: 90\n"),
              ElementsAre("navarch.yaml:2:3: autoscaling: type is required "
                          "(reactive, queue, scheduled, predictive, "
                          "composite)"));
  EXPECT_THAT(Errors("autoscaling:\n  type: composite\n"),
              ElementsAre("navarch.yaml:2:3: autoscaling: a composite "
                          "autoscaler needs at least one entry in "
                          "autoscalers"));
  // Nested autoscalers are checked the same way.
  EXPECT_THAT(Errors(R"(autoscaling:
  type: composite
  autoscalers:
    - type: queue
      jobs_per_node: 0
)"),
              ElementsAre("navarch.yaml:5:22: "
                          "autoscaling.autoscalers[0].jobs_per_node: must be > "
                          "0, got 0"));
}

TEST(ConfigErrorTest, SameSettingSpelledTwice) {
  EXPECT_THAT(Errors(R"(autoscaling:
  type: reactive
  scale_up_at: 80
  scale_up_threshold: 70
)"),
              ElementsAre("navarch.yaml:4:3: autoscaling: 'scale_up_threshold' "
                          "and 'scale_up_at' (line 3) are the same setting; "
                          "keep one"));
  EXPECT_THAT(Errors(R"(pools:
  p:
    provider: fake
    instance_type: t
    max_nodes: 4
    scaling:
      max_nodes: 5
)"),
              ElementsAre("navarch.yaml:7:18: pools.p.scaling.max_nodes: "
                          "already set at line 5 (pools.p.max_nodes)"));
  EXPECT_THAT(Errors(R"(server:
  notifier:
    type: noop
notifier:
  type: noop
)"),
              ElementsAre("navarch.yaml:5:3: notifier: already set at line 3 "
                          "(server.notifier)"));
  EXPECT_THAT(Errors("health:\n  unhealthy_after: 3\ndefaults:\n  health:\n   "
                     " auto_replace: false\n"),
              ElementsAre("navarch.yaml:5:5: defaults.health: already set at "
                          "line 2 (health)"));
  EXPECT_THAT(Errors("server:\n  address: \":1\"\n  grpc_port: 2\n"),
              ElementsAre("navarch.yaml:3:14: server.grpc_port: already set at "
                          "line 2 (server.address)"));
}

TEST(ConfigErrorTest, DuplicatesAndNames) {
  EXPECT_THAT(Errors("server:\n  address: \":1\"\n  address: \":2\"\n"),
              ElementsAre("navarch.yaml:3:3: server: duplicate key 'address' "
                          "(first at line 2)"));
  EXPECT_THAT(Errors(R"(pools:
  - name: p
    provider: fake
    instance_type: t
    max_nodes: 1
  - name: p
    provider: fake
    instance_type: t
    max_nodes: 1
)"),
              ElementsAre("navarch.yaml:6:5: pools.p: pool 'p' is defined "
                          "twice (first at line 2)"));
  EXPECT_THAT(Errors("pools:\n  - provider: fake\n"),
              ElementsAre("navarch.yaml:2:5: pools[0]: name is required"));
  EXPECT_THAT(Errors("pools:\n  bad name:\n    provider: fake\n"),
              ElementsAre("navarch.yaml:2:3: pools.bad name: invalid pool name "
                          "'bad name': use up to 63 letters, digits, '-', '_' "
                          "or '.', starting with a letter or digit"));
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    name: q\n")),
              ElementsAre("navarch.yaml:9:11: pools.p.name: 'q' does not match "
                          "the pool's key 'p'"));
}

TEST(ConfigErrorTest, Notifier) {
  EXPECT_THAT(Errors("notifier:\n  type: webhook\n"),
              ElementsAre("navarch.yaml:2:3: notifier: type 'webhook' needs a "
                          "'webhook' block with its URLs"));
  EXPECT_THAT(Errors("notifier:\n  webhook:\n    cordon_url: http://x\n"),
              ElementsAre("navarch.yaml:3:5: notifier.webhook: has no effect "
                          "unless the notifier type is 'webhook'"));
  EXPECT_THAT(
      Errors("notifier:\n  type: webhook\n  webhook:\n    drain_url: "
             "ftp://x\n"),
      ElementsAre("navarch.yaml:4:5: notifier.webhook: needs at least "
                  "one of cordon_url, uncordon_url, drain_url, "
                  "drain_status_url",
                  "navarch.yaml:4:16: notifier.webhook.drain_url: "
                  "expected an http:// or https:// URL, got 'ftp://x'"));
}

TEST(ConfigErrorTest, ServerStorageAndLogging) {
  EXPECT_THAT(Errors("server:\n  address: 50051\n"),
              ElementsAre("navarch.yaml:2:12: server.address: expected "
                          "host:port such as :50051 or 0.0.0.0:50051, got "
                          "'50051'"));
  EXPECT_THAT(Errors("server:\n  http_address: \"0.0.0.0:50051\"\n"),
              ElementsAre("navarch.yaml:2:17: server.http_address: uses the "
                          "same port as address (50051)"));
  EXPECT_THAT(Errors("server:\n  heartbeat_timeout: 30s\n"),
              ElementsAre("navarch.yaml:2:22: server.heartbeat_timeout: must "
                          "be longer than heartbeat_interval (30s), got 30s"));
  EXPECT_THAT(Errors("server:\n  heartbeat_flush_interval: 2s\n"),
              ElementsAre("navarch.yaml:2:29: server.heartbeat_flush_interval: "
                          "must be at most 1s, got 2s"));
  EXPECT_THAT(Errors("server:\n  heartbeat_flush_interval: 1ms\n"),
              ElementsAre("navarch.yaml:2:29: server.heartbeat_flush_interval: "
                          "must be at least 10ms, got 1ms"));
  EXPECT_EQ(Load("server:\n  heartbeat_flush_interval: 50ms\n")
                .server.heartbeat_flush_interval,
            absl::Milliseconds(50));
  EXPECT_THAT(Errors("server:\n  data_dir: \"\"\n"),
              ElementsAre("navarch.yaml:2:13: server.data_dir: must not be "
                          "empty"));
  EXPECT_THAT(
      Errors("storage:\n  backend: postgres\n"),
      ElementsAre(::testing::StartsWith(
          "navarch.yaml:2:12: storage.backend: postgres needs storage.dsn")));
  EXPECT_THAT(Errors("storage:\n  dsn: host=db1\n"),
              ElementsAre("navarch.yaml:2:8: storage.dsn: has no effect with "
                          "backend 'sqlite' (it is for postgres)"));
  EXPECT_THAT(
      Errors("storage:\n  backend: postgres\n  dsn: host=db1\n  path: x\n"),
      ElementsAre("navarch.yaml:4:9: storage.path: has no effect with "
                  "backend 'postgres'"));
  EXPECT_THAT(Errors("storage:\n  backend: memory\n  path: /tmp/x.db\n"),
              ElementsAre("navarch.yaml:3:9: storage.path: has no effect with "
                          "backend 'memory'"));
  EXPECT_THAT(Errors("logging:\n  level: loud\n"),
              ElementsAre("navarch.yaml:2:10: logging.level: unknown log level "
                          "\"loud\" (debug, info, warn, error)"));
}

TEST(ConfigErrorTest, LabelPoolIsReserved) {
  EXPECT_THAT(Errors(absl::StrCat(kPool, "    labels:\n      pool: other\n")),
              ElementsAre("navarch.yaml:10:7: pools.p.labels: label 'pool' is "
                          "reserved: it is always the pool name 'p'"));
}

TEST(ConfigErrorTest, InvalidYamlAndDocuments) {
  EXPECT_THAT(Errors("server:\n  address: [1, 2\n"),
              ElementsAre("navarch.yaml:3:1: invalid YAML: end of sequence "
                          "flow not found"));
  EXPECT_THAT(Errors("server: {}\n---\nserver: {}\n"),
              ElementsAre("navarch.yaml:2:1: only one YAML document is "
                          "allowed (a second one starts here)"));
}

TEST(ConfigErrorTest, AliasCycleIsAnErrorNotACrash) {
  const std::vector<std::string> errors =
      Errors("autoscaling: &a\n  type: composite\n  autoscalers: [*a]\n");
  ASSERT_THAT(errors, SizeIs(testing::Ge(1u)));
  EXPECT_NE(errors[0].find("nesting is deeper than 32 levels"),
            std::string::npos)
      << errors[0];
}

TEST(ConfigErrorTest, AllErrorsAreReportedTogetherInFileOrder) {
  const std::string yaml = R"(server:
  heartbeat_interval: soon
  bogus: 1
providers:
  x:
    type: azure
pools:
  p:
    provider: nowhere
    instance_type: t
    min_nodes: 3
    max_nodes: 2
)";
  ConfigLoadResult r = ParseConfig(yaml, "navarch.yaml");
  EXPECT_FALSE(r.ok());
  const std::vector<std::string> expected = {
      "navarch.yaml:2:23: server.heartbeat_interval: invalid duration "
      "\"soon\": expected a number",
      "navarch.yaml:3:3: server: unknown key 'bogus'",
      "navarch.yaml:6:11: providers.x.type: unknown provider type 'azure' "
      "(lambda, gcp, aws, fake, local)",
      "navarch.yaml:9:15: pools.p.provider: unknown provider 'nowhere'",
      "navarch.yaml:11:16: pools.p.min_nodes: min_nodes (3) cannot exceed "
      "max_nodes (2)",
  };
  std::vector<std::string> got;
  for (const ConfigError& e : r.errors) got.push_back(e.ToString());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      std::vector<std::string>(absl::StrSplit(r.status().message(), '\n')),
      expected);
  absl::StatusOr<Config> loaded = LoadConfigString(yaml, "navarch.yaml");
  EXPECT_EQ(loaded.status(), r.status());
  // The structured list carries the parts.
  EXPECT_EQ(r.errors[3], (ConfigError{"navarch.yaml", 9, 15, "pools.p.provider",
                                      "unknown provider 'nowhere'"}));
}

TEST(ConfigErrorTest, ToStringWithoutPositionOrPath) {
  EXPECT_EQ((ConfigError{"f.yaml", 0, 0, "", "file is broken"}).ToString(),
            "f.yaml: file is broken");
  EXPECT_EQ((ConfigError{"f.yaml", 0, 0, "a.b", "bad"}).ToString(),
            "f.yaml: a.b: bad");
  EXPECT_EQ((ConfigError{"f.yaml", 3, 1, "", "bad"}).ToString(),
            "f.yaml:3:1: bad");
}

// ---------------------------------------------------------------- defaults

TEST(DefaultsTest, EmptyDocumentIsTheDefaultConfig) {
  for (const char* empty : {"", "\n", "# only a comment\n", "~\n", "{}\n"}) {
    ConfigLoadResult r = ParseConfig(empty, "empty.yaml");
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r.config == DefaultConfig()) << "'" << empty << "'";
  }
}

TEST(DefaultsTest, DefaultValues) {
  const Config c = DefaultConfig();
  EXPECT_EQ(c.server.address, ":50051");
  EXPECT_EQ(c.server.http_address, ":8080");
  EXPECT_EQ(c.server.external_address, "");
  EXPECT_EQ(c.server.data_dir, "./navarch-data");
  EXPECT_EQ(c.server.heartbeat_interval, absl::Seconds(30));
  EXPECT_EQ(c.server.heartbeat_timeout, absl::ZeroDuration());
  EXPECT_EQ(c.server.health_check_interval, absl::Seconds(60));
  EXPECT_EQ(c.server.autoscale_interval, absl::Seconds(30));
  EXPECT_EQ(c.server.heartbeat_flush_interval, absl::Milliseconds(200));
  EXPECT_EQ(c.server.health_policy, "");
  EXPECT_EQ(c.server.notifier.type, NotifierType::kNoop);
  EXPECT_EQ(c.server.notifier.webhook.timeout, absl::Seconds(30));
  EXPECT_EQ(c.storage.backend, StorageBackend::kSqlite);
  EXPECT_EQ(c.storage.path, "");
  EXPECT_EQ(c.logging.level, LogLevel::kInfo);
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_EQ(c.instance_manager.registration_timeout, absl::Minutes(10));
  EXPECT_EQ(c.instance_manager.stale_check_interval, absl::Minutes(1));
  EXPECT_EQ(c.instance_manager.terminated_retention, absl::Hours(24));
  EXPECT_THAT(c.providers, IsEmpty());
  EXPECT_THAT(c.pools, IsEmpty());
}

TEST(DefaultsTest, PoolDefaults) {
  const Config c = Load(kPool);
  const PoolConfig& p = c.pools.at("p");
  EXPECT_EQ(p.strategy, SelectionStrategy::kPriority);
  EXPECT_EQ(p.min_nodes, 0);
  EXPECT_EQ(p.max_nodes, 4);
  EXPECT_EQ(p.cooldown, absl::Minutes(5));
  EXPECT_FALSE(p.autoscaling.has_value());
  EXPECT_EQ(p.health.unhealthy_after, 2);
  EXPECT_TRUE(p.health.auto_replace);
  EXPECT_EQ(p.ssh_user, "ubuntu");
  EXPECT_EQ(p.ssh_private_key_path, "");
  EXPECT_EQ(p.ip_wait_timeout, absl::Minutes(15));
  EXPECT_EQ(p.ssh_timeout, absl::Minutes(10));
  EXPECT_EQ(p.ssh_connect_timeout, absl::Seconds(30));
  EXPECT_EQ(p.command_timeout, absl::Minutes(5));
  EXPECT_EQ(c.providers.at("fake").gpu_count, 8);
}

TEST(DefaultsTest, PoolSettingsInheritFieldByField) {
  const Config c = Load(R"(defaults:
  ssh_user: admin
  health:
    auto_replace: false
  cooldown: 1m
  autoscaling:
    type: queue
providers:
  fake: {}
pools:
  a:
    provider: fake
    instance_type: t
    max_nodes: 3
  b:
    provider: fake
    instance_type: t
    max_nodes: 3
    ssh_user: root
    health:
      unhealthy_after: 4
    cooldown: 0
    autoscaling:
      type: reactive
)");
  const PoolConfig& a = c.pools.at("a");
  EXPECT_EQ(a.ssh_user, "admin");
  EXPECT_FALSE(a.health.auto_replace);
  EXPECT_EQ(a.health.unhealthy_after, 2);
  EXPECT_EQ(a.cooldown, absl::Minutes(1));
  ASSERT_TRUE(a.autoscaling.has_value());
  EXPECT_EQ(a.autoscaling->type, AutoscalerType::kQueue);
  EXPECT_EQ(a.autoscaling->jobs_per_node, 10);
  const PoolConfig& b = c.pools.at("b");
  EXPECT_EQ(b.ssh_user, "root");
  EXPECT_EQ(b.health.unhealthy_after, 4);
  // A health block that leaves auto_replace out inherits it (upstream would
  // turn it off).
  EXPECT_FALSE(b.health.auto_replace);
  // 0 means "the default", which here is defaults.cooldown.
  EXPECT_EQ(b.cooldown, absl::Minutes(1));
  EXPECT_EQ(b.autoscaling->type, AutoscalerType::kReactive);
  EXPECT_EQ(b.autoscaling->scale_up_at, 80);
  EXPECT_EQ(b.autoscaling->scale_down_at, 20);
}

TEST(DefaultsTest, ReplacementSafetyLimits) {
  const Config defaults = Load(kPool);
  const PoolHealthConfig& h = defaults.pools.at("p").health;
  EXPECT_EQ(h.max_concurrent_replacements, 2);
  EXPECT_EQ(h.max_unhealthy_percent, 50);
  EXPECT_EQ(h.drain_timeout, absl::Minutes(5));
  const Config c = Load(absl::StrCat(R"(defaults:
  health:
    max_unhealthy_percent: 30
)",
                                     kPool, R"(    health:
      max_concurrent_replacements: 1
      drain_timeout: 90s
)"));
  const PoolHealthConfig& p = c.pools.at("p").health;
  EXPECT_EQ(p.max_concurrent_replacements, 1);
  EXPECT_EQ(p.max_unhealthy_percent, 30);  // inherited key by key
  EXPECT_EQ(p.drain_timeout, absl::Seconds(90));
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    health:\n      max_unhealthy_percent: "
                                  "101\n")),
              SizeIs(1));
  EXPECT_THAT(
      Errors(absl::StrCat(
          kPool, "    health:\n      max_concurrent_replacements: 0\n")),
      SizeIs(1));
}

TEST(DefaultsTest, AutoscalerAndProviderDefaults) {
  const Config c = Load(R"(providers:
  l: {type: lambda}
  g: {type: gcp, project: p}
  loc: {type: local}
autoscaling:
  type: composite
  autoscalers:
    - type: predictive
    - type: queue
)");
  const AutoscalingConfig& a = *c.defaults.autoscaling;
  EXPECT_EQ(a.mode, CompositeMode::kMax);
  EXPECT_EQ(a.autoscalers[0].lookback_window, 10);
  EXPECT_EQ(a.autoscalers[0].growth_factor, 1.2);
  EXPECT_THAT(a.autoscalers[0].fallback, IsEmpty());
  EXPECT_EQ(a.autoscalers[1].jobs_per_node, 10);
  EXPECT_EQ(c.providers.at("l").api_key_env, "LAMBDA_API_KEY");
  EXPECT_EQ(c.providers.at("g").zone, "us-central1-a");
  EXPECT_EQ(c.providers.at("loc").gpu_count, 8);
  EXPECT_EQ(c.providers.at("loc").gpu_model, "NVIDIA H100 80GB HBM3");
  EXPECT_FALSE(c.providers.at("loc").keep_instances);
}

TEST(DefaultsTest, NoPoolsIsValid) {
  const Config c = Load("providers:\n  fake:\n    type: fake\n");
  EXPECT_THAT(c.pools, IsEmpty());
}

// ----------------------------------------------------------------- aliases

TEST(AliasTest, AliasesLoadTheSameConfigAsCanonicalKeys) {
  const Config canonical = Load(R"(server:
  address: ":7000"
  external_address: http://cp:7000
  heartbeat_interval: 10s
  health_policy: p.yaml
  notifier:
    type: noop
defaults:
  ssh_keys: [k]
  health:
    unhealthy_after: 3
  cooldown: 2m
pools:
  p:
    provider: fake
    instance_type: t
    min_nodes: 1
    max_nodes: 4
    cooldown: 1m
    health:
      unhealthy_after: 5
    autoscaling:
      type: composite
      autoscalers:
        - type: reactive
          scale_up_at: 70
          scale_down_at: 10
        - type: scheduled
          schedule:
            - days: [sat]
              start: 1
              end: 2
              max_nodes: 2
)");
  const Config aliased = Load(R"(server:
  grpc_port: 7000
  health_policy_path: p.yaml
global:
  ssh_key_names: [k]
  agent:
    server: http://cp:7000
    heartbeat_interval: 10s
coordinator:
  type: noop
health:
  unhealthy_threshold: 3
scaling:
  cooldown_period: 2m
pools:
  - name: p
    provider: fake
    instance_type: t
    scaling:
      min_nodes: 1
      max_nodes: 4
      cooldown_period: 1m
      autoscaler:
        type: composite
        strategies:
          - type: reactive
            scale_up_threshold: 70
            scale_down_threshold: 10
          - type: scheduled
            schedule:
              - days: [Saturday]
                start_hour: 1
                end_hour: 2
                max_nodes: 2
    health:
      unhealthy_threshold: 5
)");
  EXPECT_TRUE(canonical == aliased);
  EXPECT_EQ(aliased.server.address, ":7000");
  EXPECT_EQ(aliased.pools.at("p").cooldown, absl::Minutes(1));
  EXPECT_EQ(aliased.pools.at("p").health.unhealthy_after, 5);
}

TEST(AliasTest, MergeKeysAreExpandedAndChecked) {
  const Config c = Load(R"(x-pool: &base
  provider: fake
  instance_type: t
  max_nodes: 4
pools:
  a:
    <<: *base
  b:
    <<: *base
    max_nodes: 8
)");
  EXPECT_EQ(c.pools.at("a").max_nodes, 4);
  EXPECT_EQ(c.pools.at("b").max_nodes, 8);
  EXPECT_EQ(c.pools.at("b").instance_type, "t");
}

// Compose-style files keep several anchors under x- keys; each is its own
// key (they were all taken for one setting, so a second one was refused).
TEST(AliasTest, EveryXKeyIsItsOwnAndIgnored) {
  const Config c = Load(R"(x-provider: &provider
  type: fake
x-pool: &pool
  provider: fake
  instance_type: t
x-unused: [1, 2]
providers:
  fake: *provider
pools:
  p:
    <<: *pool
    max_nodes: 3
)");
  EXPECT_EQ(c.pools.at("p").max_nodes, 3);
  EXPECT_EQ(c.pools.at("p").instance_type, "t");
  // The same x- key twice is still a duplicate key.
  EXPECT_THAT(Errors("x-a: 1\nx-a: 2\n"),
              ElementsAre("navarch.yaml:2:1: duplicate key 'x-a' (first at "
                          "line 1)"));
}

// m0 is a valid pool and each m<i> merges m<i-1> `fan` times: read naively,
// pool p visits fan^depth mappings although the file is under a kilobyte.
std::string MergeBomb(int depth, int fan) {
  std::string yaml =
      "providers: {fake: {type: fake}}\n"
      "x-m0: &m0 {provider: fake, instance_type: t, max_nodes: 4}\n";
  for (int i = 1; i <= depth; ++i) {
    const std::vector<std::string> refs(fan, absl::StrCat("*m", i - 1));
    absl::StrAppend(&yaml, "x-m", i, ": &m", i, " {<<: [",
                    absl::StrJoin(refs, ", "), "]}\n");
  }
  absl::StrAppend(&yaml, "pools:\n  p:\n    <<: *m", depth, "\n");
  return yaml;
}

// The same with composite autoscalers: each level lists the one below `fan`
// times.
std::string CompositeBomb(int depth, int fan) {
  std::string yaml = "x-c0: &c0 {type: reactive}\n";
  for (int i = 1; i <= depth; ++i) {
    const std::vector<std::string> refs(fan, absl::StrCat("*c", i - 1));
    absl::StrAppend(&yaml, "x-c", i, ": &c", i,
                    " {type: composite, autoscalers: [",
                    absl::StrJoin(refs, ", "), "]}\n");
  }
  absl::StrAppend(&yaml, "defaults:\n  autoscaling: *c", depth, "\n");
  return yaml;
}

// Refused, with one error, in well under the time the expansion would take
// (seconds at depth 20, forever at 24). The bound is generous for slow
// machines and sanitizers; the refusal itself takes milliseconds.
void ExpectRefusedQuickly(const std::string& yaml) {
  const auto start = std::chrono::steady_clock::now();
  const ConfigLoadResult r = ParseConfig(yaml, "bomb.yaml");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  ASSERT_THAT(r.errors, SizeIs(1u)) << r.status();
  EXPECT_THAT(r.errors[0].message,
              testing::HasSubstr("YAML expands to more than 50000 nodes"));
  EXPECT_GT(r.errors[0].line, 0);
}

TEST(AliasTest, MergeKeyBombIsRefusedQuickly) {
  const std::string yaml = MergeBomb(24, 2);
  EXPECT_LT(yaml.size(), 1000u);
  ExpectRefusedQuickly(yaml);
  ExpectRefusedQuickly(MergeBomb(12, 4));
  // At the top level too.
  ExpectRefusedQuickly(absl::StrCat(MergeBomb(24, 2), "<<: *m24\n"));
}

TEST(AliasTest, CompositeAliasBombIsRefusedQuickly) {
  ExpectRefusedQuickly(CompositeBomb(12, 4));
}

// The budget is on repetition, not on anchors: a few levels of merges and
// many pools sharing anchors load.
TEST(AliasTest, ModerateMergesLoad) {
  const Config c = Load(absl::StrCat(MergeBomb(3, 2), R"(  q:
    <<: [*m3, *m2]
    max_nodes: 5
)"));
  EXPECT_EQ(c.pools.at("p").max_nodes, 4);
  EXPECT_EQ(c.pools.at("q").max_nodes, 5);

  std::string many = MergeBomb(2, 2);
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&many, "  p", i, ": {<<: *m2, max_nodes: ", i % 9 + 1,
                    "}\n");
  }
  EXPECT_EQ(Load(many).pools.size(), 1001u);
}

// --------------------------------------------------------------- durations

TEST(DurationTest, GoStringsAndZero) {
  const Config c = Load(R"(server:
  heartbeat_interval: 1m30s
  heartbeat_timeout: 0
  health_check_interval: "1.5h"
  autoscale_interval: 0s
  notifier:
    type: webhook
    webhook:
      drain_url: http://x
      timeout: 500ms
)");
  EXPECT_EQ(c.server.heartbeat_interval, absl::Seconds(90));
  EXPECT_EQ(c.server.heartbeat_timeout, absl::ZeroDuration());
  EXPECT_EQ(c.server.health_check_interval, absl::Minutes(90));
  // 0 keeps the default, as upstream.
  EXPECT_EQ(c.server.autoscale_interval, absl::Seconds(30));
  EXPECT_EQ(c.server.notifier.webhook.timeout, absl::Milliseconds(500));

  const Config zero = Load("server:\n  heartbeat_interval: 0\n");
  EXPECT_EQ(zero.server.heartbeat_interval, absl::Seconds(30));
}

// ----------------------------------------------------------------- labels

TEST(LabelTest, PoolLabelIsAlwaysAdded) {
  const Config c = Load(absl::StrCat(kPool, R"(    labels:
      team: ml
      priority: "1"
      pool: p
)"));
  EXPECT_EQ(c.pools.at("p").labels,
            (std::map<std::string, std::string>{
                {"pool", "p"}, {"priority", "1"}, {"team", "ml"}}));
  EXPECT_EQ(Load(kPool).pools.at("p").labels,
            (std::map<std::string, std::string>{{"pool", "p"}}));
}

// ------------------------------------------------------------- resolution

TEST(ResolveTest, AgentHttpAddressFollowsTheExternalHostOnTheHttpPort) {
  ServerConfig s;
  EXPECT_EQ(AgentHttpAddress(s), "http://localhost:8080");
  s.http_address = "10.1.2.3:9000";
  EXPECT_EQ(AgentHttpAddress(s), "http://10.1.2.3:9000");
  s.external_address = "https://cp.example.com:50051";
  EXPECT_EQ(AgentHttpAddress(s), "https://cp.example.com:9000");
  s.external_address = "https://[2001:db8::1]:50051/grpc";
  EXPECT_EQ(AgentHttpAddress(s), "https://[2001:db8::1]:9000");
  s.external_address = "https://cp.example.com";
  EXPECT_EQ(AgentHttpAddress(s), "https://cp.example.com:9000");
  s.external_http_address = "https://downloads.example.com";
  EXPECT_EQ(AgentHttpAddress(s), "https://downloads.example.com");

  Config c = Load(
      "server:\n  external_http_address: https://lb.example.com:443\n"
      "  agent_binary: /usr/bin/node-agent\n"
      "  agent_package: /srv/navarch-node-agent.deb\n");
  EXPECT_EQ(c.server.external_http_address, "https://lb.example.com:443");
  EXPECT_EQ(c.server.agent_binary, "/usr/bin/node-agent");
  EXPECT_EQ(c.server.agent_package, "/srv/navarch-node-agent.deb");
  ResolveConfig(&c);
  EXPECT_EQ(c.server.external_http_address, "https://lb.example.com:443");
}

TEST(ResolveTest, DerivedValues) {
  Config c = DefaultConfig();
  EXPECT_EQ(EffectiveHeartbeatTimeout(c.server), absl::Seconds(90));
  EXPECT_EQ(DatabasePath(c), "./navarch-data/navarch.db");
  EXPECT_EQ(AgentServerAddress(c.server), "http://localhost:50051");
  ResolveConfig(&c);
  EXPECT_EQ(c.server.heartbeat_timeout, absl::Seconds(90));
  EXPECT_EQ(c.storage.path, "./navarch-data/navarch.db");
  EXPECT_EQ(c.server.external_address, "http://localhost:50051");
  const Config once = c;
  ResolveConfig(&c);
  EXPECT_TRUE(c == once);  // Idempotent.

  Config d = DefaultConfig();
  d.server.heartbeat_interval = absl::Seconds(10);
  d.server.data_dir = "/var/lib/navarch/";
  d.server.address = "0.0.0.0:7000";
  ResolveConfig(&d);
  EXPECT_EQ(d.server.heartbeat_timeout, absl::Seconds(30));
  EXPECT_EQ(d.storage.path, "/var/lib/navarch/navarch.db");
  EXPECT_EQ(d.server.external_address, "http://localhost:7000");

  Config e = DefaultConfig();
  e.server.heartbeat_timeout = absl::Minutes(2);
  e.server.address = "10.0.0.5:50051";
  e.storage.path = "/data/x.db";
  ResolveConfig(&e);
  EXPECT_EQ(e.server.heartbeat_timeout, absl::Minutes(2));
  EXPECT_EQ(e.storage.path, "/data/x.db");
  EXPECT_EQ(e.server.external_address, "http://10.0.0.5:50051");

  Config m = DefaultConfig();
  m.storage.backend = StorageBackend::kMemory;
  m.server.external_address = "https://cp.example.com";
  ResolveConfig(&m);
  EXPECT_EQ(m.storage.path, "");
  EXPECT_EQ(m.server.external_address, "https://cp.example.com");
}

// ------------------------------------------------------------------- files

TEST(FileTest, MissingFileIsNotFound) {
  absl::StatusOr<Config> c = LoadConfigFile("/nonexistent/navarch.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("/nonexistent/navarch.yaml"),
            std::string::npos);
}

TEST(FileTest, ErrorsNameTheFile) {
  const std::string path =
      absl::StrCat(testing::TempDir(), "/config_test_bad.yaml");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("pools:\n  p:\n    provider: fake\n    instance_type: t\n", f);
  fclose(f);
  absl::StatusOr<Config> c = LoadConfigFile(path);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            absl::StrCat(path, ":2:3: pools.p: max_nodes is required"));
  std::remove(path.c_str());
}

TEST(NamesTest, NamesAsWrittenInYaml) {
  EXPECT_EQ(ProviderTypeName(ProviderType::kLocal), "local");
  EXPECT_EQ(StrategyName(SelectionStrategy::kRoundRobin), "round-robin");
  EXPECT_EQ(AutoscalerTypeName(AutoscalerType::kPredictive), "predictive");
  EXPECT_EQ(CompositeModeName(CompositeMode::kAvg), "avg");
  EXPECT_EQ(NotifierTypeName(NotifierType::kWebhook), "webhook");
  EXPECT_EQ(StorageBackendName(StorageBackend::kMemory), "memory");
  EXPECT_EQ(AuthRoleName(AuthRole::kOperator), "operator");
}

// ------------------------------------------------------------ auth and tls

TEST(AuthConfigTest, TokensWithRoles) {
  const Config c = Load(R"(auth:
  tokens:
    - {name: ops, token_env: OPS_TOKEN, role: operator}
    - {name: grafana, token_file: /etc/navarch/view.token, role: viewer}
    - name: agents
      token_env: AGENT_TOKEN
      role: agent
  protect_metrics: true
)");
  ASSERT_THAT(c.auth.tokens, SizeIs(3));
  EXPECT_TRUE(c.auth.enabled());
  EXPECT_EQ(c.auth.tokens[0].name, "ops");
  EXPECT_EQ(c.auth.tokens[0].token_env, "OPS_TOKEN");
  EXPECT_EQ(c.auth.tokens[0].role, AuthRole::kOperator);
  EXPECT_EQ(c.auth.tokens[1].token_file, "/etc/navarch/view.token");
  EXPECT_EQ(c.auth.tokens[1].role, AuthRole::kViewer);
  EXPECT_EQ(c.auth.tokens[2].role, AuthRole::kAgent);
  EXPECT_EQ(c.auth.tokens[2].value, "");
  EXPECT_TRUE(c.auth.protect_metrics);
  EXPECT_FALSE(c.auth.protect_probes);
  EXPECT_FALSE(DefaultConfig().auth.enabled());
  EXPECT_TRUE(Load("auth:\n  tokens: []\n").auth.tokens.empty());
}

TEST(AuthConfigTest, NodeTokenKeyAndSharedAgentTokens) {
  const Config c = Load(R"(auth:
  node_token_key: {key_env: NODE_KEY}
  allow_shared_agent_tokens: false
)");
  ASSERT_TRUE(c.auth.node_token_key.has_value());
  EXPECT_EQ(c.auth.node_token_key->token_env, "NODE_KEY");
  EXPECT_EQ(c.auth.node_token_key->name, "node_token_key");
  EXPECT_FALSE(c.auth.allow_shared_agent_tokens);
  // A node token key alone turns authentication on.
  EXPECT_TRUE(c.auth.enabled());
  EXPECT_EQ(Load("auth:\n  node_token_key: {key_file: /k}\n")
                .auth.node_token_key->token_file,
            "/k");
  // Upstream's configurations have neither key.
  EXPECT_FALSE(DefaultConfig().auth.node_token_key.has_value());
  EXPECT_TRUE(DefaultConfig().auth.allow_shared_agent_tokens);

  EXPECT_THAT(Errors("auth:\n  node_token_key: {}\n"),
              ElementsAre("navarch.yaml:2:19: auth.node_token_key: needs "
                          "key_env or key_file"));
  EXPECT_THAT(Errors("auth:\n  node_token_key: {key_env: A, key_file: /k}\n"),
              ElementsAre("navarch.yaml:2:19: auth.node_token_key: key_env "
                          "and key_file are exclusive: keep one"));
  EXPECT_THAT(Errors("auth:\n  node_token_key: {key_env: 1A}\n"),
              ElementsAre("navarch.yaml:2:29: auth.node_token_key.key_env: "
                          "invalid environment variable name '1A'"));
  EXPECT_THAT(Errors("auth:\n  node_token_key: s3cret\n"),
              ElementsAre("navarch.yaml:2:19: auth.node_token_key: expected "
                          "a mapping with key_env or key_file"));
  EXPECT_THAT(Errors("auth:\n  allow_shared_agent_tokens: maybe\n"), SizeIs(1));
}

TEST(AuthConfigTest, EveryMistakeIsNamed) {
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {token_env: X, role: viewer}\n"),
      ElementsAre("navarch.yaml:3:7: auth.tokens[0]: name is required"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a, role: viewer}\n"),
      ElementsAre(
          "navarch.yaml:3:7: auth.tokens[0]: needs token_env or token_file"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a, token_env: X, token_file: "
             "/f, role: viewer}\n"),
      ElementsAre("navarch.yaml:3:7: auth.tokens[0]: token_env and "
                  "token_file are exclusive: keep one"));
  EXPECT_THAT(Errors("auth:\n  tokens:\n    - {name: a, token_env: X}\n"),
              ElementsAre("navarch.yaml:3:7: auth.tokens[0]: role is required "
                          "(viewer, agent, operator)"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a, token_env: X, role: admin}\n"),
      ElementsAre("navarch.yaml:3:37: auth.tokens[0].role: unknown role "
                  "'admin' (viewer, agent, operator)"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a, token_env: 1X, role: "
             "viewer}\n"),
      ElementsAre("navarch.yaml:3:28: auth.tokens[0].token_env: invalid "
                  "environment variable name '1X'"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a, token: s3cret, role: "
             "viewer}\n"),
      ElementsAre("navarch.yaml:3:17: auth.tokens[0]: 'token': the secret "
                  "does not belong in the configuration file; use token_env "
                  "or token_file"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a, token_env: X, role: viewer}\n"
             "    - {name: a, token_env: Y, role: agent}\n"),
      ElementsAre("navarch.yaml:4:14: auth.tokens[1].name: token 'a' is "
                  "defined twice"));
  EXPECT_THAT(
      Errors("auth:\n  tokens:\n    - {name: a b, token_env: X, role: "
             "viewer}\n"),
      ElementsAre("navarch.yaml:3:14: auth.tokens[0].name: invalid token name "
                  "'a b': use up to 63 letters, digits, '-', '_' or '.', "
                  "starting with a letter or digit"));
  EXPECT_THAT(Errors("auth:\n  token: x\n"),
              ElementsAre("navarch.yaml:2:3: auth: unknown key 'token' "
                          "(known: tokens, protect_metrics, protect_probes, "
                          "node_token_key, allow_shared_agent_tokens)"));
  EXPECT_THAT(Errors("auth:\n  tokens:\n    - ops\n"),
              ElementsAre("navarch.yaml:3:7: auth.tokens[0]: expected a "
                          "mapping with name, token_env or token_file, and "
                          "role"));
  EXPECT_THAT(Errors("auth:\n  protect_metrics: sometimes\n"), SizeIs(1));
}

TEST(TlsConfigTest, CertificateKeyAndClientCa) {
  const Config c = Load(R"(server:
  tls:
    cert_file: /etc/navarch/tls/server.crt
    key_file: /etc/navarch/tls/server.key
    client_ca_file: /etc/navarch/tls/ca.crt
)");
  EXPECT_TRUE(c.server.tls.enabled());
  EXPECT_EQ(c.server.tls.cert_file, "/etc/navarch/tls/server.crt");
  EXPECT_EQ(c.server.tls.key_file, "/etc/navarch/tls/server.key");
  EXPECT_EQ(c.server.tls.client_ca_file, "/etc/navarch/tls/ca.crt");
  EXPECT_FALSE(DefaultConfig().server.tls.enabled());
  EXPECT_FALSE(Load("server:\n  tls:\n").server.tls.enabled());

  EXPECT_THAT(Errors("server:\n  tls:\n    cert_file: /a\n"),
              ElementsAre("navarch.yaml:3:5: server.tls: needs both "
                          "cert_file and key_file"));
  EXPECT_THAT(Errors("server:\n  tls:\n    client_ca_file: /a\n"),
              ElementsAre("navarch.yaml:3:5: server.tls: needs both "
                          "cert_file and key_file"));
  EXPECT_THAT(Errors("server:\n  tls:\n    cert_file: /a\n    key_file: "
                     "\"\"\n"),
              ElementsAre("navarch.yaml:3:5: server.tls: needs both "
                          "cert_file and key_file",
                          "navarch.yaml:4:15: server.tls.key_file: must not "
                          "be empty"));
  EXPECT_THAT(Errors("server:\n  tls:\n    ca_file: /a\n"),
              ElementsAre("navarch.yaml:3:5: server.tls: unknown key "
                          "'ca_file' (known: cert_file, key_file, "
                          "client_ca_file)"));
}

TEST(HttpLimitsConfigTest, ReadsEveryLimitAndRefusesNonsense) {
  const Config c = Load(R"(server:
  http:
    threads: 8
    max_connections: 200
    max_connections_per_client: 0
    head_timeout: 3s
    body_timeout: 1m
)");
  EXPECT_EQ(c.server.http.threads, 8);
  EXPECT_EQ(c.server.http.max_connections, 200);
  EXPECT_EQ(c.server.http.max_connections_per_client, 0);
  EXPECT_EQ(c.server.http.head_timeout, absl::Seconds(3));
  EXPECT_EQ(c.server.http.body_timeout, absl::Minutes(1));
  EXPECT_EQ(DefaultConfig().server.http, HttpLimitsConfig{});
  EXPECT_THAT(Errors("server:\n  http:\n    max_connections: 0\n"), SizeIs(1));
  EXPECT_THAT(Errors("server:\n  http:\n    head_timeout: 1ms\n"), SizeIs(1));
  EXPECT_THAT(Errors("server:\n  http:\n    threads: -1\n"), SizeIs(1));
  EXPECT_THAT(Errors("server:\n  http:\n    max_conns: 5\n"), SizeIs(1));
}

TEST(HttpAddressTest, AnyFreeGrpcPortMeansAnyFreeHttpPortUnlessSet) {
  EXPECT_EQ(Load("server:\n  address: \"127.0.0.1:0\"\n").server.http_address,
            "127.0.0.1:0");
  EXPECT_EQ(Load("server:\n  address: \":0\"\n").server.http_address, ":0");
  EXPECT_EQ(Load("server:\n  address: \"127.0.0.1:0\"\n  http_address: "
                 "\":9090\"\n")
                .server.http_address,
            ":9090");
  EXPECT_EQ(Load("server:\n  address: \":50052\"\n").server.http_address,
            ":8080");
}

}  // namespace
}  // namespace navarch

namespace navarch {
namespace {

// ------------------------------------------------------- metrics sources

TEST(MetricsSourceConfigTest, EverySourceLoads) {
  Config c = Load(absl::StrCat(kPool, R"(    metrics:
      source: http_json
      url: http://sched:8080/queue
      headers: {Authorization: "Bearer x"}
      timeout: 5s
)"));
  const MetricsSourceConfig& m = c.pools["p"].metrics;
  EXPECT_EQ(m.type, MetricsSourceType::kHttpJson);
  EXPECT_EQ(m.url, "http://sched:8080/queue");
  EXPECT_EQ(m.headers.at("Authorization"), "Bearer x");
  EXPECT_EQ(m.timeout, absl::Seconds(5));

  Config cmd = Load(absl::StrCat(kPool, R"(    metrics:
      source: command
      command: ["/usr/local/bin/queue-json", "--partition", "gpu"]
)"));
  EXPECT_THAT(cmd.pools["p"].metrics.command,
              ElementsAre("/usr/local/bin/queue-json", "--partition", "gpu"));
  Config sh = Load(absl::StrCat(kPool, R"(    metrics:
      source: command
      command: "squeue -h -t PD | wc -l | jq -R '{queue_depth: tonumber}'"
)"));
  EXPECT_THAT(sh.pools["p"].metrics.command,
              ElementsAre("/bin/sh", "-c",
                          "squeue -h -t PD | wc -l | jq -R '{queue_depth: "
                          "tonumber}'"));

  Config prom = Load(absl::StrCat(kPool, R"(    metrics:
      source: prometheus
      url: http://prometheus:9090
      queue_depth: sum(slurm_jobs_pending{partition="gpu"})
)"));
  EXPECT_EQ(prom.pools["p"].metrics.type, MetricsSourceType::kPrometheus);
  EXPECT_EQ(prom.pools["p"].metrics.queue_depth_query,
            "sum(slurm_jobs_pending{partition=\"gpu\"})");
  EXPECT_EQ(Load(kPool).pools["p"].metrics.type, MetricsSourceType::kFleet);
}

TEST(MetricsSourceConfigTest, MistakesAreNamed) {
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    metrics:\n      source: "
                                  "http_json\n")),
              ElementsAre("navarch.yaml:10:7: pools.p.metrics: source "
                          "'http_json' needs a url"));
  EXPECT_THAT(
      Errors(absl::StrCat(kPool,
                          "    metrics:\n      source: http_json\n"
                          "      url: http://x/\n      command: ls\n")),
      ElementsAre("navarch.yaml:12:16: pools.p.metrics.command: 'command' "
                  "does not apply to source 'http_json'"));
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    metrics:\n      source: "
                                  "prometheus\n      url: http://p/\n")),
              ElementsAre("navarch.yaml:10:7: pools.p.metrics: source "
                          "'prometheus' needs at least one query: "
                          "queue_depth, pending_jobs or utilization"));
  EXPECT_THAT(
      Errors(absl::StrCat(kPool, "    metrics:\n      source: kafka\n")),
      ElementsAre("navarch.yaml:10:15: pools.p.metrics.source: "
                  "unknown metrics source 'kafka' (fleet, http_json, "
                  "command, prometheus)"));
  EXPECT_THAT(Errors(absl::StrCat(kPool,
                                  "    metrics:\n      url: "
                                  "ftp://x/\n      source: http_json\n")),
              ::testing::Contains(::testing::HasSubstr(
                  "expected an http:// or https:// URL, got 'ftp://x/'")));
}

TEST(InstanceManagerConfigTest, UnknownInstances) {
  EXPECT_TRUE(Load("").instance_manager.terminate_unknown);
  EXPECT_FALSE(Load("instance_manager:\n  unknown_instances: report\n")
                   .instance_manager.terminate_unknown);
  EXPECT_THAT(Errors("instance_manager:\n  unknown_instances: keep\n"),
              ElementsAre("navarch.yaml:2:22: instance_manager."
                          "unknown_instances: unknown unknown_instances "
                          "'keep' (terminate, report)"));
}

}  // namespace
}  // namespace navarch

namespace navarch {
namespace {

TEST(StorageConfigTest, PostgresTakesADsnAndNoPath) {
  ConfigLoadResult r = ParseConfig(
      "storage:\n  backend: postgres\n  dsn: \"host=db1 dbname=navarch\"\n",
      "navarch.yaml");
  ASSERT_TRUE(r.status().ok()) << r.status();
  EXPECT_EQ(r.config.storage.backend, StorageBackend::kPostgres);
  EXPECT_EQ(r.config.storage.dsn, "host=db1 dbname=navarch");
  EXPECT_EQ(DatabasePath(r.config), "");
  EXPECT_EQ(r.config.ha.lease_duration, absl::Seconds(10));
  EXPECT_EQ(r.config.ha.replica_id, "");

  r = ParseConfig("ha:\n  lease_duration: 4s\n  replica_id: cp-1\n",
                  "navarch.yaml");
  ASSERT_TRUE(r.status().ok()) << r.status();
  EXPECT_EQ(r.config.ha.lease_duration, absl::Seconds(4));
  EXPECT_EQ(r.config.ha.replica_id, "cp-1");
  EXPECT_FALSE(ParseConfig("ha:\n  lease_duration: 100ms\n", "navarch.yaml")
                   .status()
                   .ok());
}

}  // namespace
}  // namespace navarch
