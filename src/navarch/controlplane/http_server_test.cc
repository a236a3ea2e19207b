// The HTTP listener in process: a real socket on port 0, the memory store,
// httplib's client. REST, Connect, probes, /metrics, auth and limits.
#include "navarch/controlplane/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "navarch/config/config_loader.h"
#include "navarch/controlplane/fleet_metrics.h"
#include "navarch/controlplane/process_metrics.h"
#include "navarch/controlplane/server.h"
#include "navarch/controlplane/test_util.h"
#include "navarch/health/evaluator.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "navarch/store/memory/memory_store.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

AuthTokenConfig Token(std::string name, std::string value, AuthRole role) {
  AuthTokenConfig t;
  t.name = std::move(name);
  t.value = std::move(value);
  t.role = role;
  return t;
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(AuthConfig auth = {}) {
    fleet_ = std::make_unique<FleetService>(store_, clock_, evaluator_,
                                            NullLogger(), FleetOptions{});
    ASSERT_TRUE(fleet_->Start().ok());
    auto a = Authenticator::Create(auth, false);
    ASSERT_TRUE(a.ok()) << a.status();
    auth_ = std::move(*a);
    rpc_ = std::make_unique<RpcMetrics>(registry_);
    AddFleetMetrics(registry_, *fleet_);
    AddProcessMetrics(registry_);
    AddBuildInfo(registry_);
    http_ = std::make_unique<HttpServer>(*fleet_, store_, *auth_, registry_,
                                         *rpc_, clock_, NullLogger());
    HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.body_timeout = absl::Seconds(2);
    options.max_response_bytes = max_response_bytes_;
    ASSERT_TRUE(http_->Start(options).ok());
    const std::string& address = http_->address();
    ASSERT_TRUE(
        absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port_));
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  }

  void TearDown() override {
    if (http_) http_->Stop();
    if (fleet_) fleet_->Stop();
  }

  void Register(const std::string& id, const std::string& provider = "fake",
                std::map<std::string, std::string> labels = {}) {
    RegisterNodeRequest r;
    r.set_node_id(id);
    r.set_provider(provider);
    r.set_region("us-east");
    r.set_zone(id == "n2" ? "us-east-1b" : "us-east-1a");
    r.add_gpus()->set_index(0);
    for (const auto& [k, v] : labels)
      (*r.mutable_metadata()->mutable_labels())[k] = v;
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet_->RegisterNode(r, done);
                }).ok());
  }

  httplib::Result Get(const std::string& path,
                      const httplib::Headers& headers = {}) {
    return client_->Get(path, headers);
  }
  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& type = "application/json",
                       const httplib::Headers& headers = {}) {
    return client_->Post(path, headers, body, type);
  }
  static json Json(const httplib::Result& r) {
    return json::parse(r->body, nullptr, false);
  }

  size_t max_response_bytes_ = kMaxResponseBytes;
  RealClock clock_;
  MemoryStore store_;
  PolicyEvaluator evaluator_;
  std::unique_ptr<FleetService> fleet_;
  std::unique_ptr<Authenticator> auth_;
  MetricsRegistry registry_;
  std::unique_ptr<RpcMetrics> rpc_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

// ------------------------------------------------------------------ probes

TEST_F(HttpServerTest, ProbesAndReadinessDuringShutdown) {
  Start();
  auto h = Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "ok\n");
  auto r = Get("/readyz");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ready\n");
  http_->SetDraining();
  r = Get("/readyz");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not ready: shutting down\n");
  EXPECT_EQ(Get("/healthz")->status, 200);
}

TEST_F(HttpServerTest, ReadyzNamesTheStoreProblem) {
  Start();
  store_.Close();
  auto r = Get("/readyz");
  EXPECT_EQ(r->status, 503);
  EXPECT_THAT(r->body, HasSubstr("not ready: store: "));
}

TEST_F(HttpServerTest, UnknownPathsAreJson404s) {
  Start();
  auto r = Get("/nope");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Json(r)["code"], "not_found");
  EXPECT_EQ(Json(r)["message"], "no such endpoint: GET /nope");
}

// -------------------------------------------------------------------- REST

TEST_F(HttpServerTest, ListNodesFiltersLikeTheCli) {
  Start();
  Register("n1", "lambda", {{"pool", "training"}, {"team", "a"}});
  Register("n2", "gcp", {{"pool", "inference"}});
  Register("n3", "lambda", {{"team", "b"}});
  auto ids = [&](const std::string& query) {
    auto r = Get("/api/v1/nodes" + query);
    EXPECT_EQ(r->status, 200) << query << ": " << r->body;
    std::vector<std::string> out;
    for (const auto& n : Json(r)) out.push_back(n["node_id"]);
    return out;
  };
  EXPECT_THAT(ids(""), ::testing::ElementsAre("n1", "n2", "n3"));
  EXPECT_THAT(ids("?provider=lambda"), ::testing::ElementsAre("n1", "n3"));
  EXPECT_THAT(ids("?zone=us-east-1b"), ::testing::ElementsAre("n2"));
  EXPECT_THAT(ids("?pool=training"), ::testing::ElementsAre("n1"));
  EXPECT_THAT(ids("?label=team=b"), ::testing::ElementsAre("n3"));
  EXPECT_THAT(ids("?label=team%3Db"), ::testing::ElementsAre("n3"));
  EXPECT_THAT(ids("?label=team=a&label=pool=training"),
              ::testing::ElementsAre("n1"));
  EXPECT_THAT(ids("?status=active&health=unknown&region=us-east"),
              ::testing::ElementsAre("n1", "n2", "n3"));
  EXPECT_THAT(ids("?status=NODE_STATUS_CORDONED"), ::testing::ElementsAre());

  auto bad = Get("/api/v1/nodes?status=sleepy");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(Json(bad)["code"], "invalid_argument");
  EXPECT_THAT(std::string(Json(bad)["message"]), HasSubstr("sleepy"));
  EXPECT_EQ(Get("/api/v1/nodes?label=team")->status, 400);
  auto typo = Get("/api/v1/nodes?provder=lambda");
  EXPECT_EQ(typo->status, 400);
  EXPECT_THAT(std::string(Json(typo)["message"]),
              HasSubstr("unknown query parameter \"provder\""));
  EXPECT_EQ(Get("/api/v1/nodes?zone=a&zone=b")->status, 400);
}

