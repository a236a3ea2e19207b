// A real OpenSSH server for tests (/usr/sbin/sshd from Debian's
// openssh-server): its own temporary folder, host key and client key, on a
// free loopback port, logging in as the user running the test. Works as root
// (CI) and as an ordinary user. Only 127.0.0.1 is ever listened on.
#ifndef NAVARCH_TESTS_TESTING_SSHD_H_
#define NAVARCH_TESTS_TESTING_SSHD_H_

#include <memory>
#include <string>
#include <vector>

#include "testing/process.h"

namespace navarch::testing {

class Sshd {
 public:
  // Generates the keys, writes the configuration, starts sshd and waits until
  // it listens. Throws std::runtime_error (with sshd's log) on failure.
  Sshd();
  ~Sshd();  // kills sshd by its pid; its folder goes with it

  const std::string& host() const { return host_; }  // "127.0.0.1"
  int port() const { return port_; }
  const std::string& user() const { return user_; }
  // The private key authorized to log in (OpenSSH format, no passphrase).
  const std::string& client_key_path() const { return client_key_path_; }
  // The server's host key as "<type> <base64>" (its .pub, less the comment).
  const std::string& host_public_key() const { return host_public_key_; }
  // Its fingerprint as `ssh-keygen -l` prints it: "SHA256:...".
  const std::string& host_key_fingerprint() const { return fingerprint_; }
  // A known_hosts line for this server: "[127.0.0.1]:PORT <type> <base64>".
  std::string KnownHostsLine() const;
  // A scratch folder of the test's own (removed with the server).
  const std::string& dir() const { return dir_.path(); }
  std::string Log() const;  // what sshd wrote (-e: its log on stderr)
  // The listening sshd; each connection is served by its descendants.
  pid_t pid() const { return sshd_->pid(); }

 private:
  TempDir dir_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string user_;
  std::string client_key_path_;
  std::string host_public_key_;
  std::string fingerprint_;
  std::unique_ptr<Process> sshd_;
};

// Generates an ed25519 key pair at `path` (and `path`.pub) with ssh-keygen;
// returns the public key as "<type> <base64>". Throws on failure.
std::string GenerateKey(const std::string& path);

// Runs a program to completion (up to 30 s); its exit code, with its output
// in `output`.
int RunProgram(const std::string& binary, const std::vector<std::string>& args,
               std::string* output);

}  // namespace navarch::testing

#endif  // NAVARCH_TESTS_TESTING_SSHD_H_
