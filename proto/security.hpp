// Client-side security settings for Majordomo clients and workers: PLAIN
// credentials (woodhouse) or a CURVE client key pair plus the broker's public
// key (stonehouse, ironhouse). Applied to a socket before it connects.
#pragma once

#include <optional>
#include <string>

#include <zmq.hpp>

namespace zguard::proto {

struct Security {
  // CURVE: the broker's public key (Z85). Setting it makes the socket a CURVE client.
  std::string server_key;
  // CURVE: our key pair (Z85). When empty with server_key set, a fresh
  // (ephemeral) pair is generated: enough for stonehouse, not for ironhouse.
  std::string public_key;
  std::string secret_key;
  // PLAIN: username and password (woodhouse).
  std::string username;
  std::string password;
};

// Applies `security` to `socket`; throws zmq::error_t on a rejected option.
void ApplySecurity(zmq::socket_t& socket, const Security& security);

// Reads a key given on the command line: a 40-character Z85 key as is, or a
// certificate file (public or secret) whose public key is taken. Returns the
// Z85 public key, or an error in `error`.
std::optional<std::string> ReadPublicKey(const std::string& key_or_file, std::string* error);

}  // namespace zguard::proto
