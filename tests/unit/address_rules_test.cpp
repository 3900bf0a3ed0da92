// Peer addresses, CIDR ranges and the allow/deny decision.
#include "broker/auth/address_rules.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <ostream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

// Counts heap allocations so that a test can hold AddressPolicy::Check to its
// "no allocation" contract. Not under AddressSanitizer, which must keep its own
// operator new to catch new/delete mismatches in the rest of the binary.
#if !defined(__SANITIZE_ADDRESS__)
namespace {
thread_local long allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++allocations;
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t /*size*/) noexcept { std::free(memory); }
#define ZGUARD_COUNTS_ALLOCATIONS 1
#endif

namespace zguard::auth {

// For readable failure messages; found by argument-dependent lookup.
void PrintTo(const IpAddress& address, std::ostream* out) {
  *out << FormatIpAddress(address) << (address.v6 ? " (IPv6)" : " (IPv4)");
}

namespace {

using ::testing::HasSubstr;
using Verdict = AddressPolicy::Verdict;

IpAddress V4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IpAddress address;
  address.bytes[0] = a;
  address.bytes[1] = b;
  address.bytes[2] = c;
  address.bytes[3] = d;
  return address;
}

IpAddress Address(std::string_view text) {
  const auto address = ParseIpAddress(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress{});
}

AddressRange Range(std::string_view text) {
  std::string error;
  const auto range = AddressRange::Parse(text, &error);
  EXPECT_TRUE(range.has_value()) << text << ": " << error;
  return range.value_or(*AddressRange::Parse("255.255.255.255", nullptr));
}

std::string RangeError(std::string_view text) {
  std::string error;
  EXPECT_FALSE(AddressRange::Parse(text, &error).has_value()) << text;
  EXPECT_FALSE(error.empty()) << text;
  return error;
}

TEST(ParseIpAddress, ReadsIpv4) {
  EXPECT_EQ(Address("127.0.0.1"), V4(127, 0, 0, 1));
  EXPECT_EQ(Address("0.0.0.0"), V4(0, 0, 0, 0));
  EXPECT_EQ(Address("255.255.255.255"), V4(255, 255, 255, 255));
  EXPECT_EQ(Address("10.20.30.40"), V4(10, 20, 30, 40));
  EXPECT_FALSE(Address("127.0.0.1").v6);
}

TEST(ParseIpAddress, ReadsIpv6InEveryShape) {
  IpAddress loopback;
  loopback.v6 = true;
  loopback.bytes[15] = 1;
  EXPECT_EQ(Address("::1"), loopback);
  EXPECT_EQ(Address("0:0:0:0:0:0:0:1"), loopback);
  EXPECT_EQ(Address("0000:0000:0000:0000:0000:0000:0000:0001"), loopback);
  EXPECT_EQ(Address("[::1]"), loopback);

  IpAddress any;
  any.v6 = true;
  EXPECT_EQ(Address("::"), any);

  const IpAddress doc = Address("2001:DB8::FF00:42:8329");
  EXPECT_TRUE(doc.v6);
  EXPECT_EQ(doc, Address("2001:0db8:0000:0000:0000:ff00:0042:8329"));
  EXPECT_EQ(FormatIpAddress(doc), "2001:db8::ff00:42:8329");

  EXPECT_EQ(FormatIpAddress(Address("1:2:3:4:5:6:7::")), "1:2:3:4:5:6:7:0");
  EXPECT_EQ(FormatIpAddress(Address("::2:3:4:5:6:7:8")), "0:2:3:4:5:6:7:8");
  EXPECT_EQ(FormatIpAddress(Address("1:2:3:4:5:6:1.2.3.4")), "1:2:3:4:5:6:102:304");
  // IPv4-compatible (deprecated) is not IPv4-mapped: it stays IPv6.
  EXPECT_TRUE(Address("::1.2.3.4").v6);
}

TEST(ParseIpAddress, MappedIpv6IsIpv4) {
  EXPECT_EQ(Address("::ffff:127.0.0.1"), V4(127, 0, 0, 1));
  EXPECT_EQ(Address("::FFFF:10.0.0.1"), V4(10, 0, 0, 1));
  EXPECT_EQ(Address("::ffff:a00:1"), V4(10, 0, 0, 1));  // the same address in hex
  EXPECT_EQ(Address("0:0:0:0:0:ffff:192.168.1.7"), V4(192, 168, 1, 7));
  EXPECT_EQ(Address("[::ffff:127.0.0.1]"), V4(127, 0, 0, 1));
  // Near misses stay IPv6.
  EXPECT_TRUE(Address("::fffe:127.0.0.1").v6);
  EXPECT_TRUE(Address("1::ffff:127.0.0.1").v6);
}

TEST(ParseIpAddress, IgnoresAZoneOnIpv6Only) {
  EXPECT_EQ(Address("fe80::1%eth0"), Address("fe80::1"));
  EXPECT_EQ(Address("fe80::1%2"), Address("fe80::1"));
  EXPECT_FALSE(ParseIpAddress("fe80::1%").has_value());
  EXPECT_FALSE(ParseIpAddress("fe80::1%eth 0").has_value());
  EXPECT_FALSE(ParseIpAddress("127.0.0.1%eth0").has_value());
}

TEST(ParseIpAddress, RefusesEverythingElse) {
  for (const char* text : {"",
                           " ",
                           "localhost",
                           "example.com",
                           "1.2.3",
                           "1.2.3.4.5",
                           "256.0.0.1",
                           "1.2.3.256",
                           "01.2.3.4",
                           "1.2.3.04",
                           "1.2.3.4 ",
                           " 1.2.3.4",
                           "1..2.3",
                           "1.2.3.",
                           ".1.2.3",
                           "-1.2.3.4",
                           "+1.2.3.4",
                           "1.2.3.4/32",
                           "0x7f.0.0.1",
                           "2130706433",
                           "tcp://1.2.3.4",
                           ":",
                           ":::",
                           "1:::2",
                           "1::2::3",
                           ":1::",
                           "::1:",
                           "1:2:3:4:5:6:7",
                           "1:2:3:4:5:6:7:8:9",
                           "1:2:3:4:5:6:7:8::",
                           "1::2:3:4:5:6:7:8",
                           "12345::",
                           "g::1",
                           "::1.2.3",
                           "1.2.3.4::",
                           "::1.2.3.4:5",
                           "::ffff:1.2.3.256",
                           "::ffff:01.2.3.4",
                           "[127.0.0.1]",
                           "[::1",
                           "::1]",
                           "[]",
                           "[[::1]]",
                           "::1 ",
                           "fe80::1%%eth0"}) {
    EXPECT_FALSE(ParseIpAddress(text).has_value()) << '"' << text << '"';
  }
  EXPECT_FALSE(ParseIpAddress(std::string_view("1.2.3.4\0", 8)).has_value());
  EXPECT_FALSE(ParseIpAddress(std::string(1000, '1')).has_value());
}

// The hand-written parser accepts exactly what glibc's inet_pton() accepts
// (brackets and zones aside, which inet_pton does not take) and agrees on bytes.
TEST(ParseIpAddress, AgreesWithInetPton) {
  for (const char* text : {"127.0.0.1",
                           "0.0.0.0",
                           "255.255.255.255",
                           "01.2.3.4",
                           "1.2.3",
                           "256.1.1.1",
                           "::",
                           "::1",
                           "1::",
                           "::1.2.3.4",
                           "::ffff:1.2.3.4",
                           "::ffff:01.2.3.4",
                           "1:2:3:4:5:6:7::",
                           "::1:2:3:4:5:6:7",
                           "1:2:3:4:5:6:7:8",
                           "1:2:3:4:5:6:7:8::",
                           "1::2:3:4:5:6:7:8",
                           "::0:1:2:3:4:5:6:7",
                           "1:2:3:4:5:6:1.2.3.4",
                           "1:2:3:4:5:6:7:1.2.3.4",
                           "1.2.3.4::",
                           ":::",
                           "00000::1",
                           "0000::1",
                           "fe80::abcd:EF01",
                           "::ffff:0:0",
                           "::ffff:ffff:ffff",
                           "1::2::3",
                           ":1::2",
                           "1:2::3:",
                           "a:b:c:d:e:f:0:1"}) {
    unsigned char v4[4];
    unsigned char v6[16];
    const bool is_v4 = inet_pton(AF_INET, text, v4) == 1;
    const bool is_v6 = inet_pton(AF_INET6, text, v6) == 1;
    const auto ours = ParseIpAddress(text);
    ASSERT_EQ(ours.has_value(), is_v4 || is_v6) << text;
    if (!ours) continue;
    const bool mapped = is_v6 && std::all_of(v6, v6 + 10, [](unsigned char b) { return b == 0; }) &&
                        v6[10] == 0xff && v6[11] == 0xff;
    IpAddress expected;
    expected.v6 = is_v6 && !mapped;
    if (is_v4) std::copy_n(v4, 4, expected.bytes.begin());
    if (mapped) std::copy_n(v6 + 12, 4, expected.bytes.begin());
    if (expected.v6) std::copy_n(v6, 16, expected.bytes.begin());
    EXPECT_EQ(*ours, expected) << text;
  }
}

TEST(FormatIpAddress, FollowsRfc5952) {
  EXPECT_EQ(FormatIpAddress(V4(192, 168, 0, 1)), "192.168.0.1");
  EXPECT_EQ(FormatIpAddress(Address("::")), "::");
  EXPECT_EQ(FormatIpAddress(Address("::1")), "::1");
  EXPECT_EQ(FormatIpAddress(Address("1::")), "1::");
  EXPECT_EQ(FormatIpAddress(Address("2001:db8:0:0:0:0:2:1")), "2001:db8::2:1");
  EXPECT_EQ(FormatIpAddress(Address("2001:db8:0:1:1:1:1:1")), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(FormatIpAddress(Address("2001:0:0:1:0:0:0:1")), "2001:0:0:1::1");
  EXPECT_EQ(FormatIpAddress(Address("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  EXPECT_EQ(FormatIpAddress(Address("FE80::ABCD")), "fe80::abcd");
  IpAddress mapped;  // only built by hand: ParseIpAddress turns it into IPv4
  mapped.v6 = true;
  mapped.bytes[10] = mapped.bytes[11] = 0xff;
  mapped.bytes[12] = 10;
  mapped.bytes[15] = 1;
  EXPECT_EQ(FormatIpAddress(mapped), "::ffff:10.0.0.1");
}

TEST(AddressRange, ParsesAndPrintsCanonically) {
  EXPECT_EQ(Range("10.0.0.0/8").ToString(), "10.0.0.0/8");
  EXPECT_EQ(Range("192.168.1.7").ToString(), "192.168.1.7");
  EXPECT_EQ(Range("192.168.1.7/32").ToString(), "192.168.1.7");
  EXPECT_EQ(Range("0.0.0.0/0").ToString(), "0.0.0.0/0");
  EXPECT_EQ(Range("::1").ToString(), "::1");
  EXPECT_EQ(Range("::1/128").ToString(), "::1");
  EXPECT_EQ(Range("FD00::/8").ToString(), "fd00::/8");
  EXPECT_EQ(Range("::/0").ToString(), "::/0");
  EXPECT_EQ(Range("2001:db8::/32").prefix_length(), 32);
  // A mapped range of /96 or longer is the IPv4 range it maps.
  EXPECT_EQ(Range("::ffff:10.0.0.0/104").ToString(), "10.0.0.0/8");
  EXPECT_EQ(Range("::ffff:0.0.0.0/96").ToString(), "0.0.0.0/0");
  EXPECT_EQ(Range("::ffff:127.0.0.1").ToString(), "127.0.0.1");
  EXPECT_FALSE(Range("::ffff:10.0.0.0/104").network().v6);
}

TEST(AddressRange, ContainsIpv4) {
  const AddressRange ten = Range("10.0.0.0/8");
  EXPECT_TRUE(ten.Contains(Address("10.0.0.0")));
  EXPECT_TRUE(ten.Contains(Address("10.255.255.255")));
  EXPECT_FALSE(ten.Contains(Address("11.0.0.0")));
  EXPECT_FALSE(ten.Contains(Address("9.255.255.255")));
  EXPECT_FALSE(ten.Contains(Address("::a00:1")));  // IPv4-compatible is IPv6

  const AddressRange private12 = Range("172.16.0.0/12");  // not on a byte boundary
  EXPECT_TRUE(private12.Contains(Address("172.16.0.0")));
  EXPECT_TRUE(private12.Contains(Address("172.31.255.255")));
  EXPECT_FALSE(private12.Contains(Address("172.32.0.0")));
  EXPECT_FALSE(private12.Contains(Address("172.15.255.255")));

  const AddressRange host = Range("192.168.1.7/32");
  EXPECT_TRUE(host.Contains(Address("192.168.1.7")));
  EXPECT_FALSE(host.Contains(Address("192.168.1.6")));
  EXPECT_FALSE(host.Contains(Address("192.168.1.8")));

  const AddressRange pair = Range("192.168.1.6/31");
  EXPECT_TRUE(pair.Contains(Address("192.168.1.6")));
  EXPECT_TRUE(pair.Contains(Address("192.168.1.7")));
  EXPECT_FALSE(pair.Contains(Address("192.168.1.8")));

  const AddressRange all = Range("0.0.0.0/0");
  EXPECT_TRUE(all.Contains(Address("0.0.0.0")));
  EXPECT_TRUE(all.Contains(Address("255.255.255.255")));
  EXPECT_FALSE(all.Contains(Address("::1")));
}

TEST(AddressRange, ContainsIpv6) {
  const AddressRange ula = Range("fd00::/8");
  EXPECT_TRUE(ula.Contains(Address("fd00::")));
  EXPECT_TRUE(ula.Contains(Address("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(ula.Contains(Address("fe00::")));
  EXPECT_FALSE(ula.Contains(Address("fc00::1")));

  const AddressRange doc = Range("2001:db8::/33");
  EXPECT_TRUE(doc.Contains(Address("2001:db8:7fff::1")));
  EXPECT_FALSE(doc.Contains(Address("2001:db8:8000::")));

  const AddressRange loopback = Range("::1/128");
  EXPECT_TRUE(loopback.Contains(Address("::1")));
  EXPECT_TRUE(loopback.Contains(Address("[::1]")));
  EXPECT_FALSE(loopback.Contains(Address("::2")));
  EXPECT_FALSE(loopback.Contains(Address("::")));
  EXPECT_FALSE(loopback.Contains(Address("127.0.0.1")));

  // The families stay apart: even ::/0 holds no IPv4 peer, mapped or not.
  const AddressRange all = Range("::/0");
  EXPECT_TRUE(all.Contains(Address("::")));
  EXPECT_TRUE(all.Contains(Address("2001:db8::1")));
  EXPECT_FALSE(all.Contains(Address("127.0.0.1")));
  EXPECT_FALSE(all.Contains(Address("::ffff:127.0.0.1")));
}

TEST(AddressRange, MappedAddressesMatchBothWays) {
  // An IPv4 range holds the mapped form of its addresses...
  const AddressRange loopback4 = Range("127.0.0.0/8");
  EXPECT_TRUE(loopback4.Contains(Address("::ffff:127.0.0.1")));
  EXPECT_TRUE(loopback4.Contains(Address("::ffff:7f00:1")));
  EXPECT_TRUE(loopback4.Contains(Address("127.0.0.1")));
  // ...and a range written in mapped form holds the plain IPv4 addresses.
  const AddressRange mapped = Range("::ffff:10.0.0.0/104");
  EXPECT_TRUE(mapped.Contains(Address("10.1.2.3")));
  EXPECT_TRUE(mapped.Contains(Address("::ffff:10.1.2.3")));
  EXPECT_FALSE(mapped.Contains(Address("11.0.0.0")));
  EXPECT_TRUE(Range("::ffff:1.2.3.4").Contains(Address("1.2.3.4")));
  EXPECT_TRUE(Range("1.2.3.4").Contains(Address("::ffff:1.2.3.4")));
}

TEST(AddressRange, RefusesPrefixesOutOfRange) {
  EXPECT_THAT(RangeError("10.0.0.0/33"), HasSubstr("prefix length 33 is out of range for IPv4"));
  EXPECT_THAT(RangeError("::/129"), HasSubstr("prefix length 129 is out of range for IPv6"));
  // A mapped range is written in IPv6, so its prefix counts IPv6 bits.
  EXPECT_THAT(RangeError("::ffff:10.0.0.0/129"),
              HasSubstr("prefix length 129 is out of range for IPv6"));
  EXPECT_THAT(RangeError("10.0.0.0/999"), HasSubstr("prefix length 999 is out of range"));
  EXPECT_TRUE(AddressRange::Parse("10.0.0.0/032", nullptr).has_value());
}

TEST(AddressRange, RefusesHostBitsAndSuggestsTheNetwork) {
  EXPECT_EQ(RangeError("10.0.0.1/8"), "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(RangeError("172.16.0.0/11"),
            "172.16.0.0/11 has host bits set; did you mean 172.0.0.0/11?");
  EXPECT_EQ(RangeError("192.168.1.7/31"),
            "192.168.1.7/31 has host bits set; did you mean 192.168.1.6/31?");
  EXPECT_EQ(RangeError("1.2.3.4/0"), "1.2.3.4/0 has host bits set; did you mean 0.0.0.0/0?");
  EXPECT_EQ(RangeError("fd00::1/8"), "fd00::1/8 has host bits set; did you mean fd00::/8?");
  EXPECT_EQ(RangeError("::ffff:10.0.0.1/104"),
            "::ffff:10.0.0.1/104 has host bits set; did you mean ::ffff:10.0.0.0/104?");
  EXPECT_EQ(RangeError("::ffff:10.0.0.0/64"),
            "::ffff:10.0.0.0/64 has host bits set; did you mean ::/64?");
}

TEST(AddressRange, RefusesGarbage) {
  for (const char* text : {"",
                           "/8",
                           "10.0.0.0/",
                           "10.0.0.0/-1",
                           "10.0.0.0/+8",
                           "10.0.0.0/8/8",
                           "10.0.0.0/ 8",
                           "10.0.0.0/8 ",
                           " 10.0.0.0/8",
                           "10.0.0.0/0x8",
                           "10.0.0.0/8.0",
                           "10.0.0.0/0008",
                           "localhost",
                           "localhost/8",
                           "10.0.0.0/8,11.0.0.0/8",
                           "10.0.0.0-10.0.0.255",
                           "10.0.0.*",
                           "*",
                           "any",
                           "[::1]",
                           "[::1]/128",
                           "fe80::1%eth0",
                           "fe80::/10%eth0",
                           "::ffff:300.0.0.0/104",
                           "01.0.0.0/8"}) {
    std::string error;
    EXPECT_FALSE(AddressRange::Parse(text, &error).has_value()) << '"' << text << '"';
    EXPECT_FALSE(error.empty()) << '"' << text << '"';
  }
  EXPECT_THAT(RangeError("localhost"), HasSubstr("\"localhost\" is not an IPv4 or IPv6 address"));
  EXPECT_THAT(RangeError("10.0.0.0/x"), HasSubstr("prefix length in \"10.0.0.0/x\""));
  EXPECT_FALSE(AddressRange::Parse("nonsense", nullptr).has_value());  // no error out: fine
}

TEST(AddressPolicy, EmptyAllowsEveryPeer) {
  const AddressPolicy policy;
  EXPECT_TRUE(policy.empty());
  for (const char* peer : {"127.0.0.1", "::1", "", "not an address"}) {
    EXPECT_EQ(policy.Check(peer), Verdict::kAllowed) << peer;
  }
}

TEST(AddressPolicy, AllowListAdmitsOnlyItsRanges) {
  AddressPolicy policy;
  EXPECT_EQ(policy.Allow("10.0.0.0/8"), std::nullopt);
  EXPECT_EQ(policy.Allow("::1"), std::nullopt);
  EXPECT_FALSE(policy.empty());
  EXPECT_EQ(policy.Check("10.1.2.3"), Verdict::kAllowed);
  EXPECT_EQ(policy.Check("::ffff:10.1.2.3"), Verdict::kAllowed);
  EXPECT_EQ(policy.Check("::1"), Verdict::kAllowed);
  EXPECT_EQ(policy.Check("[::1]"), Verdict::kAllowed);
  EXPECT_EQ(policy.Check("11.0.0.1"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("::2"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("127.0.0.1"), Verdict::kDenied);
}

TEST(AddressPolicy, DenyListRefusesOnlyItsRanges) {
  AddressPolicy policy;
  EXPECT_EQ(policy.Deny("192.168.0.0/16"), std::nullopt);
  EXPECT_EQ(policy.Check("192.168.3.4"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("::ffff:192.168.3.4"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("192.169.0.1"), Verdict::kAllowed);
  EXPECT_EQ(policy.Check("::1"), Verdict::kAllowed);
}

TEST(AddressPolicy, DenyWinsOverAllow) {
  AddressPolicy policy;
  EXPECT_EQ(policy.Allow("10.0.0.0/8"), std::nullopt);
  EXPECT_EQ(policy.Deny("10.1.0.0/16"), std::nullopt);
  EXPECT_EQ(policy.Deny("10.9.9.9"), std::nullopt);
  EXPECT_EQ(policy.Check("10.2.0.1"), Verdict::kAllowed);
  EXPECT_EQ(policy.Check("10.1.2.3"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("10.9.9.9"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("::ffff:10.9.9.9"), Verdict::kDenied);
  EXPECT_EQ(policy.Check("10.9.9.8"), Verdict::kAllowed);

  AddressPolicy same;  // the same range on both lists: denied
  EXPECT_EQ(same.Allow("127.0.0.1"), std::nullopt);
  EXPECT_EQ(same.Deny("127.0.0.1"), std::nullopt);
  EXPECT_EQ(same.Check("127.0.0.1"), Verdict::kDenied);
}

TEST(AddressPolicy, UnparsablePeerIsDeniedWhenThereAreRules) {
  AddressPolicy deny_only;
  EXPECT_EQ(deny_only.Deny("10.0.0.0/8"), std::nullopt);
  AddressPolicy allow_all;
  EXPECT_EQ(allow_all.Allow("0.0.0.0/0"), std::nullopt);
  EXPECT_EQ(allow_all.Allow("::/0"), std::nullopt);
  for (const char* peer : {"", "localhost", "1.2.3", "::ffff:1.2.3.256", "garbage\n"}) {
    EXPECT_EQ(deny_only.Check(peer), Verdict::kDenied) << peer;
    EXPECT_EQ(allow_all.Check(peer), Verdict::kDenied) << peer;
  }
  EXPECT_EQ(allow_all.Check("203.0.113.9"), Verdict::kAllowed);
  EXPECT_EQ(allow_all.Check("2001:db8::9"), Verdict::kAllowed);
}

TEST(AddressPolicy, InvalidRangesAreReportedAndNotAdded) {
  AddressPolicy policy;
  const auto allow_error = policy.Allow("10.0.0.1/8");
  ASSERT_TRUE(allow_error.has_value());
  EXPECT_THAT(*allow_error, HasSubstr("did you mean 10.0.0.0/8?"));
  const auto deny_error = policy.Deny("10.0.0.0/33");
  ASSERT_TRUE(deny_error.has_value());
  EXPECT_THAT(*deny_error, HasSubstr("out of range for IPv4"));
  EXPECT_TRUE(policy.empty());
  EXPECT_TRUE(policy.allowed().empty());
  EXPECT_TRUE(policy.denied().empty());
}

#ifdef ZGUARD_COUNTS_ALLOCATIONS
TEST(AddressPolicy, CheckDoesNotAllocate) {
  AddressPolicy policy;
  EXPECT_EQ(policy.Allow("10.0.0.0/8"), std::nullopt);
  EXPECT_EQ(policy.Allow("fd00::/8"), std::nullopt);
  EXPECT_EQ(policy.Deny("10.1.0.0/16"), std::nullopt);
  {
    const long start = allocations;             // the counter itself works
    void* volatile memory = ::operator new(8);  // volatile: the call cannot be optimised out
    ::operator delete(memory);
    ASSERT_EQ(allocations - start, 1);
  }
  const long before = allocations;
  int allowed = 0;
  for (const char* peer : {"10.2.3.4", "10.1.2.3", "::ffff:10.2.3.4", "[fd00::1]", "fe80::1%eth0",
                           "2001:db8::1", "garbage", ""}) {
    allowed += policy.Check(peer) == Verdict::kAllowed ? 1 : 0;
  }
  EXPECT_EQ(allocations - before, 0);
  EXPECT_EQ(allowed, 3);
}
#endif

}  // namespace
}  // namespace zguard::auth
