// The authentication policy: for every endpoint that calls ZAP, who may come
// in, built from the config and the files it names (password files,
// certificate stores, revocation lists, server keys). A Policy is immutable
// once built; the authenticator holds it through a shared_ptr that a reload
// swaps whole. Decide() is the pure ZAP decision (RFC 27) for one request.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "broker/auth/address_rules.hpp"
#include "broker/auth/password_file.hpp"
#include "broker/config/config.hpp"

namespace zguard::auth {

using SystemClock = std::chrono::system_clock;

// What an ironhouse store knows about one client public key.
struct CertificateInfo {
  std::string name;   // metadata `name`; the client's User-Id when set
  std::string roles;  // metadata `roles`, a comma list
  std::optional<SystemClock::time_point> expires_at;  // metadata `expires-at`
  std::string file;                                   // where it was read, for logs
};

struct EndpointPolicy {
  std::string name;  // the endpoint name, which is its ZAP domain
  config::Profile profile = config::Profile::kGrasslands;
  AddressPolicy addresses;
  PasswordFile passwords;                                            // woodhouse
  std::map<std::string, CertificateInfo, std::less<>> certificates;  // ironhouse; Z85 key
  std::set<std::string, std::less<>> revoked;                        // Z85 keys
};

struct Policy {
  std::map<std::string, EndpointPolicy, std::less<>> endpoints;  // by ZAP domain
};

// A CURVE server key pair (Z85).
struct ServerKey {
  std::string public_key;
  std::string secret_key;
};

struct SecurityLoad {
  std::shared_ptr<const Policy> policy;
  std::vector<ServerKey> server_keys;  // by endpoint index; empty keys for non-CURVE endpoints
  std::vector<config::Diagnostic> errors;
  std::vector<config::Diagnostic> warnings;
};

// Reads every file the config names for security. Problems in those files are
// reported with the file's own path and line; a missing or group/world-readable
// secret key is an error naming the fix.
// `with_server_keys` false skips the CURVE server keys (a reload: they are
// only used when the endpoints bind).
SecurityLoad LoadSecurity(const config::Config& config, bool with_server_keys = true);

// Pieces loaded on their own, for reloads and tests.
struct CertificateStore {
  std::map<std::string, CertificateInfo, std::less<>> certificates;
  std::vector<config::Diagnostic> warnings;  // skipped files, with file:line
  std::optional<config::Diagnostic> error;   // the folder itself cannot be read
};
CertificateStore LoadCertificateStore(const std::string& folder);

struct RevocationList {
  std::set<std::string, std::less<>> keys;
  std::vector<config::Diagnostic> errors;
};
RevocationList ParseRevocationList(std::string_view text, const std::string& file);
RevocationList LoadRevocationList(const std::string& file);

// "2027-01-31", "2027-01-31T12:00:00Z", "2027-01-31T12:00:00+02:00".
std::optional<SystemClock::time_point> ParseIsoTime(std::string_view text);

// One ZAP request, decoded (RFC 27 frames 2..).
struct ZapRequest {
  std::string_view domain;
  std::string_view address;
  std::string_view mechanism;  // "NULL", "PLAIN", "CURVE"
  std::vector<std::string_view> credentials;
};

struct Decision {
  int status = 400;         // 200 allow, 300 temporary, 400 deny, 500 internal error
  const char* reason = "";  // bounded label: ok, address_denied, unknown_user, ...
  std::string user_id;      // set when allowed (and for logs when known)
  std::string roles;        // comma list
  std::string key;          // CURVE client key (Z85), "" otherwise
  // Set when a password hash must be checked, which is too slow for the
  // authenticator thread: the caller verifies off-thread, then allows (status
  // 200 and a match) or denies. With status 400 (unknown user) the check runs
  // against a dummy entry and the answer stays "deny", so that timing does
  // not reveal which user names exist.
  const PasswordEntry* verify = nullptr;
};

// A PasswordEntry no password matches (its hash is made on first use).
const PasswordEntry& DummyPasswordEntry();

// The decision for `request`, except for the password hash check (see
// Decision::verify). `now` decides certificate expiry.
Decision Decide(const Policy& policy, const ZapRequest& request, SystemClock::time_point now);

}  // namespace zguard::auth
