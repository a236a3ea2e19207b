#include "navarch/bootstrap/ssh_client.h"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "navarch/base/status.h"
#include "navarch/bootstrap/bounded_output.h"

namespace navarch::bootstrap {

struct SshClient::Session {
  explicit Session(ssh_session s) : session(s) {}
  ~Session() {
    if (ssh_is_connected(session)) ssh_disconnect(session);
    ssh_free(session);
  }
  ssh_session session;
};

namespace {

struct KeyFree {
  void operator()(ssh_key key) const { ssh_key_free(key); }
};
using KeyPtr = std::unique_ptr<ssh_key_struct, KeyFree>;
struct ChannelFree {
  void operator()(ssh_channel channel) const { ssh_channel_free(channel); }
};
using ChannelPtr = std::unique_ptr<ssh_channel_struct, ChannelFree>;
struct CStringFree {
  void operator()(char* s) const { ssh_string_free_char(s); }
};
using CStringPtr = std::unique_ptr<char, CStringFree>;

// How long a killed command may take to be reported gone before the channel
// is closed regardless.
constexpr absl::Duration kKillGrace = absl::Seconds(2);
// The longest single wait: cancellation and a FakeClock's advance are seen
// within it.
constexpr absl::Duration kSlice = absl::Milliseconds(100);
// Host key algorithms, libssh's default order.
constexpr std::array<std::string_view, 6> kHostKeyAlgorithms = {
    "ssh-ed25519",         "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp256", "rsa-sha2-512",        "rsa-sha2-256"};

std::string Peer(const SshTarget& target) {
  if (absl::StrContains(target.host, ':')) {
    return absl::StrCat("[", target.host, "]:", target.port);
  }
  return absl::StrCat(target.host, ":", target.port);
}

absl::StatusOr<KeyPtr> LoadPrivateKey(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("no private key file");
  ssh_key key = nullptr;
  const int rc = ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr,
                                             nullptr, &key);
  if (rc == SSH_EOF) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read private key file ", path));
  }
  if (rc != SSH_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "private key file ", path,
        " is not a usable private key (malformed or passphrase-protected)"));
  }
  return KeyPtr(key);
}

// "<type> <base64> [comment]" -> the key; INVALID_ARGUMENT if it is none.
absl::StatusOr<KeyPtr> ParsePublicKey(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())),
      ' ', absl::SkipEmpty());
  ssh_key key = nullptr;
  if (parts.size() >= 2) {
    const std::string& type = parts[0];
    const std::string& base64 = parts[1];
    const ssh_keytypes_e t = ssh_key_type_from_name(type.c_str());
    if (t != SSH_KEYTYPE_UNKNOWN &&
        ssh_pki_import_pubkey_base64(base64.c_str(), t, &key) == SSH_OK) {
      return KeyPtr(key);
    }
  }
  return absl::InvalidArgumentError(
      "pinned host key is not \"<type> <base64>\" of a known key type");
}

// The host key algorithms to offer, those of `pinned` first, so that a
// server with several keys shows the pinned one.
std::string PreferredHostKeys(ssh_key pinned) {
  std::vector<std::string> order;
  const std::string type = ssh_key_type_to_char(ssh_key_type(pinned));
  if (type == "ssh-rsa") {
    order = {"rsa-sha2-512", "rsa-sha2-256"};
  } else {
    order = {type};
  }
  for (std::string_view a : kHostKeyAlgorithms) {
    if (std::find(order.begin(), order.end(), a) == order.end()) {
      order.emplace_back(a);
    }
  }
  return absl::StrJoin(order, ",");
}

absl::Status Validate(const SshTarget& target, const HostKeyCheck& check) {
  if (target.host.empty()) return absl::InvalidArgumentError("no ssh host");
  if (target.user.empty()) return absl::InvalidArgumentError("no ssh user");
  if (target.port < 1 || target.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("ssh port ", target.port, " is out of range"));
  }
  if (check.policy == HostKeyPolicy::kKnownHosts &&
      check.known_hosts_path.empty()) {
    return absl::InvalidArgumentError(
        "host key policy known_hosts needs a known_hosts file");
  }
  return absl::OkStatus();
}

