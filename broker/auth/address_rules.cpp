// Address parsing, CIDR matching and allow/deny decisions; see address_rules.hpp.
// The parsers are hand-written over string_view rather than built on
// inet_pton() so that they need no NUL-terminated copy (Check() must not
// allocate) and so that the accepted syntax is exactly what the header says.
#include "broker/auth/address_rules.hpp"

#include <algorithm>
#include <charconv>
#include <cstddef>

namespace zguard::auth {
namespace {

constexpr std::size_t kNpos = std::string_view::npos;
constexpr int kMaxPrefixV4 = 32;
constexpr int kMaxPrefixV6 = 128;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsZoneChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
         c == '-';
}

// Parses exactly four decimal parts "a.b.c.d" into out[0..3]. Leading zeros
// are refused: some parsers read "010" as octal, and a rule must not mean
// different things to different readers.
bool ParseIpv4(std::string_view text, std::uint8_t* out) {
  std::size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= text.size() || text[i] != '.') return false;
      ++i;
    }
    const std::size_t start = i;
    unsigned value = 0;
    while (i < text.size() && IsDigit(text[i]) && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
      ++i;
    }
    const std::size_t digits = i - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return false;
    out[part] = static_cast<std::uint8_t>(value);
  }
  return i == text.size();
}

using Words = std::array<std::uint16_t, 8>;

// Parses colon-separated groups of 1-4 hex digits ("1:a:ff") into words and
// sets *count. When `allow_ipv4`, the last group may be a dotted quad, which
// fills two words. Empty text is zero groups.
bool ParseGroups(std::string_view text, bool allow_ipv4, Words& words, std::size_t* count) {
  *count = 0;
  if (text.empty()) return true;
  while (true) {
    const std::size_t colon = text.find(':');
    const std::string_view group = text.substr(0, colon);
    if (colon == kNpos && allow_ipv4 && group.find('.') != kNpos) {
      std::uint8_t quad[4];
      if (*count + 2 > words.size() || !ParseIpv4(group, quad)) return false;
      words[(*count)++] = static_cast<std::uint16_t>(quad[0] << 8 | quad[1]);
      words[(*count)++] = static_cast<std::uint16_t>(quad[2] << 8 | quad[3]);
      return true;
    }
    if (group.empty() || group.size() > 4 || *count == words.size()) return false;
    unsigned value = 0;
    for (const char c : group) {
      const int digit = HexValue(c);
      if (digit < 0) return false;
      value = value << 4 | static_cast<unsigned>(digit);
    }
    words[(*count)++] = static_cast<std::uint16_t>(value);
    if (colon == kNpos) return true;
    text.remove_prefix(colon + 1);  // a trailing ':' leaves an empty group: refused above
  }
}

// Parses an IPv6 address without zone or brackets into 16 bytes, keeping
// IPv4-mapped addresses in their IPv6 form.
bool ParseIpv6(std::string_view text, std::array<std::uint8_t, 16>& bytes) {
  Words head{};
  Words tail{};
  std::size_t head_count = 0;
  std::size_t tail_count = 0;
  const std::size_t gap = text.find("::");
  if (gap == kNpos) {
    if (!ParseGroups(text, true, head, &head_count) || head_count != 8) return false;
  } else {
    // A second "::" (including ":::") is ambiguous; "::" stands for at least one group.
    if (text.find("::", gap + 1) != kNpos) return false;
    if (!ParseGroups(text.substr(0, gap), false, head, &head_count) ||
        !ParseGroups(text.substr(gap + 2), true, tail, &tail_count) ||
        head_count + tail_count > 7) {
      return false;
    }
  }
  Words words{};
  std::copy_n(head.begin(), head_count, words.begin());
  std::copy_n(tail.begin(), tail_count, words.end() - static_cast<std::ptrdiff_t>(tail_count));
  for (std::size_t i = 0; i < words.size(); ++i) {
    bytes[2 * i] = static_cast<std::uint8_t>(words[i] >> 8);
    bytes[2 * i + 1] = static_cast<std::uint8_t>(words[i] & 0xff);
  }
  return true;
}

