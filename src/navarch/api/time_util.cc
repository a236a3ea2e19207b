#include "navarch/api/time_util.h"

namespace navarch {

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return ts;
  timespec spec = absl::ToTimespec(t);
  ts.set_seconds(spec.tv_sec);
  ts.set_nanos(static_cast<int32_t>(spec.tv_nsec));
  return ts;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  if (!IsSet(ts)) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

google::protobuf::Timestamp MaxTimestamp(const google::protobuf::Timestamp& a,
                                         const google::protobuf::Timestamp& b) {
  if (a.seconds() != b.seconds()) return a.seconds() > b.seconds() ? a : b;
  return a.nanos() >= b.nanos() ? a : b;
}

}  // namespace navarch
