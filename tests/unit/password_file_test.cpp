// The woodhouse password file: parsing with located errors, verification,
// hashing and the atomic `zguard passwd` rewrite. Each argon2id computation
// costs about 0.1 s, so hashes are made once and shared where possible.
#include "broker/auth/password_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace zguard::auth {

// For readable failure messages; found by argument-dependent lookup.
void PrintTo(const PasswordProblem& problem, std::ostream* out) {
  *out << "line " << problem.line << ": " << problem.message;
}

namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr std::string_view kPassword = "correct horse battery staple";

// One real argon2id hash of kPassword, computed on first use.
const std::string& Hash() {
  static const std::string hash = HashPassword(kPassword).value_or("hashing failed");
  return hash;
}

::testing::Matcher<const PasswordProblem&> Problem(int line, const std::string& text) {
  return AllOf(Field(&PasswordProblem::line, line),
               Field(&PasswordProblem::message, HasSubstr(text)));
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const fs::path& path, std::string_view text, fs::perms mode) {
  std::ofstream(path, std::ios::binary) << text;
  fs::permissions(path, mode);
}

// Every message, errors and warnings, for the secrecy checks.
std::vector<std::string> Messages(const PasswordFile& file) {
  std::vector<std::string> out;
  for (const auto& problem : file.errors) out.push_back(problem.message);
  for (const auto& problem : file.warnings) out.push_back(problem.message);
  return out;
}

TEST(ParsePasswordFile, ReadsUsersRolesCommentsAndBlankLines) {
  std::string text =
      "# zguard password file\n"
      "\n"
      "   \t\n"
      "  # an indented comment: not a user\n";
  text += "alice:" + Hash() + ":admin,ops\n";
  text += "bob:" + Hash() + "\r\n";
  text += "  carol:" + Hash() + ":a.b-c_D9  \n";
  text += "dave:" + Hash() + ":\n";
  text += "erin:" + Hash();  // no newline at the end
  const PasswordFile file = ParsePasswordFile(text, false);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.warnings, IsEmpty());
  ASSERT_EQ(file.users.size(), 5U);

  const PasswordEntry& alice = file.users.at("alice");
  EXPECT_EQ(alice.user, "alice");
  EXPECT_EQ(alice.hash, Hash());
  EXPECT_THAT(alice.roles, ElementsAre("admin", "ops"));
  EXPECT_FALSE(alice.plaintext);
  EXPECT_EQ(alice.line, 5);

  EXPECT_EQ(file.users.at("bob").hash, Hash());  // the '\r' is not part of the hash
  EXPECT_THAT(file.users.at("bob").roles, IsEmpty());
  EXPECT_EQ(file.users.at("bob").line, 6);
  EXPECT_THAT(file.users.at("carol").roles, ElementsAre("a.b-c_D9"));
  EXPECT_THAT(file.users.at("dave").roles, IsEmpty());
  EXPECT_EQ(file.users.at("erin").hash, Hash());
  EXPECT_EQ(file.users.at("erin").line, 9);
}

TEST(ParsePasswordFile, EmptyFileHasNoUsersAndNoProblems) {
  for (const char* text : {"", "\n", "# only a comment\n", "\r\n\r\n"}) {
    const PasswordFile file = ParsePasswordFile(text, true);
    EXPECT_THAT(file.users, IsEmpty()) << text;
    EXPECT_THAT(file.errors, IsEmpty()) << text;
    EXPECT_THAT(file.warnings, IsEmpty()) << text;
  }
}

