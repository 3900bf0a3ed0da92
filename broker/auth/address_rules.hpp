// Peer-address rules for endpoints: parsing the literal addresses libzmq puts
// in ZAP requests, parsing the CIDR ranges written in the config, and the
// allow/deny decision the broker applies. Addresses come from the network, so
// nothing here throws or asserts on them: a parse failure is an empty optional
// (and, for config ranges, a message saying why).
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what a dual-stack socket reports
// for an IPv4 peer) are IPv4 addresses here, both for peers and for ranges
// written in that form. Otherwise the families are kept apart: an IPv6 range,
// even ::/0, never contains an IPv4 peer, and an IPv4 range never contains an
// IPv6 peer.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zguard::auth {

// An IPv4 or IPv6 address. IPv4 addresses use bytes[0..3] (network order) and
// leave the rest zero; IPv4-mapped IPv6 (::ffff:a.b.c.d) is stored as IPv4 so
// that `::ffff:127.0.0.1` matches `127.0.0.1` and `127.0.0.0/8`.
struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
};

bool operator==(const IpAddress& a, const IpAddress& b);
inline bool operator!=(const IpAddress& a, const IpAddress& b) { return !(a == b); }

// Parses a literal address as libzmq puts it in ZAP requests: "127.0.0.1",
// "::1", "::ffff:10.0.0.1", possibly bracketed ("[::1]"). IPv4 is strict
// dotted-quad (four decimal parts, no leading zeros, so "010.0.0.1" is refused
// rather than read as octal). An IPv6 zone ("fe80::1%eth0", which
// getnameinfo() adds for link-local peers) is accepted and ignored. No host
// names; std::nullopt on anything else. Never allocates.
std::optional<IpAddress> ParseIpAddress(std::string_view text);

// The canonical text of an address: dotted quad for IPv4, RFC 5952 for IPv6
// (lower case, longest run of zero groups shortened to "::").
std::string FormatIpAddress(const IpAddress& address);

// An address or CIDR range: "10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8",
// "::ffff:10.0.0.0/104". A bare address is a single-host range (/32 or /128).
// A range written in IPv4-mapped form with a prefix of at least 96 is the IPv4
// range it maps (::ffff:10.0.0.0/104 is 10.0.0.0/8). Brackets and zones are
// not accepted here: these come from the config, not from libzmq.
class AddressRange {
 public:
  // Returns std::nullopt and sets *error (when error is not null) if `text` is
  // not a valid range, e.g. "prefix length 33 is out of range for IPv4" or
  // "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?".
  static std::optional<AddressRange> Parse(std::string_view text, std::string* error);

  // True if `address` is in the range. Never allocates.
  bool Contains(const IpAddress& address) const;

  // Canonical form, for logs: "10.0.0.0/8", "fd00::/8", and a bare address for
  // a single host ("192.168.1.7", "::1").
  std::string ToString() const;

  const IpAddress& network() const { return network_; }
  int prefix_length() const { return prefix_length_; }

 private:
  AddressRange(const IpAddress& network, int prefix_length)
      : network_(network), prefix_length_(prefix_length) {}

  IpAddress network_;  // host bits are zero
  int prefix_length_ = 0;
};

// The allow/deny evaluation as the broker applies it to one endpoint:
//   1. if a `deny` range contains the peer -> denied;
//   2. else if `allow` is non-empty and no `allow` range contains it -> denied;
//   3. else allowed.
// A peer address that does not parse is denied when either list is non-empty
// (and allowed when both are empty: no rules, nothing to check).
//
// Built once at start-up (Allow/Deny), then only read: Check() is const and may
// be called from any number of threads at once as long as nobody is adding.
class AddressPolicy {
 public:
  enum class Verdict { kAllowed, kDenied };

  // Each returns an error message for an invalid range (which is not added),
  // or std::nullopt.
  std::optional<std::string> Allow(std::string_view range);
  std::optional<std::string> Deny(std::string_view range);

  // Decides for a peer address as found in a ZAP request. No allocation.
  Verdict Check(std::string_view peer_address) const;

  // True when there are no rules at all (every peer is allowed).
  bool empty() const { return allow_.empty() && deny_.empty(); }

  const std::vector<AddressRange>& allowed() const { return allow_; }
  const std::vector<AddressRange>& denied() const { return deny_; }

 private:
  std::vector<AddressRange> allow_;
  std::vector<AddressRange> deny_;
};

}  // namespace zguard::auth
