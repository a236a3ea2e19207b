#include "navarch/store/store_factory.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

TEST(OpenStoreTest, Memory) {
  auto store = OpenStore("memory", "");
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Name(), "memory");
  EXPECT_TRUE((*store)->Ping().ok());
}

TEST(OpenStoreTest, SqliteCreatesTheFileAndItsDirectories) {
  std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "store_factory_test";
  std::filesystem::remove_all(dir);
  std::string path = (dir / "a" / "b" / "navarch.db").string();
  auto store = OpenStore("sqlite", path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Name(), "sqlite");
  EXPECT_TRUE((*store)->Ping().ok());
  (*store)->Close();
  EXPECT_TRUE(std::filesystem::exists(path));
  std::filesystem::remove_all(dir);
}

TEST(OpenStoreTest, SqliteNeedsAPath) {
  auto store = OpenStore("sqlite", "");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OpenStoreTest, PostgresNeedsADsn) {
  auto store = OpenStore("postgres", "", "");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("storage.dsn"));
}

TEST(OpenStoreTest, UnknownBackend) {
  auto store = OpenStore("etcd", "/tmp/x");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("etcd"));
  EXPECT_THAT(store.status().message(), HasSubstr("memory, sqlite, postgres"));
}

}  // namespace
}  // namespace navarch
