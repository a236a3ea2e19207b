#include "navarch/agent/node_identity.h"

#include <unistd.h>

#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "navarch/base/file.h"
#include "navarch/base/ids.h"

namespace navarch::agent {
namespace {

// A source's answer, or why it gave none (one line of the final error).
using Attempt = absl::StatusOr<NodeIdentity>;

std::string Trimmed(absl::string_view s) {
  return std::string(absl::StripAsciiWhitespace(s));
}

std::string LastSegment(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path
                                                      : path.substr(slash + 1));
}

// "us-central1-a" -> "us-central1" (GCE zones are REGION-LETTER).
std::string RegionOfZone(absl::string_view zone) {
  const size_t dash = zone.rfind('-');
  return std::string(dash == absl::string_view::npos ? zone
                                                     : zone.substr(0, dash));
}

// `id` as `source` gave it, checked against the fleet's rules for node ids.
Attempt Identity(const std::string& id, std::string source) {
  if (absl::Status s = ValidateId("node id", id); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gave an unusable node id: ", s.message()));
  }
  NodeIdentity out;
  out.node_id = id;
  out.source = std::move(source);
  return out;
}

Attempt FromEc2(const NodeIdentityOptions& o, const GetEnv& env) {
  if (Ec2MetadataDisabled(env)) {
    return absl::FailedPreconditionError(
        "disabled by AWS_EC2_METADATA_DISABLED=true");
  }
  Ec2MetadataClient imds(Ec2MetadataEndpoint(env), o.metadata);
  absl::StatusOr<std::string> id = imds.Get("meta-data/instance-id");
  if (!id.ok()) return id.status();
  Attempt out = Identity(
      Trimmed(*id), absl::StrCat("ec2 instance metadata at ", imds.endpoint()));
  if (!out.ok()) return out;
  // The instance answered: what else it says is a bonus, not a condition.
  auto read = [&imds](const char* path) {
    absl::StatusOr<std::string> v = imds.Get(path);
    return v.ok() ? Trimmed(*v) : std::string();
  };
  out->zone = read("meta-data/placement/availability-zone");
  out->region = read("meta-data/placement/region");
  out->instance_type = read("meta-data/instance-type");
  return out;
}

Attempt FromGce(const NodeIdentityOptions& o, const GetEnv& env) {
  const std::string host = GceMetadataHost(env);
  absl::StatusOr<std::string> name =
      GceMetadataGet(host, "instance/name", o.metadata);
  if (!name.ok()) return name.status();
  Attempt out =
      Identity(Trimmed(*name), absl::StrCat("gce metadata server at ", host));
  if (!out.ok()) return out;
  auto read = [&](const char* path) {
    absl::StatusOr<std::string> v = GceMetadataGet(host, path, o.metadata);
    return v.ok() ? LastSegment(Trimmed(*v)) : std::string();
  };
  out->zone = read("instance/zone");  // projects/NUMBER/zones/ZONE
  if (!out->zone.empty()) out->region = RegionOfZone(out->zone);
  out->instance_type = read("instance/machine-type");
  return out;
}

Attempt FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot be read (no such file?)");
  std::string line;
  while (std::getline(in, line)) {
    line = Trimmed(line);
    if (!line.empty()) break;
    if (in.tellg() > 4096) break;
  }
  if (line.empty()) return absl::NotFoundError("is empty");
  return Identity(line, absl::StrCat("file ", path));
}

// The id kept in o.assigned_file, else the control plane's answer (then
// kept there).
Attempt FromControlPlane(const NodeIdentityOptions& o) {
  if (!o.assigned_file.empty()) {
    Attempt kept = FromFile(o.assigned_file);
    if (kept.ok()) {
      kept->source = absl::StrCat("the control plane (kept in ",
                                  o.assigned_file, " at an earlier start)");
      return kept;
    }
    if (!o.control_plane) {
      return absl::NotFoundError(
          absl::StrCat("nothing kept in ", o.assigned_file,
                       ", and no bootstrap token to ask with"));
    }
  }
  if (!o.control_plane) {
    return absl::FailedPreconditionError("no bootstrap token to ask with");
  }
  absl::StatusOr<std::string> id = o.control_plane();
  if (!id.ok()) return id.status();
  Attempt out = Identity(*id, "the control plane (assigned by RegisterNode)");
  if (!out.ok() || o.assigned_file.empty()) return out;
  if (absl::Status s = WriteFileAtomically(o.assigned_file, *id + "\n", 0644);
      !s.ok()) {
    // Still usable now; the next start after the token expired is not.
    out->source = absl::StrCat(out->source, "; not kept in ", o.assigned_file,
                               ": ", s.message());
  }
  return out;
}

