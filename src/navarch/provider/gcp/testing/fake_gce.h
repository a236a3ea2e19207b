// An in-process Compute Engine v1 for tests, written from Google's API
// reference (instances, zoneOperations, aggregated lists, machineTypes),
// the OAuth 2.0 service-account flow and the metadata server, not from our
// client. It checks every request (bearer token, JWT signature and claims,
// required fields, label rules, requestId), answers errors in Google's
// shapes, and can be told to fail the next insert the ways GCE does.
// Loopback only. Test-only.
#ifndef NAVARCH_PROVIDER_GCP_TESTING_FAKE_GCE_H_
#define NAVARCH_PROVIDER_GCP_TESTING_FAKE_GCE_H_

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/net/testing/test_http_server.h"

namespace navarch::testing {

// A fresh 2048-bit RSA key as PKCS#8 PEM (what service-account keys hold).
std::string GenerateRsaKeyPem();

struct FakeGceOptions {
  std::string project = "test-project";
  // zone -> region.
  std::map<std::string, std::string> zones = {
      {"us-central1-a", "us-central1"},
      {"us-central1-b", "us-central1"},
      {"europe-west4-a", "europe-west4"}};
  // The service account whose JWTs /token accepts (PEM of its private key;
  // the fake verifies with the public half).
  std::string sa_email = "navarch@test-project.iam.gserviceaccount.com";
  std::string sa_key_pem;
  int token_lifetime_s = 3599;
  // Wait calls answered before an operation is DONE (the documented
  // "wait may return before DONE").
  int waits_before_done = 1;
  // Page size of aggregated lists when the caller sets no maxResults.
  int default_page_size = 500;
  // The most a page holds whatever maxResults asks (the API may return
  // fewer): small values make clients follow nextPageToken.
  int max_page_size = 500;
  // Every instance's networkIP; empty: 127.0.0.N, one per instance.
  // Loopback either way, so a test that dials it stays on this machine.
  std::string instance_ip;
};

// One scripted failure of the next insert.
struct GceFailure {
  // An HTTP error answered to the insert call itself (0: none).
  int http_status = 0;
  std::string reason;  // errors[].reason, e.g. "forbidden", "rateLimitExceeded"
  // Else an error in the operation, seen when it is DONE.
  std::string op_code;  // "ZONE_RESOURCE_POOL_EXHAUSTED", "QUOTA_EXCEEDED"...
  std::string message;
};

class FakeGce {
 public:
  explicit FakeGce(FakeGceOptions options);
  ~FakeGce();

  // "http://127.0.0.1:PORT/compute/v1".
  std::string endpoint() const;
  std::string token_uri() const;  // ".../token"
  // A service-account key file (JSON, as the Cloud console downloads it)
  // for options().sa_email and sa_key_pem, whose token_uri is this fake.
  std::string ServiceAccountKeyJson() const;
  std::string metadata_host() const;  // "127.0.0.1:PORT"
  int port() const { return server_.port(); }
  const FakeGceOptions& options() const { return options_; }

  // A token the API accepts without the OAuth flow (gcloud's access-token
  // file).
  void AcceptToken(const std::string& token);
  void FailNextInsert(GceFailure failure);

  // What the fake saw.
  int insert_calls();
  int token_calls();
  int metadata_calls();
  std::vector<std::string> issued_tokens();
  // The request bodies of every insert, in order.
  std::vector<nlohmann::json> insert_bodies();
  // Live instances by name.
  std::map<std::string, nlohmann::json> instances();
  // From now on the metadata server answers as the VM named `name` (its
  // instance/name, instance/id, instance/zone and instance/machine-type, in
  // the documented "projects/NUMBER/..." forms, read from that instance as
  // it is then). Empty: as no instance (404).
  void MetadataSpeaksFor(const std::string& name);
  // Adds an instance as if created outside Navarch (for List tests).
  void AddInstance(const std::string& zone, const std::string& name,
                   const std::map<std::string, std::string>& labels = {},
                   const std::string& status = "RUNNING");

 private:
  struct Op;
  void Route();
  void RouteAuth();
  void RouteInstances();
  void RouteLists();
  bool Authorized(const httplib::Request& req, httplib::Response& res);
  bool Guard(const httplib::Request& req, httplib::Response& res, bool zoned);
  void Insert(const httplib::Request& req, httplib::Response& res,
              const std::string& zone);
  void Delete(httplib::Response& res, const std::string& zone,
              const std::string& name);
  void Wait(httplib::Response& res, const std::string& zone,
            const std::string& op, bool advance);
  void Aggregated(const httplib::Request& req, httplib::Response& res);
  void MachineTypes(httplib::Response& res);
  void Token(const httplib::Request& req, httplib::Response& res);
  void InstanceMetadata(const std::string& item, httplib::Response& res);
  nlohmann::json StartOp(const std::string& zone, const std::string& type,
                         const std::string& target, const std::string& name,
                         nlohmann::json error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishOp(Op& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ZoneUrl(const std::string& zone) const;

  const FakeGceOptions options_;
  TestHttpServer server_;
  absl::Mutex mu_;
  std::set<std::string> tokens_ ABSL_GUARDED_BY(mu_);
  std::vector<GceFailure> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Op>> ops_ ABSL_GUARDED_BY(mu_);
  // requestId -> operation name, and the body it came with.
  std::map<std::string, std::pair<std::string, std::string>> requests_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, nlohmann::json> instances_ ABSL_GUARDED_BY(mu_);
  std::vector<nlohmann::json> insert_bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> issued_ ABSL_GUARDED_BY(mu_);
  int insert_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int token_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int metadata_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::string metadata_instance_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1000;
};

}  // namespace navarch::testing

#endif  // NAVARCH_PROVIDER_GCP_TESTING_FAKE_GCE_H_