// True for ::ffff:0:0/96, the IPv4-mapped block.
bool IsMapped(const std::array<std::uint8_t, 16>& bytes) {
  return std::all_of(bytes.begin(), bytes.begin() + 10, [](std::uint8_t b) { return b == 0; }) &&
         bytes[10] == 0xff && bytes[11] == 0xff;
}

IpAddress V4(const std::uint8_t* quad) {
  IpAddress address;
  std::copy_n(quad, 4, address.bytes.begin());
  return address;
}

IpAddress V6(const std::array<std::uint8_t, 16>& bytes) {
  IpAddress address;
  address.v6 = true;
  address.bytes = bytes;
  return address;
}

// Clears every bit after the first `prefix_length`.
IpAddress Masked(IpAddress address, int prefix_length) {
  for (int i = 0; i < static_cast<int>(address.bytes.size()); ++i) {
    const int keep = std::clamp(prefix_length - 8 * i, 0, 8);
    address.bytes[static_cast<std::size_t>(i)] &= static_cast<std::uint8_t>(0xff00 >> keep);
  }
  return address;
}

void AppendDecimal(std::string& out, unsigned value) {
  char buffer[8];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void AppendDottedQuad(std::string& out, const std::uint8_t* quad) {
  for (int i = 0; i < 4; ++i) {
    if (i > 0) out += '.';
    AppendDecimal(out, quad[i]);
  }
}

std::string Quote(std::string_view text) {
  std::string out = "\"";
  out.append(text);
  out += '"';
  return out;
}

}  // namespace

bool operator==(const IpAddress& a, const IpAddress& b) {
  return a.v6 == b.v6 && a.bytes == b.bytes;
}

std::optional<IpAddress> ParseIpAddress(std::string_view text) {
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    if (text.size() < 2 || text.back() != ']') return std::nullopt;
    text = text.substr(1, text.size() - 2);
    bracketed = true;
  }
  if (text.find(':') == kNpos) {
    std::uint8_t quad[4];
    if (bracketed || !ParseIpv4(text, quad)) return std::nullopt;
    return V4(quad);
  }
  const std::size_t percent = text.find('%');
  if (percent != kNpos) {
    const std::string_view zone = text.substr(percent + 1);
    if (zone.empty() || !std::all_of(zone.begin(), zone.end(), IsZoneChar)) return std::nullopt;
    text = text.substr(0, percent);
  }
  std::array<std::uint8_t, 16> bytes{};
  if (!ParseIpv6(text, bytes)) return std::nullopt;
  if (IsMapped(bytes)) return V4(&bytes[12]);
  return V6(bytes);
}

std::string FormatIpAddress(const IpAddress& address) {
  std::string out;
  if (!address.v6) {
    AppendDottedQuad(out, address.bytes.data());
    return out;
  }
  if (IsMapped(address.bytes)) {  // not made by ParseIpAddress, but RFC 5952 says how
    out = "::ffff:";
    AppendDottedQuad(out, &address.bytes[12]);
    return out;
  }
  Words words{};
  for (std::size_t i = 0; i < words.size(); ++i) {
    words[i] = static_cast<std::uint16_t>(address.bytes[2 * i] << 8 | address.bytes[2 * i + 1]);
  }
  // The longest run of two or more zero groups becomes "::"; the first one on a tie.
  std::size_t best_start = words.size();
  std::size_t best_length = 1;
  for (std::size_t i = 0; i < words.size();) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < words.size() && words[end] == 0) ++end;
    if (end - i > best_length) {
      best_start = i;
      best_length = end - i;
    }
    i = end;
  }
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i == best_start) {
      out += "::";
      i += best_length - 1;
      continue;
    }
    if (i > 0 && i != best_start + best_length) out += ':';
    char buffer[4];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, words[i], 16);
    out.append(buffer, result.ptr);
  }
  return out;
}

