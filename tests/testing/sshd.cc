#include "testing/sshd.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace navarch::testing {
namespace {

constexpr char kSshd[] = "/usr/sbin/sshd";  // absolute: sshd re-executes itself
constexpr char kSshKeygen[] = "/usr/bin/ssh-keygen";

// "<type> <base64> <comment>" -> "<type> <base64>".
std::string TypeAndKey(const std::string& pub) {
  std::istringstream in(pub);
  std::string type, key;
  in >> type >> key;
  return type + " " + key;
}

std::string CurrentUser() {
  const passwd* pw = getpwuid(geteuid());
  if (pw == nullptr) throw std::runtime_error("sshd: no passwd entry for uid");
  return pw->pw_name;
}

std::string Config(const std::string& dir, int port, const std::string& user) {
  std::ostringstream c;
  c << "Port " << port << "\n"
    << "ListenAddress 127.0.0.1\n"
    << "HostKey " << dir << "/host_key\n"
    << "PidFile " << dir << "/sshd.pid\n"
    << "AuthorizedKeysFile " << dir << "/authorized_keys\n"
    << "AllowUsers " << user
    << "\n"
    // The temporary folder is not laid out like a home directory.
    << "StrictModes no\n"
    // PAM would need a service file and, as non-root, cannot work at all.
    << "UsePAM no\n"
    << "PermitRootLogin prohibit-password\n"
    << "PasswordAuthentication no\n"
    << "KbdInteractiveAuthentication no\n"
    << "PubkeyAuthentication yes\n"
    << "X11Forwarding no\n"
    << "AllowTcpForwarding no\n"
    << "PrintMotd no\n"
    << "MaxStartups 100\n"
    << "LogLevel VERBOSE\n";
  return c.str();
}

}  // namespace

int RunProgram(const std::string& binary, const std::vector<std::string>& args,
               std::string* output) {
  TempDir dir;
  const std::string log = dir.path() + "/out";
  Process p(binary, args, log);
  const int code = p.Wait(std::chrono::seconds(30));
  if (output != nullptr) *output = ReadFile(log);
  return code;
}

std::string GenerateKey(const std::string& path) {
  std::string out;
  const int code =
      RunProgram(kSshKeygen,
                 {"-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path}, &out);
  if (code != 0) throw std::runtime_error("ssh-keygen failed: " + out);
  return TypeAndKey(ReadFile(path + ".pub"));
}

Sshd::Sshd() : user_(CurrentUser()) {
  const std::string& d = dir_.path();
  host_public_key_ = GenerateKey(d + "/host_key");
  client_key_path_ = d + "/client_key";
  WriteFile(d + "/authorized_keys", GenerateKey(client_key_path_) + "\n");
  std::string out;
  if (RunProgram(kSshKeygen, {"-l", "-E", "sha256", "-f", d + "/host_key.pub"},
                 &out) != 0) {
    throw std::runtime_error("ssh-keygen -l failed: " + out);
  }
  std::istringstream in(out);
  std::string bits;
  in >> bits >> fingerprint_;
  // As root, sshd insists on its privilege separation folder (Debian's unit
  // creates it; a container without systemd has none).
  if (geteuid() == 0) mkdir("/run/sshd", 0755);
  // A free port can be taken before sshd binds it: try a few.
  for (int attempt = 0; attempt < 3 && sshd_ == nullptr; ++attempt) {
    port_ = FreePort();
    const std::string config = d + "/sshd_config";
    WriteFile(config, Config(d, port_, user_));
    auto sshd = std::make_unique<Process>(
        kSshd, std::vector<std::string>{"-D", "-e", "-f", config},
        d + "/sshd.log");
    const std::string ready =
        "Server listening on 127.0.0.1 port " + std::to_string(port_);
    const bool up = Eventually(
        [&] {
          return Log().find(ready) != std::string::npos ||
                 sshd->Wait(std::chrono::milliseconds(0)) >= 0;
        },
        10);
    if (up && Log().find(ready) != std::string::npos) sshd_ = std::move(sshd);
  }
  if (sshd_ == nullptr)
    throw std::runtime_error("sshd did not start:\n" + Log());
}

Sshd::~Sshd() {
  if (sshd_ != nullptr) {
    sshd_->Signal(SIGTERM);
    if (sshd_->Wait(std::chrono::seconds(5)) < 0) sshd_->Signal(SIGKILL);
  }
}

std::string Sshd::KnownHostsLine() const {
  return "[" + host_ + "]:" + std::to_string(port_) + " " + host_public_key_;
}

std::string Sshd::Log() const { return ReadFile(dir_.path() + "/sshd.log"); }

}  // namespace navarch::testing