TEST_F(HttpServerTest, NodeJsonIsTheCliShape) {
  Start();
  Register("n1");
  auto r = Get("/api/v1/nodes/n1");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  json n = Json(r);
  EXPECT_EQ(n["node_id"], "n1");
  EXPECT_EQ(n["status"], "NODE_STATUS_ACTIVE");
  EXPECT_EQ(n["health_status"], "HEALTH_STATUS_UNKNOWN");
  EXPECT_TRUE(n.contains("registered_at"));
  EXPECT_EQ(n["gpus"][0]["index"], 0);  // zero values are present

  auto missing = Get("/api/v1/nodes/ghost");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Json(missing)["code"], "not_found");
  EXPECT_EQ(Json(missing)["message"], "node ghost not found");
  EXPECT_EQ(Get("/api/v1/nodes/bad%20id")->status, 400);
}

TEST_F(HttpServerTest, CordonUncordonDrainWithReasonsAndErrors) {
  Start();
  Register("n1");
  auto c = Post("/api/v1/nodes/n1/cordon", R"({"reason": "bad fan"})");
  ASSERT_EQ(c->status, 200) << c->body;
  EXPECT_FALSE(std::string(Json(c)["command_id"]).empty());
  EXPECT_EQ(Json(c)["node"]["status"], "NODE_STATUS_CORDONED");
  EXPECT_THAT(std::string(Json(c)["node"]["status_reason"]),
              HasSubstr("bad fan"));

  auto u = Post("/api/v1/nodes/n1/uncordon", "");
  EXPECT_EQ(u->status, 200) << u->body;
  auto again = Post("/api/v1/nodes/n1/uncordon", "");
  EXPECT_EQ(again->status, 400);
  EXPECT_EQ(Json(again)["code"], "failed_precondition");
  EXPECT_EQ(Post("/api/v1/nodes/n1/drain", "{}")->status, 200);
  EXPECT_EQ(Post("/api/v1/nodes/ghost/drain", "{}")->status, 404);

  EXPECT_EQ(Post("/api/v1/nodes/n1/cordon", "{not json")->status, 400);
  EXPECT_EQ(Post("/api/v1/nodes/n1/cordon", "[1]")->status, 400);
  EXPECT_EQ(Post("/api/v1/nodes/n1/cordon", R"({"reason": 5})")->status, 400);
  auto extra = Post("/api/v1/nodes/n1/cordon", R"({"reson": "x"})");
  EXPECT_EQ(extra->status, 400);
  EXPECT_THAT(std::string(Json(extra)["message"]), HasSubstr("reson"));
  // A path served for another method: 405 naming the methods it takes.
  auto wrong = Get("/api/v1/nodes/n1/cordon");
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->get_header_value("Allow"), "POST");
  EXPECT_EQ(Json(wrong)["code"], "unimplemented");

  // The event log names who asked (no auth: "operator").
  auto events = Get("/api/v1/events?node=n1&kind=command.issued");
  ASSERT_EQ(events->status, 200);
  ASSERT_GE(Json(events).size(), 1u);
  EXPECT_EQ(Json(events)[0]["actor"], "operator");
}

