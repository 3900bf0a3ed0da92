// `zguard keygen`: a new CURVE certificate pair in the ZPL format that CZMQ
// and pyzmq also read.
#include <iostream>

#include "broker/cli/commands.hpp"
#include "proto/zpl.hpp"

namespace zguard::cli {

int RunKeygen(const KeygenOptions& options) {
  proto::Certificate certificate = proto::GenerateCertificate();
  bool has_name = false;
  for (const auto& item : options.meta) {
    const auto equals = item.find('=');
    if (equals == std::string::npos || equals == 0) {
      std::cerr << "keygen: --meta takes KEY=VALUE, got \"" << item << "\"\n";
      return 1;
    }
    const std::string key = item.substr(0, equals);
    has_name |= key == "name";
    certificate.metadata.emplace_back(key, item.substr(equals + 1));
  }
  if (!has_name) certificate.metadata.insert(certificate.metadata.begin(), {"name", options.name});
  if (auto problem = proto::WriteCertificatePair(options.dir, options.name, certificate)) {
    std::cerr << "keygen: " << *problem << '\n';
    return 1;
  }
  std::cerr << "wrote " << options.dir << "/" << options.name << ".key and " << options.dir << "/"
            << options.name << ".key_secret (mode 0600)\n";
  std::cout << certificate.public_key << '\n';
  return 0;
}

}  // namespace zguard::cli
