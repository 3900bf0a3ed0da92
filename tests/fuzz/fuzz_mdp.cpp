// Fuzz target: the Majordomo decoders for what clients and workers send the broker, and for
// what a client receives (proto/mdp.hpp). Input: frames as in fuzz_input.hpp.
#include <cstddef>
#include <cstdint>

#include "proto/mdp.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto frames = zguard::fuzz::SplitFrames(data, size);
  (void)zguard::proto::DecodeClientMessage(frames);
  (void)zguard::proto::DecodeWorkerMessage(frames);
  (void)zguard::proto::ParseClientReply(frames, "echo");
  return 0;
}
