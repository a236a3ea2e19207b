// One conformance suite for every Store backend (the model is Apache Arrow's
// filesystem test_util.h): the contract in store.h is tested once, here, and
// each backend instantiates the suite with a harness that opens its stores.
//
//   class MyHarness : public StoreHarness { ... };
//   INSTANTIATE_TEST_SUITE_P(
//       My, StoreConformanceTest,
//       ::testing::Values(StoreBackend{"my", [] { return
//       std::make_unique<MyHarness>(); }}), StoreBackendName);
//
// The test file must link navarch::store_testing, an object library, so the
// suite's tests are linked in even though nothing references them by name.
#ifndef NAVARCH_STORE_TESTING_STORE_CONFORMANCE_H_
#define NAVARCH_STORE_TESTING_STORE_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "navarch/store/store.h"

namespace navarch {

// Opens stores of one backend for one test. A fresh harness per test.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;

  // Opens the store under test. The first call returns an empty store. For a
  // durable backend, a call after the previous store was closed returns a
  // store holding everything that was committed to it.
  virtual absl::StatusOr<std::unique_ptr<Store>> Open() = 0;

  // Whether data survives Close and Open; the reopen tests need it.
  virtual bool durable() const = 0;
};

struct StoreBackend {
  std::string name;  // the test name suffix: letters, digits, '_'
  std::function<std::unique_ptr<StoreHarness>()> make_harness;
};

// For INSTANTIATE_TEST_SUITE_P's name generator argument.
std::string StoreBackendName(
    const ::testing::TestParamInfo<StoreBackend>& info);
void PrintTo(const StoreBackend& backend, std::ostream* os);

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  Store& store() { return *store_; }
  // Closes the store and opens it again (durable backends only).
  void Reopen();

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<Store> store_;
};

// Record builders shared by the suite and backend-specific tests.
namespace storetest {

// A fixed origin, so tests never read the real clock.
absl::Time T(int64_t seconds);

NodeRecord Node(const std::string& id, int64_t version,
                const std::string& pool = "pool-a");
InstanceRecord Instance(const std::string& id, int64_t version,
                        const std::string& pool = "pool-a");
CommandRecord Command(const std::string& id, const std::string& node_id,
                      int64_t version, internal::CommandState state,
                      absl::Time issued_at);
Event MakeEvent(const std::string& kind, const std::string& node_id,
                const std::string& pool, absl::Time time);

// Equality of two messages, printing both when they differ.
::testing::AssertionResult ProtoEquals(
    const google::protobuf::Message& expected,
    const google::protobuf::Message& actual);

}  // namespace storetest
}  // namespace navarch

#endif  // NAVARCH_STORE_TESTING_STORE_CONFORMANCE_H_