Attempt FromHostname(const NodeIdentityOptions& o) {
  std::string name;
  if (o.hostname) {
    name = o.hostname();
  } else {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) == 0) name = buf;
  }
  if (name.empty()) return absl::NotFoundError("cannot be read");
  return Identity(name, "the hostname");
}

std::string SourceName(const NodeIdSource& s, const GetEnv& env) {
  switch (s.kind) {
    case NodeIdSourceKind::kEc2:
      return absl::StrCat("ec2 instance metadata (", Ec2MetadataEndpoint(env),
                          ")");
    case NodeIdSourceKind::kGce:
      return absl::StrCat("gce metadata server (", GceMetadataHost(env), ")");
    case NodeIdSourceKind::kFile:
      return absl::StrCat("file ", s.path);
    case NodeIdSourceKind::kControlPlane:
      return "the control plane";
    case NodeIdSourceKind::kHostname:
      return "the hostname";
  }
  return "";
}

Attempt Try(const NodeIdentityOptions& o, const NodeIdSource& s,
            const GetEnv& env) {
  switch (s.kind) {
    case NodeIdSourceKind::kEc2:
      return FromEc2(o, env);
    case NodeIdSourceKind::kGce:
      return FromGce(o, env);
    case NodeIdSourceKind::kFile:
      return FromFile(s.path);
    case NodeIdSourceKind::kControlPlane:
      return FromControlPlane(o);
    case NodeIdSourceKind::kHostname:
      return FromHostname(o);
  }
  return absl::InternalError("unknown source");
}

}  // namespace

absl::StatusOr<NodeIdSource> ParseNodeIdSource(absl::string_view text) {
  NodeIdSource s;
  if (text == "ec2") {
    s.kind = NodeIdSourceKind::kEc2;
  } else if (text == "gce") {
    s.kind = NodeIdSourceKind::kGce;
  } else if (text == "control-plane") {
    s.kind = NodeIdSourceKind::kControlPlane;
  } else if (text == "hostname") {
    s.kind = NodeIdSourceKind::kHostname;
  } else if (absl::ConsumePrefix(&text, "file:") &&
             absl::StartsWith(text, "/")) {
    s.kind = NodeIdSourceKind::kFile;
    s.path = std::string(text);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown node id source \"", text,
        "\": expected ec2, gce, file:/ABSOLUTE/PATH, control-plane "
        "or hostname"));
  }
  return s;
}

absl::StatusOr<NodeIdentity> ResolveNodeIdentity(
    const NodeIdentityOptions& options) {
  const GetEnv env = options.getenv ? options.getenv : ProcessEnv();
  std::vector<NodeIdSource> sources;
  if (options.source) {
    sources.push_back(*options.source);
  } else {
    sources = {{NodeIdSourceKind::kEc2, ""},
               {NodeIdSourceKind::kGce, ""},
               {NodeIdSourceKind::kFile, options.file}};
    if (options.control_plane || !options.assigned_file.empty()) {
      sources.push_back({NodeIdSourceKind::kControlPlane, ""});
    }
    if (options.allow_hostname) {
      sources.push_back({NodeIdSourceKind::kHostname, ""});
    }
  }
  std::vector<std::string> tried;
  for (const NodeIdSource& s : sources) {
    Attempt a = Try(options, s, env);
    if (a.ok()) return a;
    tried.push_back(
        absl::StrCat(SourceName(s, env), ": ", a.status().message()));
  }
  if (!options.source && !options.allow_hostname) {
    tried.push_back(
        "the hostname: not tried (allow it with --node-id-allow-hostname, or "
        "choose it with --node-id-source hostname)");
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot find this node's id (--node-id auto); tried:\n  ",
      absl::StrJoin(tried, "\n  "), "\npass --node-id ID, or write the id to ",
      options.file, " (docs/agent.md, \"Node identity\")"));
}

}  // namespace navarch::agent
