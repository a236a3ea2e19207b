#include "testing/postgres.h"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

namespace navarch::testing {
namespace {

// Runs a program as another user by exec, not fork: signals sent to the
// process reach the server itself.
constexpr char kSetpriv[] = "/usr/bin/setpriv";

// The account the server runs as when we are root.
std::string ServerAccount() {
  for (const char* name : {"postgres", "nobody"}) {
    if (getpwnam(name) != nullptr) return name;
  }
  throw std::runtime_error(
      "postgres: running as root, and neither the "
      "postgres nor the nobody account exists");
}

// `binary args...`, as ServerAccount() when we are root.
std::pair<std::string, std::vector<std::string>> As(
    const std::string& binary, std::vector<std::string> args) {
  if (geteuid() != 0) return {binary, std::move(args)};
  const passwd* pw = getpwnam(ServerAccount().c_str());
  std::vector<std::string> wrapped = {"--reuid=" + std::to_string(pw->pw_uid),
                                      "--regid=" + std::to_string(pw->pw_gid),
                                      "--clear-groups", "--", binary};
  wrapped.insert(wrapped.end(), args.begin(), args.end());
  return {kSetpriv, std::move(wrapped)};
}

int Run(const std::string& binary, std::vector<std::string> args,
        const std::string& log) {
  auto [program, argv] = As(binary, std::move(args));
  Process p(program, argv, log);
  return p.Wait(std::chrono::seconds(60));
}

}  // namespace

std::string Postgres::BinDir() {
  std::string best;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = e.path().string() + "/bin";
    if (access((bin + "/postgres").c_str(), X_OK) != 0) continue;
    // Versions are whole numbers ("15"): the longest, then the largest.
    const std::string v = e.path().filename().string();
    const std::string b =
        best.empty()
            ? ""
            : std::filesystem::path(best).parent_path().filename().string();
    if (best.empty() || v.size() > b.size() ||
        (v.size() == b.size() && v > b)) {
      best = bin;
    }
  }
  return best;
}

Postgres::Postgres() {
  const std::string bin = BinDir();
  if (bin.empty()) {
    throw std::runtime_error(
        "postgres: no server under /usr/lib/postgresql (scripts/install-deps "
        "installs the postgresql package)");
  }
  const std::string& d = dir_.path();
  if (geteuid() == 0) {
    const passwd* pw = getpwnam(ServerAccount().c_str());
    if (chown(d.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("postgres: cannot hand " + d + " to " +
                               pw->pw_name);
    }
  }
  if (Run(bin + "/initdb",
          {"-D", d + "/data", "-U", user_, "--auth=trust", "-E", "UTF8",
           "--no-sync", "--no-instructions"},
          d + "/initdb.log") != 0) {
    throw std::runtime_error("postgres: initdb failed: " +
                             ReadFile(d + "/initdb.log"));
  }
  port_ = FreePort();
  Start();
}

void Postgres::Start() {
  if (server_ != nullptr) return;
  const std::string bin = BinDir();
  const std::string& d = dir_.path();
  auto [program, argv] =
      As(bin + "/postgres",
         {"-D", d + "/data", "-p", std::to_string(port_), "-k", d, "-c",
          "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
          "synchronous_commit=off", "-c", "full_page_writes=off"});
  server_ = std::make_unique<Process>(program, argv, d + "/server.log");
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    if (Run("/usr/bin/pg_isready",
            {"-q", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", user_,
             "-d", "postgres"},
            d + "/isready.log") == 0) {
      return;
    }
    if (std::chrono::steady_clock::now() > deadline ||
        server_->Wait(std::chrono::milliseconds(0)) != -1) {
      throw std::runtime_error("postgres: the server did not start: " + Log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void Postgres::Stop() {
  if (server_ == nullptr) return;
  // SIGINT: PostgreSQL's fast shutdown (ends sessions, no checkpoint wait).
  server_->Signal(SIGINT);
  if (server_->Wait(std::chrono::seconds(20)) == -1) {
    server_->Signal(SIGKILL);
    server_->Wait(std::chrono::seconds(5));
  }
  server_.reset();
}

Postgres::~Postgres() { Stop(); }

std::string Postgres::Dsn() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user_ +
         " dbname=postgres";
}

std::string Postgres::Log() const {
  return ReadFile(dir_.path() + "/server.log");
}

}  // namespace navarch::testing