// Sets the dial's timeout: libssh takes seconds and microseconds, and reads
// zero as "its default" (10 s), so at least 1 ms.
void SetTimeout(ssh_session s, absl::Duration timeout) {
  const int64_t us =
      std::max<int64_t>(absl::ToInt64Microseconds(timeout), 1000);
  long seconds = us / 1000000;
  long micros = us % 1000000;
  ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &seconds);
  ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &micros);
}

absl::Status SetOptions(ssh_session s, const SshTarget& target,
                        const HostKeyCheck& check, ssh_key pinned,
                        absl::Duration timeout) {
  // Nothing from ~/.ssh/config, /etc/ssh/ssh_config or the user's
  // known_hosts: what the caller says is all there is.
  bool process_config = false;
  int strict = 1;
  const unsigned int port = target.port;
  const std::string known_hosts = check.policy == HostKeyPolicy::kKnownHosts
                                      ? check.known_hosts_path
                                      : std::string("/dev/null");
  bool ok =
      ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &process_config) == 0 &&
      ssh_options_set(s, SSH_OPTIONS_HOST, target.host.c_str()) == 0 &&
      ssh_options_set(s, SSH_OPTIONS_PORT, &port) == 0 &&
      ssh_options_set(s, SSH_OPTIONS_USER, target.user.c_str()) == 0 &&
      ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &strict) == 0 &&
      ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, known_hosts.c_str()) == 0 &&
      ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, known_hosts.c_str()) ==
          0;
  if (ok && pinned != nullptr) {
    ok = ssh_options_set(s, SSH_OPTIONS_HOSTKEYS,
                         PreferredHostKeys(pinned).c_str()) == 0;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("ssh options for ", Peer(target), ": ", ssh_get_error(s)));
  }
  SetTimeout(s, timeout);
  return absl::OkStatus();
}

absl::Status DialError(ssh_session s, const SshTarget& target) {
  const std::string message = ssh_get_error(s);
  const std::string text =
      absl::StrCat("ssh ", Peer(target), ": connect failed: ", message);
  if (absl::StrContains(absl::AsciiStrToLower(message), "timeout") ||
      absl::StrContains(absl::AsciiStrToLower(message), "timed out")) {
    return absl::DeadlineExceededError(text);
  }
  return absl::UnavailableError(text);
}

absl::StatusOr<HostKey> ServerHostKey(ssh_session s, const SshTarget& target) {
  ssh_key raw = nullptr;
  if (ssh_get_server_publickey(s, &raw) != SSH_OK) {
    return absl::UnavailableError(absl::StrCat(
        "ssh ", Peer(target), ": no host key: ", ssh_get_error(s)));
  }
  KeyPtr key(raw);
  char* base64 = nullptr;
  unsigned char* hash = nullptr;
  size_t hash_len = 0;
  if (ssh_pki_export_pubkey_base64(key.get(), &base64) != SSH_OK ||
      ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash,
                             &hash_len) != 0) {
    ssh_string_free_char(base64);
    return absl::UnavailableError(
        absl::StrCat("ssh ", Peer(target), ": cannot read its host key"));
  }
  CStringPtr base64_owner(base64);
  CStringPtr fingerprint(
      ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len));
  ssh_clean_pubkey_hash(&hash);
  HostKey out;
  out.public_key =
      absl::StrCat(ssh_key_type_to_char(ssh_key_type(key.get())), " ", base64);
  out.fingerprint = fingerprint ? fingerprint.get() : "";
  return out;
}

absl::Status CheckKnownHosts(ssh_session s, const SshTarget& target,
                             const HostKeyCheck& check, const HostKey& seen) {
  const std::string key =
      absl::StrCat(seen.fingerprint, " (",
                   seen.public_key.substr(0, seen.public_key.find(' ')), ")");
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      return absl::OkStatus();
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      return absl::FailedPreconditionError(absl::StrCat(
          "host key changed for ", Peer(target), ": the server presented ", key,
          ", which ", check.known_hosts_path,
          " does not list for it; refusing to connect"));
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      return absl::FailedPreconditionError(
          absl::StrCat("host key unknown for ", Peer(target),
                       ": known_hosts file ", check.known_hosts_path,
                       " does not exist; the server presented ", key));
    case SSH_KNOWN_HOSTS_UNKNOWN:
      return absl::FailedPreconditionError(absl::StrCat(
          "host key unknown for ", Peer(target), ": ", check.known_hosts_path,
          " has no entry for it; the server presented ", key));
    default:
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot check the host key of ", Peer(target), " against ",
          check.known_hosts_path, ": ", ssh_get_error(s)));
  }
}

