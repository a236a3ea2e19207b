#include "navarch/net/http_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "navarch/net/http_conn.h"

namespace navarch {

using http_internal::Conn;
using http_internal::ConnStream;
using http_internal::ReadResult;
using http_internal::Steady;

namespace {

// How long a refused connection is drained before it is closed, so that the
// client reads the answer instead of a reset.
constexpr auto kLinger = std::chrono::seconds(2);
// At most one "workers busy" line per this long.
constexpr absl::Duration kBusyLogEvery = absl::Seconds(10);

std::chrono::milliseconds Millis(absl::Duration d) {
  return std::chrono::milliseconds(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// What the worker serving a request knows about it; handlers reach it
// through the thread-local below (httplib's callbacks carry no context).
struct RequestState {
  ConnStream* stream = nullptr;
  bool close_after = false;  // a body may be left unread: close
  bool head_checked = false;
};
thread_local RequestState* t_request = nullptr;

// A refusal of a request's head.
struct Refusal {
  absl::Status status;
  int http = 0;  // overrides the error writer's status when set
};

const char* Reason(int code) {
  switch (code) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Service Unavailable";
  }
}

// "host:port", "[v6]:port" or ":port" into its parts; an empty host is every
// IPv4 interface.
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return false;
  }
  if (host->empty()) *host = "0.0.0.0";
  if (absl::StartsWith(*host, "[") && absl::EndsWith(*host, "]")) {
    *host = host->substr(1, host->size() - 2);
  }
  return true;
}

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

void AddressOf(const sockaddr_storage& sa, std::string* ip, int* port) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (sa.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    *port = ntohs(in6.sin6_port);
  } else {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(sa);
    inet_ntop(AF_INET, &in4.sin_addr, text, sizeof(text));
    *port = ntohs(in4.sin_port);
  }
  *ip = text;
}

// A listening, non-blocking socket on host:port; -1 with errno on failure.
int Listen(const std::string& host, int port, int* bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints,
                  &result) != 0 ||
      result == nullptr) {
    return -1;
  }
  const int fd = ::socket(result->ai_family,
                          result->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          result->ai_protocol);
  int yes = 1, no = 0;
  // SO_REUSEADDR allows a quick restart; no SO_REUSEPORT, which would let a
  // second control plane share the port silently.
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  if (fd >= 0 && result->ai_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof(no));
  }
  const bool ok = fd >= 0 &&
                  ::bind(fd, result->ai_addr, result->ai_addrlen) == 0 &&
                  ::listen(fd, 1024) == 0;
  freeaddrinfo(result);
  if (!ok) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::string ip;
  AddressOf(sa, &ip, bound_port);
  return fd;
}

// The method and path (without query) of the request line at the start of
// `head`.
std::pair<std::string, std::string> RequestLine(absl::string_view head) {
  head = head.substr(0, head.find("\r\n"));
  const size_t sp = head.find(' ');
  if (sp == absl::string_view::npos) return {};
  absl::string_view target = head.substr(sp + 1);
  target = target.substr(0, target.find(' '));
  target = target.substr(0, target.find('?'));
  return {std::string(head.substr(0, sp)), std::string(target)};
}

}  // namespace

// ------------------------------------------------------------------ router

