// The fake Lambda API against the documentation (OpenAPI 1.10 and the Cloud
// API guide): there is no Lambda CLI to check it with, so these tests send
// the documented example requests with a plain HTTP client and check the
// answers have the documented shapes, codes and statuses.
#include "navarch/provider/lambda/testing/fake_lambda.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/net/http_client.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

using json = nlohmann::json;

constexpr char kKey[] = "secret_test-key_0123456789abcdef";

class FakeLambdaTest : public ::testing::Test {
 protected:
  FakeLambdaTest() : fake_(clock_, kKey) {
    fake_.AddType({"gpu_8x_a100",
                   "8x A100 (40 GB SXM4)",
                   "A100 (40 GB SXM4)",
                   1032,
                   124,
                   1800,
                   5946,
                   8,
                   {"us-east-1"}});
    fake_.AddSshKey("my-public-key");
  }

  HttpResponse Do(const std::string& method, const std::string& path,
                  const std::string& body = "",
                  std::string auth = std::string("Bearer ") + kKey) {
    HttpRequest r;
    r.method = method;
    r.url = fake_.endpoint() + path;
    if (!auth.empty()) r.headers["Authorization"] = auth;
    if (!body.empty()) {
      r.body = body;
      r.content_type = "application/json";
    }
    absl::StatusOr<HttpResponse> got = HttpDo(r);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : HttpResponse{};
  }

  static json Body(const HttpResponse& r) { return json::parse(r.body); }

  // The documented launch example (one key, required fields only).
  static std::string Example() {
    return R"({"region_name":"us-east-1","instance_type_name":"gpu_8x_a100",)"
           R"("ssh_key_names":["my-public-key"],"file_system_names":[],)"
           R"("name":"My Instance"})";
  }

  FakeClock clock_;
  FakeLambda fake_;
};

void ExpectError(const HttpResponse& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  json b = json::parse(r.body);
  ASSERT_TRUE(b.contains("error")) << r.body;
  EXPECT_EQ(b["error"]["code"], code);
  EXPECT_TRUE(b["error"]["message"].is_string());
}

TEST_F(FakeLambdaTest, RefusesAMissingOrWrongKeyAsDocumented) {
  HttpResponse r = Do("GET", "/instances", "", "");
  ExpectError(r, 401, "global/invalid-api-key");
  EXPECT_EQ(Body(r)["error"]["suggestion"],
            "Check your API key or create a new one, then try again.");
  ExpectError(Do("GET", "/instances", "", "Bearer wrong"), 401,
              "global/invalid-api-key");
}

TEST_F(FakeLambdaTest, TakesBearerAndBothBasicForms) {
  EXPECT_EQ(Do("GET", "/instances").status, 200);
  EXPECT_EQ(Do("GET", "/instances", "",
               "Basic " + absl::Base64Escape(std::string(kKey) + ":"))
                .status,
            200);
  EXPECT_EQ(Do("GET", "/instances", "", std::string("Basic ") + kKey).status,
            200);
}

TEST_F(FakeLambdaTest, InstanceTypesHaveTheDocumentedShape) {
  HttpResponse r = Do("GET", "/instance-types");
  ASSERT_EQ(r.status, 200);
  json item = Body(r)["data"]["gpu_8x_a100"];
  json t = item["instance_type"];
  EXPECT_EQ(t["name"], "gpu_8x_a100");
  EXPECT_EQ(t["description"], "8x A100 (40 GB SXM4)");
  EXPECT_EQ(t["gpu_description"], "A100 (40 GB SXM4)");
  EXPECT_EQ(t["price_cents_per_hour"], 1032);
  for (const char* k : {"vcpus", "memory_gib", "storage_gib", "gpus"}) {
    EXPECT_TRUE(t["specs"][k].is_number_integer()) << k;
  }
  EXPECT_EQ(t["specs"]["gpus"], 8);
  ASSERT_EQ(item["regions_with_capacity_available"].size(), 1u);
  EXPECT_EQ(item["regions_with_capacity_available"][0]["name"], "us-east-1");
  EXPECT_TRUE(
      item["regions_with_capacity_available"][0]["description"].is_string());
}

