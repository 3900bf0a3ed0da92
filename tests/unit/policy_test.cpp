// The ZAP decision for each profile and each reason, the certificate store,
// revocation lists and ISO dates, without sockets.
#include "broker/auth/policy.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <zmq.h>

#include <cstdlib>
#include <fstream>

#include "proto/zpl.hpp"

namespace zguard::auth {
namespace {

std::string Binary(const std::string& z85) {
  std::string out(32, '\0');
  zmq_z85_decode(reinterpret_cast<std::uint8_t*>(out.data()), z85.c_str());
  return out;
}

class DecideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EndpointPolicy straw;
    straw.name = "straw";
    straw.profile = config::Profile::kStrawhouse;
    ASSERT_FALSE(straw.addresses.Allow("127.0.0.0/8"));
    ASSERT_FALSE(straw.addresses.Deny("127.0.0.66"));
    policy_.endpoints.emplace("straw", std::move(straw));

    EndpointPolicy wood;
    wood.name = "wood";
    wood.profile = config::Profile::kWoodhouse;
    wood.passwords = ParsePasswordFile("admin:" + *HashPassword("pw") + ":ops,dev\n", false);
    ASSERT_TRUE(wood.passwords.errors.empty());
    policy_.endpoints.emplace("wood", std::move(wood));

    alice_ = proto::GenerateCertificate();
    old_ = proto::GenerateCertificate();
    gone_ = proto::GenerateCertificate();
    EndpointPolicy iron;
    iron.name = "iron";
    iron.profile = config::Profile::kIronhouse;
    iron.certificates[alice_.public_key] = {"alice", "ops", std::nullopt, "alice.key"};
    iron.certificates[old_.public_key] = {"old", "", ParseIsoTime("2020-01-01"), "old.key"};
    iron.certificates[gone_.public_key] = {"gone", "", std::nullopt, "gone.key"};
    iron.revoked.insert(gone_.public_key);
    policy_.endpoints.emplace("iron", std::move(iron));

    EndpointPolicy stone;
    stone.name = "stone";
    stone.profile = config::Profile::kStonehouse;
    stone.revoked.insert(gone_.public_key);
    policy_.endpoints.emplace("stone", std::move(stone));
  }

  Decision Run(std::string_view domain, std::string_view address, std::string_view mechanism,
               std::vector<std::string_view> credentials = {}) {
    return Decide(policy_, ZapRequest{domain, address, mechanism, std::move(credentials)},
                  SystemClock::now());
  }

  Policy policy_;
  proto::Certificate alice_, old_, gone_;
};

TEST_F(DecideTest, Strawhouse) {
  const auto ok = Run("straw", "127.0.0.1", "NULL");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.user_id, "anonymous");
  EXPECT_STREQ(Run("straw", "::ffff:127.0.0.1", "NULL").reason, "ok");
  EXPECT_STREQ(Run("straw", "127.0.0.66", "NULL").reason, "address_denied");
  EXPECT_STREQ(Run("straw", "10.0.0.1", "NULL").reason, "address_denied");
  EXPECT_STREQ(Run("straw", "127.0.0.1", "PLAIN", {"a", "b"}).reason, "wrong_mechanism");
}

TEST_F(DecideTest, WoodhouseDefersTheHashCheck) {
  const auto known = Run("wood", "127.0.0.1", "PLAIN", {"admin", "pw"});
  EXPECT_EQ(known.status, 200);
  ASSERT_NE(known.verify, nullptr);  // the caller checks the hash off-thread
  EXPECT_TRUE(VerifyPassword(*known.verify, "pw"));
  EXPECT_FALSE(VerifyPassword(*known.verify, "nope"));
  EXPECT_EQ(known.roles, "ops,dev");
  EXPECT_EQ(known.user_id, "admin");
  const auto unknown = Run("wood", "127.0.0.1", "PLAIN", {"eve", "pw"});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_STREQ(unknown.reason, "unknown_user");
  ASSERT_NE(unknown.verify, nullptr);  // hashed anyway, so timing reveals nothing
  EXPECT_EQ(unknown.verify, &DummyPasswordEntry());
  EXPECT_FALSE(VerifyPassword(*unknown.verify, "pw"));
  EXPECT_STREQ(Run("wood", "127.0.0.1", "PLAIN", {"admin"}).reason, "malformed");
  EXPECT_STREQ(Run("wood", "127.0.0.1", "NULL").reason, "wrong_mechanism");
}