HttpRouter::HttpRouter() {
  placeholder_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

HttpRouter::~HttpRouter() {
  SetServing(false);
  if (placeholder_fd_ >= 0) ::close(placeholder_fd_);
}

void HttpRouter::SetServing(bool serving) {
  svr_sock_ = serving ? placeholder_fd_ : INVALID_SOCKET;
}

void HttpRouter::Remember(const char* method, const std::string& pattern) {
  routes_.emplace_back(method, std::regex(pattern));
}

HttpRouter& HttpRouter::Get(const std::string& pattern, Handler handler) {
  Remember("GET", pattern);
  httplib::Server::Get(pattern, std::move(handler));
  return *this;
}
HttpRouter& HttpRouter::Post(const std::string& pattern, Handler handler) {
  Remember("POST", pattern);
  httplib::Server::Post(pattern, std::move(handler));
  return *this;
}
HttpRouter& HttpRouter::Put(const std::string& pattern, Handler handler) {
  Remember("PUT", pattern);
  httplib::Server::Put(pattern, std::move(handler));
  return *this;
}
HttpRouter& HttpRouter::Delete(const std::string& pattern, Handler handler) {
  Remember("DELETE", pattern);
  httplib::Server::Delete(pattern, std::move(handler));
  return *this;
}

std::vector<std::string> HttpRouter::AllowedMethods(
    const std::string& path) const {
  std::vector<std::string> out;
  for (const auto& [method, re] : routes_) {
    if (std::regex_match(path, re) &&
        std::find(out.begin(), out.end(), method) == out.end()) {
      out.push_back(method);
    }
  }
  if (std::find(out.begin(), out.end(), "GET") != out.end()) {
    out.push_back("HEAD");
  }
  return out;
}

bool HttpRouter::ServeOne(httplib::Stream& stream, bool close_connection,
                          bool& connection_closed,
                          const std::function<void(httplib::Request&)>& setup) {
  return process_request(stream, close_connection, connection_closed, setup);
}

// ------------------------------------------------------------------ listener

class HttpListener::Impl {
 public:
  Impl(HttpListener& owner, const HttpListenerOptions& options, int listen_fd,
       SSL_CTX* tls);
  ~Impl();
  void Run();
  void Stop();
  HttpListenerStats stats();

 private:
  // A queue of requests and the number of its workers waiting for one.
  struct Lane {
    std::deque<Conn*> queue;
    int idle = 0;
  };

  // Poller thread.
  void PollLoop();
  void Wake();
  void AcceptAll();
  void OnReady(Conn* c);
  void Handshake(Conn* c);
  void ReadHead(Conn* c);
  void Dispatch(Conn* c, size_t head_end);
  void Refuse(Conn* c, int code, const absl::Status& why);
  void ExpireDeadlines();
  void TakeReturned();
  int PollTimeoutMs() const;
  // Workers.
  void WorkerLoop(Lane* lane);
  void Serve(Conn* c);
  void Return(Conn* c);
  void Drop(Conn* c);

  HttpListener& owner_;
  const HttpListenerOptions options_;
  const int listen_fd_;
  SSL_CTX* const tls_;  // owned; null for plain HTTP
  int wake_[2] = {-1, -1};
  std::thread poller_;
  std::vector<std::thread> workers_;  // Run and Stop only
  std::vector<Conn*> waiting_;        // poller thread only

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Lane general_ ABSL_GUARDED_BY(mu_);
  Lane priority_ ABSL_GUARDED_BY(mu_);
  std::vector<Conn*> returned_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> per_client_ ABSL_GUARDED_BY(mu_);
  HttpListenerStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Time next_busy_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

HttpListener::Impl::Impl(HttpListener& owner,
                         const HttpListenerOptions& options, int listen_fd,
                         SSL_CTX* tls)
    : owner_(owner), options_(options), listen_fd_(listen_fd), tls_(tls) {
  if (pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
}

HttpListener::Impl::~Impl() {
  Stop();
  for (int fd : {wake_[0], wake_[1], listen_fd_}) {
    if (fd >= 0) ::close(fd);
  }
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

void HttpListener::Impl::Run() {
  const int threads = std::max(1, options_.threads);
  Lane* general;
  Lane* priority;
  {
    absl::MutexLock lock(&mu_);
    general_.idle = threads;
    priority_.idle = 1;
    general = &general_;
    priority = &priority_;
  }
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this, general] { WorkerLoop(general); });
  }
  workers_.emplace_back([this, priority] { WorkerLoop(priority); });
  poller_ = std::thread([this] { PollLoop(); });
}

void HttpListener::Impl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  Wake();
  if (poller_.joinable()) poller_.join();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  std::vector<Conn*> left;
  {
    absl::MutexLock lock(&mu_);
    for (Lane* lane : {&general_, &priority_}) {
      left.insert(left.end(), lane->queue.begin(), lane->queue.end());
      lane->queue.clear();
    }
    left.insert(left.end(), returned_.begin(), returned_.end());
    returned_.clear();
  }
  for (Conn* c : left) {
    Drop(c);
    delete c;
  }
}

HttpListenerStats HttpListener::Impl::stats() {
  absl::MutexLock lock(&mu_);
  HttpListenerStats s = stats_;
  s.requests_waiting =
      static_cast<int64_t>(general_.queue.size() + priority_.queue.size());
  return s;
}

void HttpListener::Impl::Wake() {
  const char b = 1;
  if (wake_[1] >= 0) (void)::write(wake_[1], &b, 1);
}