// As curl sends them: `curl -X POST URL` (no Content-Length at all) and
// `curl -d '{...}' URL` (the JSON labelled as a form).
TEST_F(HttpServerTest, CurlStylePostsWork) {
  Start();
  Register("n1");
  int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  const std::string request =
      "POST /api/v1/nodes/n1/cordon HTTP/1.1\r\nHost: x\r\n"
      "Connection: close\r\n\r\n";
  ASSERT_EQ(write(fd, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  EXPECT_THAT(response, HasSubstr("HTTP/1.1 200 OK"));
  auto form = Post("/api/v1/nodes/n1/drain", R"({"reason": "swap"})",
                   "application/x-www-form-urlencoded");
  EXPECT_EQ(form->status, 200) << form->body;
  EXPECT_THAT(std::string(Json(form)["node"]["status_reason"]),
              HasSubstr("swap"));
}

TEST_F(HttpServerTest, InstancesAndPools) {
  Start();
  auto list = Get("/api/v1/instances");
  EXPECT_EQ(list->status, 200);
  EXPECT_EQ(list->body, "[]\n");
  EXPECT_EQ(Get("/api/v1/instances?state=running&pool=x")->status, 200);
  EXPECT_EQ(Get("/api/v1/instances?state=napping")->status, 400);
  EXPECT_EQ(Get("/api/v1/instances/i-1")->status, 404);
  for (const auto& r :
       {Get("/api/v1/pools"), Get("/api/v1/pools/training"),
        Post("/api/v1/pools/training/scale", R"({"target": 3})")}) {
    EXPECT_EQ(r->status, 501);
    EXPECT_EQ(Json(r)["code"], "unimplemented");
  }
  EXPECT_EQ(Post("/api/v1/pools/training/scale", R"({"target": -1})")->status,
            400);
}

TEST_F(HttpServerTest, EventsArePagedWithLinkHeaders) {
  Start();
  for (int i = 0; i < 5; ++i) Register(absl::StrCat("n", i));
  auto first = Get("/api/v1/events?kind=node.registered&limit=2");
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(Json(first).size(), 2u);
  const std::string token = first->get_header_value("X-Next-Page-Token");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(first->get_header_value("Link"),
            absl::StrCat("</api/v1/events?kind=node.registered&limit=2&"
                         "page_token=",
                         token, ">; rel=\"next\""));
  std::vector<std::string> seen;
  std::string next = "/api/v1/events?kind=node.registered&limit=2";
  while (!next.empty()) {
    auto r = Get(next);
    ASSERT_EQ(r->status, 200);
    for (const auto& e : Json(r)) seen.push_back(e["node_id"]);
    next.clear();
    const std::string link = r->get_header_value("Link");
    if (!link.empty()) next = link.substr(1, link.find('>') - 1);
  }
  EXPECT_THAT(seen, ::testing::ElementsAre("n0", "n1", "n2", "n3", "n4"));
  EXPECT_EQ(Json(Get("/api/v1/events?since=1h&node=n3")).size(), 1u);
  EXPECT_EQ(Json(Get("/api/v1/events?since=2999-01-01T00:00:00Z")).size(), 0u);
  EXPECT_EQ(Get("/api/v1/events?since=yesterday")->status, 400);
  EXPECT_EQ(Get("/api/v1/events?limit=0")->status, 400);
  EXPECT_EQ(Get("/api/v1/events?page_token=abc")->status, 400);
}

// ------------------------------------------------------------------ paging

TEST_F(HttpServerTest, NodesArePagedWithLinkHeaders) {
  Start();
  for (int i = 0; i < 5; ++i) Register(absl::StrCat("n", i));
  auto first = Get("/api/v1/nodes?provider=fake&page_size=2");
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(Json(first).size(), 2u);
  EXPECT_EQ(first->get_header_value("Link"),
            "</api/v1/nodes?page_size=2&provider=fake&page_token=n1>; "
            "rel=\"next\"");
  std::vector<std::string> seen;
  std::string next = "/api/v1/nodes?provider=fake&page_size=2";
  int pages = 0;
  while (!next.empty()) {
    auto r = Get(next);
    ASSERT_EQ(r->status, 200) << r->body;
    ++pages;
    for (const auto& n : Json(r)) seen.push_back(n["node_id"]);
    next.clear();
    const std::string link = r->get_header_value("Link");
    if (!link.empty()) next = link.substr(1, link.find('>') - 1);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ::testing::ElementsAre("n0", "n1", "n2", "n3", "n4"));
  // Without page_size: every node, no Link.
  auto all = Get("/api/v1/nodes");
  EXPECT_EQ(Json(all).size(), 5u);
  EXPECT_FALSE(all->has_header("Link"));
  EXPECT_EQ(Get("/api/v1/nodes?page_size=0")->status, 400);
  EXPECT_EQ(Get("/api/v1/nodes?page_size=x")->status, 400);
  EXPECT_EQ(Get("/api/v1/events?page_size=2&limit=2")->status, 400);
  EXPECT_EQ(Json(Get("/api/v1/events?page_size=2")).size(), 2u);
}

TEST_F(HttpServerTest, AnUnpagedListTooLargeSaysToPage) {
  max_response_bytes_ = 100;
  Start();
  for (int i = 0; i < 5; ++i) Register(absl::StrCat("n", i));
  for (const std::string path :
       {"/api/v1/nodes", "/navarch.ControlPlaneService/ListNodes"}) {
    auto r = path[1] == 'a' ? Get(path) : Post(path, "{}");
    EXPECT_EQ(r->status, 429) << path;
    EXPECT_EQ(Json(r)["code"], "resource_exhausted") << path;
    EXPECT_THAT(std::string(Json(r)["message"]), HasSubstr("page_size"));
  }
  EXPECT_EQ(Get("/api/v1/nodes?page_size=1")->status, 200);
  auto paged =
      Post("/navarch.ControlPlaneService/ListNodes", R"({"pageSize": 2})");
  ASSERT_EQ(paged->status, 200) << paged->body;
  EXPECT_EQ(Json(paged)["nodes"].size(), 2u);
  EXPECT_EQ(Json(paged)["nextPageToken"], "n1");
}

// Instances page in the fleet core like nodes (FleetService::ListInstances);
// the transport passes page_size and page_token through.
TEST_F(HttpServerTest, InstancesArePagedWithLinkHeaders) {
  Start();
  for (int i = 0; i < 3; ++i) {
    InstanceInfo instance;
    instance.set_instance_id(absl::StrCat("i", i));
    instance.set_provider("fake");
    instance.set_pool_name("train");
    instance.set_state(INSTANCE_STATE_RUNNING);
    ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                  fleet_->UpsertInstance(instance, Actor{"test"}, done);
                }).ok());
  }
  auto first = Get("/api/v1/instances?page_size=2");
  ASSERT_EQ(first->status, 200) << first->body;
  if (Json(first).size() == 3u) {
    GTEST_SKIP() << "FleetService::ListInstances does not page yet";
  }
  EXPECT_EQ(Json(first).size(), 2u);
  EXPECT_EQ(first->get_header_value("Link"),
            "</api/v1/instances?page_size=2&page_token=i1>; rel=\"next\"");
  auto second = Get("/api/v1/instances?page_size=2&page_token=i1");
  ASSERT_EQ(second->status, 200) << second->body;
  EXPECT_EQ(Json(second).size(), 1u);
  EXPECT_FALSE(second->has_header("Link"));
}

// ------------------------------------------------- Connect WatchCommands

// A Connect streaming client's view: the envelopes of a response body.
struct Envelopes {
  std::vector<std::pair<int, std::string>> list;  // (flags, payload)
  std::string partial;

  // Splits what arrived into whole envelopes.
  void Add(const char* data, size_t n) {
    partial.append(data, n);
    while (partial.size() >= 5) {
      uint32_t len = 0;
      for (int i = 1; i <= 4; ++i) {
        len = len << 8 | static_cast<uint8_t>(partial[i]);
      }
      if (partial.size() < 5 + len) break;
      list.emplace_back(static_cast<uint8_t>(partial[0]),
                        partial.substr(5, len));
      partial.erase(0, 5 + len);
    }
  }
};

std::string RequestEnvelope(const std::string& json) {
  std::string out(5, '\0');
  out[4] = static_cast<char>(json.size());
  return out + json;
}

