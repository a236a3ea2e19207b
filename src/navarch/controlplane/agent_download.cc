#include "navarch/controlplane/agent_download.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/file.h"
#include "navarch/net/digest.h"

namespace navarch {
namespace {

struct KindInfo {
  const char* path;  // under /api/v1/agent/
  const char* method;
  const char* config_key;
  const char* content_type;
};

KindInfo InfoOf(AgentDownloads::Kind kind) {
  if (kind == AgentDownloads::Kind::kBinary) {
    return {"binary", "GetAgentBinary", "server.agent_binary",
            "application/octet-stream"};
  }
  return {"package", "GetAgentPackage", "server.agent_package",
          "application/vnd.debian.binary-package"};
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string DefaultAgentBinaryPath() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  const std::string exe(self, static_cast<size_t>(n));
  const std::string candidate =
      absl::StrCat(exe.substr(0, exe.rfind('/') + 1), "node-agent");
  return ::access(candidate.c_str(), R_OK) == 0 ? candidate : "";
}

AgentDownloads::AgentDownloads(AgentDownloadOptions options,
                               const HttpApiContext& ctx)
    : options_(std::move(options)), ctx_(ctx) {}

absl::StatusOr<std::shared_ptr<const AgentDownloads::Artifact>>
AgentDownloads::Load(Kind kind) {
  const KindInfo info = InfoOf(kind);
  const std::string& path =
      kind == Kind::kBinary ? options_.binary_path : options_.package_path;
  if (path.empty()) {
    return absl::NotFoundError(
        absl::StrCat("this control plane serves no agent ", info.path, ": set ",
                     info.config_key, " (docs/agent.md)"));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("the agent ", info.path, " ", path, " (", info.config_key,
                     ") is missing: ", std::strerror(errno)));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const int64_t mtime_ns =
      int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  if (!S_ISREG(st.st_mode) || size > options_.max_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the agent ", info.path, " ", path, " (", info.config_key,
        ") is not a regular file of at most ", options_.max_bytes, " bytes"));
  }
  absl::MutexLock lock(&mu_);
  Cached& cached = kind == Kind::kBinary ? binary_ : package_;
  if (cached.artifact != nullptr && cached.size == size &&
      cached.mtime_ns == mtime_ns) {
    return cached.artifact;
  }
  // Read under the lock: concurrent first downloads read the file once.
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the agent ", info.path, " (", info.config_key,
                     ") cannot be read: ", bytes.status().message()));
  }
  auto artifact = std::make_shared<Artifact>();
  artifact->file_name = BaseName(path);
  artifact->content_type = info.content_type;
  artifact->sha256 = Sha256Hex(*bytes);
  artifact->bytes = std::make_shared<const std::string>(*std::move(bytes));
  cached = Cached{artifact, size, mtime_ns};
  return cached.artifact;
}

absl::Status AgentDownloads::Serve(Kind kind, bool checksum_only,
                                   httplib::Response& res) {
  absl::StatusOr<std::shared_ptr<const Artifact>> a = Load(kind);
  if (!a.ok()) return a.status();
  const Artifact& artifact = **a;
  res.set_header("X-Checksum-Sha256", artifact.sha256);
  res.set_header("ETag", absl::StrCat("\"sha256:", artifact.sha256, "\""));
  res.set_header("Cache-Control", "no-cache");
  if (checksum_only) {
    res.set_content(
        absl::StrCat(artifact.sha256, "  ", artifact.file_name, "\n"),
        "text/plain; charset=utf-8");
    return absl::OkStatus();
  }
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"",
                                                     artifact.file_name, "\""));
  // The answer shares the cached copy: a download costs no memory of its own.
  std::shared_ptr<const std::string> bytes = artifact.bytes;
  res.set_content_provider(
      bytes->size(), artifact.content_type,
      [bytes](size_t offset, size_t length, httplib::DataSink& sink) {
        if (offset >= bytes->size()) return false;
        return sink.write(bytes->data() + offset,
                          std::min(length, bytes->size() - offset));
      });
  return absl::OkStatus();
}

void AgentDownloads::Register(HttpRouter& router) {
  for (Kind kind : {Kind::kBinary, Kind::kPackage}) {
    const KindInfo info = InfoOf(kind);
    for (bool checksum : {false, true}) {
      const std::string path = absl::StrCat("/api/v1/agent/", info.path,
                                            checksum ? "\\.sha256" : "");
      router.Get(path, [this, kind, checksum, info](const httplib::Request& req,
                                                    httplib::Response& res) {
        RunApiCall(ctx_, {"rest", info.method, Access::kAgentDownload}, req,
                   res, [&](const Identity&) {
                     if (req.target.find('?') != std::string::npos) {
                       return absl::InvalidArgumentError(
                           "this path takes no query parameters");
                     }
                     return Serve(kind, checksum, res);
                   });
      });
    }
  }
}

}  // namespace navarch