int HttpListener::Impl::PollTimeoutMs() const {
  Steady::time_point next = Steady::now() + std::chrono::seconds(1);
  for (const Conn* c : waiting_) next = std::min(next, c->deadline);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      next - Steady::now())
                      .count();
  return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 1000));
}

void HttpListener::Impl::PollLoop() {
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    TakeReturned();
    fds.assign({{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}});
    polled = waiting_;
    for (const Conn* c : polled) {
      fds.push_back(
          {c->fd, static_cast<short>(c->want_write ? POLLOUT : POLLIN), 0});
    }
    if (::poll(fds.data(), fds.size(), PollTimeoutMs()) < 0 && errno != EINTR) {
      owner_.log_.Error("HTTP poll failed", {{"errno", errno}});
    }
    char drain[64];
    if (fds[0].revents != 0) {
      while (::read(wake_[0], drain, sizeof(drain)) > 0) {
      }
    }
    if (fds[1].revents != 0) AcceptAll();
    for (size_t i = 0; i < polled.size(); ++i) {
      if (fds[i + 2].revents != 0) OnReady(polled[i]);
    }
    ExpireDeadlines();
    // Closed connections are deleted here, once nothing points at them.
    std::erase_if(waiting_, [](Conn* c) {
      if (c->fd >= 0) return false;
      delete c;
      return true;
    });
  }
  for (Conn* c : waiting_) {
    Drop(c);
    delete c;
  }
  waiting_.clear();
}

void HttpListener::Impl::AcceptAll() {
  for (;;) {
    sockaddr_storage sa{};
    socklen_t len = sizeof(sa);
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        owner_.log_.Error("HTTP accept: out of file descriptors");
      }
      return;
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    AddressOf(sa, &c->peer_ip, &c->peer_port);
    sockaddr_storage local{};
    len = sizeof(local);
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    AddressOf(local, &c->local_ip, &c->local_port);
    bool admitted;
    {
      absl::MutexLock lock(&mu_);
      int& mine = per_client_[c->peer_ip];
      admitted = stats_.connections_open < options_.max_connections &&
                 (options_.max_connections_per_client <= 0 ||
                  mine < options_.max_connections_per_client);
      if (admitted) {
        ++mine;
        ++stats_.connections_open;
        ++stats_.connections_accepted;
      } else {
        if (mine == 0) per_client_.erase(c->peer_ip);
        ++stats_.refused_connection_limit;
      }
    }
    if (!admitted) {
      // Plain HTTP gets an answer; a TLS client would not understand one
      // before its handshake.
      if (tls_ == nullptr) {
        c->WriteNow(owner_.CannedResponse(
            503, absl::UnavailableError("too many connections; retry later")));
      }
      ::close(fd);
      continue;
    }
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    c->deadline = Steady::now() + Millis(options_.head_timeout);
    if (tls_ != nullptr) {
      c->ssl = SSL_new(tls_);
      SSL_set_fd(c->ssl, fd);
      SSL_set_accept_state(c->ssl);
      SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
      c->phase = Conn::Phase::kHandshake;
    }
    waiting_.push_back(c.release());
  }
}

void HttpListener::Impl::OnReady(Conn* c) {
  switch (c->phase) {
    case Conn::Phase::kHandshake:
      Handshake(c);
      return;
    case Conn::Phase::kHead:
    case Conn::Phase::kIdle:
      ReadHead(c);
      return;
    case Conn::Phase::kLinger: {
      ReadResult r;
      do {
        c->buf.clear();
        c->pos = 0;
        r = c->ReadSome(16 << 10);
      } while (r == ReadResult::kData);
      if (r == ReadResult::kClosed) Drop(c);
      return;
    }
    case Conn::Phase::kServing:
      return;
  }
}

void HttpListener::Impl::Handshake(Conn* c) {
  ERR_clear_error();
  const int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->phase = Conn::Phase::kHead;
    c->want_write = false;
    ReadHead(c);
    return;
  }
  const int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    c->want_write = err == SSL_ERROR_WANT_WRITE;
    return;
  }
  Drop(c);
}

