#include "navarch/notifier/webhook_notifier.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "navarch/net/http_client.h"

namespace navarch {

WebhookNotifier::WebhookNotifier(WebhookConfig config, Clock& clock)
    : config_(std::move(config)), clock_(clock) {}

absl::Status WebhookNotifier::Validate(const WebhookConfig& config) {
  for (const auto& [key, url] :
       {std::pair<const char*, const std::string*>{"cordon_url",
                                                   &config.cordon_url},
        {"uncordon_url", &config.uncordon_url},
        {"drain_url", &config.drain_url},
        {"drain_status_url", &config.drain_status_url}}) {
    if (url->empty()) continue;
    if (absl::StatusOr<ParsedUrl> u = ParseUrl(*url); !u.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "server.notifier.webhook.", key, ": ", u.status().message()));
    }
  }
  if (config.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "server.notifier.webhook.timeout must be positive");
  }
  return absl::OkStatus();
}

absl::Status WebhookNotifier::Post(const std::string& url,
                                   const Notice& notice) {
  if (url.empty()) return absl::OkStatus();
  // The event's time, so a retry carries the same one; the send time only
  // for a notice that has none (a direct Cordon/Drain call).
  const absl::Time time =
      notice.time == absl::InfinitePast() ? clock_.Now() : notice.time;
  nlohmann::json body = {
      {"event", NoticeTypeName(notice.type)},
      {"node_id", notice.node_id},
      {"timestamp",
       absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone())}};
  if (!notice.id.empty()) body["id"] = notice.id;
  if (!notice.reason.empty()) body["reason"] = notice.reason;
  HttpRequest req;
  req.method = "POST";
  req.url = url;
  req.content_type = "application/json";
  req.body = body.dump();
  req.timeout = config_.timeout;
  for (const auto& [k, v] : config_.headers) req.headers[k] = v;
  absl::StatusOr<HttpResponse> r = HttpDo(req);
  if (!r.ok()) return r.status();
  if (r->status < 200 || r->status > 299) {
    // 5xx and 429 are worth retrying; other 4xx mean the request is wrong.
    const std::string msg = absl::StrCat("webhook returned ", r->status, ": ",
                                         BodySnippet(r->body));
    if (r->status >= 500 || r->status == 429) {
      return absl::UnavailableError(msg);
    }
    return absl::FailedPreconditionError(msg);
  }
  return absl::OkStatus();
}

absl::Status WebhookNotifier::Notify(const Notice& notice) {
  switch (notice.type) {
    case NoticeType::kCordon:
      return Post(config_.cordon_url, notice);
    case NoticeType::kUncordon:
      return Post(config_.uncordon_url, notice);
    case NoticeType::kDrain:
      return Post(config_.drain_url, notice);
  }
  return absl::InternalError("unknown notice");
}

absl::Status WebhookNotifier::Cordon(const std::string& node_id,
                                     const std::string& reason) {
  return Notify({NoticeType::kCordon, node_id, reason});
}

absl::Status WebhookNotifier::Uncordon(const std::string& node_id) {
  return Notify({NoticeType::kUncordon, node_id, ""});
}

absl::Status WebhookNotifier::Drain(const std::string& node_id,
                                    const std::string& reason) {
  return Notify({NoticeType::kDrain, node_id, reason});
}

absl::StatusOr<bool> WebhookNotifier::IsDrained(const std::string& node_id) {
  if (config_.drain_status_url.empty()) return true;
  HttpRequest req;
  req.url = AddQueryParam(config_.drain_status_url, "node_id", node_id);
  req.timeout = config_.timeout;
  req.max_response_bytes = 64 << 10;
  for (const auto& [k, v] : config_.headers) req.headers[k] = v;
  absl::StatusOr<HttpResponse> r = HttpDo(req);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::UnavailableError(absl::StrCat(
        "drain status returned ", r->status, ": ", BodySnippet(r->body)));
  }
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("drained") ||
      !j["drained"].is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("drain status response is not {\"drained\": bool, ...}: ",
                     BodySnippet(r->body)));
  }
  return j["drained"].get<bool>();
}

}  // namespace navarch
