#include "navarch/base/status.h"

#include "gtest/gtest.h"

namespace navarch {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  NAVARCH_ASSIGN_OR_RETURN(int h, Half(x));
  NAVARCH_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status Check(int x) {
  NAVARCH_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusTest, MacrosPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_TRUE(Check(2).ok());
  EXPECT_EQ(Check(3).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusTest, AnnotateKeepsTheCode) {
  auto s = Annotate(absl::NotFoundError("x"), "loading");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "loading: x");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

}  // namespace
}  // namespace navarch

namespace navarch {
namespace {

TEST(StatusTest, PermanentErrorsAreTheOnesARetryCannotFix) {
  for (const absl::Status& s :
       {absl::InvalidArgumentError(""), absl::FailedPreconditionError(""),
        absl::PermissionDeniedError(""), absl::UnauthenticatedError(""),
        absl::NotFoundError(""), absl::UnimplementedError(""),
        absl::OutOfRangeError(""), absl::AlreadyExistsError(""),
        absl::DataLossError("")}) {
    EXPECT_TRUE(IsPermanentError(s)) << s;
    EXPECT_FALSE(IsRetryableError(s)) << s;
  }
  for (const absl::Status& s :
       {absl::OkStatus(), absl::UnavailableError(""),
        absl::DeadlineExceededError(""), absl::InternalError(""),
        absl::ResourceExhaustedError(""), absl::AbortedError(""),
        absl::UnknownError(""), absl::CancelledError("")}) {
    EXPECT_FALSE(IsPermanentError(s)) << s;
    EXPECT_EQ(IsRetryableError(s), !s.ok()) << s;
  }
}

}  // namespace
}  // namespace navarch
