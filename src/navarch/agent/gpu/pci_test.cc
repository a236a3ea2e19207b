#include "navarch/agent/gpu/pci.h"

#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

TEST(PciTest, ParsesTheFormsDriversPrint) {
  auto nvml = ParsePciAddress("00000000:3B:00.0");
  ASSERT_TRUE(nvml.has_value());
  EXPECT_EQ(nvml->domain, 0u);
  EXPECT_EQ(nvml->bus, 0x3bu);
  EXPECT_EQ(nvml->device, 0u);
  EXPECT_EQ(nvml->function, 0u);

  auto xid = ParsePciAddress("0000:3b:00");
  ASSERT_TRUE(xid.has_value());
  EXPECT_FALSE(xid->function.has_value());
  EXPECT_TRUE(nvml->SameDevice(*xid));

  auto prefixed = ParsePciAddress(" PCI:0001:9A:01.1 ");
  ASSERT_TRUE(prefixed.has_value());
  EXPECT_EQ(prefixed->domain, 1u);
  EXPECT_EQ(prefixed->bus, 0x9au);
  EXPECT_EQ(prefixed->device, 1u);
  EXPECT_EQ(prefixed->function, 1u);
  EXPECT_FALSE(prefixed->SameDevice(*xid));

  auto no_domain = ParsePciAddress("3b:00.0");
  ASSERT_TRUE(no_domain.has_value());
  EXPECT_TRUE(no_domain->SameDevice(*xid));
  EXPECT_EQ(nvml->ToString(), "0000:3b:00.0");
}

TEST(PciTest, RejectsMalformedAddresses) {
  for (const char* bad : {"", "PCI:", "000:3b:00", "0000:3b", "0000:3b:0",
                          "0000:3g:00", "0000:3b:00.", "0000:3b:00.0x",
                          "00000:3b:00", "0000;3b:00", "0000:3b:00:00"}) {
    EXPECT_FALSE(ParsePciAddress(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace navarch::agent