TEST(ParsePasswordFile, ReportsEveryErrorWithItsLine) {
  const std::string& h = Hash();
  const std::string text = "alice:" + h + "\n" +      // 1: fine
                           "no separator here\n" +    // 2
                           ":" + h + "\n" +           // 3
                           "al ice:" + h + "\n" +     // 4
                           "al\tice:" + h + "\n" +    // 5
                           "al\x01ice:" + h + "\n" +  // 6
                           "al=ice:" + h + "\n" +     // 7
                           "alice:" + h + "\n" +      // 8: duplicate
                           "bob:not-a-hash\n" +       // 9
                           "carol:$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA\n" +  // 10
                           "dave:$argon2id$v=19$m=65536,t=2,p=1$garbage\n" +            // 11
                           "erin=a plain password\n" +                                  // 12
                           "frank:" + h + ":admin,bad role\n" +                         // 13
                           "gina:" + h + ":admin,,ops\n" +                              // 14
                           "hank:" + h + ":ad$min\n" +                                  // 15
                           "ivan:" + h + ":admin:ops\n" +                               // 16
                           "# fine\n" +                                                 // 17
                           "=password\n" +                                              // 18
                           "judy:\n";                                                   // 19
  const PasswordFile file = ParsePasswordFile(text, false);
  EXPECT_THAT(file.errors,
              ElementsAre(Problem(2, "expected `user:HASH[:roles]`"), Problem(3, "empty user name"),
                          Problem(4, "user name contains whitespace or a control character"),
                          Problem(5, "user name contains whitespace or a control character"),
                          Problem(6, "user name contains whitespace or a control character"),
                          Problem(7, "user name contains '='"),
                          Problem(8, "user \"alice\" is already defined on line 1"),
                          Problem(9, "password for user \"bob\" is not an argon2id hash"),
                          Problem(10, "password for user \"carol\" is not an argon2id hash"),
                          Problem(11, "argon2id hash for user \"dave\" is malformed"),
                          Problem(12,
                                  "plaintext password for user \"erin\"; set "
                                  "allow_plaintext_passwords: true"),
                          Problem(13,
                                  "role \"bad role\" for user \"frank\" is not valid (roles are "
                                  "[A-Za-z0-9_.-]+)"),
                          Problem(14, "empty role name for user \"gina\""),
                          Problem(15, "role \"ad$min\" for user \"hank\" is not valid"),
                          Problem(16, "role \"admin:ops\" for user \"ivan\" is not valid"),
                          Problem(18, "empty user name"),
                          Problem(18, "plaintext password for the user on this line"),
                          Problem(19, "password for user \"judy\" is not an argon2id hash")));
  EXPECT_THAT(file.errors[7].message, HasSubstr("must start with \"$argon2id$\""));
  // Only the valid first definition is kept; the caller refuses the file anyway.
  ASSERT_EQ(file.users.size(), 1U);
  EXPECT_EQ(file.users.at("alice").line, 1);
}

TEST(ParsePasswordFile, OneLineCanHaveSeveralErrors) {
  const PasswordFile file = ParsePasswordFile("bob:nothash:bad role,\n", false);
  EXPECT_THAT(file.errors,
              ElementsAre(Problem(1, "not an argon2id hash"), Problem(1, "role \"bad role\""),
                          Problem(1, "empty role name")));
}

TEST(ParsePasswordFile, InvalidUserNamesAreDescribedNotQuoted) {
  const PasswordFile file = ParsePasswordFile("my secret:nothash:bad role\n", false);
  ASSERT_THAT(file.errors, Not(IsEmpty()));
  for (const auto& message : Messages(file)) {
    EXPECT_THAT(message, Not(HasSubstr("secret"))) << message;
    EXPECT_THAT(message, Not(HasSubstr("nothash"))) << message;
  }
  EXPECT_THAT(file.errors[1].message, HasSubstr("the user on this line"));
}

TEST(ParsePasswordFile, PlaintextNeedsTheOption) {
  const std::string text = "alice=s3cret\n";
  const PasswordFile refused = ParsePasswordFile(text, false);
  EXPECT_THAT(refused.errors, ElementsAre(Problem(1, "allow_plaintext_passwords")));
  EXPECT_THAT(refused.errors[0].message, HasSubstr(kAllowPlaintextOption));
  EXPECT_THAT(refused.users, IsEmpty());
  // Without the option, the hint for a line with no separator does not offer `=`.
  EXPECT_THAT(ParsePasswordFile("x\n", false).errors,
              ElementsAre(AllOf(Problem(1, "expected"),
                                Field(&PasswordProblem::message, Not(HasSubstr("=password"))))));
  EXPECT_THAT(ParsePasswordFile("x\n", true).errors, ElementsAre(Problem(1, "or `user=password`")));
}

