// Fuzz target: the YAML config loader (broker/config/config.hpp). Paths in the text are
// resolved against a folder that does not exist, so nothing outside is read.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "broker/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)zguard::config::LoadConfigString(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml",
      "/nonexistent/zguard-fuzz");
  return 0;
}