absl::Status CheckHostKey(ssh_session s, const SshTarget& target,
                          const HostKeyCheck& check, ssh_key pinned,
                          const HostKey& seen) {
  switch (check.policy) {
    case HostKeyPolicy::kKnownHosts:
      return CheckKnownHosts(s, target, check, seen);
    case HostKeyPolicy::kTofu: {
      if (pinned == nullptr) return absl::OkStatus();
      ssh_key raw = nullptr;
      if (ssh_get_server_publickey(s, &raw) != SSH_OK) {
        return absl::UnavailableError("no host key");
      }
      KeyPtr server(raw);
      if (ssh_key_cmp(server.get(), pinned, SSH_KEY_CMP_PUBLIC) == 0) {
        return absl::OkStatus();
      }
      return absl::FailedPreconditionError(
          absl::StrCat("host key changed for ", Peer(target),
                       ": the server presented ", seen.fingerprint, " (",
                       seen.public_key.substr(0, seen.public_key.find(' ')),
                       "), not the pinned key; refusing to connect"));
    }
    case HostKeyPolicy::kInsecure:
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown host key policy");
}

absl::Status Authenticate(ssh_session s, const SshTarget& target, ssh_key key) {
  switch (ssh_userauth_publickey(s, nullptr, key)) {
    case SSH_AUTH_SUCCESS:
      return absl::OkStatus();
    case SSH_AUTH_DENIED:
    case SSH_AUTH_PARTIAL:
      return absl::PermissionDeniedError(absl::StrCat(
          "ssh ", Peer(target), ": the server refused user ", target.user,
          " with the key in ", target.private_key_path));
    default: {
      const std::string message = ssh_get_error(s);
      const std::string text = absl::StrCat(
          "ssh ", Peer(target), ": authentication failed: ", message);
      if (absl::StrContains(absl::AsciiStrToLower(message), "timeout")) {
        return absl::DeadlineExceededError(text);
      }
      return absl::UnavailableError(text);
    }
  }
}

}  // namespace

std::string_view HostKeyPolicyName(HostKeyPolicy policy) {
  switch (policy) {
    case HostKeyPolicy::kKnownHosts:
      return "known_hosts";
    case HostKeyPolicy::kTofu:
      return "tofu";
    case HostKeyPolicy::kInsecure:
      return "insecure";
  }
  return "unknown";
}

absl::StatusOr<HostKeyPolicy> ParseHostKeyPolicy(std::string_view name) {
  for (HostKeyPolicy p : {HostKeyPolicy::kKnownHosts, HostKeyPolicy::kTofu,
                          HostKeyPolicy::kInsecure}) {
    if (HostKeyPolicyName(p) == name) return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ssh host key policy \"", std::string(name),
                   "\" (known_hosts, tofu or insecure)"));
}

absl::StatusOr<std::unique_ptr<SshClient>> SshClient::Connect(
    const SshTarget& target, const HostKeyCheck& check, absl::Duration timeout,
    Clock& clock, const absl::Notification* cancel) {
  NAVARCH_RETURN_IF_ERROR(Validate(target, check));
  KeyPtr pinned;
  if (check.policy == HostKeyPolicy::kTofu && !check.pinned_key.empty()) {
    NAVARCH_ASSIGN_OR_RETURN(pinned, ParsePublicKey(check.pinned_key));
  }
  NAVARCH_ASSIGN_OR_RETURN(KeyPtr key, LoadPrivateKey(target.private_key_path));
  if (cancel != nullptr && cancel->HasBeenNotified()) {
    return absl::CancelledError("ssh connect cancelled");
  }
  auto session = std::make_unique<Session>(ssh_new());
  if (session->session == nullptr) return absl::InternalError("ssh_new failed");
  ssh_session s = session->session;
  NAVARCH_RETURN_IF_ERROR(SetOptions(s, target, check, pinned.get(), timeout));
  const absl::Duration start = clock.SteadyNow();
  if (ssh_connect(s) != SSH_OK) return DialError(s, target);
  NAVARCH_ASSIGN_OR_RETURN(HostKey seen, ServerHostKey(s, target));
  NAVARCH_RETURN_IF_ERROR(CheckHostKey(s, target, check, pinned.get(), seen));
  SetTimeout(s, timeout - (clock.SteadyNow() - start));
  NAVARCH_RETURN_IF_ERROR(Authenticate(s, target, key.get()));
  return std::unique_ptr<SshClient>(new SshClient(
      std::move(session), std::move(seen), clock, cancel, Peer(target)));
}