TEST(ParsePasswordFile, PlaintextAcceptedWithAWarningEach) {
  std::string text =
      "# CZMQ style\n"
      "alice=s3cret with spaces\n"
      "bob=pa:ss=word\n"
      "carol=trailing space \r\n";
  text += "dave:" + Hash() + ":admin\n";
  const PasswordFile file = ParsePasswordFile(text, true);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.warnings, ElementsAre(Problem(2, "plaintext password for user \"alice\""),
                                         Problem(3, "plaintext password for user \"bob\""),
                                         Problem(4, "plaintext password for user \"carol\"")));
  ASSERT_EQ(file.users.size(), 4U);
  EXPECT_TRUE(file.users.at("alice").plaintext);
  EXPECT_EQ(file.users.at("alice").hash, "s3cret with spaces");
  EXPECT_EQ(file.users.at("bob").hash, "pa:ss=word");         // first '=' splits; the rest is kept
  EXPECT_EQ(file.users.at("carol").hash, "trailing space ");  // byte for byte, less the '\r'
  EXPECT_THAT(file.users.at("alice").roles, IsEmpty());
  EXPECT_FALSE(file.users.at("dave").plaintext);
}

TEST(ParsePasswordFile, EmptyPlaintextPasswordIsAnError) {
  EXPECT_THAT(ParsePasswordFile("alice=\n", true).errors,
              ElementsAre(Problem(1, "empty password for user \"alice\"")));
}

TEST(ParsePasswordFile, NoMessageContainsAPasswordOrHash) {
  // Secrets put everywhere a careless message might echo them.
  std::string text =
      "mallory:S3cretA\n"
      "S3cretB\n";
  text += "x y S3cretC:" + Hash() + "\n";
  text +=
      "eve=S3cretD\n"
      "trent:$argon2id$S3cretE\n"
      "bad user=S3cretF\n"
      "oscar:S3cretG:admin\n"
      "S3cret H=x\n"
      "walter=\tS3cretI\n";
  text += "peggy:" + Hash() + "\n";
  for (const bool allow_plaintext : {false, true}) {
    const PasswordFile file = ParsePasswordFile(text, allow_plaintext);
    EXPECT_GE(file.errors.size(), 7U);
    for (const auto& message : Messages(file)) {
      EXPECT_THAT(message, Not(HasSubstr("S3cret"))) << message;
      EXPECT_THAT(message, Not(HasSubstr("$argon2id$v="))) << message;
      EXPECT_THAT(message, Not(HasSubstr(Hash().substr(40)))) << message;
    }
  }
}

TEST(VerifyPassword, HashedEntries) {
  const PasswordFile file = ParsePasswordFile("alice:" + Hash() + "\n", false);
  ASSERT_THAT(file.errors, IsEmpty());
  const PasswordEntry& alice = file.users.at("alice");
  EXPECT_TRUE(VerifyPassword(alice, kPassword));
  EXPECT_FALSE(VerifyPassword(alice, "correct horse battery stapler"));
  EXPECT_FALSE(VerifyPassword(alice, ""));
}

