#include "navarch/agent/events/kmsg.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "navarch/base/clock.h"

namespace navarch::agent {
namespace {

TEST(KmsgRecordTest, ParsesTheRecordFormat) {
  KmsgRecord r = ParseKmsgRecord(
      "4,1234,5678901,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, GPU has "
      "fallen off the "
      "bus.\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n");
  EXPECT_TRUE(r.has_header);
  EXPECT_EQ(r.priority, 4);
  EXPECT_EQ(r.sequence, 1234u);
  EXPECT_EQ(r.timestamp_us, 5678901u);
  EXPECT_EQ(r.message,
            "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, GPU has fallen off "
            "the bus.");

  // Newer kernels add fields after the flags.
  KmsgRecord caller = ParseKmsgRecord("6,99,100,-,caller=T1;hello");
  EXPECT_TRUE(caller.has_header);
  EXPECT_EQ(caller.message, "hello");
}

TEST(KmsgRecordTest, LinesWithoutHeaderAreAllMessage) {
  for (const char* line :
       {"[ 1234.5678] NVRM: Xid (PCI:0000:3b:00): 79, GPU off",
        "Nov 27 01:57:37 host kernel: a;b", "x,y,z,-;text", ""}) {
    KmsgRecord r = ParseKmsgRecord(line);
    EXPECT_FALSE(r.has_header) << line;
    EXPECT_EQ(r.message, line);
  }
}

struct XidCase {
  const char* line;
  const char* pci;
  int code;
  const char* pid;
  const char* name;
  const char* text;
};

TEST(XidLineTest, ParsesEveryVariantDriversPrint) {
  const XidCase cases[] = {
      {"NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen "
       "off the bus.",
       "0000:3b:00", 79, "1234", "python3", "GPU has fallen off the bus."},
      {"NVRM: Xid (PCI:0000:3b:00): 13, pid='<unknown>', name=<unknown>, "
       "Graphics Exception: "
       "ESR 0x50da30=0x1000f 0x50da34=0x0",
       "0000:3b:00", 13, "<unknown>", "<unknown>",
       "Graphics Exception: ESR 0x50da30=0x1000f 0x50da34=0x0"},
      {"NVRM: Xid (PCI:0000:3b:00): 119, pid=2765, name=nvidia-smi, Timeout "
       "after 6s of waiting "
       "for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL) "
       "(0x20800a4c 0x4).",
       "0000:3b:00", 119, "2765", "nvidia-smi",
       "Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected "
       "function 76 "
       "(GSP_RM_CONTROL) (0x20800a4c 0x4)."},
      // Older drivers: no pid, no name.
      {"NVRM: Xid (PCI:0000:01:00): 31, Ch 00000010, intr 10000000. MMU Fault: "
       "ENGINE GRAPHICS",
       "0000:01:00", 31, "", "",
       "Ch 00000010, intr 10000000. MMU Fault: ENGINE GRAPHICS"},
      {"NVRM: Xid (0000:03:00): 62, 0dc1(2f60) 00000000 00000000", "0000:03:00",
       62, "", "", "0dc1(2f60) 00000000 00000000"},
      // pid without name; 8-digit domain; upper case; with function.
      {"NVRM: Xid (PCI:00000000:CA:00.0): 48, pid=25497, Ch 00000008",
       "00000000:CA:00.0", 48, "25497", "", "Ch 00000008"},
      {"NVRM: Xid (PCI:0000:9b:00): 154, GPU recovery action changed from 0x0 "
       "(None) to 0x1 "
       "(GPU Reset Required)",
       "0000:9b:00", 154, "", "",
       "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset "
       "Required)"},
      {"NVRM: Xid (PCI:0000:3b:00): 94, pid=\"2150\", name=\"pt_main_thread\", "
       "Contained: SM "
       "(0x1). RST: No, D-RST: No",
       "0000:3b:00", 94, "2150", "pt_main_thread",
       "Contained: SM (0x1). RST: No, D-RST: No"},
      // As dmesg and syslog print it.
      {"[ 5123.456789] NVRM: Xid (PCI:0000:18:00): 45, pid=1, name=a, Ch "
       "00000001",
       "0000:18:00", 45, "1", "a", "Ch 00000001"},
      {"Nov 27 01:57:37 gpu-7 kernel: [ 5.1] NVRM: Xid (PCI:0000:18:00): 8, "
       "Channel 1",
       "0000:18:00", 8, "", "", "Channel 1"},
      {"NVRM: Xid (PCI:0000:3b:00): 79", "0000:3b:00", 79, "", "", ""},
  };
  for (const XidCase& c : cases) {
    auto x = ParseXidLine(c.line);
    ASSERT_TRUE(x.has_value()) << c.line;
    EXPECT_EQ(x->pci, c.pci) << c.line;
    EXPECT_TRUE(x->address.has_value()) << c.line;
    EXPECT_EQ(x->code, c.code) << c.line;
    EXPECT_EQ(x->pid, c.pid) << c.line;
    EXPECT_EQ(x->process_name, c.name) << c.line;
    EXPECT_EQ(x->text, c.text) << c.line;
  }
}

TEST(XidLineTest, IgnoresWhatIsNotAnXid) {
  for (const char* line :
       {"NVRM: GPU at PCI:0000:3b:00: GPU-d49c1d00-83d3-507c-2219-9467d956de9a",
        "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  580.159.04",
        "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 32",
        "NVRM: Xid", "NVRM: Xid (PCI:0000:3b:00)",
        "NVRM: Xid (PCI:0000:3b:00): x", "NVRM: Xid PCI:0000:3b:00: 79",
        "NVRM: Xid (PCI:0000:3b:00): 1234567890, too big", "random text"}) {
    EXPECT_FALSE(ParseXidLine(line).has_value()) << line;
  }
  // A malformed address still yields the XID (with an unknown GPU).
  auto odd =
      ParseXidLine("NVRM: Xid (PCI:weird): 79, GPU has fallen off the bus.");
  ASSERT_TRUE(odd.has_value());
  EXPECT_FALSE(odd->address.has_value());
  EXPECT_EQ(odd->pci, "weird");
}

TEST(XidLineTest, DescribesCommonCodes) {
  EXPECT_EQ(XidDescription(79), "GPU has fallen off the bus");
  EXPECT_EQ(XidDescription(48), "Double bit ECC error");
  EXPECT_EQ(XidDescription(12345), "");
}

class KmsgFollowerTest : public ::testing::Test {
 protected:
  KmsgFollowerTest()
      : path_(
            (std::filesystem::temp_directory_path() /
             ("kmsg-test-" + std::to_string(getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string()) {
    std::remove(path_.c_str());
  }
  ~KmsgFollowerTest() override { std::remove(path_.c_str()); }

  void Append(const std::string& text) {
    std::ofstream out(path_, std::ios::app);
    out << text;
  }

  std::unique_ptr<KmsgFollower> Follow() {
    KmsgOptions o;
    o.path = path_;
    auto f = std::make_unique<KmsgFollower>(
        o, clock_,
        [this](const KmsgRecord& r) { messages_.push_back(r.message); });
    return f;
  }

  std::string path_;
  FakeClock clock_;
  std::vector<std::string> messages_;
};

TEST_F(KmsgFollowerTest, ReadsTheWholeLogThenFollowsIt) {
  Append("6,1,100,-;first\n SUBSYSTEM=pci\n6,2,200,-;second\n");
  auto f = Follow();
  ASSERT_TRUE(f->Start().ok());
  clock_.Advance(absl::ZeroDuration());
  EXPECT_EQ(messages_, (std::vector<std::string>{"first", "second"}));

  // A line is only complete with its newline.
  Append(
      "4,3,300,-;NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=x, GPU has fal");
  clock_.Advance(absl::Milliseconds(250));
  EXPECT_EQ(messages_.size(), 2u);
  Append("len off the bus.\n");
  clock_.Advance(absl::Milliseconds(250));
  ASSERT_EQ(messages_.size(), 3u);
  EXPECT_TRUE(ParseXidLine(messages_[2]).has_value());
  EXPECT_EQ(f->records(), 3u);
}

TEST_F(KmsgFollowerTest, StartsOverAfterTruncationAndRotation) {
  Append("6,1,1,-;one\n6,2,2,-;two\n");
  auto f = Follow();
  ASSERT_TRUE(f->Start().ok());
  clock_.Advance(absl::ZeroDuration());
  ASSERT_EQ(messages_.size(), 2u);

  // Truncated in place (logrotate copytruncate).
  { std::ofstream out(path_, std::ios::trunc); }
  Append("6,3,3,-;three\n");
  clock_.Advance(absl::Milliseconds(250));
  ASSERT_EQ(messages_.size(), 3u);
  EXPECT_EQ(messages_[2], "three");

  // Replaced by a new file (logrotate create).
  std::string next = path_ + ".new";
  {
    std::ofstream out(next);
    out << "6,4,4,-;four\n";
  }
  std::filesystem::rename(next, path_);
  clock_.Advance(absl::Milliseconds(250));
  ASSERT_EQ(messages_.size(), 4u);
  EXPECT_EQ(messages_[3], "four");
}

TEST_F(KmsgFollowerTest, WaitsForALogThatDoesNotExistYet) {
  auto f = Follow();
  EXPECT_FALSE(f->Start().ok());
  Append("6,1,1,-;late\n");
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(messages_, (std::vector<std::string>{"late"}));
}

TEST_F(KmsgFollowerTest, StopEndsPolling) {
  Append("6,1,1,-;one\n");
  auto f = Follow();
  ASSERT_TRUE(f->Start().ok());
  clock_.Advance(absl::ZeroDuration());
  f->Stop();
  Append("6,2,2,-;two\n");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(messages_.size(), 1u);
  EXPECT_EQ(clock_.PendingTimers(), 0u);
}

// /dev/kmsg itself, where this machine lets us read it: records come one per
// read and the follower does not block at the end.
TEST(KmsgDeviceTest, ReadsDevKmsgWithoutBlocking) {
  if (access("/dev/kmsg", R_OK) != 0)
    GTEST_SKIP() << "/dev/kmsg is not readable here";
  FakeClock clock;
  int records = 0;
  KmsgOptions o;
  o.path = "/dev/kmsg";
  KmsgFollower f(o, clock, [&](const KmsgRecord& r) {
    if (r.has_header) ++records;
  });
  absl::Status s = f.Start();
  if (!s.ok()) GTEST_SKIP() << s;
  clock.Advance(absl::ZeroDuration());
  f.PollOnce();  // at the end now: returns at once
  EXPECT_GE(records, 0);
}

}  // namespace
}  // namespace navarch::agent
