// Client-side security options; see security.hpp.
#include "proto/security.hpp"

#include "proto/zpl.hpp"

namespace zguard::proto {

void ApplySecurity(zmq::socket_t& socket, const Security& security) {
  if (!security.server_key.empty()) {
    std::string public_key = security.public_key;
    std::string secret_key = security.secret_key;
    if (public_key.empty() || secret_key.empty()) {
      const Certificate ephemeral = GenerateCertificate();
      public_key = ephemeral.public_key;
      secret_key = ephemeral.secret_key;
    }
    socket.set(zmq::sockopt::curve_serverkey, security.server_key);
    socket.set(zmq::sockopt::curve_publickey, public_key);
    socket.set(zmq::sockopt::curve_secretkey, secret_key);
  } else if (!security.username.empty()) {
    socket.set(zmq::sockopt::plain_username, security.username);
    socket.set(zmq::sockopt::plain_password, security.password);
  }
}

std::optional<std::string> ReadPublicKey(const std::string& key_or_file, std::string* error) {
  if (IsZ85Key(key_or_file)) return key_or_file;
  const auto loaded = LoadCertificateFile(key_or_file);
  if (!loaded.certificate) {
    if (error != nullptr) {
      *error = key_or_file + (loaded.line > 0 ? ":" + std::to_string(loaded.line) : "") + ": " +
               loaded.error + " (expected a 40-character Z85 key or a certificate file)";
    }
    return std::nullopt;
  }
  return loaded.certificate->public_key;
}

}  // namespace zguard::proto