TEST(VerifyPassword, PlaintextEntries) {
  PasswordEntry entry;
  entry.user = "bob";
  entry.hash = "s3cret";
  entry.plaintext = true;
  EXPECT_TRUE(VerifyPassword(entry, "s3cret"));
  EXPECT_FALSE(VerifyPassword(entry, "s3creT"));
  EXPECT_FALSE(VerifyPassword(entry, "S3cret"));
  EXPECT_FALSE(VerifyPassword(entry, "s3cre"));
  EXPECT_FALSE(VerifyPassword(entry, "s3crett"));
  EXPECT_FALSE(VerifyPassword(entry, ""));
  EXPECT_FALSE(VerifyPassword(entry, std::string_view("s3cret\0", 7)));
  const std::string with_nul("a\0b", 3);
  entry.hash = with_nul;
  EXPECT_TRUE(VerifyPassword(entry, with_nul));
  EXPECT_FALSE(VerifyPassword(entry, "a"));
}

TEST(VerifyPassword, RefusesEntriesThatCannotMatch) {
  PasswordEntry empty;
  EXPECT_FALSE(VerifyPassword(empty, ""));
  empty.plaintext = true;
  EXPECT_FALSE(VerifyPassword(empty, ""));  // an empty stored password never matches

  PasswordEntry not_argon2id;  // a plain password mistaken for a hash
  not_argon2id.hash = "s3cret";
  EXPECT_FALSE(VerifyPassword(not_argon2id, "s3cret"));
  PasswordEntry garbled;
  garbled.hash = "$argon2id$v=19$m=65536,t=2,p=1$garbage";
  EXPECT_FALSE(VerifyPassword(garbled, "x"));
}

TEST(HashPassword, MakesASaltedArgon2idString) {
  const auto hash = HashPassword(kPassword);
  ASSERT_TRUE(hash.has_value());
  EXPECT_THAT(*hash, StartsWith("$argon2id$"));
  EXPECT_THAT(Hash(), StartsWith("$argon2id$"));
  EXPECT_NE(*hash, Hash());  // a fresh salt each time
  EXPECT_THAT(*hash, Not(HasSubstr(std::string(kPassword))));
  PasswordEntry entry;
  entry.hash = *hash;
  EXPECT_TRUE(VerifyPassword(entry, kPassword));
}

class PasswordFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "zguard_passwords_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ / "passwords";
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::perms Mode() const { return fs::status(path_).permissions() & fs::perms::mask; }

  // The directory holds nothing but the password file (no temporary left over).
  void ExpectOnlyThePasswordFile() const {
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(dir_)) {
      names.push_back(item.path().filename().string());
    }
    EXPECT_THAT(names, ElementsAre("passwords"));
  }

  fs::path dir_;
  fs::path path_;
};

TEST_F(PasswordFileOnDisk, LoadReadsAPrivateFile) {
  WriteFile(path_, "# users\nalice:" + Hash() + ":admin\n", fs::perms::owner_read);
  const PasswordFile file = LoadPasswordFile(path_.string(), false);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.warnings, IsEmpty());
  ASSERT_EQ(file.users.count("alice"), 1U);
  EXPECT_THAT(file.users.at("alice").roles, ElementsAre("admin"));
  EXPECT_EQ(file.users.at("alice").line, 2);
}

TEST_F(PasswordFileOnDisk, LoadWarnsAboutAFileOthersCanRead) {
  WriteFile(path_, "alice=pw\n",
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  const PasswordFile file = LoadPasswordFile(path_.string(), true);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.warnings,
              ElementsAre(Problem(0, "(mode 0644)"), Problem(1, "plaintext password")));
  EXPECT_THAT(file.warnings[0].message, HasSubstr(path_.string()));
}

TEST_F(PasswordFileOnDisk, LoadReportsParseErrorsWithLines) {
  WriteFile(path_, "# header\nbob:plain\n", fs::perms::owner_read);
  EXPECT_THAT(LoadPasswordFile(path_.string(), false).errors,
              ElementsAre(Problem(2, "not an argon2id hash")));
}

