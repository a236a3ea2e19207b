#include "navarch/cel/value.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/cel/text.h"

namespace navarch::cel {
namespace {

using ::testing::HasSubstr;

Value MakeMap(std::vector<std::pair<Value, Value>> entries) {
  absl::StatusOr<Value> map = Value::Map(std::move(entries));
  EXPECT_TRUE(map.ok()) << map.status();
  return map.ok() ? *map : Value();
}

TEST(CelValueTest, KindsAndAccessors) {
  EXPECT_TRUE(Value().is_null());
  EXPECT_EQ(Value::Null().kind(), Value::Kind::kNull);
  EXPECT_TRUE(Value::Bool(true).bool_value());
  EXPECT_EQ(Value::Int(-7).int_value(), -7);
  EXPECT_EQ(Value::Uint(7).uint_value(), 7u);
  EXPECT_EQ(Value::Double(1.5).double_value(), 1.5);
  EXPECT_EQ(Value::String("héllo").string_value(), "héllo");
  EXPECT_EQ(Value::Bytes(std::string("\0\xff", 2)).bytes_value(),
            std::string("\0\xff", 2));
  EXPECT_EQ(Value::List({Value::Int(1)}).list_value().size(), 1u);
  EXPECT_EQ(MakeMap({{Value::String("a"), Value::Int(1)}}).map_value().size(),
            1u);
  EXPECT_TRUE(Value::Int(1).is_number());
  EXPECT_TRUE(Value::Uint(1).is_number());
  EXPECT_TRUE(Value::Double(1).is_number());
  EXPECT_FALSE(Value::String("1").is_number());
}

TEST(CelValueTest, TypeNames) {
  EXPECT_EQ(Value().type_name(), "null_type");
  EXPECT_EQ(Value::Bool(true).type_name(), "bool");
  EXPECT_EQ(Value::Int(1).type_name(), "int");
  EXPECT_EQ(Value::Uint(1).type_name(), "uint");
  EXPECT_EQ(Value::Double(1).type_name(), "double");
  EXPECT_EQ(Value::String("").type_name(), "string");
  EXPECT_EQ(Value::Bytes("").type_name(), "bytes");
  EXPECT_EQ(Value::List({}).type_name(), "list");
  EXPECT_EQ(MakeMap({}).type_name(), "map");
}

TEST(CelValueTest, CopiesShareAggregates) {
  Value list = Value::List({Value::String("x")});
  Value copy = list;
  EXPECT_EQ(&list.list_value(), &copy.list_value());
  Value s = Value::String("abc");
  Value t = s;
  EXPECT_EQ(s.string_value().data(), t.string_value().data());
}

TEST(CelValueTest, DebugStringIsCelLiteral) {
  EXPECT_EQ(Value().DebugString(), "null");
  EXPECT_EQ(Value::Bool(false).DebugString(), "false");
  EXPECT_EQ(Value::Int(-42).DebugString(), "-42");
  EXPECT_EQ(Value::Int(std::numeric_limits<int64_t>::min()).DebugString(),
            "-9223372036854775808");
  EXPECT_EQ(Value::Uint(42).DebugString(), "42u");
  EXPECT_EQ(Value::Double(1).DebugString(), "1.0");
  EXPECT_EQ(Value::Double(-0.0).DebugString(), "-0.0");
  EXPECT_EQ(Value::Double(2.5).DebugString(), "2.5");
  EXPECT_EQ(Value::Double(1e21).DebugString(), "1e+21");
  EXPECT_EQ(Value::Double(1.5e-7).DebugString(), "1.5e-07");
  EXPECT_EQ(Value::Double(NAN).DebugString(), "double(\"NaN\")");
  EXPECT_EQ(Value::Double(INFINITY).DebugString(), "double(\"Infinity\")");
  EXPECT_EQ(Value::Double(-INFINITY).DebugString(), "-double(\"Infinity\")");
  EXPECT_EQ(Value::String("a\"b\\c\n\x01é").DebugString(),
            R"("a\"b\\c\n\x01é")");
  EXPECT_EQ(Value::Bytes("a\"\xff").DebugString(), R"(b"a\"\xFF")");
  EXPECT_EQ(Value::List({Value::Int(1), Value::String("a"), Value::List({})})
                .DebugString(),
            R"([1, "a", []])");
  EXPECT_EQ(MakeMap({{Value::String("b"), Value::Int(1)},
                     {Value::Int(2), Value::Bool(true)}})
                .DebugString(),
            R"({"b": 1, 2: true})");
  std::ostringstream os;
  os << Value::Uint(3);
  EXPECT_EQ(os.str(), "3u");
}

TEST(CelValueTest, EqualityIsHeterogeneousForNumbers) {
  EXPECT_EQ(Value::Int(1), Value::Uint(1));
  EXPECT_EQ(Value::Int(1), Value::Double(1.0));
  EXPECT_EQ(Value::Uint(1), Value::Double(1.0));
  EXPECT_NE(Value::Int(-1), Value::Uint(std::numeric_limits<uint64_t>::max()));
  EXPECT_NE(Value::Int(1), Value::Double(1.5));
  EXPECT_NE(Value::Int(1), Value::String("1"));
  EXPECT_NE(Value::Bool(false), Value());
  EXPECT_EQ(Value(), Value());
  EXPECT_NE(Value::String("a"), Value::Bytes("a"));
}

TEST(CelValueTest, NanEqualsNothing) {
  const Value nan = Value::Double(NAN);
  EXPECT_NE(nan, nan);
  EXPECT_NE(Value::List({nan}), Value::List({nan}));
  EXPECT_EQ(Value::Double(0.0), Value::Double(-0.0));
}

TEST(CelValueTest, DeepEquality) {
  const Value a = MakeMap({{Value::String("k"), Value::List({Value::Int(1)})},
                           {Value::Int(2), Value::Double(3)}});
  const Value b =
      MakeMap({{Value::Uint(2), Value::Uint(3)},
               {Value::String("k"), Value::List({Value::Uint(1)})}});
  const Value c =
      MakeMap({{Value::Uint(2), Value::Uint(3)},
               {Value::String("k"), Value::List({Value::Uint(2)})}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, MakeMap({{Value::String("k"), Value::List({Value::Int(1)})}}));
  EXPECT_NE(Value::List({Value::Int(1)}),
            Value::List({Value::Int(1), Value::Int(2)}));
}

TEST(CelValueTest, CompareNumbers) {
  EXPECT_EQ(CompareNumbers(Value::Int(-1), Value::Uint(0)), -1);
  EXPECT_EQ(CompareNumbers(Value::Uint(0), Value::Int(-1)), 1);
  EXPECT_EQ(CompareNumbers(Value::Uint(1u << 31), Value::Int(1 << 30)), 1);
  EXPECT_EQ(CompareNumbers(Value::Int(2), Value::Double(2.0)), 0);
  EXPECT_EQ(CompareNumbers(Value::Double(-0.5), Value::Uint(0)), -1);
  EXPECT_EQ(CompareNumbers(Value::Double(NAN), Value::Int(0)), std::nullopt);
  // Against a double, int compares in double precision (comparisons.textproto
  // not_lt_dyn_int_big_lossy_double).
  EXPECT_EQ(CompareNumbers(Value::Int(std::numeric_limits<int64_t>::max()),
                           Value::Double(9223372036854775808.0)),
            0);
}

TEST(CelValueTest, MapRejectsBadKeys) {
  auto bad = Value::Map({{Value::Double(1), Value::Int(1)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("unsupported key type: double"));
  bad = Value::Map({{Value(), Value::Int(1)}});
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("unsupported key type: null"));
  bad = Value::Map({{Value::List({}), Value::Int(1)}});
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("unsupported key type: list"));
}

TEST(CelValueTest, MapRejectsRepeatedKeys) {
  auto bad = Value::Map({{Value::String("a"), Value::Int(1)},
                         {Value::String("a"), Value::Int(2)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "repeated key: \"a\"");
  // int and uint of one value are one key.
  bad = Value::Map(
      {{Value::Int(3), Value::Int(1)}, {Value::Uint(3), Value::Int(2)}});
  EXPECT_EQ(bad.status().message(), "repeated key: 3u");
  // Same through the hash index of a large map.
  std::vector<std::pair<Value, Value>> entries;
  for (int i = 0; i < 20; ++i) entries.emplace_back(Value::Int(i), Value());
  entries.emplace_back(Value::Uint(19), Value());
  bad = Value::Map(entries);
  EXPECT_EQ(bad.status().message(), "repeated key: 19u");
  // But bool true is not int 1, and string "1" is not int 1.
  EXPECT_TRUE(Value::Map({{Value::Int(1), Value()},
                          {Value::Bool(true), Value()},
                          {Value::String("1"), Value()}})
                  .ok());
}

TEST(CelValueTest, MapFind) {
  for (int size : {3, 30}) {  // linear scan and hash index
    std::vector<std::pair<Value, Value>> entries;
    for (int i = 0; i < size; ++i) {
      entries.emplace_back(Value::Int(i), Value::Int(i * 10));
      entries.emplace_back(Value::String("k" + std::to_string(i)),
                           Value::Int(i));
    }
    entries.emplace_back(Value::Uint(1000), Value::String("u"));
    entries.emplace_back(Value::Int(-5), Value::String("neg"));
    entries.emplace_back(Value::Bool(false), Value::String("f"));
    const Value map = MakeMap(entries);
    const MapValue& m = map.map_value();
    SCOPED_TRACE(size);
    ASSERT_NE(m.Find(Value::Int(2)), nullptr);
    EXPECT_EQ(*m.Find(Value::Int(2)), Value::Int(20));
    EXPECT_EQ(*m.Find(Value::Uint(2)), Value::Int(20));
    EXPECT_EQ(*m.Find(Value::Double(2.0)), Value::Int(20));
    EXPECT_EQ(m.Find(Value::Double(2.5)), nullptr);
    EXPECT_EQ(m.Find(Value::Double(NAN)), nullptr);
    EXPECT_EQ(m.Find(Value::Double(1e300)), nullptr);
    EXPECT_EQ(*m.Find(Value::Int(1000)), Value::String("u"));
    EXPECT_EQ(*m.Find(Value::Double(-5)), Value::String("neg"));
    EXPECT_EQ(m.Find(Value::Uint(static_cast<uint64_t>(-5))), nullptr);
    EXPECT_EQ(*m.Find(Value::Bool(false)), Value::String("f"));
    EXPECT_EQ(m.Find(Value::Int(0))->int_value(), 0);  // not the bool key
    EXPECT_EQ(*m.Find("k1"), Value::Int(1));
    EXPECT_EQ(*m.Find(Value::String("k1")), Value::Int(1));
    EXPECT_EQ(m.Find("nope"), nullptr);
    EXPECT_EQ(m.Find(Value()), nullptr);
    EXPECT_EQ(m.Find(Value::List({})), nullptr);
  }
}

TEST(CelValueTest, MapKeepsInsertionOrder) {
  const Value map = MakeMap({{Value::String("z"), Value::Int(1)},
                             {Value::String("a"), Value::Int(2)}});
  std::vector<std::string> keys;
  for (const auto& [k, v] : map.map_value()) {
    keys.emplace_back(k.string_value());
  }
  EXPECT_THAT(keys, testing::ElementsAre("z", "a"));
}

TEST(CelTextTest, FormatDoubleMatchesGo) {
  using internal::FormatDouble;
  // Outputs of Go's strconv.FormatFloat(d, 'g', -1, 64).
  EXPECT_EQ(FormatDouble(0), "0");
  EXPECT_EQ(FormatDouble(-0.0), "-0");
  EXPECT_EQ(FormatDouble(1), "1");
  EXPECT_EQ(FormatDouble(123.456), "123.456");
  EXPECT_EQ(FormatDouble(-4.5e-3), "-0.0045");
  EXPECT_EQ(FormatDouble(0.0001), "0.0001");
  EXPECT_EQ(FormatDouble(0.00001), "1e-05");
  EXPECT_EQ(FormatDouble(123456), "123456");
  EXPECT_EQ(FormatDouble(1234567), "1.234567e+06");
  EXPECT_EQ(FormatDouble(1e100), "1e+100");
  EXPECT_EQ(FormatDouble(0.1), "0.1");
  EXPECT_EQ(FormatDouble(5e-324), "5e-324");
  EXPECT_EQ(FormatDouble(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(FormatDouble(INFINITY), "+Inf");
  EXPECT_EQ(FormatDouble(-INFINITY), "-Inf");
  EXPECT_EQ(FormatDouble(NAN), "NaN");
}

TEST(CelTextTest, Utf8) {
  using internal::FindInvalidUtf8;
  EXPECT_EQ(FindInvalidUtf8("abc"), 3u);
  EXPECT_EQ(FindInvalidUtf8("aé€🐱"), std::string("aé€🐱").size());
  EXPECT_EQ(FindInvalidUtf8("a\xff"), 1u);
  EXPECT_EQ(FindInvalidUtf8("a\xc3"), 1u);             // truncated
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);          // overlong
  EXPECT_EQ(FindInvalidUtf8("ab\xed\xa0\x80"), 2u);    // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(internal::CountCodePoints("aé€🐱"), 4u);
  std::string out;
  internal::AppendUtf8(0x1F431, &out);
  internal::AppendUtf8(0xE9, &out);
  EXPECT_EQ(out, "🐱é");
}

}  // namespace
}  // namespace navarch::cel
