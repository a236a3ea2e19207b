#include "navarch/base/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace navarch {
namespace {

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        ::testing::TempDir() + "/navarch-file-test-" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FileTest, WritesReplacesAndReadsBackWithTheMode) {
  const std::string path = dir_ + "/token";
  EXPECT_EQ(ReadFileToString(path).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomically(path, "first", 0644).ok());
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100000, 'x'), 0600).ok());
  auto read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::string(100000, 'x'));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temporary file is left beside it.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(FileTest, AMissingFolderIsAnErrorNamingThePath) {
  absl::Status s = WriteFileAtomically(dir_ + "/no/such/token", "x", 0600);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/no/such/token"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace navarch
