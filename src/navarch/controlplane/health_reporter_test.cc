#include "navarch/controlplane/health_reporter.h"

#include <map>
#include <string>

#include "gtest/gtest.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

// What gRPC's health service was told, by service name.
class FakeHealth final : public grpc::HealthCheckServiceInterface {
 public:
  void SetServingStatus(const std::string& service, bool serving) override {
    status[service] = serving;
  }
  void SetServingStatus(bool serving) override {
    for (auto& [name, s] : status) s = serving;
  }
  std::map<std::string, bool> status;
};

TEST(HealthReporterTest, ServingWhileTheStoreAnswers) {
  FakeHealth health;
  MemoryStore store;
  HealthReporter reporter(health, store, NullLogger());
  EXPECT_EQ(reporter.serving(), std::nullopt);
  reporter.Check();
  EXPECT_EQ(reporter.serving(), true);
  EXPECT_TRUE(health.status[""]);
  EXPECT_TRUE(health.status["navarch.ControlPlaneService"]);
}

TEST(HealthReporterTest, NotServingWhileTheStoreIsUnavailable) {
  FakeHealth health;
  MemoryStore store;
  HealthReporter reporter(health, store, NullLogger());
  reporter.Check();
  store.Close();
  reporter.Check();
  EXPECT_EQ(reporter.serving(), false);
  EXPECT_FALSE(health.status[""]);
  EXPECT_FALSE(health.status["navarch.ControlPlaneService"]);
}

TEST(HealthReporterTest, NotServingForGoodOnceDraining) {
  FakeHealth health;
  MemoryStore store;
  HealthReporter reporter(health, store, NullLogger());
  reporter.Check();
  reporter.SetDraining();
  EXPECT_FALSE(health.status["navarch.ControlPlaneService"]);
  reporter.Check();  // the store still answers
  EXPECT_FALSE(health.status[""]);
  EXPECT_EQ(reporter.serving(), false);
}

}  // namespace
}  // namespace navarch
