// An in-process EC2 (Query API 2016-11-15) and instance metadata service
// (IMDSv2) for tests, on 127.0.0.1 and a free port. Written from AWS's
// documentation (EC2 API Reference: RunInstances, DescribeInstances,
// TerminateInstances, DescribeInstanceTypes, "Error codes", "Query requests";
// IAM User Guide: "Signature Version 4 signing process"; EC2 User Guide: "Use
// IMDSv2"), not from our client, so that tests show our client speaks the
// documented wire format; the real `aws` CLI runs against it too
// (fake_ec2_cli_test).
//
// It checks every request: the SigV4 signature (recomputed here by its own
// small implementation of the documented algorithm), the credential scope
// (date, region, service), the session token of temporary credentials, the
// Version, required parameters, and ClientToken idempotency (same token and
// same parameters: the same instance; other parameters:
// IdempotentParameterMismatch). It answers with any documented error when
// told to. Thread-safe.
#ifndef NAVARCH_PROVIDER_AWS_TESTING_FAKE_EC2_H_
#define NAVARCH_PROVIDER_AWS_TESTING_FAKE_EC2_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace navarch {

// One instance type as DescribeInstanceTypes describes it.
struct FakeEc2InstanceType {
  std::string name;
  int vcpus = 0;
  int64_t memory_mib = 0;
  int gpus = 0;  // 0: no gpuInfo
  std::string gpu_name;
  std::string gpu_maker;
};

struct FakeEc2Options {
  std::string region = "us-east-1";
  // Access key id → secret access key of long-term keys it accepts.
  std::map<std::string, std::string> keys = {
      {"AKIDFAKE", "fake-secret-key-123"}};
  // Subnet id → its availability zone.
  std::map<std::string, std::string> subnets = {{"subnet-a", "us-east-1a"},
                                                {"subnet-b", "us-east-1b"}};
  Clock* clock = nullptr;  // Stamps launchTime. Null: real.
  // Every instance's privateIpAddress; empty: 127.0.0.N, one per instance.
  // Loopback either way, so a test that dials it stays on this machine.
  std::string private_ip;
  // What DescribeInstanceTypes offers in the region, in this order.
  std::vector<FakeEc2InstanceType> instance_types = {
      {"g5.xlarge", 4, 16384, 1, "A10G", "NVIDIA"},
      {"m5.large", 2, 8192, 0, "", ""},
      {"p4d.24xlarge", 96, 1179648, 8, "A100", "NVIDIA"},
      {"p5.48xlarge", 192, 2097152, 8, "H100", "NVIDIA"},
      {"g4ad.xlarge", 4, 16384, 1, "Radeon Pro V520", "AMD"}};
};

class FakeEc2 {
 public:
  struct Instance {
    std::string id;
    std::string image_id;
    std::string instance_type;
    std::string zone;
    std::string subnet_id;
    std::string private_ip;  // loopback: see FakeEc2Options::private_ip
    std::string state = "pending";
    std::string client_token;
    std::string user_data;  // decoded
    std::string key_name;
    std::string instance_profile;
    std::vector<std::string> security_groups;
    bool spot = false;
    std::map<std::string, std::string> tags;
    absl::Time launch_time = absl::UnixEpoch();
  };

  explicit FakeEc2(FakeEc2Options options = {});
  ~FakeEc2();
  FakeEc2(const FakeEc2&) = delete;
  FakeEc2& operator=(const FakeEc2&) = delete;

  // Listens on 127.0.0.1, a free port.
  absl::Status Start();
  std::string url() const;  // http://127.0.0.1:PORT/

  // The next `times` calls of `action` answer `http_status` with the
  // documented error body carrying `code` and `message`.
  void FailNext(const std::string& action, int http_status,
                const std::string& code, const std::string& message,
                int times = 1);
  // IMDSv2 hands out these temporary credentials (the fake then accepts
  // them, with their session token) for role `role`.
  void SetRoleCredentials(const std::string& role, const std::string& key,
                          const std::string& secret, const std::string& token,
                          const std::string& expiration);
  // Adds an instance as if created elsewhere.
  void AddInstance(Instance instance);
  // From now on the IMDS answers as the VM of instance `id` (the EC2 User
  // Guide's "Instance metadata categories"): meta-data/instance-id,
  // instance-type, placement/availability-zone and placement/region read
  // from that instance as it is then. Empty: as no instance (404).
  void ImdsSpeaksFor(const std::string& id);

  // While held, RunInstances makes its instance and then keeps its answer
  // back (a caller killed meanwhile never learns the id).
  void HoldRunAnswers(bool hold);

  std::vector<Instance> instances() const;
  // Every EC2 action received, in order ("RunInstances", ...), including
  // refused ones.
  std::vector<std::string> actions() const;
  // Why requests were refused (signature, missing parameter, ...).
  std::vector<std::string> refusals() const;
  int imds_credential_reads() const;

 private:
  struct Failure {
    int http_status;
    std::string code;
    std::string message;
    int times;
  };
  struct TempCredentials {
    std::string secret;
    std::string token;
  };
  using Params = std::map<std::string, std::string>;

  void HandleEc2(const httplib::Request& req, httplib::Response& res);
  void HandleImds(const httplib::Request& req, httplib::Response& res);
  // Empty when the signature is right; else why not.
  std::string CheckSignature(const httplib::Request& req)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunInstances(const Params& p, httplib::Response& res)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DescribeInstances(const Params& p, httplib::Response& res)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TerminateInstances(const Params& p, httplib::Response& res)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DescribeInstanceTypes(const Params& p, httplib::Response& res)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Error(httplib::Response& res, int status, const std::string& code,
             const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Matches(const Instance& i, const Params& p) const;
  // The instance identity IMDS paths of imds_instance_; false if `path` is
  // none of them.
  bool ImdsIdentity(const std::string& path, httplib::Response& res)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  FakeEc2Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  std::vector<Instance> instances_ ABSL_GUARDED_BY(mu_);
  // ClientToken → (the request's parameters, the instance it made).
  std::map<std::string, std::pair<Params, std::string>> tokens_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Failure>> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TempCredentials> temp_ ABSL_GUARDED_BY(mu_);
  std::string role_ ABSL_GUARDED_BY(mu_);
  std::string role_json_ ABSL_GUARDED_BY(mu_);
  std::string imds_instance_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> imds_tokens_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> actions_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> refusals_ ABSL_GUARDED_BY(mu_);
  int imds_reads_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int next_request_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_AWS_TESTING_FAKE_EC2_H_
