// Routing-id seeding and the libzmq self-check; see libzmq_check.hpp.
#include "broker/libzmq_check.hpp"

#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string_view>

namespace zguard {
namespace {

constexpr std::string_view kClaimedId{"\0zguard-check", 13};

}  // namespace

void SeedRoutingIdGenerator() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    // libzmq calls rand() (never srand()) for the first routing id of each ROUTER socket.
    std::srand(randombytes_random());
  });
}

LibzmqFacts CheckLibzmq(zmq::context_t& context) {
  LibzmqFacts facts;
  int major = 0;
  int minor = 0;
  int patch = 0;
  zmq_version(&major, &minor, &patch);
  facts.version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  static std::atomic<unsigned> sequence{0};
  const std::string address = "inproc://zguard.libzmq-check." + std::to_string(++sequence);
  try {
    zmq::socket_t router(context, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::rcvtimeo, 1000);
    router.bind(address);
    zmq::socket_t dealer(context, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::routing_id, zmq::buffer(kClaimedId.data(), kClaimedId.size()));
    dealer.connect(address);
    dealer.send(zmq::str_buffer("check"), zmq::send_flags::none);
    zmq::message_t id;
    zmq::message_t body;
    if (router.recv(id) && id.more() && router.recv(body)) {
      const std::string_view seen(static_cast<const char*>(id.data()), id.size());
      facts.reserved_ids = seen == kClaimedId ? LibzmqFacts::ReservedIds::kAccepted
                                              : LibzmqFacts::ReservedIds::kRefused;
    }
  } catch (const zmq::error_t&) {
    facts.reserved_ids = LibzmqFacts::ReservedIds::kUnknown;
  }
  return facts;
}

const char* ToString(LibzmqFacts::ReservedIds value) {
  switch (value) {
    case LibzmqFacts::ReservedIds::kRefused:
      return "refused";
    case LibzmqFacts::ReservedIds::kAccepted:
      return "accepted";
    case LibzmqFacts::ReservedIds::kUnknown:
      break;
  }
  return "unknown";
}

std::string ReservedIdWarning(const LibzmqFacts& facts) {
  return "libzmq " + facts.version + " " +
         (facts.reserved_ids == LibzmqFacts::ReservedIds::kAccepted
              ? std::string("accepts peer-chosen routing ids that start with a zero byte")
              : std::string("could not be checked for reserved routing ids")) +
         ": a peer that holds many connections has a small chance per new connection of "
         "making libzmq abort the broker. Run the zguard image, or a libzmq built with "
         "deploy/libzmq/reserved-routing-ids.patch (see .github/SECURITY.md, \"Routing ids\")";
}

}  // namespace zguard
