// Test helpers: certificates made on the fly with OpenSSL (a CA, and server
// and client certificates it signs), and promtool. Test-only.
#ifndef NAVARCH_CONTROLPLANE_TEST_UTIL_H_
#define NAVARCH_CONTROLPLANE_TEST_UTIL_H_

#include <string>
#include <vector>

namespace navarch::testing {

struct TestCert {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed CA (P-256 key, valid from an hour ago for a day).
TestCert MakeCa(const std::string& common_name);

// A certificate signed by `ca` with `common_name` and DNS / IP subject
// alternative names. `server`: for serving (extended key usage serverAuth),
// otherwise for clients (clientAuth).
TestCert IssueCert(const TestCert& ca, const std::string& common_name,
                   const std::vector<std::string>& dns_names,
                   const std::vector<std::string>& ip_addresses, bool server);

// Writes `content` to `path`; dies on failure.
void WriteTestFile(const std::string& path, const std::string& content);

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};
// Runs `promtool check metrics` (at `promtool`) on `exposition`.
PromtoolResult PromtoolCheckMetrics(const std::string& promtool,
                                    const std::string& exposition);

}  // namespace navarch::testing

#endif  // NAVARCH_CONTROLPLANE_TEST_UTIL_H_
