#include "navarch/net/http_conn.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace navarch::http_internal {
namespace {

constexpr size_t kReadChunk = 16 << 10;

// Framing (chunk sizes, extensions, trailers) allowed on the wire on top of
// the body limit before the request is called too large.
constexpr size_t kFramingAllowance = 64 << 10;

int MillisUntil(Steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Steady::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60'000));
}

}  // namespace

bool WaitReady(int fd, short events, Steady::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, MillisUntil(deadline));
    if (n > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && Steady::now() < deadline) continue;  // clamped wait
    return false;
  }
}

void Conn::Compact() {
  if (pos > 0 && pos * 2 >= buf.size()) {
    buf.erase(0, pos);
    pos = 0;
  }
}

ReadResult Conn::ReadSome(size_t max) {
  const size_t old = buf.size();
  const size_t want = std::min(max, kReadChunk);
  if (want == 0) return ReadResult::kWouldBlock;
  buf.resize(old + want);
  ssize_t n;
  if (ssl != nullptr) {
    ERR_clear_error();
    n = SSL_read(ssl, buf.data() + old, static_cast<int>(want));
    if (n <= 0) {
      buf.resize(old);
      const int err = SSL_get_error(ssl, static_cast<int>(n));
      want_write = err == SSL_ERROR_WANT_WRITE;
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return ReadResult::kWouldBlock;
      }
      return ReadResult::kClosed;
    }
  } else {
    n = ::recv(fd, buf.data() + old, want, MSG_DONTWAIT);
    if (n <= 0) {
      buf.resize(old);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return ReadResult::kWouldBlock;
      return ReadResult::kClosed;
    }
  }
  buf.resize(old + static_cast<size_t>(n));
  return ReadResult::kData;
}

void Conn::WriteNow(const std::string& data) {
  if (ssl != nullptr) {
    ERR_clear_error();
    (void)SSL_write(ssl, data.data(), static_cast<int>(data.size()));
  } else {
    (void)::send(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
}

size_t Conn::HeadEnd() const {
  const size_t at = buf.find("\r\n\r\n", pos);
  return at == std::string::npos ? 0 : at + 4;
}

void Conn::Close() {
  if (ssl != nullptr) {
    if (phase != Phase::kHandshake) (void)SSL_shutdown(ssl);
    SSL_free(ssl);
    ssl = nullptr;
  }
  if (fd >= 0) ::close(fd);
  fd = -1;
}

ConnStream::ConnStream(Conn& conn, const StreamLimits& limits,
                       size_t head_bytes)
    : conn_(conn), limits_(limits), head_bytes_(head_bytes) {}

bool ConnStream::is_readable() const {
  return conn_.buffered() > 0 ||
         (conn_.ssl != nullptr && SSL_pending(conn_.ssl) > 0);
}

bool ConnStream::is_writable() const {
  return !broken_ &&
         WaitReady(conn_.fd, POLLOUT, Steady::now() + limits_.write_timeout);
}

bool ConnStream::OverLimit() const {
  if (req_ != nullptr && req_->body.size() > limits_.max_body_bytes) {
    return true;
  }
  return consumed_ > head_bytes_ &&
         consumed_ - head_bytes_ > limits_.max_body_bytes + kFramingAllowance;
}

bool ConnStream::Fill() {
  conn_.Compact();
  for (;;) {
    switch (conn_.ReadSome(kReadChunk)) {
      case ReadResult::kData:
        return true;
      case ReadResult::kClosed:
        return false;
      case ReadResult::kWouldBlock:
        break;
    }
    const short events = conn_.want_write ? POLLOUT : POLLIN;
    if (!WaitReady(conn_.fd, events, limits_.body_deadline)) return false;
  }
}

ssize_t ConnStream::read(char* ptr, size_t size) {
  if (broken_ || too_large_) return -1;
  if (OverLimit()) {
    too_large_ = true;
    return -1;
  }
  if (conn_.buffered() == 0 && !Fill()) {
    broken_ = true;
    return -1;
  }
  const size_t n = std::min(size, conn_.buffered());
  std::memcpy(ptr, conn_.buf.data() + conn_.pos, n);
  conn_.pos += n;
  consumed_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t ConnStream::write(const char* ptr, size_t size) {
  if (broken_) return -1;
  size_t done = 0;
  while (done < size) {
    const auto deadline = Steady::now() + limits_.write_timeout;
    ssize_t n;
    short wait_for = POLLOUT;
    if (conn_.ssl != nullptr) {
      ERR_clear_error();
      n = SSL_write(conn_.ssl, ptr + done, static_cast<int>(size - done));
      if (n <= 0) {
        const int err = SSL_get_error(conn_.ssl, static_cast<int>(n));
        if (err == SSL_ERROR_WANT_READ) wait_for = POLLIN;
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) n = -2;
      }
    } else {
      n = ::send(conn_.fd, ptr + done, size - done,
                 MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        n = -2;
      }
    }
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n == -2 || !WaitReady(conn_.fd, wait_for, deadline)) {
      broken_ = true;
      return -1;
    }
  }
  return static_cast<ssize_t>(size);
}

void ConnStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = conn_.peer_ip;
  port = conn_.peer_port;
}

void ConnStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = conn_.local_ip;
  port = conn_.local_port;
}

}  // namespace navarch::http_internal
