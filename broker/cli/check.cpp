// `zguard check`: validate a config file and report every problem.
#include <filesystem>
#include <iostream>

#include "broker/auth/policy.hpp"
#include "broker/cli/commands.hpp"
#include "broker/config/config.hpp"
#include "broker/libzmq_check.hpp"

namespace zguard::cli {

std::string DefaultConfigPath() {
  std::error_code ec;
  if (std::filesystem::exists("config/zguard.yaml", ec)) return "config/zguard.yaml";
  return "/etc/zguard/zguard.yaml";
}

int RunCheck(const std::string& path) {
  const auto result = config::LoadConfigFile(path);
  for (const auto& warning : result.warnings) {
    std::cerr << warning.ToString() << " (warning)\n";
  }
  for (const auto& error : result.errors) std::cerr << error.ToString() << '\n';
  if (!result.config) {
    std::cerr << path << ": " << result.errors.size() << " error(s)\n";
    return 1;
  }
  const auto security = auth::LoadSecurity(*result.config);
  for (const auto& warning : security.warnings) {
    std::cerr << warning.ToString() << " (warning)\n";
  }
  for (const auto& error : security.errors) std::cerr << error.ToString() << '\n';
  if (!security.errors.empty()) {
    std::cerr << path << ": " << security.errors.size() << " error(s)\n";
    return 1;
  }
  {
    SeedRoutingIdGenerator();
    zmq::context_t context;
    const LibzmqFacts facts = CheckLibzmq(context);
    std::cout << "libzmq " << facts.version << ": reserved routing ids "
              << ToString(facts.reserved_ids) << '\n';
    if (facts.reserved_ids != LibzmqFacts::ReservedIds::kRefused) {
      std::cerr << ReservedIdWarning(facts) << " (warning)\n";
    }
  }
  std::cout << path << ": OK (" << result.config->endpoints.size() << " endpoints, "
            << result.config->services.size() << " declared services)\n";
  return 0;
}

}  // namespace zguard::cli
