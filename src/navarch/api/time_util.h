// absl::Time <-> google.protobuf.Timestamp. The zero Timestamp (unset) maps to
// absl::InfinitePast() and back, so "never" survives a round trip.
#ifndef NAVARCH_API_TIME_UTIL_H_
#define NAVARCH_API_TIME_UTIL_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace navarch {

google::protobuf::Timestamp ToTimestamp(absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& ts);
inline bool IsSet(const google::protobuf::Timestamp& ts) {
  return ts.seconds() != 0 || ts.nanos() != 0;
}
google::protobuf::Timestamp MaxTimestamp(const google::protobuf::Timestamp& a,
                                         const google::protobuf::Timestamp& b);

}  // namespace navarch

#endif  // NAVARCH_API_TIME_UTIL_H_
