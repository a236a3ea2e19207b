#include "navarch/cel/json.h"

#include <cmath>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace navarch::cel {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

Value FromJson(const json& j) {
  absl::StatusOr<Value> v = ValueFromJson(j);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Value();
}

TEST(CelJsonTest, Scalars) {
  EXPECT_TRUE(FromJson(json(nullptr)).is_null());
  EXPECT_EQ(FromJson(json(true)).DebugString(), "true");
  EXPECT_EQ(FromJson(json::parse("13")).DebugString(), "13");
  EXPECT_EQ(FromJson(json::parse("-13")).DebugString(), "-13");
  EXPECT_EQ(FromJson(json::parse("9223372036854775807")).DebugString(),
            "9223372036854775807");
  EXPECT_EQ(FromJson(json::parse("9223372036854775808")).DebugString(),
            "9223372036854775808u");
  EXPECT_EQ(FromJson(json::parse("1.0")).DebugString(), "1.0");
  EXPECT_EQ(FromJson(json::parse("95.5")).DebugString(), "95.5");
  EXPECT_EQ(FromJson(json::parse("1e2")).DebugString(), "100.0");
  EXPECT_EQ(FromJson(json("héllo")).DebugString(), "\"héllo\"");
  EXPECT_EQ(FromJson(json::binary({0x00, 0xff})).DebugString(),
            R"(b"\x00\xFF")");
}

TEST(CelJsonTest, Aggregates) {
  const Value v = FromJson(json::parse(
      R"({"event_type": "xid", "metrics": {"xid_code": 79, "t": 1.5},
          "list": [1, "a", null, [true]]})"));
  EXPECT_EQ(v.DebugString(),
            R"({"event_type": "xid", "list": [1, "a", null, [true]], )"
            R"("metrics": {"t": 1.5, "xid_code": 79}})");
}

TEST(CelJsonTest, RejectsInvalidUtf8) {
  auto v = ValueFromJson(json(std::string("a\xff")));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("invalid UTF-8"));
  json object = json::object();
  object[std::string("k\xff")] = 1;
  EXPECT_FALSE(ValueFromJson(object).ok());
}

TEST(CelJsonTest, RejectsDeepNesting) {
  json deep = json::array();
  for (int i = 0; i < 1100; ++i) deep = json::array({std::move(deep)});
  auto v = ValueFromJson(deep);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()),
              HasSubstr("deeper than the limit"));
}

TEST(CelJsonTest, ToJson) {
  EXPECT_EQ(ValueToJson(Value()), json(nullptr));
  EXPECT_EQ(ValueToJson(Value::Bool(true)), json(true));
  EXPECT_EQ(ValueToJson(Value::Int(-5)), json(-5));
  EXPECT_EQ(ValueToJson(Value::Uint(5)), json(5u));
  EXPECT_EQ(ValueToJson(Value::Double(2.5)), json(2.5));
  EXPECT_EQ(ValueToJson(Value::String("x")), json("x"));
  // Outside the interoperable range of doubles: decimal strings.
  EXPECT_EQ(ValueToJson(Value::Int(9007199254740991)), json(9007199254740991));
  EXPECT_EQ(ValueToJson(Value::Int(9007199254740992)),
            json("9007199254740992"));
  EXPECT_EQ(ValueToJson(Value::Int(-9007199254740992)),
            json("-9007199254740992"));
  EXPECT_EQ(ValueToJson(Value::Uint(18446744073709551615u)),
            json("18446744073709551615"));
  EXPECT_EQ(ValueToJson(Value::Double(NAN)), json("NaN"));
  EXPECT_EQ(ValueToJson(Value::Double(INFINITY)), json("Infinity"));
  EXPECT_EQ(ValueToJson(Value::Double(-INFINITY)), json("-Infinity"));
  EXPECT_EQ(ValueToJson(Value::Bytes("hi!")), json("aGkh"));
  absl::StatusOr<Value> map =
      Value::Map({{Value::Int(1), Value::List({Value::Bool(false)})},
                  {Value::String("s"), Value()}});
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(ValueToJson(*map), json::parse(R"({"1": [false], "s": null})"));
}

TEST(CelJsonTest, RoundTrip) {
  const json j = json::parse(
      R"({"a": [1, -2, 3.25, "x", null, true, {"b": {}}], "c": []})");
  EXPECT_EQ(ValueToJson(FromJson(j)), j);
}

}  // namespace
}  // namespace navarch::cel
