#include "navarch/provider/provider.h"

#include <memory>

#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/provider/instance_types.h"
#include "navarch/provider/registry.h"

namespace navarch {
namespace {

TEST(ClassifyProviderErrorTest, MapsCodes) {
  EXPECT_EQ(ClassifyProviderError(absl::OkStatus()), ProviderErrorClass::kNone);
  EXPECT_EQ(ClassifyProviderError(absl::ResourceExhaustedError("quota")),
            ProviderErrorClass::kCapacity);
  EXPECT_EQ(ClassifyProviderError(absl::InvalidArgumentError("bad type")),
            ProviderErrorClass::kInvalid);
  EXPECT_EQ(ClassifyProviderError(absl::PermissionDeniedError("key")),
            ProviderErrorClass::kInvalid);
  EXPECT_EQ(ClassifyProviderError(absl::UnavailableError("503")),
            ProviderErrorClass::kTransient);
  EXPECT_EQ(ClassifyProviderError(absl::DeadlineExceededError("slow")),
            ProviderErrorClass::kTransient);
}

TEST(InstanceTypesTest, ResolvesByProviderType) {
  EXPECT_EQ(ResolveInstanceType("h100-8x", ProviderType::kLambda),
            "gpu_8x_h100_sxm5");
  EXPECT_EQ(ResolveInstanceType("h100-8x", ProviderType::kGcp),
            "a3-highgpu-8g");
  EXPECT_EQ(ResolveInstanceType("h100-8x", ProviderType::kAws), "p5.48xlarge");
  EXPECT_EQ(ResolveInstanceType("h200-8x", ProviderType::kAws), "p5e.48xlarge");
  EXPECT_EQ(ResolveInstanceType("b200-8x", ProviderType::kGcp),
            "a4-highgpu-8g");
  // Abstract but not offered: empty, so the selector skips that provider.
  EXPECT_EQ(ResolveInstanceType("l4-1x", ProviderType::kLambda), "");
  // Concrete names pass through; fake and local take anything.
  EXPECT_EQ(ResolveInstanceType("gpu_1x_a10", ProviderType::kLambda),
            "gpu_1x_a10");
  EXPECT_EQ(ResolveInstanceType("h100-8x", ProviderType::kFake), "h100-8x");
  ASSERT_NE(FindAbstractInstanceType("b200-8x"), nullptr);
  EXPECT_EQ(FindAbstractInstanceType("b200-8x")->gpu_count, 8);
  EXPECT_EQ(FindAbstractInstanceType("nope"), nullptr);
}

TEST(ProviderRegistryTest, BuildsFromConfig) {
  FakeClock clock;
  ProviderRegistry registry;
  ASSERT_TRUE(
      registry
          .RegisterFactory(
              "fake",
              [](const ProviderConfig& config, const ProviderContext& context)
                  -> absl::StatusOr<std::unique_ptr<Provider>> {
                return std::make_unique<FakeProvider>(
                    *context.clock,
                    FakeOptionsFromConfig(config, context.seed));
              })
          .ok());
  EXPECT_EQ(registry.RegisterFactory("fake", nullptr).code(),
            absl::StatusCode::kAlreadyExists);
  std::map<std::string, ProviderConfig> providers;
  providers["sim"].name = "sim";
  providers["sim"].type = ProviderType::kFake;
  ProviderContext context;
  context.clock = &clock;
  ASSERT_TRUE(registry.Build(providers, context).ok());
  ASSERT_NE(registry.Get("sim"), nullptr);
  EXPECT_EQ(registry.Get("sim")->name(), "sim");
  EXPECT_EQ(registry.Get("other"), nullptr);
  EXPECT_EQ(registry.All().size(), 1u);

  std::map<std::string, ProviderConfig> lambda;
  lambda["l"].name = "l";
  lambda["l"].type = ProviderType::kLambda;
  absl::Status s = registry.Build(lambda, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("provider l"), absl::string_view::npos);
}

}  // namespace
}  // namespace navarch