void HttpListener::Impl::ReadHead(Conn* c) {
  for (;;) {
    if (const size_t end = c->HeadEnd(); end != 0) {
      Dispatch(c, end);
      return;
    }
    if (c->buffered() > options_.max_head_bytes) {
      Refuse(c, 431,
             absl::ResourceExhaustedError(
                 absl::StrCat("request line and headers over ",
                              options_.max_head_bytes, " bytes")));
      return;
    }
    const size_t before = c->buffered();
    const ReadResult r =
        c->ReadSome(options_.max_head_bytes + 1 - c->buffered());
    if (r == ReadResult::kClosed) {
      Drop(c);
      return;
    }
    if (r == ReadResult::kWouldBlock) return;
    if (c->phase == Conn::Phase::kIdle && before == 0) {
      // The next request's first byte: its head has its own deadline.
      c->phase = Conn::Phase::kHead;
      c->deadline = Steady::now() + Millis(options_.head_timeout);
    }
  }
}

void HttpListener::Impl::Dispatch(Conn* c, size_t head_end) {
  const auto [method, path] =
      RequestLine(absl::string_view(c->buf).substr(c->pos, head_end - c->pos));
  c->priority =
      method == "GET" &&
      std::find(options_.priority_paths.begin(), options_.priority_paths.end(),
                path) != options_.priority_paths.end();
  c->phase = Conn::Phase::kServing;
  // A lane owns it from here: a worker may close and free it at once.
  std::erase(waiting_, c);
  int64_t waiting = 0;
  {
    absl::MutexLock lock(&mu_);
    Lane& lane = c->priority ? priority_ : general_;
    lane.queue.push_back(c);
    const absl::Time now = absl::Now();
    if (!c->priority &&
        general_.idle < static_cast<int>(general_.queue.size()) &&
        now >= next_busy_log_) {
      next_busy_log_ = now + kBusyLogEvery;
      waiting = static_cast<int64_t>(general_.queue.size());
    }
  }
  if (waiting > 0) {
    owner_.log_.Warn("all HTTP workers are busy; requests wait for one",
                     {{"threads", static_cast<int64_t>(options_.threads)},
                      {"waiting", waiting}});
  }
}

void HttpListener::Impl::Refuse(Conn* c, int code, const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    if (code == 408) ++stats_.head_timeouts;
    if (code == 431) ++stats_.heads_too_large;
  }
  if (c->phase != Conn::Phase::kHandshake) {
    c->WriteNow(owner_.CannedResponse(code, why));
  }
  ::shutdown(c->fd, SHUT_WR);
  c->phase = Conn::Phase::kLinger;
  c->deadline = Steady::now() + kLinger;
}

void HttpListener::Impl::ExpireDeadlines() {
  const Steady::time_point now = Steady::now();
  for (Conn* c : waiting_) {
    if (c->fd < 0 || c->deadline > now) continue;
    if (c->phase == Conn::Phase::kHead && c->buffered() > 0) {
      Refuse(c, 408,
             absl::DeadlineExceededError(
                 absl::StrCat("the request head did not arrive within ",
                              absl::FormatDuration(options_.head_timeout))));
    } else {
      Drop(c);
    }
  }
}

void HttpListener::Impl::TakeReturned() {
  std::vector<Conn*> back;
  {
    absl::MutexLock lock(&mu_);
    back.swap(returned_);
  }
  for (Conn* c : back) {
    // What the served request consumed goes, or a kept-alive connection's
    // buffer would grow with every request it carries.
    c->buf.erase(0, c->pos);
    c->pos = 0;
    waiting_.push_back(c);
    if (c->phase == Conn::Phase::kLinger) continue;
    c->phase = Conn::Phase::kIdle;
    c->deadline = Steady::now() + Millis(options_.keep_alive_timeout);
    // A pipelined request may be buffered already, or held by TLS where
    // poll() cannot see it.
    ReadHead(c);
  }
}

void HttpListener::Impl::WorkerLoop(Lane* lane) {
  for (;;) {
    Conn* c = nullptr;
    {
      absl::MutexLock lock(&mu_);
      std::pair<Impl*, Lane*> arg{this, lane};
      mu_.Await(absl::Condition(
          +[](std::pair<Impl*, Lane*>* p) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return p->first->stopping_ || !p->second->queue.empty();
          },
          &arg));
      if (stopping_) return;
      c = lane->queue.front();
      lane->queue.pop_front();
      --lane->idle;
    }
    Serve(c);
    absl::MutexLock lock(&mu_);
    ++lane->idle;
  }
}

