// `zguard call`: one Majordomo request from the command line.
#include <iostream>

#include "broker/cli/commands.hpp"
#include "proto/client.hpp"

namespace zguard::cli {

int RunCall(const CallOptions& options) {
  std::string problem;
  const auto security = BuildSecurity(options.security, &problem);
  if (!security) {
    std::cerr << "call: " << problem << '\n';
    return 2;
  }
  zmq::context_t context(1);
  proto::ClientOptions client_options;
  client_options.security = *security;
  proto::Client client(context, options.connect, client_options);
  const auto result = client.Call(options.service, options.body, options.timeout);
  switch (result.outcome) {
    case proto::CallResult::Outcome::kOk:
      for (const auto& frame : result.body) std::cout << frame << '\n';
      return 0;
    case proto::CallResult::Outcome::kError:
      std::cerr << "error " << result.code << ": " << result.reason << '\n';
      return 1;
    case proto::CallResult::Outcome::kTimeout:
      std::cerr << "timeout: " << result.reason << " from " << options.connect << '\n';
      return 2;
    case proto::CallResult::Outcome::kMalformed:
      std::cerr << "malformed reply: " << result.reason << '\n';
      return 2;
  }
  return 2;
}

}  // namespace zguard::cli