TEST_F(HttpServerTest, ConnectWatchCommandsIsAServerStream) {
  Start();
  Register("n1");
  IssueCommandRequest cordon;
  cordon.set_node_id("n1");
  cordon.set_command_type(NODE_COMMAND_TYPE_CORDON);
  ASSERT_TRUE(Await<IssueCommandResponse>([&](auto done) {
                fleet_->IssueCommand(cordon, Actor{"test"}, done);
              }).ok());
  absl::Mutex mu;
  Envelopes envelopes;
  absl::Notification first;
  httplib::Request req;
  req.method = "POST";
  req.path = "/navarch.ControlPlaneService/WatchCommands";
  req.set_header("Content-Type", "application/connect+json");
  req.set_header("Connect-Protocol-Version", "1");
  req.body = RequestEnvelope(R"({"nodeId": "n1"})");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    absl::MutexLock lock(&mu);
    envelopes.Add(data, n);
    if (!envelopes.list.empty() && !first.HasBeenNotified()) first.Notify();
    return true;
  };
  httplib::Response res;
  httplib::Error error;
  std::thread client([&] { client_->send(req, res, error); });
  ASSERT_TRUE(first.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // The control plane closes the stream (as at shutdown): the client reads
  // an end-of-stream message with the error, not a broken body.
  fleet_->CloseWatchers();
  client.join();
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.get_header_value("Content-Type"), "application/connect+json");
  absl::MutexLock lock(&mu);
  ASSERT_EQ(envelopes.list.size(), 2u);
  EXPECT_EQ(envelopes.list[0].first, 0);
  json command = json::parse(envelopes.list[0].second);
  EXPECT_EQ(command["type"], "NODE_COMMAND_TYPE_CORDON");
  EXPECT_FALSE(std::string(command["commandId"]).empty());
  EXPECT_EQ(envelopes.list[1].first, 2);
  json end = json::parse(envelopes.list[1].second);
  EXPECT_EQ(end["error"]["code"], "unavailable");
  EXPECT_TRUE(envelopes.partial.empty());
}

TEST_F(HttpServerTest, ConnectWatchErrorsComeInTheEndOfStreamMessage) {
  Start();
  const std::string path = "/navarch.ControlPlaneService/WatchCommands";
  auto r = Post(path, RequestEnvelope(R"({"nodeId": "ghost"})"),
                "application/connect+json");
  ASSERT_EQ(r->status, 200);
  Envelopes e;
  e.Add(r->body.data(), r->body.size());
  ASSERT_EQ(e.list.size(), 1u);
  EXPECT_EQ(e.list[0].first, 2);
  EXPECT_EQ(json::parse(e.list[0].second)["error"]["code"], "not_found");
  // Not an envelope.
  r = Post(path, "{}", "application/connect+json");
  ASSERT_EQ(r->status, 200);
  e = {};
  e.Add(r->body.data(), r->body.size());
  ASSERT_EQ(e.list.size(), 1u);
  EXPECT_EQ(json::parse(e.list[0].second)["error"]["code"], "invalid_argument");
  // A unary content type for a stream.
  EXPECT_EQ(Post(path, "{}", "application/json")->status, 415);
}

// ----------------------------------------------------------------- Connect

TEST_F(HttpServerTest, ConnectJsonServesEveryUnaryRpc) {
  Start();
  const std::string base = "/navarch.ControlPlaneService/";
  auto call = [&](const std::string& method, const std::string& body) {
    auto r = Post(base + method, body);
    EXPECT_EQ(r->status, 200) << method << ": " << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    return Json(r);
  };
  json reg =
      call("RegisterNode",
           R"({"nodeId": "n1", "provider": "fake", "gpus": [{"index": 0}]})");
  EXPECT_EQ(reg["success"], true);
  EXPECT_EQ(reg["config"]["heartbeatIntervalSeconds"], 30);  // lowerCamelCase
  call("SendHeartbeat", R"({"node_id": "n1"})");  // proto names accepted too
  json health = call("ReportHealth", R"({"nodeId": "n1", "results": [
      {"checkName": "boot", "status": "HEALTH_STATUS_HEALTHY"}]})");
  EXPECT_EQ(health["nodeStatus"], "NODE_STATUS_ACTIVE");
  json nodes = call("ListNodes", "{}");
  ASSERT_EQ(nodes["nodes"].size(), 1u);
  EXPECT_EQ(nodes["nodes"][0]["nodeId"], "n1");
  EXPECT_EQ(call("GetNode", R"({"nodeId": "n1"})")["node"]["status"],
            "NODE_STATUS_ACTIVE");
  json issued = call(
      "IssueCommand",
      R"({"nodeId": "n1", "commandType": "NODE_COMMAND_TYPE_RUN_DIAGNOSTIC"})");
  EXPECT_FALSE(std::string(issued["commandId"]).empty());
  json commands = call("GetNodeCommands", R"({"nodeId": "n1"})");
  ASSERT_EQ(commands["commands"].size(), 1u);
  call("AckCommand",
       absl::StrCat(R"({"nodeId": "n1", "commandId": ")",
                    std::string(issued["commandId"]),
                    R"(", "outcome": "COMMAND_OUTCOME_SUCCEEDED"})"));
  EXPECT_EQ(call("ListInstances", "")["instances"], json());  // empty: left out
  EXPECT_FALSE(call("ListEvents", R"({"nodeId": "n1"})")["events"].empty());
  auto missing = Post(base + "GetInstance", R"({"instanceId": "i-9"})");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Json(missing)["code"], "not_found");
}

