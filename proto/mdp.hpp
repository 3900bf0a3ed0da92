// Majordomo (MDP/0.1, ZeroMQ RFC 7) frame layout and decoding, plus the zguard
// extensions described in PROTOCOL.md. Decoders never throw and never trust a
// peer: every index is bounds-checked and a failure comes back as a static
// reason string. This header owns no sockets; it works on frames already read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

namespace zguard::proto {

inline constexpr std::string_view kClientHeader = "MDPC01";
inline constexpr std::string_view kWorkerHeader = "MDPW01";

// First body frame of an error reply made by the broker (see PROTOCOL.md).
inline constexpr std::string_view kErrorMarker = "zguard.error";

// First of the three frames [marker][User-Id][roles] that start a REQUEST
// body for services configured with forward_identity (see PROTOCOL.md).
inline constexpr std::string_view kIdentityMarker = "zguard.identity";

// Prefix of the Majordomo Management Interface services (RFC 8).
inline constexpr std::string_view kMmiPrefix = "mmi.";

// The longest routing id ZMTP allows (RFC 23: 0 to 255 octets); libzmq 4.3 does not enforce it
// on what peers send, so the broker refuses messages from longer ones.
inline constexpr std::size_t kMaxRoutingId = 255;
// The longest service name the broker accepts from a peer (MDP sets no limit).
inline constexpr std::size_t kMaxServiceName = 255;
// Frames of a client or worker message before its body: routing id, delimiter, header,
// command, client address, delimiter (the worker REPLY form is the longest).
inline constexpr std::size_t kMaxHeaderFrames = 6;

enum class WorkerCommand : std::uint8_t {
  kReady = 0x01,
  kRequest = 0x02,
  kReply = 0x03,
  kHeartbeat = 0x04,
  kDisconnect = 0x05,
};

// Status codes carried in error replies. They mirror HTTP where one fits.
enum class Status : int {
  kOk = 200,
  kBadRequest = 400,
  kForbidden = 403,
  kUnknownService = 404,
  kTooLarge = 413,
  kBusy = 429,
  kNotImplemented = 501,
  kWorkerLost = 502,
  kNoWorker = 503,
  kTimeout = 504,
};

// Returns the frame's bytes as a view; valid while the frame lives.
inline std::string_view View(const zmq::message_t& frame) {
  return {static_cast<const char*>(frame.data()), frame.size()};
}

// A client message as the broker's ROUTER receives it:
//   [routing-id] [empty]? ["MDPC01"] [service] [body...]
// The empty delimiter is present for REQ clients and optional for DEALER clients;
// replies are shaped the same way as the request.
struct ClientMessage {
  const char* error = nullptr;  // nullptr when the message is well formed
  bool has_delimiter = false;
  std::size_t service = 0;  // index of the service frame
  std::size_t body = 0;     // index of the first body frame (may equal frames.size())
};
ClientMessage DecodeClientMessage(const std::vector<zmq::message_t>& frames);

// A worker message as the broker's ROUTER receives it:
//   [routing-id] [empty]? ["MDPW01"] [command] [arguments...]
// For kReady, `arg` indexes the service frame. For kReply, `arg` indexes the
// client-address frame and `body` the first body frame after the empty
// delimiter.
struct WorkerMessage {
  const char* error = nullptr;
  WorkerCommand command = WorkerCommand::kHeartbeat;
  std::size_t arg = 0;
  std::size_t body = 0;
};
WorkerMessage DecodeWorkerMessage(const std::vector<zmq::message_t>& frames);

// What a client sees for one request: the worker's body, or a broker error.
struct ParsedReply {
  const char* error = nullptr;  // malformed reply; nullptr otherwise
  bool is_error = false;        // broker error reply (kErrorMarker)
  int code = 200;
  std::string reason;
  std::size_t body = 0;  // index of the first body frame
};
// Parses a reply a DEALER client received: [empty] ["MDPC01"] [service] [body...].
ParsedReply ParseClientReply(const std::vector<zmq::message_t>& frames,
                             std::string_view expected_service);

// Frame helpers used by both sides.
inline zmq::message_t Frame(std::string_view bytes) {
  return zmq::message_t(bytes.data(), bytes.size());
}
inline zmq::message_t CommandFrame(WorkerCommand command) {
  const auto byte = static_cast<std::uint8_t>(command);
  return zmq::message_t(&byte, 1);
}

// Reads every frame of one multipart message. Returns false if none was
// waiting (only possible with `dontwait`). `frames` is cleared first and
// keeps its capacity so callers can reuse one vector for every message.
bool ReceiveMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, bool dontwait);

// The same, for messages from peers: keeps at most `keep` frames in `frames` and reads and
// discards the rest, so that a message of a million empty frames costs no more memory than
// `keep` frames. Returns the number of frames the message had (0: none was waiting, with
// `dontwait`); more than frames.size() means some were discarded.
std::size_t ReceiveBounded(zmq::socket_t& socket, std::vector<zmq::message_t>& frames,
                           std::size_t keep, bool dontwait);

// Sends every frame of `frames`, moving their contents into the socket.
void SendMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames);

}  // namespace zguard::proto
