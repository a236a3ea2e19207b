#include "navarch/fleet/validation.h"

#include <string>

#include "gtest/gtest.h"

namespace navarch {
namespace {

ReportHealthRequest Report() {
  ReportHealthRequest r;
  r.set_node_id("n1");
  HealthCheckResult* res = r.add_results();
  res->set_check_name("gpu");
  res->set_status(HEALTH_STATUS_HEALTHY);
  (*res->mutable_details())["driver_version"] = "580.159.04";
  return r;
}

TEST(ValidationTest, MapEntriesAreNamedInTheError) {
  EXPECT_TRUE(ValidateReportHealth(Report()).ok());

  ReportHealthRequest bad_value = Report();
  (*bad_value.mutable_results(0)->mutable_details())["gpus"] = "\xff";
  absl::Status s = ValidateReportHealth(bad_value);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "result details[gpus] is not valid UTF-8");

  ReportHealthRequest long_value = Report();
  (*long_value.mutable_results(0)->mutable_details())["log"] =
      std::string(kMaxLongString + 1, 'x');
  EXPECT_EQ(ValidateReportHealth(long_value).message(),
            "result details[log] is 4097 bytes long; the limit is 4096");

  ReportHealthRequest bad_key = Report();
  (*bad_key.mutable_results(0)->mutable_details())["\xc3"] = "1";
  EXPECT_EQ(ValidateReportHealth(bad_key).message(),
            "result details key is not valid UTF-8");

  ReportHealthRequest empty_key = Report();
  (*empty_key.mutable_results(0)->mutable_details())[""] = "1";
  EXPECT_EQ(ValidateReportHealth(empty_key).message(),
            "result details has an empty key");

  ReportHealthRequest event = Report();
  HealthEvent* e = event.add_events();
  e->set_event_type(HEALTH_EVENT_TYPE_XID);
  e->set_system(HEALTH_WATCH_SYSTEM_DRIVER);
  (*e->mutable_metrics())["xid_code"] = std::string(kMaxShortString + 1, '7');
  EXPECT_EQ(ValidateReportHealth(event).message(),
            "event metrics[xid_code] is 257 bytes long; the limit is 256");
}

}  // namespace
}  // namespace navarch
