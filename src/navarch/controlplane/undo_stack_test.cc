#include "navarch/controlplane/undo_stack.h"

#include <string>

#include "gtest/gtest.h"

namespace navarch {
namespace {

TEST(UndoStackTest, AFailureUndoesNewestFirst) {
  std::string undone;
  {
    UndoStack undo;
    undo.Push([&] { undone += "store "; });
    undo.Push([&] { undone += "fleet "; });
    undo.Push([&] { undone += "grpc "; });
  }
  EXPECT_EQ(undone, "grpc fleet store ");
}

TEST(UndoStackTest, ReleaseKeepsEverything) {
  int undone = 0;
  {
    UndoStack undo;
    undo.Push([&] { ++undone; });
    undo.Release();
  }
  EXPECT_EQ(undone, 0);
}

TEST(UndoStackTest, RunUndoesOnce) {
  int undone = 0;
  UndoStack undo;
  undo.Push([&] { ++undone; });
  undo.Run();
  undo.Run();
  EXPECT_EQ(undone, 1);
}

}  // namespace
}  // namespace navarch
