// Service access lists: every entry kind, and the configured-but-empty case.
#include "broker/auth/access_rules.hpp"

#include <gtest/gtest.h>

namespace zguard::auth {
namespace {

const Identity kAlice{"alice", "ops, billing", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"};
const Identity kBob{"bob", "", ""};

TEST(AccessList, UnconfiguredAllowsEveryone) {
  AccessList list;
  EXPECT_TRUE(list.Allows(kAlice));
  EXPECT_TRUE(list.Allows(kBob));
}

TEST(AccessList, ConfiguredButEmptyAllowsNobody) {
  AccessList list;
  list.set_configured();
  EXPECT_FALSE(list.Allows(kAlice));
}

TEST(AccessList, MatchesUsersRolesKeysAndStar) {
  AccessList users;
  ASSERT_FALSE(users.Add("user:alice"));
  EXPECT_TRUE(users.Allows(kAlice));
  EXPECT_FALSE(users.Allows(kBob));
  AccessList bare;
  ASSERT_FALSE(bare.Add("bob"));
  EXPECT_TRUE(bare.Allows(kBob));
  AccessList roles;
  ASSERT_FALSE(roles.Add("role:billing"));  // " billing" after the comma still matches
  EXPECT_TRUE(roles.Allows(kAlice));
  EXPECT_FALSE(roles.Allows(kBob));
  AccessList keys;
  ASSERT_FALSE(keys.Add(std::string("key:") + std::string(kAlice.key)));
  EXPECT_TRUE(keys.Allows(kAlice));
  EXPECT_FALSE(keys.Allows(kBob));
  AccessList star;
  ASSERT_FALSE(star.Add("*"));
  EXPECT_TRUE(star.Allows(kBob));
}

TEST(AccessList, RoleMatchingIsExact) {
  EXPECT_TRUE(HasRole("a,bb,c", "bb"));
  EXPECT_FALSE(HasRole("a,bbb,c", "bb"));
  EXPECT_FALSE(HasRole("", "a"));
  EXPECT_FALSE(HasRole("ops", "op"));
}

TEST(AccessList, RejectsBadEntries) {
  AccessList list;
  EXPECT_TRUE(list.Add("role:").has_value());
  EXPECT_TRUE(list.Add("key:short").has_value());
  EXPECT_TRUE(list.Add("user:two words").has_value());
  EXPECT_TRUE(list.Add("").has_value());
  EXPECT_TRUE(list.Add("Role:ops").has_value());  // a typo, not a user called "Role:ops"
  EXPECT_TRUE(list.Add("group:ops").has_value());
}

}  // namespace
}  // namespace zguard::auth