std::optional<AddressRange> AddressRange::Parse(std::string_view text, std::string* error) {
  const auto fail = [error](std::string message) -> std::optional<AddressRange> {
    if (error != nullptr) *error = std::move(message);
    return std::nullopt;
  };
  if (text.empty()) return fail("empty address range");

  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  IpAddress written;  // as written: a mapped address stays IPv6 until the prefix is known
  if (address_text.find(':') == kNpos) {
    std::uint8_t quad[4];
    if (!ParseIpv4(address_text, quad)) {
      return fail(Quote(text) + " is not an IPv4 or IPv6 address or CIDR range");
    }
    written = V4(quad);
  } else {
    std::array<std::uint8_t, 16> bytes{};
    if (!ParseIpv6(address_text, bytes)) {
      return fail(Quote(text) + " is not an IPv4 or IPv6 address or CIDR range");
    }
    written = V6(bytes);
  }

  const int max_prefix = written.v6 ? kMaxPrefixV6 : kMaxPrefixV4;
  int prefix_length = max_prefix;
  if (slash != kNpos) {
    const std::string_view number = text.substr(slash + 1);
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (number.empty() || number.size() > 3 || !IsDigit(number.front()) || ec != std::errc() ||
        ptr != number.data() + number.size()) {
      return fail("prefix length in " + Quote(text) + " is not a number");
    }
    if (static_cast<int>(value) > max_prefix) {
      return fail("prefix length " + std::to_string(value) + " is out of range for " +
                  (written.v6 ? "IPv6 (0 to 128)" : "IPv4 (0 to 32)"));
    }
    prefix_length = static_cast<int>(value);
  }

  const IpAddress network = Masked(written, prefix_length);
  if (network != written) {
    // Suggest the fix in the form the user wrote (FormatIpAddress keeps ::ffff:a.b.c.d).
    return fail(std::string(text) + " has host bits set; did you mean " + FormatIpAddress(network) +
                "/" + std::to_string(prefix_length) + "?");
  }
  if (network.v6 && IsMapped(network.bytes) && prefix_length >= 96) {
    return AddressRange(V4(&network.bytes[12]), prefix_length - 96);
  }
  return AddressRange(network, prefix_length);
}

bool AddressRange::Contains(const IpAddress& address) const {
  if (address.v6 != network_.v6) return false;
  const auto full_bytes = static_cast<std::size_t>(prefix_length_ / 8);
  for (std::size_t i = 0; i < full_bytes; ++i) {
    if (address.bytes[i] != network_.bytes[i]) return false;
  }
  const int rest = prefix_length_ % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00 >> rest);
  return ((address.bytes[full_bytes] ^ network_.bytes[full_bytes]) & mask) == 0;
}

std::string AddressRange::ToString() const {
  std::string out = FormatIpAddress(network_);
  if (prefix_length_ != (network_.v6 ? kMaxPrefixV6 : kMaxPrefixV4)) {
    out += '/';
    out += std::to_string(prefix_length_);
  }
  return out;
}

std::optional<std::string> AddressPolicy::Allow(std::string_view range) {
  std::string error;
  auto parsed = AddressRange::Parse(range, &error);
  if (!parsed) return error;
  allow_.push_back(*parsed);
  return std::nullopt;
}

std::optional<std::string> AddressPolicy::Deny(std::string_view range) {
  std::string error;
  auto parsed = AddressRange::Parse(range, &error);
  if (!parsed) return error;
  deny_.push_back(*parsed);
  return std::nullopt;
}

AddressPolicy::Verdict AddressPolicy::Check(std::string_view peer_address) const {
  if (empty()) return Verdict::kAllowed;
  const std::optional<IpAddress> address = ParseIpAddress(peer_address);
  if (!address) return Verdict::kDenied;
  const auto contains = [&address](const AddressRange& range) { return range.Contains(*address); };
  if (std::any_of(deny_.begin(), deny_.end(), contains)) return Verdict::kDenied;
  if (!allow_.empty() && std::none_of(allow_.begin(), allow_.end(), contains)) {
    return Verdict::kDenied;
  }
  return Verdict::kAllowed;
}

}  // namespace zguard::auth
