// Client-side security flags (--server-key, --cert, --user, --password-file)
// turned into proto::Security, with a clear message for every misuse.
#include <fstream>

#include <sodium.h>

#include "broker/cli/commands.hpp"
#include "proto/zpl.hpp"

namespace zguard::cli {

std::optional<proto::Security> BuildSecurity(const SecurityFlags& flags, std::string* error) {
  proto::Security security;
  if (!flags.cert.empty() && flags.server_key.empty()) {
    *error = "--cert needs --server-key (the broker's public key)";
    return std::nullopt;
  }
  if (!flags.server_key.empty() && !flags.user.empty()) {
    *error = "--server-key (CURVE) and --user (PLAIN) cannot be combined";
    return std::nullopt;
  }
  if (!flags.server_key.empty()) {
    auto key = proto::ReadPublicKey(flags.server_key, error);
    if (!key) return std::nullopt;
    security.server_key = *key;
  }
  if (!flags.cert.empty()) {
    if (auto problem = proto::CheckSecretFilePermissions(flags.cert)) {
      *error = *problem;
      return std::nullopt;
    }
    const auto loaded = proto::LoadCertificateFile(flags.cert);
    if (!loaded.certificate) {
      *error = flags.cert + ":" + std::to_string(loaded.line) + ": " + loaded.error;
      return std::nullopt;
    }
    if (loaded.certificate->secret_key.empty()) {
      *error = flags.cert + ": no secret-key; --cert takes the *_secret file";
      return std::nullopt;
    }
    security.public_key = loaded.certificate->public_key;
    security.secret_key = loaded.certificate->secret_key;
  }
  if (!flags.user.empty() || !flags.password_file.empty()) {
    if (flags.user.empty() || flags.password_file.empty()) {
      *error = "--user and --password-file go together";
      return std::nullopt;
    }
    if (auto problem = proto::CheckSecretFilePermissions(flags.password_file)) {
      *error = *problem;
      return std::nullopt;
    }
    std::ifstream in(flags.password_file);
    if (!in || !std::getline(in, security.password)) {
      *error = "cannot read a password from " + flags.password_file;
      return std::nullopt;
    }
    if (!security.password.empty() && security.password.back() == '\r') {
      security.password.pop_back();
    }
    security.username = flags.user;
  }
  return security;
}

}  // namespace zguard::cli