TEST_F(PasswordFileOnDisk, LoadFailuresAreOneErrorAtLineZero) {
  const PasswordFile missing = LoadPasswordFile((dir_ / "missing").string(), false);
  EXPECT_THAT(missing.errors,
              ElementsAre(Problem(0, "cannot open " + (dir_ / "missing").string())));
  EXPECT_THAT(missing.users, IsEmpty());

  const PasswordFile directory = LoadPasswordFile(dir_.string(), false);
  EXPECT_THAT(directory.errors, ElementsAre(Problem(0, "is not a regular file")));

  const fs::perms private_mode = fs::perms::owner_read | fs::perms::owner_write;
  WriteFile(path_, std::string(kMaxPasswordFileSize + 1, '#'), private_mode);
  const PasswordFile too_big = LoadPasswordFile(path_.string(), false);
  EXPECT_THAT(too_big.errors, ElementsAre(Problem(0, "limited to 4194304 bytes")));

  WriteFile(path_, std::string(kMaxPasswordFileSize, '#'), private_mode);
  EXPECT_THAT(LoadPasswordFile(path_.string(), false).errors, IsEmpty());  // exactly at the limit
}

TEST_F(PasswordFileOnDisk, SetPasswordCreatesAMissingFileWithMode0600) {
  EXPECT_EQ(SetPassword(path_.string(), "alice", "first", std::nullopt), std::nullopt);
  EXPECT_EQ(Mode(), fs::perms::owner_read | fs::perms::owner_write);
  const std::string text = ReadFile(path_);
  EXPECT_THAT(text, StartsWith("alice:$argon2id$"));
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find(':', 6), std::string::npos);  // no roles field
  const PasswordFile file = LoadPasswordFile(path_.string(), false);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.warnings, IsEmpty());
  ASSERT_EQ(file.users.count("alice"), 1U);
  EXPECT_TRUE(VerifyPassword(file.users.at("alice"), "first"));
  ExpectOnlyThePasswordFile();
}

TEST_F(PasswordFileOnDisk, SetPasswordReplacesOneLineAndKeepsTheRestByteForByte) {
  const std::string before =
      "# users of the orders endpoint\n"
      "\n"
      "bob:" +
      Hash() + ":ops\n" + "  # alice is the admin\r\n";
  const std::string after =
      "carol=plain\n"
      "  \t\n"
      "dave:" +
      Hash();  // no newline at the end
  WriteFile(path_, before + "alice:" + Hash() + ":admin,ops\r\n" + after,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);

  EXPECT_EQ(SetPassword(path_.string(), "alice", "second", std::nullopt), std::nullopt);
  EXPECT_EQ(Mode(), fs::perms::owner_read | fs::perms::owner_write);
  const std::string text = ReadFile(path_);
  ASSERT_THAT(text, StartsWith(before));
  ASSERT_GT(text.size(), before.size() + after.size());
  EXPECT_EQ(text.substr(text.size() - after.size()), after);
  const std::string line = text.substr(before.size(), text.size() - before.size() - after.size());
  EXPECT_THAT(line, StartsWith("alice:$argon2id$"));
  EXPECT_THAT(line, EndsWith(":admin,ops\r\n"));  // roles and line ending kept
  EXPECT_EQ(line.find(Hash()), std::string::npos);

  const PasswordFile file = LoadPasswordFile(path_.string(), true);
  EXPECT_THAT(file.errors, IsEmpty());
  ASSERT_EQ(file.users.size(), 4U);
  EXPECT_TRUE(VerifyPassword(file.users.at("alice"), "second"));
  ExpectOnlyThePasswordFile();
}

TEST_F(PasswordFileOnDisk, SetPasswordReplacesRolesOnlyWhenGiven) {
  WriteFile(path_, "alice:" + Hash() + ":admin,ops\n", fs::perms::owner_read);
  EXPECT_EQ(SetPassword(path_.string(), "alice", "pw", std::vector<std::string>{"viewer", "x.y"}),
            std::nullopt);
  PasswordFile file = ParsePasswordFile(ReadFile(path_), false);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.users.at("alice").roles, ElementsAre("viewer", "x.y"));

  EXPECT_EQ(SetPassword(path_.string(), "alice", "pw", std::vector<std::string>{}), std::nullopt);
  file = ParsePasswordFile(ReadFile(path_), false);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_THAT(file.users.at("alice").roles, IsEmpty());
  EXPECT_EQ(ReadFile(path_).find(':', 6), std::string::npos);
}

