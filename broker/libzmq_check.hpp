// What zguard needs to know about the libzmq it runs on, and the one setting it must make
// before libzmq creates a socket.
//
// libzmq 4.3 names a peer that sets no routing id itself: 0x00 followed by a 32-bit counter that
// each ROUTER socket starts at rand() and bumps per connection, with no check that the name is
// free. A peer may also choose its own id, including one that starts with 0x00. When a generated
// id equals one a connected peer already chose, libzmq aborts the process (zmq_assert in
// routing_socket_base_t::add_out_pipe). Seeding rand() makes the generated ids unpredictable;
// only a libzmq that refuses peer-chosen ids starting with 0x00 (deploy/libzmq/) removes the risk.
// See .github/SECURITY.md, "Routing ids".
#pragma once

#include <string>

#include <zmq.hpp>

namespace zguard {

// Seeds the C library's rand() from libsodium's generator. Call before any ROUTER socket exists
// in the process (Broker's constructor does); later calls do nothing. Thread-safe.
void SeedRoutingIdGenerator();

struct LibzmqFacts {
  std::string version;  // "4.3.4"
  enum class ReservedIds {
    kRefused,   // a peer-chosen id starting with 0x00 is replaced: the crash cannot happen
    kAccepted,  // stock libzmq 4.3: the crash has a small chance per connection (SECURITY.md)
    kUnknown,   // the check could not run
  } reserved_ids = ReservedIds::kUnknown;
};

// Asks the linked libzmq, over inproc in `context`: a DEALER that claims the routing id
// "\0zguard-check" connects to a ROUTER; does the ROUTER see that id? Takes well under a
// millisecond; at most one second when libzmq does not deliver at all (then kUnknown).
LibzmqFacts CheckLibzmq(zmq::context_t& context);

// "refused", "accepted" or "unknown".
const char* ToString(LibzmqFacts::ReservedIds value);

// The warning logged (once) and printed by `zguard check` when the ids are not refused.
std::string ReservedIdWarning(const LibzmqFacts& facts);

}  // namespace zguard