TEST_F(DecideTest, Ironhouse) {
  const std::string alice = Binary(alice_.public_key);
  const auto ok = Run("iron", "127.0.0.1", "CURVE", {alice});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.user_id, "alice");
  EXPECT_EQ(ok.roles, "ops");
  EXPECT_EQ(ok.key, alice_.public_key);
  const std::string stranger = Binary(proto::GenerateCertificate().public_key);
  EXPECT_STREQ(Run("iron", "127.0.0.1", "CURVE", {stranger}).reason, "unknown_key");
  EXPECT_STREQ(Run("iron", "127.0.0.1", "CURVE", {Binary(old_.public_key)}).reason, "expired");
  EXPECT_STREQ(Run("iron", "127.0.0.1", "CURVE", {Binary(gone_.public_key)}).reason, "revoked");
  EXPECT_STREQ(Run("iron", "127.0.0.1", "CURVE", {"short"}).reason, "malformed");
}

TEST_F(DecideTest, StonehouseAdmitsAnyUnrevokedKey) {
  const auto stranger = proto::GenerateCertificate();
  const auto ok = Run("stone", "127.0.0.1", "CURVE", {Binary(stranger.public_key)});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.user_id, stranger.public_key);  // no certificate: the key is the identity
  EXPECT_STREQ(Run("stone", "127.0.0.1", "CURVE", {Binary(gone_.public_key)}).reason, "revoked");
}

TEST_F(DecideTest, UnknownDomainIsDenied) {
  EXPECT_STREQ(Run("nosuch", "127.0.0.1", "NULL").reason, "unknown_domain");
  EXPECT_STREQ(Run("", "127.0.0.1", "NULL").reason, "unknown_domain");
}

TEST(IsoTime, Formats) {
  const auto day = ParseIsoTime("2027-01-31");
  ASSERT_TRUE(day.has_value());
  EXPECT_EQ(ParseIsoTime("2027-01-31T00:00:00Z"), day);
  EXPECT_EQ(ParseIsoTime("2027-01-31T02:00:00+02:00"), day);
  EXPECT_EQ(ParseIsoTime("2027-01-30T22:00:00.500-02:00").value(), *day);
  for (const char* bad :
       {"", "2027", "2027-13-01", "2027-01-32", "31/01/2027", "2027-01-31T25:00:00Z",
        "2027-01-31Tnoon", "2027-01-31T00:00:00Zjunk", "2027-02-31", "2027-01-31T00:00:00+25:00"}) {
    EXPECT_FALSE(ParseIsoTime(bad).has_value()) << bad;
  }
}

// Found by tests/fuzz/fuzz_auth_files: years the nanosecond clock cannot hold overflowed.
TEST(IsoTime, YearsBeyondTheClockAreRefused) {
  EXPECT_TRUE(ParseIsoTime("2262-01-01").has_value());
  EXPECT_TRUE(ParseIsoTime("1678-01-01").has_value());
  for (const char* far :
       {"4054-01-31T12:00:00+02:00", "9999-12-31", "2263-01-01", "0001-01-01", "1677-01-01"}) {
    EXPECT_FALSE(ParseIsoTime(far).has_value()) << far;
  }
}

TEST(RevocationList, ParsesKeysAndReportsBadLines) {
  const auto key = proto::GenerateCertificate().public_key;
  const auto list = ParseRevocationList("# comment\n\n" + key + "  # alice\nnot-a-key\n", "rev");
  EXPECT_EQ(list.keys.count(key), 1U);
  ASSERT_EQ(list.errors.size(), 1U);
  EXPECT_EQ(list.errors[0].line, 4);
  EXPECT_EQ(list.errors[0].file, "rev");
}

TEST(CertificateStore, LoadsPublicCertificatesAndSkipsTheRest) {
  char pattern[] = "/tmp/zguard-store-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  auto alice = proto::GenerateCertificate();
  alice.metadata = {{"name", "alice"}, {"roles", "a,b"}, {"expires-at", "2099-01-01"}};
  ASSERT_FALSE(proto::WriteCertificatePair(dir, "alice", alice));  // also writes a _secret
  std::ofstream(dir + "/broken.key") << "curve\n    public-key = \"short\"\n";
  auto bad_date = proto::GenerateCertificate();
  bad_date.metadata = {{"expires-at", "next tuesday"}};
  std::ofstream(dir + "/baddate.key") << proto::FormatCertificate(bad_date, false);
  const auto store = LoadCertificateStore(dir);
  ASSERT_FALSE(store.error.has_value());
  ASSERT_EQ(store.certificates.size(), 1U);
  const auto& info = store.certificates.at(alice.public_key);
  EXPECT_EQ(info.name, "alice");
  EXPECT_EQ(info.roles, "a,b");
  EXPECT_TRUE(info.expires_at.has_value());
  EXPECT_EQ(store.warnings.size(), 3U);  // the _secret file, broken.key, baddate.key
  bool broken_has_line = false;
  for (const auto& warning : store.warnings) {
    if (warning.file == dir + "/broken.key") broken_has_line = warning.line == 2;
  }
  EXPECT_TRUE(broken_has_line);
  EXPECT_TRUE(LoadCertificateStore(dir + "/missing").error.has_value());
  std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace zguard::auth