TEST_F(FakeLambdaTest, LaunchesTheDocumentedExampleAndListsIt) {
  HttpResponse r = Do("POST", "/instance-operations/launch", Example());
  ASSERT_EQ(r.status, 200) << r.body;
  json ids = Body(r)["data"]["instance_ids"];
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids[0].get<std::string>().size(), 32u);  // like the example id
  json list = Body(Do("GET", "/instances"))["data"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], ids[0]);
  EXPECT_EQ(list[0]["status"], "booting");
  EXPECT_EQ(list[0]["region"]["name"], "us-east-1");
  EXPECT_EQ(list[0]["instance_type"]["name"], "gpu_8x_a100");
  EXPECT_EQ(list[0]["ssh_key_names"][0], "my-public-key");
  fake_.BootAll();
  json one = Body(Do("GET", "/instances/" + ids[0].get<std::string>()))["data"];
  EXPECT_EQ(one["status"], "active");
  EXPECT_TRUE(one["ip"].is_string());
}

TEST_F(FakeLambdaTest, LaunchChecksTheBodyAsDocumented) {
  auto launch = [this](json patch) {
    json b = json::parse(Example());
    b.merge_patch(patch);
    return Do("POST", "/instance-operations/launch", b.dump());
  };
  fake_.EnforceLaunchRate(false);
  ExpectError(launch({{"ssh_key_names", {"a", "b"}}}), 400,
              "global/invalid-parameters");
  ExpectError(launch({{"region_name", nullptr}}), 400,
              "global/invalid-parameters");
  ExpectError(launch({{"name", std::string(65, 'n')}}), 400,
              "global/invalid-parameters");
  ExpectError(launch({{"tags", {{{"key", "Pool"}, {"value", "x"}}}}}), 400,
              "global/invalid-parameters");
  ExpectError(launch({{"quantity", 1}}), 400, "global/invalid-parameters");
  ExpectError(launch({{"region_name", "mars-1"}}), 400,
              "global/invalid-parameters");
  ExpectError(launch({{"instance_type_name", "gpu_9x_z"}}), 404,
              "global/object-does-not-exist");
  ExpectError(launch({{"ssh_key_names", {"nope"}}}), 404,
              "global/object-does-not-exist");
  EXPECT_EQ(fake_.launches(), 0);
  EXPECT_EQ(
      launch({{"tags", {{{"key", "navarch-token"}, {"value", "t"}}}}}).status,
      200);
}

TEST_F(FakeLambdaTest, LaunchAnswersCapacityQuotaAndRate) {
  fake_.AddType({"gpu_1x_a10",
                 "1x A10 (24 GB PCIe)",
                 "A10 (24 GB PCIe)",
                 75,
                 30,
                 200,
                 1400,
                 1,
                 {}});
  json b = json::parse(Example());
  b["instance_type_name"] = "gpu_1x_a10";
  ExpectError(Do("POST", "/instance-operations/launch", b.dump()), 400,
              "instance-operations/launch/insufficient-capacity");
  clock_.Advance(absl::Seconds(12));
  fake_.SetQuota(0);
  HttpResponse q = Do("POST", "/instance-operations/launch", Example());
  ExpectError(q, 400, "global/quota-exceeded");
  EXPECT_EQ(Body(q)["error"]["suggestion"],
            "Contact Support to increase your quota.");
  fake_.SetQuota(5);
  clock_.Advance(absl::Seconds(11));  // one per 12 s
  EXPECT_EQ(Do("POST", "/instance-operations/launch", Example()).status, 429);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Do("POST", "/instance-operations/launch", Example()).status, 200);
}

TEST_F(FakeLambdaTest, TerminatesAndAnswersNotFound) {
  HttpResponse r = Do("POST", "/instance-operations/launch", Example());
  const std::string id = Body(r)["data"]["instance_ids"][0];
  HttpResponse t = Do("POST", "/instance-operations/terminate",
                      json{{"instance_ids", {id}}}.dump());
  ASSERT_EQ(t.status, 200) << t.body;
  json gone = Body(t)["data"]["terminated_instances"];
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0]["id"], id);
  EXPECT_EQ(gone[0]["status"], "terminating");
  ExpectError(Do("POST", "/instance-operations/terminate",
                 R"({"instance_ids":["0000"]})"),
              404, "global/object-does-not-exist");
  ExpectError(Do("POST", "/instance-operations/terminate", "{}"), 400,
              "global/invalid-parameters");
  ExpectError(Do("GET", "/instances/0000"), 404,
              "global/object-does-not-exist");
}

TEST_F(FakeLambdaTest, AnswersWhatItIsTold) {
  fake_.ForceNext("list", {503, "", "global/internal-error", "", "3"});
  HttpResponse r = Do("GET", "/instances");
  ExpectError(r, 503, "global/internal-error");
  EXPECT_EQ(r.headers["retry-after"], "3");
  EXPECT_EQ(Do("GET", "/instances").status, 200);
  EXPECT_EQ(fake_.calls("list"), 2);
}

}  // namespace
}  // namespace navarch
