#include "navarch/fleet/command_book.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace navarch::fleet_internal {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

CommandRecord Command(const std::string& id, const std::string& node) {
  CommandRecord c;
  c.mutable_command()->set_command_id(id);
  c.set_node_id(node);
  c.set_version(1);
  c.set_state(internal::COMMAND_STATE_PENDING);
  return c;
}

TEST(CommandBookTest, OpenCommandsKeepIssueOrderUntilFinished) {
  CommandBook book;
  book.Add(Command("c2", "n1"));
  book.Add(Command("c1", "n1"));
  book.Add(Command("c3", "n2"));
  book.Add(Command("c4", "gone"), /*open_for_node=*/false);
  EXPECT_EQ(book.Open("n1"), (std::vector<std::string>{"c2", "c1"}));
  EXPECT_TRUE(book.Open("gone").empty());
  ASSERT_NE(book.Find("c4"), nullptr);
  book.Finish("c2");
  book.Finish("nope");
  EXPECT_EQ(book.Find("c2"), nullptr);
  EXPECT_EQ(book.Open("n1"), (std::vector<std::string>{"c1"}));
  book.Finish("c1");
  EXPECT_TRUE(book.Open("n1").empty());
  EXPECT_EQ(book.Open("n2"), (std::vector<std::string>{"c3"}));
}

TEST(CommandBookTest, DeliveryAndCancellationBumpTheVersion) {
  CommandBook book;
  book.Add(Command("c1", "n1"));
  book.Add(Command("c2", "n1"));
  CommandRecord* c1 = book.Find("c1");
  CommandBook::MarkDelivered(*c1, kT0);
  EXPECT_EQ(c1->state(), internal::COMMAND_STATE_DELIVERED);
  EXPECT_EQ(c1->version(), 2);
  std::vector<CommandRecord> cancelled =
      book.CancelAll("n1", kT0, "node terminated");
  ASSERT_EQ(cancelled.size(), 2u);
  EXPECT_EQ(cancelled[0].command().command_id(), "c1");
  EXPECT_EQ(cancelled[0].version(), 3);
  EXPECT_EQ(cancelled[1].version(), 2);
  EXPECT_EQ(cancelled[1].state(), internal::COMMAND_STATE_CANCELLED);
  EXPECT_EQ(cancelled[1].result_message(), "node terminated");
  EXPECT_EQ(book.Find("c1"), nullptr);
  EXPECT_TRUE(book.Open("n1").empty());
  EXPECT_TRUE(book.CancelAll("n1", kT0, "again").empty());
}

TEST(CommandBookTest, AStreamReplacesTheOldOneAndOnlyItsHandleEndsIt) {
  CommandBook book;
  int closed = 0;
  Watcher replaced;
  uint64_t h1 = book.Watch(
      "n1", [](const NodeCommand&) {}, [&] { ++closed; }, &replaced);
  EXPECT_FALSE(replaced.closed);  // none before
  uint64_t h2 = book.Watch(
      "n1", [](const NodeCommand&) {}, [] {}, &replaced);
  EXPECT_NE(h1, h2);
  ASSERT_TRUE(replaced.closed);
  replaced.closed();
  EXPECT_EQ(closed, 1);
  book.Unwatch("n1", h1);  // stale handle: no effect
  ASSERT_NE(book.FindWatcher("n1"), nullptr);
  EXPECT_EQ(book.FindWatcher("n1")->handle, h2);
  book.Unwatch("n1", h2);
  EXPECT_EQ(book.FindWatcher("n1"), nullptr);
  book.Watch(
      "n2", [](const NodeCommand&) {}, [] {}, nullptr);
  book.Watch(
      "n3", [](const NodeCommand&) {}, [] {}, nullptr);
  EXPECT_TRUE(book.TakeWatcher("n2").closed);
  EXPECT_FALSE(book.TakeWatcher("n2").closed);
  EXPECT_EQ(book.TakeAllWatchers().size(), 1u);
  EXPECT_EQ(book.FindWatcher("n3"), nullptr);
}

}  // namespace
}  // namespace navarch::fleet_internal
