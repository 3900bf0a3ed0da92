// Fuzz target: the security files and texts an operator or a peer controls: password files,
// revocation lists, address ranges and literal addresses (as libzmq reports peers), and the
// ISO times of certificate expiry. The first byte picks the parser; the rest is its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/auth/address_rules.hpp"
#include "broker/auth/password_file.hpp"
#include "broker/auth/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      (void)zguard::auth::ParsePasswordFile(text, (data[0] & 0x80) != 0);
      break;
    case 1:
      (void)zguard::auth::ParseRevocationList(text, "fuzz.txt");
      break;
    case 2: {
      std::string error;
      const auto range = zguard::auth::AddressRange::Parse(text, &error);
      if (range) {
        (void)range->ToString();
        const auto address = zguard::auth::ParseIpAddress(text.substr(0, text.find('/')));
        if (address) (void)range->Contains(*address);
      }
      break;
    }
    case 3:
      (void)zguard::auth::ParseIpAddress(text);
      break;
    default:
      (void)zguard::auth::ParseIsoTime(text);
      break;
  }
  return 0;
}
