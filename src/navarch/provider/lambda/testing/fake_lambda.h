// An in-process Lambda Cloud API v1 on 127.0.0.1, written from Lambda's
// published OpenAPI description (v1.10), not from our client: tests point
// the provider at it. It checks every request the way the documentation
// says the real API does (the API key as Bearer or Basic, JSON bodies,
// required fields, exactly one SSH key that exists, tag keys and values,
// name and user-data sizes, the launch rate) and answers in the documented
// envelopes: {"data": ...} or {"error": {"code", "message", "suggestion"}}.
// Tests can make it answer any documented error, or a raw status (429 with
// Retry-After, 500), for the next calls of one operation.
#ifndef NAVARCH_PROVIDER_LAMBDA_TESTING_FAKE_LAMBDA_H_
#define NAVARCH_PROVIDER_LAMBDA_TESTING_FAKE_LAMBDA_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace navarch {

class FakeLambda {
 public:
  // An instance type as GET /instance-types describes it.
  struct Type {
    std::string name;  // "gpu_8x_h100_sxm5"
    std::string description;
    std::string gpu_description;
    int price_cents_per_hour = 0;
    int vcpus = 0;
    int memory_gib = 0;
    int storage_gib = 0;
    int gpus = 0;
    std::vector<std::string> regions_with_capacity;
  };
  // One request as received (for assertions).
  struct Seen {
    std::string method;
    std::string path;
    std::string authorization;
    std::string body;
  };
  // The answer to force on the next call of an operation.
  struct Forced {
    int status = 500;
    std::string body;  // The whole body; empty: built from code.
    std::string code;  // A documented error code.
    std::string message;
    std::string retry_after;  // Sent as Retry-After when not empty.
  };

  // `clock` times the launch rate limit (one per 12 s). Regions known to
  // the fake: us-east-1, us-west-1, europe-central-1 (plus any a type lists).
  FakeLambda(Clock& clock, std::string api_key);
  ~FakeLambda();
  FakeLambda(const FakeLambda&) = delete;
  FakeLambda& operator=(const FakeLambda&) = delete;

  // http://127.0.0.1:PORT/api/v1
  std::string endpoint() const;

  void AddType(Type type);
  void SetCapacity(const std::string& type, std::vector<std::string> regions);
  void AddSshKey(const std::string& name);
  // Launches beyond this many live instances fail with global/quota-exceeded.
  void SetQuota(int max_instances);
  // The `ip` every instance gets when it boots; empty (the default):
  // 127.0.0.N, one per instance. Loopback either way, so a test that dials
  // it stays on this machine.
  void SetInstanceIp(std::string ip);
  // Off: no 429 for launches closer than 12 s (tests of retries).
  void EnforceLaunchRate(bool on);

  // "launch", "terminate", "list", "get", "types".
  void ForceNext(const std::string& operation, Forced answer);

  // Moves every booting instance to active with an IP; sets one's status.
  void BootAll();
  void SetStatus(const std::string& id, const std::string& status);

  std::vector<Seen> seen() const;
  int launches() const;  // Accepted launches (instances created).
  int calls(const std::string& operation) const;
  // The body of each accepted launch request, in order.
  std::vector<std::string> launch_bodies() const;

 private:
  struct Instance;
  using Req = httplib::Request;
  using Res = httplib::Response;

  void Route();
  // Records the request; false (with the answer written) when it must not
  // go on: bad credentials or a forced answer.
  bool Admit(const std::string& operation, const Req& req, Res& res);
  void Types(const Req& req, Res& res);
  void Launch(const Req& req, Res& res);
  void Terminate(const Req& req, Res& res);
  void List(const Req& req, Res& res);
  void Get(const Req& req, Res& res);
  // A launch body's problem, in the API's words; empty when it is valid.
  std::string LaunchProblem(const std::string& body, int* status,
                            std::string* code)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string InstanceJson(const Instance& i) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string TypeJson(const Type& t) const;

  Clock& clock_;
  const std::string api_key_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  std::map<std::string, Type> types_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> regions_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> ssh_keys_ ABSL_GUARDED_BY(mu_);
  std::string instance_ip_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Instance>> instances_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<Forced>> forced_ ABSL_GUARDED_BY(mu_);
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> launch_bodies_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Duration> last_launch_ ABSL_GUARDED_BY(mu_);
  bool enforce_rate_ ABSL_GUARDED_BY(mu_) = true;
  int quota_ ABSL_GUARDED_BY(mu_) = 1000;
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_LAMBDA_TESTING_FAKE_LAMBDA_H_
