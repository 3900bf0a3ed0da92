// Service access lists; see access_rules.hpp.
#include "broker/auth/access_rules.hpp"

#include <algorithm>

#include "proto/zpl.hpp"

namespace zguard::auth {
namespace {

bool ValidName(std::string_view name) {
  return !name.empty() && name.size() <= 255 && std::all_of(name.begin(), name.end(), [](char c) {
    return c > 0x20 && c < 0x7f && c != ',';
  });
}

}  // namespace

bool HasRole(std::string_view roles, std::string_view role) {
  while (!roles.empty()) {
    const auto comma = roles.find(',');
    std::string_view item = roles.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == role) return true;
    if (comma == std::string_view::npos) break;
    roles.remove_prefix(comma + 1);
  }
  return false;
}

std::optional<std::string> AccessList::Add(std::string_view entry) {
  configured_ = true;
  if (entry == "*") {
    any_ = true;
    return std::nullopt;
  }
  if (entry.rfind("role:", 0) == 0) {
    const auto role = entry.substr(5);
    if (!ValidName(role)) return "role:NAME needs a role name without spaces or commas";
    roles_.emplace_back(role);
    return std::nullopt;
  }
  if (entry.rfind("key:", 0) == 0) {
    const auto key = entry.substr(4);
    if (!proto::IsZ85Key(key)) return "key: takes a 40-character Z85 public key";
    keys_.emplace_back(key);
    return std::nullopt;
  }
  if (entry.rfind("user:", 0) != 0 && entry.find(':') != std::string_view::npos) {
    return "unknown prefix (entries are *, user:NAME, NAME, role:NAME or key:Z85)";
  }
  const auto user = entry.rfind("user:", 0) == 0 ? entry.substr(5) : entry;
  if (!ValidName(user)) {
    return "expected *, user:NAME (or NAME), role:NAME or key:Z85";
  }
  users_.emplace_back(user);
  return std::nullopt;
}

bool AccessList::Allows(const Identity& identity) const {
  if (!configured_ || any_) return true;
  const auto is = [](std::string_view value) {
    return [value](const std::string& entry) { return value == entry; };
  };
  return std::any_of(users_.begin(), users_.end(), is(identity.user)) ||
         std::any_of(keys_.begin(), keys_.end(), is(identity.key)) ||
         std::any_of(roles_.begin(), roles_.end(),
                     [&](const std::string& role) { return HasRole(identity.roles, role); });
}

}  // namespace zguard::auth
