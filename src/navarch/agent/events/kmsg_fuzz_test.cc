// A deterministic fuzz run of the kernel-log parsers, part of every test run:
// thousands of random, mutated and generated inputs from a fixed seed. The
// parsers must never crash, must keep their bounds, and must read back what a
// generated XID line says. events/kmsg_fuzzer.cc is the open-ended libFuzzer
// version of the same checks (clang builds).
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "navarch/agent/events/kmsg.h"

namespace navarch::agent {
namespace {

const std::vector<std::string>& Seeds() {
  static const auto* seeds = new std::vector<std::string>{
      "4,1234,5678,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, "
      "GPU has fallen off "
      "the bus.\n SUBSYSTEM=pci\n",
      "NVRM: Xid (PCI:0000:3b:00): 13, pid='<unknown>', name=<unknown>, "
      "Graphics Exception: ESR",
      "NVRM: Xid (PCI:00000000:CA:00.0): 48, pid=25497, Ch 00000008",
      "NVRM: Xid (0000:03:00): 62, 0dc1(2f60) 00000000 00000000",
      "[ 5123.456789] NVRM: Xid (PCI:0000:18:00): 45, pid=1, name=a, Ch "
      "00000001",
      "6,99,100,-,caller=T1;hello",
  };
  return *seeds;
}

void CheckBounds(absl::string_view input) {
  KmsgRecord r = ParseKmsgRecord(input);
  ASSERT_LE(r.message.size(), input.size());
  for (absl::string_view text : {input, absl::string_view(r.message)}) {
    auto x = ParseXidLine(text);
    if (!x) continue;
    ASSERT_GE(x->code, 0);
    ASSERT_LE(x->code, 999999999);
    ASSERT_LE(x->pci.size(), 32u);
    ASSERT_LE(x->pid.size(), 32u);
    ASSERT_LE(x->process_name.size(), 64u);
    ASSERT_LE(x->text.size(), 1024u);
  }
  ParsePciAddress(input);
}

std::string Mutate(std::string s, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> op(0, 4), byte(0, 255);
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < rounds; ++i) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (op(rng)) {
      case 0:  // flip a byte
        if (!s.empty()) s[pos % s.size()] = static_cast<char>(byte(rng));
        break;
      case 1:  // insert a byte, often a delimiter the parser cares about
        s.insert(pos, 1, "(),:;= \n'\"0x9"[rng() % 14]);
        break;
      case 2:  // delete a run
        if (!s.empty()) s.erase(pos % s.size(), rng() % 8);
        break;
      case 3:  // duplicate a run
        if (!s.empty()) s.insert(pos, s.substr(pos % s.size(), rng() % 16));
        break;
      default:  // truncate
        s.resize(pos);
        break;
    }
  }
  return s;
}

std::string RandomToken(std::mt19937_64& rng, const char* alphabet,
                        size_t max) {
  std::string out;
  size_t n = 1 + rng() % max;
  size_t len = std::char_traits<char>::length(alphabet);
  for (size_t i = 0; i < n; ++i) out += alphabet[rng() % len];
  return out;
}

TEST(KmsgFuzzTest, RandomAndMutatedInputsNeverBreakTheParsers) {
  std::mt19937_64 rng(20261127);
  for (int i = 0; i < 4000; ++i) {
    std::string input;
    if (i % 3 == 0) {
      size_t n = rng() % 300;
      for (size_t j = 0; j < n; ++j) input += static_cast<char>(rng() & 0xff);
    } else {
      input = Mutate(Seeds()[rng() % Seeds().size()], rng);
    }
    CheckBounds(input);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "input #" << i << ": " << absl::CHexEscape(input);
      return;
    }
  }
  // Huge lines stay bounded.
  CheckBounds(absl::StrCat(
      "NVRM: Xid (PCI:0000:3b:00): 79, pid=", std::string(10000, '1'),
      ", name=", std::string(10000, 'n'), ", ", std::string(100000, 't')));
}

TEST(KmsgFuzzTest, GeneratedXidLinesReadBack) {
  std::mt19937_64 rng(79);
  for (int i = 0; i < 2000; ++i) {
    uint32_t domain = static_cast<uint32_t>(rng() % 0x10000);
    uint32_t bus = static_cast<uint32_t>(rng() % 256),
             dev = static_cast<uint32_t>(rng() % 32);
    bool wide = rng() % 2, upper = rng() % 2, prefix = rng() % 4 != 0,
         fn = rng() % 3 == 0;
    // One literal per form: clang checks StrFormat's format at compile
    // time, so it must be a constant, not a chosen one.
    std::string pci =
        upper ? (wide ? absl::StrFormat("%08X:%02X:%02X", domain, bus, dev)
                      : absl::StrFormat("%04X:%02X:%02X", domain, bus, dev))
              : (wide ? absl::StrFormat("%08x:%02x:%02x", domain, bus, dev)
                      : absl::StrFormat("%04x:%02x:%02x", domain, bus, dev));
    if (fn) absl::StrAppend(&pci, ".", rng() % 8);
    int code = static_cast<int>(rng() % 200);
    std::string pid =
        rng() % 5 == 0 ? "'<unknown>'" : absl::StrCat(rng() % 4000000);
    std::string name =
        RandomToken(rng, "abcdefghijklmnopqrstuvwxyz_-.0123456789", 15);
    std::string text =
        RandomToken(rng, "abcdefghij ABCDEF:!.()0123456789x", 80);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    while (!text.empty() && text.front() == ' ') text.erase(0, 1);
    int shape = static_cast<int>(rng() % 3);  // pid+name, pid only, neither
    std::string line =
        absl::StrCat("NVRM: Xid (", prefix ? "PCI:" : "", pci, "): ", code);
    if (shape <= 1) absl::StrAppend(&line, ", pid=", pid);
    if (shape == 0) absl::StrAppend(&line, ", name=", name);
    if (!text.empty()) absl::StrAppend(&line, ", ", text);
    std::string record =
        absl::StrCat("4,", i, ",", rng() % 100000000, ",-;", line,
                     rng() % 2 ? "\n SUBSYSTEM=pci" : "");

    auto x = ParseXidLine(ParseKmsgRecord(record).message);
    ASSERT_TRUE(x.has_value()) << record;
    EXPECT_EQ(x->pci, pci) << record;
    ASSERT_TRUE(x->address.has_value()) << record;
    EXPECT_EQ(x->address->domain, domain);
    EXPECT_EQ(x->address->bus, bus);
    EXPECT_EQ(x->address->device, dev);
    EXPECT_EQ(x->code, code) << record;
    std::string want_pid =
        shape <= 1 ? (pid == "'<unknown>'" ? "<unknown>" : pid) : "";
    EXPECT_EQ(x->pid, want_pid) << record;
    EXPECT_EQ(x->process_name, shape == 0 ? name : "") << record;
    // Without pid/name, text that happens to start with "pid=" would be read
    // as one; the generator's alphabet cannot produce that.
    EXPECT_EQ(x->text, text) << record;
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace navarch::agent