TEST_F(PasswordFileOnDisk, SetPasswordHashesAPlaintextLineAndDropsDuplicates) {
  WriteFile(path_, "carol=old\n# middle\ncarol:" + Hash() + ":admin\nzed=z\n",
            fs::perms::owner_read);
  EXPECT_EQ(SetPassword(path_.string(), "carol", "new", std::nullopt), std::nullopt);
  const std::string text = ReadFile(path_);
  EXPECT_THAT(text, StartsWith("carol:$argon2id$"));
  EXPECT_THAT(text, EndsWith("\n# middle\nzed=z\n"));
  const PasswordFile file = ParsePasswordFile(text, true);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_FALSE(file.users.at("carol").plaintext);
  EXPECT_THAT(file.users.at("carol").roles, IsEmpty());  // the plaintext line had none
}

TEST_F(PasswordFileOnDisk, SetPasswordAppendsANewUser) {
  const std::string existing = "# users\nbob:" + Hash();  // no newline at the end
  WriteFile(path_, existing, fs::perms::owner_read);
  EXPECT_EQ(SetPassword(path_.string(), "dave", "pw", std::vector<std::string>{"ops"}),
            std::nullopt);
  const std::string text = ReadFile(path_);
  ASSERT_THAT(text, StartsWith(existing + "\ndave:$argon2id$"));
  EXPECT_THAT(text, EndsWith(":ops\n"));
  const PasswordFile file = ParsePasswordFile(text, false);
  EXPECT_THAT(file.errors, IsEmpty());
  EXPECT_EQ(file.users.size(), 2U);
  EXPECT_EQ(file.users.at("bob").hash, Hash());
}

TEST_F(PasswordFileOnDisk, SetPasswordRefusesBadInputWithoutTouchingTheFile) {
  const std::string secret = "Sup3rSecret";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty user name"}, {"a:b", "user name contains ':'"}, {"a=b", "user name contains '='"},
      {"a b", "whitespace"},   {"a\nb", "control character"},
  };
  for (const auto& [user, reason] : cases) {
    const auto error = SetPassword(path_.string(), user, secret, std::nullopt);
    ASSERT_TRUE(error.has_value()) << user;
    EXPECT_THAT(*error, HasSubstr(reason));
    EXPECT_THAT(*error, Not(HasSubstr(secret)));
  }
  EXPECT_THAT(SetPassword(path_.string(), "alice", "", std::nullopt).value_or(""),
              HasSubstr("empty password"));
  const auto bad_role =
      SetPassword(path_.string(), "alice", secret, std::vector<std::string>{"ok", "not ok"});
  EXPECT_THAT(bad_role.value_or(""), HasSubstr("role \"not ok\" for user \"alice\" is not valid"));
  EXPECT_THAT(bad_role.value_or(""), Not(HasSubstr(secret)));
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(PasswordFileOnDisk, SetPasswordReportsFilesystemErrors) {
  const std::string secret = "Sup3rSecret";
  const fs::path nowhere = dir_ / "no-such-dir" / "passwords";
  const auto error = SetPassword(nowhere.string(), "alice", secret, std::nullopt);
  ASSERT_TRUE(error.has_value());
  EXPECT_THAT(*error, HasSubstr(nowhere.string()));
  EXPECT_THAT(*error, Not(HasSubstr(secret)));

  // An unreadable existing file is an error, not a reason to start afresh.
  const auto directory = SetPassword(dir_.string(), "alice", secret, std::nullopt);
  ASSERT_TRUE(directory.has_value());
  EXPECT_THAT(*directory, HasSubstr("is not a regular file"));
}

}  // namespace
}  // namespace zguard::auth
