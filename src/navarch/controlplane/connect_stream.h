// WatchCommands over the Connect protocol, as a server stream
// (https://connectrpc.com/docs/protocol#streaming-rpcs):
//
//   POST /navarch.ControlPlaneService/WatchCommands
//   Content-Type: application/connect+json (or application/connect+proto)
//   body: one enveloped WatchCommandsRequest
//
// answers HTTP 200 with a stream of enveloped NodeCommands and, last, an
// end-of-stream envelope (flag 0x02) holding {} or {"error": {"code": ...,
// "message": ...}}. An envelope is 1 flag byte, a 4-byte big-endian length
// and the message. Errors before the first command (a bad token, an unknown
// node) come the same way, as Connect clients expect; only an unknown
// content type is an HTTP error (415).
//
// Each open stream holds one of the HTTP server's worker threads.
#ifndef NAVARCH_CONTROLPLANE_CONNECT_STREAM_H_
#define NAVARCH_CONTROLPLANE_CONNECT_STREAM_H_

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "httplib.h"
#include "navarch/controlplane/http_api.h"
#include "navarch/fleet/fleet_service.h"

namespace navarch {

// Connect's envelope flags.
inline constexpr char kEnvelopeMessage = 0x00;
inline constexpr char kEnvelopeEndStream = 0x02;

// One envelope around `payload`.
std::string Envelope(char flags, absl::string_view payload);
// The end-of-stream envelope for `status` ({} when OK).
std::string EndStreamEnvelope(const absl::Status& status);
// The payload of the single envelope `body` must be; INVALID_ARGUMENT when it
// is not exactly one uncompressed envelope.
absl::StatusOr<std::string> OneEnvelope(absl::string_view body);

// Serves one WatchCommands call. Returns once the response is set up; the
// stream itself runs on httplib's worker thread until the client goes, the
// fleet core closes the watch (a newer stream for the node, shutdown) or
// `closing` becomes true.
void ServeConnectWatch(FleetService& fleet, const HttpApiContext& ctx,
                       const std::atomic<bool>& closing,
                       const httplib::Request& req, httplib::Response& res);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_CONNECT_STREAM_H_