TEST_F(HttpServerTest, ConnectBinaryProtobuf) {
  Start();
  RegisterNodeRequest req;
  req.set_node_id("n1");
  auto r =
      Post("/navarch.ControlPlaneService/RegisterNode", req.SerializeAsString(),
           "application/proto", {{"Connect-Protocol-Version", "1"}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/proto");
  RegisterNodeResponse resp;
  ASSERT_TRUE(resp.ParseFromString(r->body));
  EXPECT_TRUE(resp.success());
  auto bad = Post("/navarch.ControlPlaneService/RegisterNode",
                  std::string("\xff\xff\xff", 3), "application/proto");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(bad->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(Json(bad)["code"], "invalid_argument");
}

TEST_F(HttpServerTest, ConnectMalformedRequestsAre400sNever500s) {
  Start();
  const std::string path = "/navarch.ControlPlaneService/GetNode";
  for (const std::string& body :
       {std::string("{"), std::string("[]"), std::string("null"),
        std::string(R"({"nodeId": 5})"),
        std::string(R"({"nodeId": "x", "nope": 1})"),
        std::string(R"({"nodeId": "\ud800"})"), std::string(2000, '['),
        std::string("\x00\x01", 2)}) {
    auto r = Post(path, body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body.substr(0, 40) << " -> " << r->body;
    EXPECT_EQ(Json(r)["code"], "invalid_argument") << r->body;
  }
  auto media = Post(path, "{}", "text/plain");
  EXPECT_EQ(media->status, 415);
  EXPECT_EQ(media->get_header_value("Accept-Post"),
            "application/json, application/proto");
  EXPECT_EQ(
      Post(path, "{}", "application/json", {{"Connect-Protocol-Version", "2"}})
          ->status,
      400);
  auto unknown = Post("/navarch.ControlPlaneService/DropTables", "{}");
  EXPECT_EQ(unknown->status, 501);
  EXPECT_EQ(Json(unknown)["code"], "unimplemented");
  // A unary content type for the stream: 415 naming the streaming ones.
  auto stream = Post("/navarch.ControlPlaneService/WatchCommands", "{}");
  EXPECT_EQ(stream->status, 415);
  EXPECT_THAT(std::string(Json(stream)["message"]),
              HasSubstr("application/connect+json"));
  auto gzip =
      Post(path, "xx", "application/json", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(gzip->status, 501);
  EXPECT_EQ(Json(gzip)["code"], "unimplemented");
}

// ------------------------------------------------------------------ limits

TEST_F(HttpServerTest, BodiesOverTheLimitAre413) {
  Start();
  auto r = Post("/navarch.ControlPlaneService/RegisterNode",
                std::string(5 << 20, ' '));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(Json(r)["code"], "resource_exhausted");
}

TEST_F(HttpServerTest, SurvivesSlowAndBrokenClients) {
  Start();
  // Clients that stall halfway through their request hold a worker each,
  // until the read timeout; others are still served meanwhile.
  std::vector<int> stalled;
  for (int i = 0; i < 8; ++i) {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    const std::string half =
        "POST /api/v1/nodes/n1/cordon HTTP/1.1\r\nHost: x\r\n";
    ASSERT_EQ(write(fd, half.data(), half.size()),
              static_cast<ssize_t>(half.size()));
    stalled.push_back(fd);
  }
  // Garbage and a client that hangs up mid-body.
  int junk = Connect(port_);
  const std::string garbage = "\x16\x03\x01 not http at all\r\n\r\n";
  ASSERT_GT(write(junk, garbage.data(), garbage.size()), 0);
  char buf[512];
  ssize_t n = read(junk, buf, sizeof(buf));
  EXPECT_GT(n, 0);
  EXPECT_THAT(std::string(buf, n > 0 ? n : 0), HasSubstr("400"));
  close(junk);
  int quitter = Connect(port_);
  const std::string partial =
      "POST /navarch.ControlPlaneService/ListNodes HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
  ASSERT_GT(write(quitter, partial.data(), partial.size()), 0);
  close(quitter);

  for (int i = 0; i < 20; ++i) {
    auto r = Get("/healthz");
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
  }
  for (int fd : stalled) close(fd);
}

// -------------------------------------------------------------------- auth

class HttpAuthTest : public HttpServerTest {
 protected:
  void SetUp() override {
    AuthConfig auth;
    auth.tokens = {Token("ops", "op-token", AuthRole::kOperator),
                   Token("grafana", "view-token", AuthRole::kViewer),
                   Token("agents", "agent-token", AuthRole::kAgent)};
    Start(auth);
    Register("n1");
  }
  static httplib::Headers As(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }
};

TEST_F(HttpAuthTest, MissingOrWrongTokensAre401WithAChallenge) {
  for (const auto& headers :
       {httplib::Headers{}, As("wrong"),
        httplib::Headers{{"Authorization", "Basic b3A6b3A="}}}) {
    auto r = Get("/api/v1/nodes", headers);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"),
              "Bearer realm=\"navarch\"");
    EXPECT_EQ(Json(r)["code"], "unauthenticated");
  }
  auto connect = Post("/navarch.ControlPlaneService/ListNodes", "{}");
  EXPECT_EQ(connect->status, 401);
  EXPECT_EQ(connect->get_header_value("WWW-Authenticate"),
            "Bearer realm=\"navarch\"");
}

TEST_F(HttpAuthTest, RolesDecideWhatATokenMayDo) {
  EXPECT_EQ(Get("/api/v1/nodes", As("view-token"))->status, 200);
  auto denied =
      Post("/api/v1/nodes/n1/cordon", "", "application/json", As("view-token"));
  EXPECT_EQ(denied->status, 403);
  EXPECT_EQ(Json(denied)["code"], "permission_denied");
  EXPECT_EQ(Get("/api/v1/nodes", As("agent-token"))->status, 403);
  // The provider routes read like the pool routes: viewers may (no provider
  // API here: 501 after the check), agents may not.
  EXPECT_EQ(Get("/api/v1/providers", As("view-token"))->status, 501);
  EXPECT_EQ(Get("/api/v1/providers/x/instance-types", As("view-token"))->status,
            501);
  EXPECT_EQ(Get("/api/v1/providers", As("agent-token"))->status, 403);
  EXPECT_EQ(Post("/navarch.ControlPlaneService/ListInstanceTypes",
                 R"({"provider": "x"})", "application/json", As("agent-token"))
                ->status,
            403);
  EXPECT_EQ(Post("/navarch.ControlPlaneService/SendHeartbeat",
                 R"({"nodeId": "n1"})", "application/json", As("agent-token"))
                ->status,
            200);
  EXPECT_EQ(
      Post("/navarch.ControlPlaneService/IssueCommand",
           R"({"nodeId": "n1", "commandType": "NODE_COMMAND_TYPE_CORDON"})",
           "application/json", As("agent-token"))
          ->status,
      403);
  auto ok = Post("/api/v1/nodes/n1/cordon", R"({"reason": "maintenance"})",
                 "application/json", As("op-token"));
  EXPECT_EQ(ok->status, 200);
  // The event log names the token, never its secret.
  auto events =
      Get("/api/v1/events?node=n1&kind=command.issued", As("op-token"));
  ASSERT_EQ(Json(events).size(), 1u);
  EXPECT_EQ(Json(events)[0]["actor"], "operator:ops");
  EXPECT_THAT(events->body, Not(HasSubstr("op-token")));
}

// Node tokens on Connect, unary and streaming: each acts for its own node.
class HttpNodeTokenTest : public HttpServerTest {
 protected:
  static constexpr char kKey[] = "node-key-node-key-node-key-node-key";
  void StartWith(bool allow_shared) {
    AuthConfig auth;
    auth.tokens = {Token("ops", "op-token", AuthRole::kOperator),
                   Token("agents", "agent-token", AuthRole::kAgent)};
    AuthTokenConfig key;
    key.name = "node_token_key";
    key.value = kKey;
    auth.node_token_key = key;
    auth.allow_shared_agent_tokens = allow_shared;
    Start(auth);
    Register("n1");
    Register("n2");
  }
  // Every node RPC over Connect as `token` about `node`: method -> response.
  std::map<std::string, httplib::Result> NodeRpcsAs(const std::string& token,
                                                    const std::string& node) {
    const httplib::Headers as = {{"Authorization", "Bearer " + token}};
    const std::string id = absl::StrCat(R"({"nodeId": ")", node, R"(")");
    std::map<std::string, httplib::Result> out;
    for (const auto& [method, body] :
         std::vector<std::pair<std::string, std::string>>{
             {"RegisterNode", id + "}"},
             {"SendHeartbeat", id + "}"},
             {"ReportHealth",
              id + R"(, "results": [{"checkName": "xid", "status": )"
                   R"("HEALTH_STATUS_UNHEALTHY"}]})"},
             {"GetNodeCommands", id + "}"},
             {"AckCommand", id + R"(, "commandId": "none"})"}}) {
      out.emplace(method, Post("/navarch.ControlPlaneService/" + method, body,
                               "application/json", as));
    }
    return out;
  }
  // The error code a Connect WatchCommands stream ends with.
  std::string WatchEnd(const std::string& token, const std::string& node) {
    auto r = Post(
        "/navarch.ControlPlaneService/WatchCommands",
        RequestEnvelope(absl::StrCat(R"({"nodeId": ")", node, R"("})")),
        "application/connect+json", {{"Authorization", "Bearer " + token}});
    // A caller without a valid credential is refused before its request
    // body is read (docs/security.md, "HTTP limits"): an HTTP 401 with the
    // Connect error body, which Connect clients read as the stream's error.
    if (r->status == 401) return Json(r).value("code", "");
    Envelopes e;
    e.Add(r->body.data(), r->body.size());
    if (e.list.size() != 1) return "(not one envelope)";
    return json::parse(e.list[0].second)["error"].value("code", "");
  }
};

TEST_F(HttpNodeTokenTest, ANodeTokenActsForItsOwnNodeOnly) {
  StartWith(/*allow_shared=*/true);
  const std::string token = NodeToken(kKey, "n1");
  for (const auto& [method, r] : NodeRpcsAs(token, "n2")) {
    ASSERT_TRUE(r) << method;
    EXPECT_EQ(r->status, 403) << method;
    EXPECT_EQ(Json(r)["message"],
              "the node token of n1 may not act for node n2")
        << method;
    EXPECT_THAT(r->body, Not(HasSubstr(token))) << method;
  }
  EXPECT_EQ(WatchEnd(token, "n2"), "permission_denied");
  auto n2 = Get("/api/v1/nodes/n2", {{"Authorization", "Bearer op-token"}});
  EXPECT_NE(Json(n2)["health_status"], "HEALTH_STATUS_UNHEALTHY") << n2->body;

  for (const auto& [method, r] : NodeRpcsAs(token, "n1")) {
    ASSERT_TRUE(r) << method;
    EXPECT_NE(r->status, 401) << method;
    EXPECT_NE(r->status, 403) << method;
  }
  // Allowed: the stream's error is that of the watched node, not of auth.
  const std::string ghost = NodeToken(kKey, "ghost");
  EXPECT_EQ(WatchEnd(ghost, "ghost"), "not_found");
}

TEST_F(HttpNodeTokenTest, ForgedNodeTokensAre401) {
  StartWith(/*allow_shared=*/true);
  const std::string good = NodeToken(kKey, "n1");
  for (const std::string& forged :
       {NodeToken("some-other-key-some-other-key-xyz", "n1"),
        absl::StrCat("navarch-node.n2.", good.substr(good.rfind('.') + 1))}) {
    for (const auto& [method, r] : NodeRpcsAs(forged, "n1")) {
      EXPECT_EQ(r->status, 401) << method;
      EXPECT_EQ(Json(r)["message"], "invalid token") << method;
      EXPECT_THAT(r->body, Not(HasSubstr(forged))) << method;
    }
    EXPECT_EQ(WatchEnd(forged, "n1"), "unauthenticated");
  }
}

TEST_F(HttpNodeTokenTest, SharedAgentTokensCanBeRefused) {
  StartWith(/*allow_shared=*/false);
  for (const auto& [method, r] : NodeRpcsAs("agent-token", "n1")) {
    EXPECT_EQ(r->status, 403) << method;
    EXPECT_THAT(std::string(Json(r)["message"]),
                HasSubstr("allow_shared_agent_tokens is false"));
  }
  EXPECT_EQ(WatchEnd("agent-token", "n1"), "permission_denied");
  EXPECT_EQ(NodeRpcsAs(NodeToken(kKey, "n1"), "n1").at("SendHeartbeat")->status,
            200);
}

TEST_F(HttpAuthTest, ProbesAndMetricsStayOpen) {
  EXPECT_EQ(Get("/healthz")->status, 200);
  EXPECT_EQ(Get("/readyz")->status, 200);
  EXPECT_EQ(Get("/metrics")->status, 200);
}

TEST_F(HttpServerTest, ProtectedMetricsAndProbesNeedAToken) {
  AuthConfig auth;
  auth.tokens = {Token("grafana", "view-token", AuthRole::kViewer)};
  auth.protect_metrics = true;
  auth.protect_probes = true;
  Start(auth);
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    EXPECT_EQ(Get(path)->status, 401) << path;
    EXPECT_EQ(Get(path, {{"Authorization", "Bearer view-token"}})->status, 200)
        << path;
  }
}

// ----------------------------------------------------------------- metrics

TEST_F(HttpAuthTest, MetricsCountCallsByProtocolMethodAndCode) {
  Get("/api/v1/nodes/n1", As("view-token"));
  Get("/api/v1/nodes/ghost", As("view-token"));
  Get("/api/v1/nodes", As("nope"));
  Post("/navarch.ControlPlaneService/GetNode", R"({"nodeId": "n1"})",
       "application/json", As("view-token"));
  auto m = Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = m->body;
  EXPECT_THAT(text, HasSubstr("navarch_rpc_requests_total{protocol=\"rest\","
                              "method=\"GetNode\",code=\"ok\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_rpc_requests_total{protocol=\"rest\","
                              "method=\"GetNode\",code=\"not_found\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_rpc_requests_total{protocol=\"rest\","
                              "method=\"ListNodes\",code=\"unauthenticated\"} "
                              "1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_rpc_requests_total{protocol=\"connect\","
                              "method=\"GetNode\",code=\"ok\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("navarch_rpc_duration_seconds_count{protocol="
                        "\"connect\",method=\"GetNode\",code=\"ok\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_nodes_total{status=\"active\"} 1\n"));
#ifdef NAVARCH_PROMTOOL
  testing::PromtoolResult r =
      testing::PromtoolCheckMetrics(NAVARCH_PROMTOOL, text);
  EXPECT_EQ(r.exit_code, 0) << r.output;
#endif
}

// -------------------------------------------------------------------- pools

// A control plane managing one pool of the fake provider: the pool routes
// answer through the same pool manager as gRPC.
TEST(HttpPoolsTest, RestAndConnectServeThePoolManager) {
  absl::StatusOr<Config> config = LoadConfigString(R"(server:
  address: "127.0.0.1:0"
storage:
  backend: memory
providers:
  fake:
    type: fake
pools:
  training:
    provider: fake
    instance_type: gpu_8x_h100
    min_nodes: 0
    max_nodes: 4
)",
                                                   "pools.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ResolveConfig(&*config);
  RealClock clock;
  ControlPlaneServer server(*config, clock, NullLogger());
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client("http://" + server.http_address());

  auto list = client.Get("/api/v1/pools");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  json pools = json::parse(list->body);
  ASSERT_EQ(pools.size(), 1u);
  EXPECT_EQ(pools[0]["name"], "training");
  EXPECT_EQ(pools[0]["max_nodes"], 4);

  auto scaled = client.Post("/api/v1/pools/training/scale", R"({"target": 2})",
                            "application/json");
  ASSERT_EQ(scaled->status, 200) << scaled->body;
  EXPECT_EQ(json::parse(scaled->body)["target_nodes"], 2);
  auto too_big = client.Post("/api/v1/pools/training/scale", R"({"target": 9})",
                             "application/json");
  EXPECT_EQ(too_big->status, 400) << too_big->body;
  EXPECT_EQ(client.Get("/api/v1/pools/inference")->status, 404);

  auto connect = client.Post("/navarch.ControlPlaneService/GetPool",
                             R"({"name": "training"})", "application/json");
  ASSERT_EQ(connect->status, 200) << connect->body;
  EXPECT_EQ(json::parse(connect->body)["pool"]["targetNodes"], 2);

  auto metrics = client.Get("/metrics");
  EXPECT_THAT(metrics->body,
              HasSubstr("navarch_pool_target_nodes{pool=\"training\"} 2\n"));
  EXPECT_THAT(metrics->body,
              HasSubstr("navarch_pool_max_nodes{pool=\"training\"} 4\n"));
#ifdef NAVARCH_PROMTOOL
  testing::PromtoolResult r =
      testing::PromtoolCheckMetrics(NAVARCH_PROMTOOL, metrics->body);
  EXPECT_EQ(r.exit_code, 0) << r.output;
#endif
  server.Shutdown(absl::Seconds(1));
}

// ---------------------------------------------------------------- providers

// A control plane with a Lambda provider pointed at Lambda's fake API and one
// whose key file is missing: REST and Connect answer the provider API.
TEST(HttpProvidersTest, RestAndConnectServeTheProviderApi) {
  FakeLambda fake(RealClock::Default(), "lambda-key-xyz");
  fake.AddType({"gpu_8x_h100_sxm5",
                "8x H100 (80 GB SXM5)",
                "H100 (80 GB SXM5)",
                2392,
                208,
                1800,
                24780,
                8,
                {"us-west-1"}});
  const std::string key_file =
      ::testing::TempDir() + "/http_providers_test.key";
  testing::WriteTestFile(key_file, "lambda-key-xyz\n");
  absl::StatusOr<Config> config =
      LoadConfigString(absl::StrCat(R"(server:
  address: "127.0.0.1:0"
storage:
  backend: memory
providers:
  lam:
    type: lambda
    api_key_file: )",
                                    key_file, R"(
    endpoint: )",
                                    fake.endpoint(), R"(
    ssh_key_name: ops
  gone:
    type: lambda
    api_key_file: /nonexistent/navarch-test.key
pools:
  training:
    provider: lam
    instance_type: h100-8x
    min_nodes: 0
    max_nodes: 4
)"),
                       "providers.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ResolveConfig(&*config);
  RealClock clock;
  ControlPlaneServer server(*config, clock, NullLogger());
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client("http://" + server.http_address());

  auto list = client.Get("/api/v1/providers");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  json providers = json::parse(list->body);
  ASSERT_EQ(providers.size(), 2u) << list->body;
  EXPECT_EQ(providers[0]["name"], "gone");
  EXPECT_EQ(providers[0]["available"], false);
  EXPECT_NE(providers[0]["unavailable_reason"], "");
  EXPECT_EQ(providers[0]["pools"], json::array());
  EXPECT_EQ(providers[1]["name"], "lam");
  EXPECT_EQ(providers[1]["type"], "lambda");
  EXPECT_EQ(providers[1]["pools"], json::array({"training"}));
  EXPECT_EQ(providers[1]["available"], true);
  EXPECT_EQ(providers[1]["backoffs"], json::array());
  EXPECT_EQ(client.Get("/api/v1/providers?x=1")->status, 400);

  auto types = client.Get("/api/v1/providers/lam/instance-types");
  ASSERT_EQ(types->status, 200) << types->body;
  json t = json::parse(types->body);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0]["name"], "gpu_8x_h100_sxm5");
  EXPECT_DOUBLE_EQ(t[0]["price_per_hour"].get<double>(), 23.92);
  EXPECT_EQ(t[0]["regions"], json::array({"us-west-1"}));
  EXPECT_EQ(t[0]["abstract_types"], json::array({"h100-8x"}));
  auto missing = client.Get("/api/v1/providers/nope/instance-types");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["code"], "not_found");
  auto gone = client.Get("/api/v1/providers/gone/instance-types");
  EXPECT_EQ(gone->status, 400) << gone->body;
  EXPECT_EQ(json::parse(gone->body)["code"], "failed_precondition");

  auto connect = client.Post("/navarch.ControlPlaneService/ListInstanceTypes",
                             R"({"provider": "lam"})", "application/json");
  ASSERT_EQ(connect->status, 200) << connect->body;
  json c = json::parse(connect->body);
  EXPECT_EQ(c["provider"], "lam");
  EXPECT_EQ(c["type"], "lambda");
  EXPECT_DOUBLE_EQ(c["instanceTypes"][0]["pricePerHour"].get<double>(), 23.92);
  auto connect_list = client.Post("/navarch.ControlPlaneService/ListProviders",
                                  "{}", "application/json");
  ASSERT_EQ(connect_list->status, 200) << connect_list->body;
  EXPECT_EQ(json::parse(connect_list->body)["providers"][1]["name"], "lam");

  // Lambda's error, its code and message, through every transport.
  fake.ForceNext("types", {403, "", "global/invalid-api-key",
                           "API key was invalid, expired, or deleted.", ""});
  auto denied = client.Get("/api/v1/providers/lam/instance-types");
  EXPECT_EQ(denied->status, 400);  // not 403: the caller's token is fine
  EXPECT_EQ(json::parse(denied->body)["code"], "failed_precondition");
  EXPECT_THAT(denied->body, HasSubstr("global/invalid-api-key"));
  EXPECT_THAT(denied->body, Not(HasSubstr("lambda-key-xyz")));
  server.Shutdown(absl::Seconds(1));
}

