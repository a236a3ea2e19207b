#include "navarch/controlplane/connect_stream.h"

#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/json_util.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

// How often an idle stream checks that its client is still there.
constexpr absl::Duration kLivenessCheck = absl::Seconds(1);

// What the fleet core's callbacks (any thread) and the writer (httplib's
// worker) share. Envelopes are encoded when they are queued.
struct StreamState {
  explicit StreamState(const std::atomic<bool>& closing) : closing(closing) {}

  // Something to write, or a reason to stop waiting.
  bool Ready() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return !envelopes.empty() || ended || closing.load();
  }

  const std::atomic<bool>& closing;  // the HTTP server is stopping
  absl::Mutex mu;
  std::deque<std::string> envelopes ABSL_GUARDED_BY(mu);
  bool ended ABSL_GUARDED_BY(mu) = false;  // end-of-stream queued
};

std::string Encode(bool json, const google::protobuf::Message& m) {
  std::string out;
  if (!json) return m.SerializeAsString();
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

void End(StreamState& state, const absl::Status& status)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
  if (state.ended) return;
  state.ended = true;
  state.envelopes.push_back(EndStreamEnvelope(status));
}

// The request's node, after checking the envelope, the JSON or binary
// message and the caller's right to watch that node.
absl::StatusOr<std::string> WatchedNode(const HttpApiContext& ctx, bool json,
                                        const httplib::Request& req) {
  absl::StatusOr<Identity> caller =
      ctx.auth.Authenticate(CredentialsOf(req), Access::kNode);
  if (!caller.ok()) return caller.status();
  absl::StatusOr<std::string> payload = OneEnvelope(req.body);
  if (!payload.ok()) return payload.status();
  WatchCommandsRequest request;
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    auto s = google::protobuf::util::JsonStringToMessage(
        payload->empty() ? "{}" : *payload, &request, options);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid JSON for navarch.WatchCommandsRequest: ",
                       std::string(s.message())));
    }
  } else if (!request.ParseFromString(*payload)) {
    return absl::InvalidArgumentError(
        "invalid binary protobuf for navarch.WatchCommandsRequest");
  }
  absl::Status allowed = ctx.auth.Authorize(*caller, Access::kNode,
                                            "WatchCommands", request.node_id());
  if (!allowed.ok()) return allowed;
  return request.node_id();
}

// Writes what is queued. After the end-of-stream envelope it ends the body
// (and returns true, as httplib wants once done); false when the client
// went away, which cancels the response.
bool Pump(StreamState& state, httplib::DataSink& sink) {
  std::deque<std::string> out;
  bool ended = false;
  {
    absl::MutexLock lock(&state.mu);
    state.mu.AwaitWithTimeout(absl::Condition(&state, &StreamState::Ready),
                              kLivenessCheck);
    if (state.closing.load()) {
      End(state, absl::UnavailableError("the control plane is shutting down"));
    }
    out.swap(state.envelopes);
    ended = state.ended;
  }
  for (const std::string& e : out) {
    if (!sink.write(e.data(), e.size())) return false;
  }
  if (ended) {
    sink.done();
    return true;
  }
  return sink.is_writable();
}

}  // namespace

std::string Envelope(char flags, absl::string_view payload) {
  const uint32_t n = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(5 + payload.size());
  out.push_back(flags);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out.append(payload.data(), payload.size());
  return out;
}

std::string EndStreamEnvelope(const absl::Status& status) {
  nlohmann::json end = nlohmann::json::object();
  if (!status.ok()) {
    end["error"] = {{"code", std::string(StatusCodeName(status.code()))},
                    {"message", std::string(status.message())}};
  }
  return Envelope(
      kEnvelopeEndStream,
      end.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

absl::StatusOr<std::string> OneEnvelope(absl::string_view body) {
  if (body.size() < 5) {
    return absl::InvalidArgumentError(
        "a Connect stream request is one enveloped message (5-byte prefix)");
  }
  if ((body[0] & 0x01) != 0) {
    return absl::UnimplementedError("compressed messages are not supported");
  }
  uint32_t n = 0;
  for (int i = 1; i <= 4; ++i) n = n << 8 | static_cast<uint8_t>(body[i]);
  if (body.size() - 5 != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the envelope says ", n, " bytes but ", body.size() - 5, " follow"));
  }
  return std::string(body.substr(5));
}

void ServeConnectWatch(FleetService& fleet, const HttpApiContext& ctx,
                       const std::atomic<bool>& closing,
                       const httplib::Request& req, httplib::Response& res) {
  std::string media = req.get_header_value("Content-Type");
  media = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(media.substr(0, media.find(';'))));
  const bool json = media == "application/connect+json";
  if (!json && media != "application/connect+proto") {
    res.set_header("Accept-Post",
                   "application/connect+json, application/connect+proto");
    WriteError(res,
               absl::InvalidArgumentError(absl::StrCat(
                   "unsupported content type \"", media.substr(0, 64),
                   "\": WatchCommands is a server stream; use "
                   "application/connect+json or application/connect+proto")));
    res.status = 415;
    ctx.metrics.RecordStream("connect", "WatchCommands",
                             absl::StatusCode::kInvalidArgument);
    return;
  }
  const std::string content_type =
      json ? "application/connect+json" : "application/connect+proto";
  auto state = std::make_shared<StreamState>(closing);
  absl::StatusOr<uint64_t> handle = absl::UnknownError("not started");
  absl::StatusOr<std::string> node = WatchedNode(ctx, json, req);
  if (node.ok()) {
    std::weak_ptr<StreamState> weak = state;
    handle = fleet.Watch(
        *node,
        [weak, json](const NodeCommand& c) {
          if (auto s = weak.lock()) {
            std::string e = Envelope(kEnvelopeMessage, Encode(json, c));
            absl::MutexLock lock(&s->mu);
            if (!s->ended) s->envelopes.push_back(std::move(e));
          }
        },
        [weak] {
          if (auto s = weak.lock()) {
            absl::MutexLock lock(&s->mu);
            End(*s, absl::UnavailableError(
                        "command stream closed by the control plane"));
          }
        });
  }
  const absl::Status opened = node.ok() ? handle.status() : node.status();
  ctx.metrics.RecordStream("connect", "WatchCommands", opened.code());
  // A stream that could not open is still an HTTP 200 carrying the error in
  // its end-of-stream message, as the Connect protocol has it.
  res.status = 200;
  if (!opened.ok()) {
    res.set_content(EndStreamEnvelope(opened), content_type);
    return;
  }
  res.set_chunked_content_provider(
      content_type,
      [state](size_t, httplib::DataSink& sink) { return Pump(*state, sink); },
      [state, &fleet, node = *node, id = *handle](bool) {
        fleet.Unwatch(node, id);
      });
}

}  // namespace navarch
