// Paging (AIP-158) as the transports share it. The fleet core pages
// ListNodes, ListInstances and ListEvents; what is left here is the rule for
// a list asked for without page_size (upstream clients, which know no
// paging): it gets every item in one answer when that answer fits a message,
// and otherwise a RESOURCE_EXHAUSTED that says how to page, never a
// transport error the client cannot explain.
#ifndef NAVARCH_CONTROLPLANE_PAGING_H_
#define NAVARCH_CONTROLPLANE_PAGING_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace navarch {

// The largest message the gRPC listener sends (and the largest unpaged list
// any transport answers).
inline constexpr size_t kMaxResponseBytes = 64 << 20;

// OK unless `page_size` is 0 and `answer` (holding `count` `items`, e.g.
// "nodes") serializes to more than `limit` bytes.
absl::Status CheckUnpagedAnswer(const google::protobuf::Message& answer,
                                int page_size, int count,
                                absl::string_view items, size_t limit);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_PAGING_H_
