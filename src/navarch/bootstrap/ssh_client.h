// A small SSH client over libssh: connect with a verified host key and
// public-key authentication, then run commands one at a time, each bounded
// in time and output. Used by the SSH bootstrap (ssh_bootstrap.h).
//
// Key material is never logged or returned: errors name the key file, never
// its content.
#ifndef NAVARCH_BOOTSTRAP_SSH_CLIENT_H_
#define NAVARCH_BOOTSTRAP_SSH_CLIENT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch::bootstrap {

struct SshTarget {
  std::string host;  // an address or a name
  int port = 22;
  std::string user;
  std::string private_key_path;  // OpenSSH or PEM, without a passphrase
};

enum class HostKeyPolicy {
  // The key must be listed for the host in an OpenSSH known_hosts file
  // ("[host]:port" for ports other than 22; hashed entries too).
  kKnownHosts,
  // Trust on first use: the caller pins the first key seen and passes it
  // back on later connections; another key is refused.
  kTofu,
  // Any key. The caller must say so in its log on every connection.
  kInsecure,
};

struct HostKeyCheck {
  HostKeyPolicy policy = HostKeyPolicy::kKnownHosts;
  std::string known_hosts_path;  // kKnownHosts
  // kTofu: the pinned key, "<type> <base64>" (a trailing comment is
  // ignored); empty when none is pinned yet, and then any key is accepted.
  std::string pinned_key;
};

// "known_hosts", "tofu", "insecure" (the config's ssh_host_key_policy).
std::string_view HostKeyPolicyName(HostKeyPolicy policy);
// The reverse; INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<HostKeyPolicy> ParseHostKeyPolicy(std::string_view name);

// A server's host key.
struct HostKey {
  std::string public_key;   // "<type> <base64>", as in known_hosts
  std::string fingerprint;  // "SHA256:<base64>", as `ssh-keygen -l` prints
};

struct CommandResult {
  // The command's exit status; 128 + N when a signal N killed it; -1 when it
  // timed out (and was killed) or the server sent no status.
  int exit_code = -1;
  std::string exit_signal;  // "KILL", "SEGV"... when a signal ended it
  // At most the output limit each (head and tail, with a marker saying how
  // much was dropped in between).
  std::string stdout_text;
  std::string stderr_text;
  bool output_truncated = false;  // either stream
  absl::Duration duration;
  bool timed_out = false;
};

// One SSH connection. Not thread-safe, except Cancel's notification.
class SshClient {
 public:
  // Connects to `target`, checks the host key per `check`, authenticates
  // with the private key. `timeout` bounds the whole dial (TCP, key
  // exchange, authentication); a host name's DNS lookup is not (cloud
  // instances have addresses). The private key is read before any network
  // traffic. `cancel`, when given and notified, makes a running command stop
  // (killed on the server) and later calls fail with CANCELLED; it must
  // outlive the client.
  //
  // Errors: INVALID_ARGUMENT for a bad target, check or key file;
  // FAILED_PRECONDITION when the host key is refused (unknown, or "host key
  // changed"; the message names host:port and the key's SHA256
  // fingerprint); PERMISSION_DENIED when the server refuses the key;
  // DEADLINE_EXCEEDED when the dial timed out; UNAVAILABLE for other network
  // trouble (refused, reset, not SSH).
  static absl::StatusOr<std::unique_ptr<SshClient>> Connect(
      const SshTarget& target, const HostKeyCheck& check,
      absl::Duration timeout, Clock& clock,
      const absl::Notification* cancel = nullptr);

  ~SshClient();  // disconnects
  SshClient(const SshClient&) = delete;
  SshClient& operator=(const SshClient&) = delete;

  // The key the server presented (also under kInsecure and kTofu, so the
  // caller can log or pin it).
  const HostKey& host_key() const { return host_key_; }

  // Runs `command` with the user's login shell on the server (as `ssh host
  // command` would), with stdin from /dev/null and no terminal, under a small
  // /bin/sh guard. After `timeout` (on the clock's SteadyNow) the command's
  // whole process group is killed on the server: the client sends EOF, which
  // the guard watches for (it also fires when the connection dies), and an
  // SSH "signal KILL" request (which sshd refuses for root). The result then
  // says timed_out. Run returns at most about `timeout` after it started
  // (opening the channel and starting the command count), plus up to 2 s for
  // the server to report the kill. A non-zero exit is a result, not an
  // error. Errors: UNAVAILABLE when the connection fails (the client is then
  // unusable), CANCELLED when `cancel` was notified (the command is killed
  // too).
  absl::StatusOr<CommandResult> Run(std::string_view command,
                                    absl::Duration timeout,
                                    size_t output_limit);

 private:
  struct Session;
  SshClient(std::unique_ptr<Session> session, HostKey host_key, Clock& clock,
            const absl::Notification* cancel, std::string peer);

  std::unique_ptr<Session> session_;
  HostKey host_key_;
  Clock& clock_;
  const absl::Notification* cancel_;
  std::string peer_;  // "host:port", for messages
};

}  // namespace navarch::bootstrap

#endif  // NAVARCH_BOOTSTRAP_SSH_CLIENT_H_
