// Who may call a service, and who may serve it: the `clients:` and
// `workers:` lists of a service in the config. An entry is `*` (anyone the
// endpoint admitted), `user:NAME` or a bare NAME (the User-Id), `role:NAME`
// (one of the peer's roles) or `key:Z85` (the peer's CURVE public key).
// Matching never allocates: it runs on the routing thread for every request.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zguard::auth {

// Who sent a message, as the authenticator vouched for it (ZAP User-Id and
// metadata). Views into the message's metadata: valid while the message is.
struct Identity {
  std::string_view user;   // "anonymous" on NULL endpoints
  std::string_view roles;  // comma list, may be empty
  std::string_view key;    // CURVE public key (Z85), empty otherwise
};

class AccessList {
 public:
  // Adds one entry; returns an explanation when it is not a valid entry.
  std::optional<std::string> Add(std::string_view entry);

  // A list that was configured restricts access, even when empty (then
  // nobody is allowed); a list that was never configured allows everyone.
  void set_configured() { configured_ = true; }
  bool configured() const { return configured_; }
  bool Allows(const Identity& identity) const;

 private:
  bool configured_ = false;
  bool any_ = false;
  std::vector<std::string> users_;
  std::vector<std::string> roles_;
  std::vector<std::string> keys_;
};

// True when `roles` (a comma list) contains `role`.
bool HasRole(std::string_view roles, std::string_view role);

}  // namespace zguard::auth