SshClient::SshClient(std::unique_ptr<Session> session, HostKey host_key,
                     Clock& clock, const absl::Notification* cancel,
                     std::string peer)
    : session_(std::move(session)),
      host_key_(std::move(host_key)),
      clock_(clock),
      cancel_(cancel),
      peer_(std::move(peer)) {}

SshClient::~SshClient() = default;

namespace {

// The command runs under this guard, with the user's shell as sshd would run
// it. The command reads /dev/null; the guard watches the session's stdin
// (the channel), and when it ends (the client sent EOF after a timeout or a
// cancel, or the connection died) kills the session's whole process group:
// sshd starts each session in a process group of its own. sshd's "signal"
// request would do the same, but sshd refuses it for root logins.
constexpr char kGuard[] =
    "exec 3<&0 </dev/null\n"
    "\"${SHELL:-/bin/sh}\" -c \"$1\" 3<&- &\n"
    "pid=$!\n"
    "{ cat <&3; kill -KILL 0; } >/dev/null 2>&1 &\n"
    "guard=$!\n"
    "exec 3<&-\n"
    "wait \"$pid\"\n"
    "status=$?\n"
    "kill \"$guard\" 2>/dev/null\n"
    "exit \"$status\"\n";

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string Guarded(std::string_view command) {
  return absl::StrCat("exec /bin/sh -c ", ShellQuote(kGuard), " navarch-ssh ",
                      ShellQuote(command));
}

int SignalNumber(std::string_view name) {
  static constexpr std::pair<std::string_view, int> kSignals[] = {
      {"HUP", 1},   {"INT", 2},   {"QUIT", 3},  {"ILL", 4},   {"ABRT", 6},
      {"FPE", 8},   {"KILL", 9},  {"USR1", 10}, {"SEGV", 11}, {"USR2", 12},
      {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15}};
  for (const auto& [n, number] : kSignals) {
    if (n == name) return number;
  }
  return 0;
}

// What the server said about the command's end.
struct ExitInfo {
  bool known = false;
  int status = -1;
  std::string signal;
};

void OnExitStatus(ssh_session, ssh_channel, int status, void* user) {
  auto* exit = static_cast<ExitInfo*>(user);
  exit->known = true;
  exit->status = status;
}

void OnExitSignal(ssh_session, ssh_channel, const char* signal, int,
                  const char*, const char*, void* user) {
  auto* exit = static_cast<ExitInfo*>(user);
  exit->known = true;
  exit->signal = signal != nullptr ? signal : "";
}

// Reads a running command's output and end, polling the session.
class CommandPump {
 public:
  CommandPump(ssh_session session, ssh_channel channel, size_t limit,
              Clock& clock)
      : session_(session),
        channel_(channel),
        clock_(clock),
        out_(limit),
        err_(limit),
        event_(ssh_event_new()) {
    ssh_callbacks_init(&callbacks_);
    callbacks_.userdata = &exit_;
    callbacks_.channel_exit_status_function = OnExitStatus;
    callbacks_.channel_exit_signal_function = OnExitSignal;
    ssh_set_channel_callbacks(channel_, &callbacks_);
  }
  ~CommandPump() {
    if (in_event_) ssh_event_remove_session(event_, session_);
    ssh_event_free(event_);
    ssh_remove_channel_callbacks(channel_, &callbacks_);
  }

  // Reads until the command has ended (true), or `deadline` passes or
  // `cancel` is notified (false). UNAVAILABLE when the connection fails.
  absl::StatusOr<bool> Until(absl::Duration deadline,
                             const absl::Notification* cancel) {
    if (!in_event_) {
      if (event_ == nullptr ||
          ssh_event_add_session(event_, session_) != SSH_OK)
        return absl::InternalError("ssh_event_add_session failed");
      in_event_ = true;
    }
    while (true) {
      NAVARCH_RETURN_IF_ERROR(Drain());
      if (!ssh_is_connected(session_)) return Lost();
      if (Ended()) return true;
      if (cancel != nullptr && cancel->HasBeenNotified()) return false;
      const absl::Duration left = deadline - clock_.SteadyNow();
      if (left <= absl::ZeroDuration()) return false;
      const int ms = std::max<int64_t>(
          1, absl::ToInt64Milliseconds(std::min(left, kSlice)));
      // An interrupted poll is an error too: a few in a row are tolerated.
      if (ssh_event_dopoll(event_, ms) != SSH_ERROR) {
        poll_errors_ = 0;
      } else if (++poll_errors_ > 10) {
        return Lost();
      }
    }
  }

