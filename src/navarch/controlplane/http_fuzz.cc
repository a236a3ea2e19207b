// libFuzzer target: arbitrary HTTP requests against the control plane's
// HTTP listener (REST under /api/v1, Connect JSON and binary protobuf under
// /navarch.ControlPlaneService/, probes, /metrics), in process on a loopback
// port with the memory store, as http_server_test.cc sets it up. Every
// request must be answered with a status, never crash the server or hang it;
// a 5xx other than 501 (a route that is not served) and 503 (the fleet is
// busy) is a bug, since bad input is the client's fault.
//
// Input: byte 0 picks the method (bit 0: POST, else GET) and the body's type
// (bit 1: application/proto, else application/json); then the path and query
// up to the first newline; the rest is the body.
//
//   cmake --preset check && cmake --build build-check --target http_fuzz
//   build-check/fuzz/http_fuzz -max_total_time=60 <corpus copy>
// scripts/run-fuzzers runs it with src/navarch/controlplane/fuzz_corpus.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/http_server.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/health/evaluator.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

// One control plane for the whole run: starting one per input would measure
// start-up, not parsing. Requests may change its state (register, cordon),
// which only widens what later inputs reach.
struct Harness {
  RealClock clock;
  MemoryStore store;
  PolicyEvaluator evaluator;
  std::unique_ptr<FleetService> fleet;
  std::unique_ptr<Authenticator> auth;
  MetricsRegistry registry;
  std::unique_ptr<RpcMetrics> rpc;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<httplib::Client> client;

  Harness() {
    fleet = std::make_unique<FleetService>(store, clock, evaluator,
                                           NullLogger(), FleetOptions{});
    if (!fleet->Start().ok()) std::abort();
    auto a = Authenticator::Create(AuthConfig{}, false);
    if (!a.ok()) std::abort();
    auth = std::move(*a);
    rpc = std::make_unique<RpcMetrics>(registry);
    http = std::make_unique<HttpServer>(*fleet, store, *auth, registry, *rpc,
                                        clock, NullLogger());
    HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.body_timeout = absl::Seconds(2);
    if (!http->Start(options).ok()) std::abort();
    const std::string& address = http->address();
    int port = 0;
    if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) {
      std::abort();
    }
    client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_keep_alive(true);
    client->set_read_timeout(5, 0);
  }
};

Harness& TheHarness() {
  static Harness* const harness = new Harness();
  return *harness;
}

}  // namespace
}  // namespace navarch

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  navarch::Harness& h = navarch::TheHarness();
  if (size == 0) return 0;
  const bool post = (data[0] & 1) != 0;
  const char* type =
      (data[0] & 2) != 0 ? "application/proto" : "application/json";
  absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t newline = rest.find('\n');
  std::string path(rest.substr(0, newline));
  std::string body(newline == absl::string_view::npos
                       ? absl::string_view()
                       : rest.substr(newline + 1));
  if (path.empty() || path[0] != '/') path.insert(0, "/");
  httplib::Result r =
      post ? h.client->Post(path, body, type) : h.client->Get(path);
  // No answer: httplib refused to send the request (a path it cannot
  // write) or the server closed the connection on a malformed request line.
  if (!r) return 0;
  if (r->status >= 500 && r->status != 501 && r->status != 503) {
    std::fprintf(stderr, "HTTP %d for %s %s: %s\n", r->status,
                 post ? "POST" : "GET", path.c_str(), r->body.c_str());
    std::abort();
  }
  return 0;
}