// ------------------------------------------------------------ hostile

// The resident set of this process, in bytes.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    int64_t kb = 0;
    if (absl::StartsWith(line, "VmRSS:") &&
        absl::SimpleAtoi(
            absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")),
            &kb)) {
      return kb << 10;
    }
  }
  return 0;
}

// Streams `total` bytes of chunked body on `fd` (or until the server stops
// taking them); what the server answered.
std::string StreamChunked(int fd, const std::string& head, size_t total) {
  const std::string chunk =
      absl::StrCat("10000\r\n", std::string(0x10000, 'x'), "\r\n");
  if (write(fd, head.data(), head.size()) != static_cast<ssize_t>(head.size()))
    return "";
  for (size_t sent = 0; sent < total; sent += 0x10000) {
    if (send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(chunk.size())) {
      break;
    }
  }
  std::string answer(4096, '\0');
  const ssize_t n = read(fd, answer.data(), answer.size());
  answer.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return answer;
}

// A chunked body without a token used to be read whole (1 GB took the
// process past 1 GB of RSS) before the 401. Now the token is checked from
// the headers and nothing of the body is kept.
TEST_F(HttpAuthTest, AChunkedBodyWithoutATokenIsRefusedBeforeItIsRead) {
  const int64_t before = ResidentBytes();
  int fd = Connect(port_);
  const std::string answer = StreamChunked(
      fd,
      "POST /navarch.ControlPlaneService/RegisterNode HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
      size_t{256} << 20);
  close(fd);
  EXPECT_LT(ResidentBytes() - before, int64_t{48} << 20);
  EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 401"));
}