void HttpListener::Impl::Serve(Conn* c) {
  const size_t head_bytes = c->HeadEnd() - c->pos;
  http_internal::StreamLimits limits;
  limits.max_body_bytes = options_.max_body_bytes;
  limits.body_deadline = Steady::now() + Millis(options_.body_timeout);
  limits.write_timeout = Millis(options_.write_timeout);
  ConnStream stream(*c, limits, head_bytes);
  RequestState state;
  state.stream = &stream;
  bool close = ++c->requests >= options_.max_requests_per_connection;
  {
    absl::MutexLock lock(&mu_);
    close = close || stopping_;
  }
  bool closed = false;
  t_request = &state;
  const bool ok = owner_.router_.ServeOne(stream, close, closed,
                                          [c, &stream](httplib::Request& req) {
                                            req.ssl = c->ssl;
                                            stream.set_request(&req);
                                          });
  t_request = nullptr;
  if (stream.too_large()) {
    absl::MutexLock lock(&mu_);
    ++stats_.bodies_too_large;
  }
  if (ok && !stream.broken() && (state.close_after || stream.too_large())) {
    // A body may be left unread: answer, then drain before closing.
    ::shutdown(c->fd, SHUT_WR);
    c->phase = Conn::Phase::kLinger;
    c->deadline = Steady::now() + kLinger;
    Return(c);
  } else if (!ok || closed || close || stream.broken()) {
    Drop(c);
    delete c;
  } else {
    Return(c);
  }
}

void HttpListener::Impl::Return(Conn* c) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      returned_.push_back(c);
      c = nullptr;
    }
  }
  if (c != nullptr) {
    Drop(c);
    delete c;
    return;
  }
  Wake();
}

void HttpListener::Impl::Drop(Conn* c) {
  if (c->fd < 0) return;
  c->Close();
  absl::MutexLock lock(&mu_);
  --stats_.connections_open;
  auto it = per_client_.find(c->peer_ip);
  if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
}

// ------------------------------------------------------------------ facade

HttpListener::HttpListener(Logger log, BodyGate gate, ErrorWriter write_error)
    : log_(std::move(log)),
      gate_(std::move(gate)),
      write_error_(std::move(write_error)) {}

HttpListener::~HttpListener() { Stop(); }

void HttpListener::Stop() {
  router_.SetServing(false);
  if (impl_ != nullptr) impl_->Stop();
}

HttpListenerStats HttpListener::stats() const {
  return impl_ != nullptr ? impl_->stats() : HttpListenerStats{};
}

std::string HttpListener::CannedResponse(int code,
                                         const absl::Status& why) const {
  httplib::Response res;
  write_error_(res, why);
  std::string out = absl::StrCat("HTTP/1.1 ", code, " ", Reason(code), "\r\n");
  for (const auto& [name, value] : res.headers) {
    if (name == "Content-Length" || name == "Connection") continue;
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&out, "Content-Length: ", res.body.size(),
                  "\r\nConnection: close\r\n\r\n", res.body);
  return out;
}

absl::Status HttpListener::CheckHead(const httplib::Request& req,
                                     int* http_status) const {
  const bool has_length = req.has_header("Content-Length");
  const std::string te = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(req.get_header_value("Transfer-Encoding")));
  if (req.get_header_value_count("Content-Length") > 1 ||
      (has_length && !te.empty())) {
    return absl::InvalidArgumentError(
        "conflicting Content-Length and Transfer-Encoding headers");
  }
  if (!te.empty() && te != "chunked") {
    return absl::UnimplementedError(absl::StrCat(
        "transfer encoding \"", te.substr(0, 32),
        "\" is not supported: send a Content-Length or chunked body"));
  }
  const std::string encoding = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(req.get_header_value("Content-Encoding")));
  if (!encoding.empty() && encoding != "identity") {
    // They could inflate without bound past the size limit.
    return absl::UnimplementedError(absl::StrCat("compressed request bodies (",
                                                 encoding.substr(0, 32),
                                                 ") are not supported"));
  }
  uint64_t length = 0;
  if (has_length &&
      !absl::SimpleAtoi(req.get_header_value("Content-Length"), &length)) {
    return absl::InvalidArgumentError("invalid Content-Length");
  }
  if (!has_length && te.empty()) {
    // No body (RFC 9112 section 6.3), as `curl -X POST` sends it; httplib
    // would wait for the connection to close instead. The request is
    // httplib's own, mutable one, handed to us as const.
    const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    return absl::OkStatus();
  }
  if (length > max_body_bytes_) {
    *http_status = 413;
    return absl::ResourceExhaustedError(
        absl::StrCat("request body too large (", length,
                     " bytes; the limit is ", max_body_bytes_, ")"));
  }
  if ((te.empty() && length == 0) || !gate_) return absl::OkStatus();
  return gate_(req);
}

