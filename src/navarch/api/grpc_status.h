// absl::Status <-> grpc::Status with the same canonical code and message.
#ifndef NAVARCH_API_GRPC_STATUS_H_
#define NAVARCH_API_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace navarch {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace navarch

#endif  // NAVARCH_API_GRPC_STATUS_H_