TEST_F(HttpAuthTest, AChunkedBodyOverTheLimitIs413WhileItIsRead) {
  const int64_t before = ResidentBytes();
  int fd = Connect(port_);
  const std::string answer = StreamChunked(
      fd,
      "POST /navarch.ControlPlaneService/RegisterNode HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer agent-token\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
      size_t{256} << 20);
  close(fd);
  EXPECT_LT(ResidentBytes() - before, int64_t{48} << 20);
  EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 413"));
  EXPECT_THAT(answer, HasSubstr("resource_exhausted"));
  EXPECT_EQ(http_->stats().bodies_too_large, 1);
}

// 32 clients trickling header lines used to hold all 32 workers, and
// /healthz (a liveness probe) hung for as long as they kept going.
TEST_F(HttpServerTest, ProbesAnswerWithin1sWhile64SlowClientsTrickle) {
  Start();
  std::vector<int> slow;
  for (int i = 0; i < 64; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    slow.push_back(fd);
  }
  for (int round = 0; round < 8; ++round) {
    for (int fd : slow) {
      const std::string line = round == 0
                                   ? "GET /api/v1/nodes HTTP/1.1\r\n"
                                   : absl::StrCat("X-Slow-", round, ": 1\r\n");
      (void)send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    }
    const absl::Time start = absl::Now();
    auto r = Get("/healthz");
    ASSERT_TRUE(r) << round;
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << round;
    auto ready = Get("/readyz");
    ASSERT_TRUE(ready) << round;
    EXPECT_EQ(ready->status, 200);
    auto api = Get("/api/v1/nodes");  // the API too: no worker is held
    ASSERT_TRUE(api) << round;
    EXPECT_EQ(api->status, 200);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(http_->stats().connections_open, 64);
  auto metrics = Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body, HasSubstr("navarch_http_connections "));
  EXPECT_THAT(
      metrics->body,
      HasSubstr("navarch_http_refused_total{reason=\"head_timeout\"} 0"));
  for (int fd : slow) close(fd);
}

}  // namespace
}  // namespace navarch
