#include "navarch/provider/gcp/gcp_wire.h"

#include <regex>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {
namespace {

using json = nlohmann::json;

TEST(GcpWireTest, RequestIdIsAStableVersion5Uuid) {
  const std::string id = GcpRequestId("cluster-pool-abc-1");
  EXPECT_TRUE(std::regex_match(
      id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                     "[0-9a-f]{12}")))
      << id;
  EXPECT_EQ(id, GcpRequestId("cluster-pool-abc-1"));
  EXPECT_NE(id, GcpRequestId("cluster-pool-abc-2"));
}

TEST(GcpWireTest, NamesAndLabelsKeepToGceRules) {
  const std::regex name("[a-z]([-a-z0-9]{0,61}[a-z0-9])?");
  for (const char* n : {"Train-1", "9lives", "", "x_y.z", "-", "a"}) {
    std::string got = GcpInstanceName(n, "tok");
    EXPECT_TRUE(std::regex_match(got, name)) << n << " -> " << got;
  }
  EXPECT_EQ(GcpInstanceName("train-7", "t"), GcpInstanceName("train-7", "t"));
  EXPECT_NE(GcpInstanceName("train-7", "t"), GcpInstanceName("train-7", "u"));
  EXPECT_EQ(GcpLabelKey("Navarch.Token"), "navarch_token");
  EXPECT_EQ(GcpLabelKey("9x"), "k9x");
  EXPECT_EQ(GcpLabelValue(std::string(100, 'A')), std::string(63, 'a'));
}

TEST(GcpWireTest, InsertBodyForN1WithGpusSpotAndStartupScript) {
  ProvisionRequest r;
  r.instance_type = "n1-standard-8";
  r.idempotency_token = "Tok-1";
  r.labels = {{"pool", "train"}, {"navarch-token", "Tok-1"}};
  r.user_data = "#!/bin/sh\necho hi\n";
  GcpInstanceSpec s;
  s.project = "p";
  s.zone = "us-central1-a";
  s.base_url = "http://127.0.0.1:1/compute/v1";
  s.image = "projects/debian-cloud/global/images/family/debian-12";
  s.network = "global/networks/default";
  s.spot = true;
  s.accelerator_type = "nvidia-tesla-t4";
  s.accelerator_count = 2;
  json b = GcpInsertBody(r, s, "train-1-abc");
  EXPECT_EQ(b["machineType"],
            "http://127.0.0.1:1/compute/v1/projects/p/zones/us-central1-a/"
            "machineTypes/n1-standard-8");
  EXPECT_EQ(b["disks"][0]["initializeParams"]["sourceImage"],
            "http://127.0.0.1:1/compute/v1/projects/debian-cloud/global/"
            "images/family/debian-12");
  EXPECT_EQ(b["guestAccelerators"][0]["acceleratorCount"], 2);
  EXPECT_EQ(b["scheduling"]["onHostMaintenance"], "TERMINATE");
  EXPECT_EQ(b["scheduling"]["provisioningModel"], "SPOT");
  EXPECT_EQ(b["labels"]["navarch-token"], "tok-1");  // folded for GCE
  EXPECT_EQ(b["metadata"]["items"][1]["value"], r.user_data);
  // The exact labels survive in metadata and come back from it.
  b["zone"] = "x/zones/us-central1-a";
  ProviderInstance p = GcpParseInstance(b, "gcp");
  EXPECT_EQ(p.labels.at("navarch-token"), "Tok-1");
  EXPECT_EQ(p.gpu_count, 2);
  EXPECT_EQ(p.gpu_type, "nvidia-tesla-t4");
  EXPECT_EQ(p.region, "us-central1");
}

TEST(GcpWireTest, A3A2AndG2CarryTheirGpusAndGetNoGuestAccelerators) {
  EXPECT_EQ(GcpBuiltInGpus("a3-highgpu-8g"),
            std::make_pair(8, std::string("nvidia-h100-80gb")));
  EXPECT_EQ(GcpBuiltInGpus("a2-ultragpu-4g").first, 4);
  EXPECT_EQ(GcpBuiltInGpus("a2-megagpu-16g").first, 16);
  EXPECT_EQ(GcpBuiltInGpus("g2-standard-48").first, 4);
  EXPECT_EQ(GcpBuiltInGpus("n1-standard-8").first, 0);
  ProvisionRequest r;
  r.instance_type = "a3-highgpu-8g";
  GcpInstanceSpec s;
  s.accelerator_type = "nvidia-tesla-t4";
  s.accelerator_count = 1;
  EXPECT_FALSE(GcpInsertBody(r, s, "n").contains("guestAccelerators"));
}

json OpWith(const std::string& code, const std::string& message) {
  return {{"status", "DONE"},
          {"error", {{"errors", {{{"code", code}, {"message", message}}}}}}};
}

TEST(GcpWireTest, OperationErrorsAreClassifiedWithTheirScope) {
  absl::Status s = GcpOperationError(
      OpWith("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "no a3 here"), "gcp",
      "us-central1-a");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  std::optional<CloudErrorInfo> info = CloudErrorInfoOf(s);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->scope, CloudErrorScope::kZone);
  EXPECT_EQ(info->zone, "us-central1-a");
  EXPECT_FALSE(info->quota);

  s = GcpOperationError(OpWith("QUOTA_EXCEEDED",
                               "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: "
                               "0.0 in region us-central1."),
                        "gcp", "us-central1-a");
  info = CloudErrorInfoOf(s);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(info->scope, CloudErrorScope::kRegion);
  EXPECT_TRUE(info->quota);
  EXPECT_EQ(info->region, "us-central1");

  s = GcpOperationError(
      OpWith("QUOTA_EXCEEDED",
             "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 8.0 globally."),
      "gcp", "us-central1-a");
  EXPECT_EQ(CloudErrorInfoOf(s)->scope, CloudErrorScope::kProvider);

  s = GcpOperationError(OpWith("UNSUPPORTED_OPERATION", "no"), "gcp", "z-a");
  EXPECT_EQ(CloudErrorInfoOf(s)->scope, CloudErrorScope::kZone);

  json bad = OpWith("INVALID_FIELD_VALUE", "bad image");
  bad["httpErrorStatusCode"] = 400;
  EXPECT_EQ(GcpOperationError(bad, "gcp", "z-a").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(GcpOperationError({{"status", "DONE"}}, "gcp", "z-a").ok());
}

TEST(GcpWireTest, HttpErrorsKeepReasonAndMessage) {
  const std::string body =
      R"({"error":{"code":403,"message":"Required 'compute.instances.create' permission","errors":[{"reason":"forbidden","domain":"global","message":"m"}]}})";
  absl::Status s = GcpHttpError(403, body, "gcp", "us-central1-a");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("compute.instances.create"));
  EXPECT_EQ(CloudErrorInfoOf(s)->cloud_code, "forbidden");
  EXPECT_EQ(GcpHttpError(400, "not json", "gcp", "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GcpHttpError(503, "", "gcp", "").code(),
            absl::StatusCode::kUnavailable);
  const std::string quota =
      R"({"error":{"code":403,"message":"Quota exceeded","errors":[{"reason":"quotaExceeded"}]}})";
  EXPECT_EQ(GcpHttpError(403, quota, "gcp", "us-east1-b").code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace navarch