  const ExitInfo& exit() const { return exit_; }
  const BoundedOutput& out() const { return out_; }
  const BoundedOutput& err() const { return err_; }

 private:
  bool Ended() {
    return ssh_channel_is_closed(channel_) ||
           (ssh_channel_is_eof(channel_) && exit_.known);
  }

  absl::Status Drain() {
    char buf[16384];
    for (int is_stderr : {0, 1}) {
      while (true) {
        const int n =
            ssh_channel_read_nonblocking(channel_, buf, sizeof(buf), is_stderr);
        if (n == SSH_ERROR) return Lost();
        if (n <= 0) break;
        (is_stderr ? err_ : out_).Append(std::string_view(buf, n));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Lost() {
    return absl::UnavailableError(
        absl::StrCat("connection lost: ", ssh_get_error(session_)));
  }

  ssh_session session_;
  ssh_channel channel_;
  Clock& clock_;
  BoundedOutput out_;
  BoundedOutput err_;
  ExitInfo exit_;
  ssh_channel_callbacks_struct callbacks_{};
  ssh_event event_;
  bool in_event_ = false;
  int poll_errors_ = 0;  // in a row
};

void FillResult(const CommandPump& pump, CommandResult& result) {
  result.stdout_text = pump.out().Text();
  result.stderr_text = pump.err().Text();
  result.output_truncated = pump.out().truncated() || pump.err().truncated();
  result.exit_signal = pump.exit().signal;
  if (result.timed_out) {
    result.exit_code = -1;
  } else if (!pump.exit().signal.empty()) {
    const int number = SignalNumber(pump.exit().signal);
    result.exit_code = number > 0 ? 128 + number : -1;
  } else {
    result.exit_code = pump.exit().status;
  }
}

}  // namespace

absl::StatusOr<CommandResult> SshClient::Run(std::string_view command,
                                             absl::Duration timeout,
                                             size_t output_limit) {
  const absl::Duration start = clock_.SteadyNow();
  if (cancel_ != nullptr && cancel_->HasBeenNotified()) {
    return absl::CancelledError("ssh command cancelled");
  }
  ssh_session s = session_->session;
  // Opening the channel and starting the command block in libssh: bounded
  // by the command's timeout too.
  SetTimeout(s, timeout);
  ChannelPtr channel(ssh_channel_new(s));
  const std::string cmd = Guarded(command);
  bool started =
      channel != nullptr && ssh_channel_open_session(channel.get()) == SSH_OK;
  if (started) {
    SetTimeout(s, timeout - (clock_.SteadyNow() - start));
    started = ssh_channel_request_exec(channel.get(), cmd.c_str()) == SSH_OK;
  }
  if (!started) {
    return absl::UnavailableError(absl::StrCat(
        "ssh ", peer_, ": cannot start command: ", ssh_get_error(s)));
  }
  CommandResult result;
  CommandPump pump(s, channel.get(), output_limit, clock_);
  absl::StatusOr<bool> ended = pump.Until(start + timeout, cancel_);
  if (!ended.ok()) return Annotate(ended.status(), absl::StrCat("ssh ", peer_));
  if (!*ended) {
    // EOF makes the guard kill the session's process group; the signal does
    // the same where sshd allows it.
    ssh_channel_send_eof(channel.get());
    ssh_channel_request_send_signal(channel.get(), "KILL");
    (void)pump.Until(clock_.SteadyNow() + kKillGrace, nullptr);
    result.timed_out = cancel_ == nullptr || !cancel_->HasBeenNotified();
    if (!result.timed_out) {
      return absl::CancelledError(
          absl::StrCat("ssh ", peer_, ": command cancelled (killed)"));
    }
  }
  FillResult(pump, result);
  result.duration = clock_.SteadyNow() - start;
  return result;
}

}  // namespace navarch::bootstrap
