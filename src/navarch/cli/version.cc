// `navarch version`: this client's version, whether the control plane
// answers (with this --server, token and TLS settings), and its version.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"

namespace navarch::cli {
namespace {

#if defined(__x86_64__)
constexpr const char* kArch = "amd64";
#elif defined(__aarch64__)
constexpr const char* kArch = "arm64";
#else
constexpr const char* kArch = "unknown";
#endif

// Whether the control plane answered: any answer but a transport or token
// failure proves the address, TLS and token work. Fills in `j`.
absl::Status CheckServer(Client& client, nlohmann::json& j) {
  // There is no version RPC. GetNode with no ID is the cheapest call every
  // server has (here "node_id is required"); ours names its version in a
  // response header of every call it lets through authentication.
  std::string server_version;
  absl::Status reach = client.Probe("GetNode", &server_version);
  switch (reach.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
      break;
    default:
      reach = absl::OkStatus();
  }
  j["server"] = client.display();
  j["server_reachable"] = reach.ok();
  if (!server_version.empty()) j["server_version"] = server_version;
  if (!reach.ok()) j["server_error"] = std::string(reach.message());
  return reach;
}

absl::Status Version(bool client_only, Session& s) {
  Output& out = s.output();
  nlohmann::json j = {{"client_version", NAVARCH_VERSION},
                      {"platform", absl::StrCat("linux/", kArch)}};
  absl::Status reach;
  if (!client_only) {
    NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
    reach = CheckServer(*client, j);
  }
  if (out.json()) {
    out.Json(j);
    return reach;
  }
  out.out() << "navarch version " << NAVARCH_VERSION << "\n"
            << "  platform:        " << j["platform"].get<std::string>()
            << "\n";
  if (!client_only) {
    out.out() << "  server:          " << j["server"].get<std::string>()
              << (reach.ok() ? " (reachable)" : " (unreachable)") << "\n";
    if (reach.ok()) {
      // An upstream control plane (or one older than 0.1) names none.
      out.out() << "  server version:  "
                << j.value("server_version", std::string("unknown")) << "\n";
    }
  }
  return reach;
}

}  // namespace

void AddVersionCommand(CLI::App& app, CommandSet& commands) {
  auto client_only = std::make_shared<bool>(false);
  CLI::App* v = commands.Add(
      &app, "version",
      "print this client's and the control plane's versions; check "
      "that the control plane answers",
      [client_only](Session& s) { return Version(*client_only, s); });
  v->add_flag("--client", *client_only,
              "only the client version; do not contact the server");
}

}  // namespace navarch::cli
