#include "navarch/store/event_sql.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/store/record_util.h"

namespace navarch {

namespace {

// The smallest string greater than every string starting with `prefix`, or
// nullopt when there is none (the prefix is all 0xff bytes).
std::optional<std::string> PrefixUpperBound(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) {
    prefix.pop_back();
  }
  if (prefix.empty()) return std::nullopt;
  prefix.back() =
      static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

class Builder {
 public:
  explicit Builder(const ParamWriter& param) : param_(param) {}
  // The placeholder of a new parameter.
  std::string Int(int64_t v) {
    out_.params.emplace_back(v);
    return param_(static_cast<int>(out_.params.size()), true);
  }
  std::string Text(std::string v) {
    out_.params.emplace_back(std::move(v));
    return param_(static_cast<int>(out_.params.size()), false);
  }
  std::string& sql() { return out_.sql; }
  EventSql Take() { return std::move(out_); }

 private:
  const ParamWriter& param_;
  EventSql out_;
};

std::string KindTerms(const std::vector<std::string>& kinds, Builder& b) {
  std::vector<std::string> terms;
  for (const std::string& k : kinds) {
    if (k.empty() || k.back() != '*') {
      terms.push_back(absl::StrCat("kind = ", b.Text(k)));
      continue;
    }
    std::string prefix = k.substr(0, k.size() - 1);
    std::optional<std::string> upper = PrefixUpperBound(prefix);
    std::string low = absl::StrCat("kind >= ", b.Text(prefix));
    terms.push_back(
        upper ? absl::StrCat("(", low, " AND kind < ", b.Text(*upper), ")")
              : low);
  }
  return absl::StrCat(" AND (", absl::StrJoin(terms, " OR "), ")");
}

}  // namespace

EventSql BuildEventSql(const EventQuery& q, const ParamWriter& param) {
  Builder b(param);
  b.sql() = "SELECT id, record FROM events WHERE id > ";
  b.sql() += b.Int(q.after_id);
  if (!q.node_id.empty()) b.sql() += " AND node_id = " + b.Text(q.node_id);
  if (!q.pool.empty()) b.sql() += " AND pool = " + b.Text(q.pool);
  if (q.since != absl::InfinitePast())
    b.sql() += " AND time_ns >= " + b.Int(TimeToNanos(q.since));
  if (q.until != absl::InfiniteFuture())
    b.sql() += " AND time_ns < " + b.Int(TimeToNanos(q.until));
  bool any_kind = std::any_of(q.kinds.begin(), q.kinds.end(),
                              [](const std::string& k) { return k == "*"; });
  if (!q.kinds.empty() && !any_kind) b.sql() += KindTerms(q.kinds, b);
  // One more than asked tells whether another page exists.
  b.sql() += " ORDER BY id LIMIT ";
  b.sql() += b.Int(static_cast<int64_t>(q.limit) + 1);
  return b.Take();
}

}  // namespace navarch
