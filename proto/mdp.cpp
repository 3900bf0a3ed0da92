// Decoding of Majordomo frames. See mdp.hpp for the contracts and PROTOCOL.md
// for the wire format.
#include "mdp.hpp"

#include <charconv>

namespace zguard::proto {

ClientMessage DecodeClientMessage(const std::vector<zmq::message_t>& frames) {
  ClientMessage out;
  std::size_t i = 1;  // frame 0 is the routing id added by ROUTER
  if (frames.size() < 2) {
    out.error = "too few frames";
    return out;
  }
  if (frames[i].empty()) {
    out.has_delimiter = true;
    ++i;
  }
  if (i >= frames.size() || View(frames[i]) != kClientHeader) {
    out.error = "bad protocol header (expected MDPC01)";
    return out;
  }
  ++i;
  if (i >= frames.size()) {
    out.error = "missing service frame";
    return out;
  }
  out.service = i;
  out.body = i + 1;
  return out;
}

WorkerMessage DecodeWorkerMessage(const std::vector<zmq::message_t>& frames) {
  WorkerMessage out;
  std::size_t i = 1;
  if (frames.size() < 3) {
    out.error = "too few frames";
    return out;
  }
  if (frames[i].empty()) ++i;
  if (i >= frames.size() || View(frames[i]) != kWorkerHeader) {
    out.error = "bad protocol header (expected MDPW01)";
    return out;
  }
  ++i;
  if (i >= frames.size() || frames[i].size() != 1) {
    out.error = "missing or malformed command frame";
    return out;
  }
  const auto command = *static_cast<const std::uint8_t*>(frames[i].data());
  ++i;
  switch (command) {
    case static_cast<std::uint8_t>(WorkerCommand::kReady):
      if (i >= frames.size() || frames[i].empty()) {
        out.error = "READY without a service name";
        return out;
      }
      out.command = WorkerCommand::kReady;
      out.arg = i;
      return out;
    case static_cast<std::uint8_t>(WorkerCommand::kReply):
      // [client address] [empty] [body...]
      if (i + 1 >= frames.size() || !frames[i + 1].empty()) {
        out.error = "REPLY without client address and empty delimiter";
        return out;
      }
      out.command = WorkerCommand::kReply;
      out.arg = i;
      out.body = i + 2;
      return out;
    case static_cast<std::uint8_t>(WorkerCommand::kHeartbeat):
      out.command = WorkerCommand::kHeartbeat;
      return out;
    case static_cast<std::uint8_t>(WorkerCommand::kDisconnect):
      out.command = WorkerCommand::kDisconnect;
      return out;
    case static_cast<std::uint8_t>(WorkerCommand::kRequest):
      out.error = "REQUEST is a broker-to-worker command";
      return out;
    default:
      out.error = "unknown worker command";
      return out;
  }
}

ParsedReply ParseClientReply(const std::vector<zmq::message_t>& frames,
                             std::string_view expected_service) {
  ParsedReply out;
  std::size_t i = 0;
  if (i < frames.size() && frames[i].empty()) ++i;
  if (i >= frames.size() || View(frames[i]) != kClientHeader) {
    out.error = "bad protocol header in reply (expected MDPC01)";
    return out;
  }
  ++i;
  if (i >= frames.size()) {
    out.error = "reply without service frame";
    return out;
  }
  if (View(frames[i]) != expected_service) {
    out.error = "reply for a different service";
    return out;
  }
  ++i;
  out.body = i;
  if (i < frames.size() && View(frames[i]) == kErrorMarker) {
    out.is_error = true;
    if (i + 2 >= frames.size()) {
      out.error = "error reply without code and reason";
      return out;
    }
    const std::string_view code = View(frames[i + 1]);
    int value = 0;
    const auto [ptr, ec] = std::from_chars(code.data(), code.data() + code.size(), value);
    if (ec != std::errc() || ptr != code.data() + code.size()) {
      out.error = "error reply with a non-numeric code";
      return out;
    }
    out.code = value;
    out.reason = std::string(View(frames[i + 2]));
    out.body = i + 3;
  }
  return out;
}

bool ReceiveMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, bool dontwait) {
  frames.clear();
  const auto flags = dontwait ? zmq::recv_flags::dontwait : zmq::recv_flags::none;
  do {
    zmq::message_t frame;
    if (!socket.recv(frame, frames.empty() ? flags : zmq::recv_flags::none)) return false;
    frames.push_back(std::move(frame));
  } while (frames.back().more());
  return true;
}

std::size_t ReceiveBounded(zmq::socket_t& socket, std::vector<zmq::message_t>& frames,
                           std::size_t keep, bool dontwait) {
  frames.clear();
  zmq::message_t frame;
  if (!socket.recv(frame, dontwait ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
    return 0;
  }
  std::size_t count = 1;
  bool more = frame.more();
  if (keep > 0) frames.push_back(std::move(frame));
  while (more) {
    // The rest of a message is already here: libzmq delivers messages whole.
    zmq::message_t next;
    (void)socket.recv(next, zmq::recv_flags::none);
    more = next.more();
    ++count;
    if (frames.size() < keep) frames.push_back(std::move(next));
  }
  return count;
}

void SendMultipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    socket.send(frames[i],
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace zguard::proto
