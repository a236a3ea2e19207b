#include "navarch/cel/lexer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch::cel::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<TokenKind> Kinds(absl::string_view source) {
  absl::StatusOr<std::vector<Token>> tokens = Lex(source);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  std::vector<TokenKind> kinds;
  if (tokens.ok()) {
    for (const Token& t : *tokens) kinds.push_back(t.kind);
  }
  return kinds;
}

TEST(CelLexerTest, Operators) {
  using K = TokenKind;
  EXPECT_THAT(
      Kinds("== != < <= > >= && || ! + - * / % ? : . , ( ) [ ] { }"),
      ElementsAre(K::kEq, K::kNe, K::kLt, K::kLe, K::kGt, K::kGe, K::kAnd,
                  K::kOr, K::kNot, K::kPlus, K::kMinus, K::kStar, K::kSlash,
                  K::kPercent, K::kQuestion, K::kColon, K::kDot, K::kComma,
                  K::kLParen, K::kRParen, K::kLBracket, K::kRBracket,
                  K::kLBrace, K::kRBrace, K::kEnd));
}

TEST(CelLexerTest, KeywordsAndIdentifiers) {
  using K = TokenKind;
  EXPECT_THAT(Kinds("true false null in _x9 r b rb inside"),
              ElementsAre(K::kTrue, K::kFalse, K::kNull, K::kIn, K::kIdent,
                          K::kIdent, K::kIdent, K::kIdent, K::kIdent, K::kEnd));
}

TEST(CelLexerTest, Numbers) {
  absl::StatusOr<std::vector<Token>> t =
      Lex("12 0x1F 7u 0x10U 1.5 .5 1e3 2E-2 9223372036854775808");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].kind, TokenKind::kInt);
  EXPECT_EQ((*t)[0].uint, 12u);
  EXPECT_EQ((*t)[1].uint, 31u);
  EXPECT_EQ((*t)[2].kind, TokenKind::kUint);
  EXPECT_EQ((*t)[3].uint, 16u);
  EXPECT_EQ((*t)[3].kind, TokenKind::kUint);
  EXPECT_EQ((*t)[4].dbl, 1.5);
  EXPECT_EQ((*t)[5].dbl, 0.5);
  EXPECT_EQ((*t)[6].dbl, 1000.0);
  EXPECT_EQ((*t)[7].dbl, 0.02);
  // 2^63 lexes; only the parser knows whether a minus precedes it.
  EXPECT_TRUE((*t)[8].int_overflow);
}

TEST(CelLexerTest, NumberFollowedByMember) {
  using K = TokenKind;
  // "1." is not a double literal: the lexis requires digits after the dot.
  EXPECT_THAT(Kinds("1.size()"), ElementsAre(K::kInt, K::kDot, K::kIdent,
                                             K::kLParen, K::kRParen, K::kEnd));
  EXPECT_THAT(Kinds("1e"), ElementsAre(K::kInt, K::kIdent, K::kEnd));
}

TEST(CelLexerTest, Strings) {
  absl::StatusOr<std::vector<Token>> t =
      Lex(R"('a\tb' "c" r'\d' b'\xff' '''x'y''' """z"z""")");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].text, "a\tb");
  EXPECT_EQ((*t)[1].text, "c");
  EXPECT_EQ((*t)[2].text, "\\d");
  EXPECT_EQ((*t)[3].kind, TokenKind::kBytes);
  EXPECT_EQ((*t)[3].text, "\xff");
  EXPECT_EQ((*t)[4].text, "x'y");
  EXPECT_EQ((*t)[5].text, "z\"z");
}

TEST(CelLexerTest, CommentsAndWhitespace) {
  using K = TokenKind;
  EXPECT_THAT(Kinds("a // b c\n// d\r\n\t\f e // end"),
              ElementsAre(K::kIdent, K::kIdent, K::kEnd));
}

TEST(CelLexerTest, Positions) {
  EXPECT_EQ(Position("abc", 0), "1:1");
  EXPECT_EQ(Position("abc", 2), "1:3");
  EXPECT_EQ(Position("a\nbc", 3), "2:2");
  EXPECT_EQ(Position("a\r\nbc", 4), "2:2");
  EXPECT_EQ(Position("a\rb", 2), "2:1");
  EXPECT_EQ(Position("éé x", 5), "1:4");  // columns count code points
  EXPECT_EQ(Position("ab", 2), "1:3");    // end of input
}

TEST(CelLexerTest, SourceSizeLimit) {
  const std::string big(kMaxSourceBytes + 1, ' ');
  absl::StatusOr<std::vector<Token>> t = Lex(big);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("the limit is 100000"));
  EXPECT_TRUE(Lex(std::string(kMaxSourceBytes, ' ')).ok());
}

}  // namespace
}  // namespace navarch::cel::internal