void HttpListener::InstallHandlers() {
  auto refuse = [this](const httplib::Request& req, httplib::Response& res,
                       const absl::Status& why, int http_status) {
    write_error_(res, why);
    if (http_status != 0) res.status = http_status;
    if (req.has_header("Content-Encoding")) {
      res.set_header("Accept-Encoding", "identity");
    }
    if (t_request != nullptr) t_request->close_after = true;
  };
  router_.set_pre_routing_handler(
      [this, refuse](const httplib::Request& req, httplib::Response& res) {
        if (t_request != nullptr && t_request->head_checked) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        int http_status = 0;
        const absl::Status s = CheckHead(req, &http_status);
        if (s.ok()) return httplib::Server::HandlerResponse::Unhandled;
        refuse(req, res, s, http_status);
        return httplib::Server::HandlerResponse::Handled;
      });
  router_.set_expect_100_continue_handler(
      [this, refuse](const httplib::Request& req, httplib::Response& res) {
        if (t_request != nullptr) t_request->head_checked = true;
        int http_status = 0;
        const absl::Status s = CheckHead(req, &http_status);
        if (s.ok()) return 100;
        refuse(req, res, s, http_status);
        return res.status;
      });
  router_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        return OnError(req, res);
      }));
}

httplib::Server::HandlerResponse HttpListener::OnError(
    const httplib::Request& req, httplib::Response& res) {
  if (t_request != nullptr && t_request->stream->too_large()) {
    res.body.clear();
    write_error_(res, absl::ResourceExhaustedError(
                          absl::StrCat("request body too large (the limit is ",
                                       max_body_bytes_, " bytes)")));
    res.status = 413;
    return httplib::Server::HandlerResponse::Handled;
  }
  if (res.status == 404 && res.body.empty()) {
    const std::vector<std::string> allowed = router_.AllowedMethods(req.path);
    if (!allowed.empty()) {
      write_error_(res, absl::UnimplementedError(absl::StrCat(
                            "method ", req.method.substr(0, 16),
                            " is not allowed on ", req.path.substr(0, 256),
                            "; allowed: ", absl::StrJoin(allowed, ", "))));
      res.status = 405;
      res.set_header("Allow", absl::StrJoin(allowed, ", "));
      return httplib::Server::HandlerResponse::Handled;
    }
  }
  if (error_handler_) return error_handler_(req, res);
  return httplib::Server::HandlerResponse::Unhandled;
}

absl::Status HttpListener::Start(const HttpListenerOptions& options) {
  if (impl_ != nullptr) return absl::FailedPreconditionError("started twice");
  std::string host;
  int port = 0;
  if (!SplitAddress(options.address, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid HTTP address ", options.address));
  }
  SSL_CTX* ctx = nullptr;
  if (options.tls) {
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx != nullptr) {
      SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    }
    if (ctx == nullptr || !options.tls(*ctx)) {
      if (ctx != nullptr) SSL_CTX_free(ctx);
      return absl::FailedPreconditionError(
          "cannot set up TLS for the HTTP listener");
    }
  }
  int bound = 0;
  const int fd = Listen(host, port, &bound);
  if (fd < 0) {
    const int err = errno;
    if (ctx != nullptr) SSL_CTX_free(ctx);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, " (HTTP): ",
                     err == EADDRINUSE ? "the address is already in use"
                                       : "the address is not available on "
                                         "this host"));
  }
  max_body_bytes_ = options.max_body_bytes;
  router_.set_payload_max_length(options.max_body_bytes);
  router_.set_keep_alive_timeout(
      std::max<time_t>(1, absl::ToInt64Seconds(options.keep_alive_timeout)));
  router_.set_keep_alive_max_count(
      static_cast<size_t>(std::max(1, options.max_requests_per_connection)));
  InstallHandlers();
  address_ = JoinHostPort(host, bound);
  local_address_ = (host == "0.0.0.0" || host == "::")
                       ? absl::StrCat("127.0.0.1:", bound)
                       : address_;
  impl_ = std::make_unique<Impl>(*this, options, fd, ctx);
  router_.SetServing(true);
  impl_->Run();
  return absl::OkStatus();
}

}  // namespace navarch
