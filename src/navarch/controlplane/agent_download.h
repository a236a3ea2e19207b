// The node agent, served by the control plane to the machines it buys, so a
// cluster with no internet egress still bootstraps (docs/agent.md, "From the
// control plane"):
//
//   GET /api/v1/agent/binary           the node-agent executable
//   GET /api/v1/agent/binary.sha256    "<hex>  node-agent\n" (sha256sum -c)
//   GET /api/v1/agent/package          the navarch-node-agent .deb
//   GET /api/v1/agent/package.sha256   "<hex>  <file name>\n"
//
// Every answer carries X-Checksum-Sha256 (hex) and an ETag. Any agent
// credential may fetch (an agent-role or node token, a client certificate, a
// bootstrap token) and operators. Files are read when first asked for and
// again when their size or modification time changes, so upgrading the
// package on disk needs no restart; answers share one copy in memory.
#ifndef NAVARCH_CONTROLPLANE_AGENT_DOWNLOAD_H_
#define NAVARCH_CONTROLPLANE_AGENT_DOWNLOAD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/controlplane/http_api.h"
#include "navarch/net/http_listener.h"

namespace navarch {

struct AgentDownloadOptions {
  // Empty: not served (404 saying which key to set).
  std::string binary_path;
  std::string package_path;
  // A larger file is refused rather than read (a misconfigured path).
  uint64_t max_bytes = uint64_t{1} << 30;
};

// The node-agent executable installed beside the running control plane
// (its build folder, or /usr/bin when both packages are installed); "" when
// there is none.
std::string DefaultAgentBinaryPath();

class AgentDownloads {
 public:
  enum class Kind { kBinary, kPackage };

  struct Artifact {
    std::string file_name;     // as sent in Content-Disposition
    std::string content_type;  // of the file itself
    std::shared_ptr<const std::string> bytes;
    std::string sha256;  // lower-case hex
  };

  AgentDownloads(AgentDownloadOptions options, const HttpApiContext& ctx);

  void Register(HttpRouter& router);

  // The file of `kind`, read now if it changed since the last call.
  // NOT_FOUND when none is configured or the file is missing,
  // FAILED_PRECONDITION when it cannot be read or is too large.
  absl::StatusOr<std::shared_ptr<const Artifact>> Load(Kind kind);

 private:
  struct Cached {
    std::shared_ptr<const Artifact> artifact;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
  };
  absl::Status Serve(Kind kind, bool checksum_only, httplib::Response& res);

  AgentDownloadOptions options_;
  HttpApiContext ctx_;
  absl::Mutex mu_;
  Cached binary_ ABSL_GUARDED_BY(mu_);
  Cached package_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_AGENT_DOWNLOAD_H_
