// One HTTP connection of HttpListener (http_listener.h) and the blocking
// stream a worker reads its request body from and writes its response to.
// Internal to the listener; in a header of its own for its tests.
#ifndef NAVARCH_NET_HTTP_CONN_H_
#define NAVARCH_NET_HTTP_CONN_H_

#include <chrono>
#include <cstddef>
#include <string>

#include "httplib.h"

namespace navarch::http_internal {

using Steady = std::chrono::steady_clock;

// What a non-blocking read did.
enum class ReadResult { kData, kWouldBlock, kClosed };

struct Conn {
  enum class Phase {
    kHandshake,  // TLS handshake under way
    kHead,       // reading a request head
    kIdle,       // keep-alive: waiting for the next request
    kLinger,     // response sent, write side shut: draining, then close
    kServing,    // with a worker
  };

  int fd = -1;
  SSL* ssl = nullptr;  // owned; null for plain HTTP
  std::string peer_ip;
  int peer_port = 0;
  std::string local_ip;
  int local_port = 0;

  // Bytes read and not yet consumed: buf[pos, size()).
  std::string buf;
  size_t pos = 0;

  Phase phase = Phase::kHead;
  bool want_write = false;  // the TLS layer waits for the socket to be writable
  Steady::time_point deadline;
  int requests = 0;  // served on this connection
  bool priority = false;

  size_t buffered() const { return buf.size() - pos; }
  // Drops consumed bytes once they are most of the buffer.
  void Compact();
  // Reads what the socket has without blocking, at most `max` bytes.
  ReadResult ReadSome(size_t max);
  // Writes as much of `data` as the socket takes now (canned answers from the
  // poller); best effort.
  void WriteNow(const std::string& data);
  // Where the head of the request at pos ends (one past its blank line), or
  // 0 while it is incomplete.
  size_t HeadEnd() const;
  // Frees the TLS state and closes the socket.
  void Close();
};

// Limits for one request on a worker.
struct StreamLimits {
  size_t max_body_bytes = 0;
  Steady::time_point body_deadline;
  std::chrono::milliseconds write_timeout{10000};
};

// A worker's view of a connection: reads come from the connection's buffer
// and then the socket, until the body deadline; a body past the limit
// (decoded or on the wire) fails the read and marks the request too large.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(Conn& conn, const StreamLimits& limits, size_t head_bytes);

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return conn_.fd; }

  // The request being read, so that the decoded body size can be watched.
  void set_request(const httplib::Request* req) { req_ = req; }
  bool too_large() const { return too_large_; }
  // A read or write failed (closed, timed out): the connection is done.
  bool broken() const { return broken_; }

 private:
  // Reads more from the socket into the buffer; false on EOF, error or
  // deadline.
  bool Fill();
  bool OverLimit() const;

  Conn& conn_;
  const StreamLimits limits_;
  const size_t head_bytes_;
  size_t consumed_ = 0;
  const httplib::Request* req_ = nullptr;
  bool too_large_ = false;
  bool broken_ = false;
};

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT) or `deadline`.
bool WaitReady(int fd, short events, Steady::time_point deadline);

}  // namespace navarch::http_internal

#endif  // NAVARCH_NET_HTTP_CONN_H_
