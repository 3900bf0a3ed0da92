// Fuzz target: the ZPL certificate parser (proto/zpl.hpp), which reads files that clients hand
// to operators.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/zpl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)zguard::proto::ParseCertificate(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
