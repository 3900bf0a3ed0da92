// Majordomo worker: see worker.hpp.
#include "worker.hpp"

#include <thread>

#include "mdp.hpp"

namespace zguard::proto {

Worker::Worker(zmq::context_t& context, std::string endpoint, std::string service,
               WorkerOptions options)
    : context_(context),
      endpoint_(std::move(endpoint)),
      service_(std::move(service)),
      options_(std::move(options)) {
  Connect();
}

Worker::~Worker() {
  try {
    Close();
  } catch (const zmq::error_t&) {
    // The context is terminating; nothing left to tell the broker.
  }
}

void Worker::Connect() {
  socket_ = zmq::socket_t(context_, zmq::socket_type::dealer);
  socket_.set(zmq::sockopt::linger, 0);
  // A DEALER with no live connection (e.g. refused by the broker's
  // authenticator) blocks on send; a bounded wait turns that into a retry.
  socket_.set(zmq::sockopt::sndtimeo,
              static_cast<int>(std::max<std::int64_t>(100, options_.heartbeat_interval.count())));
  ApplySecurity(socket_, options_.security);
  if (options_.setup) options_.setup(socket_);
  socket_.connect(endpoint_);
  socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
  socket_.send(Frame(kWorkerHeader), zmq::send_flags::sndmore);
  socket_.send(CommandFrame(WorkerCommand::kReady), zmq::send_flags::sndmore);
  socket_.send(Frame(service_), zmq::send_flags::none);
  ++connections_;
  liveness_left_ = options_.liveness;
  next_heartbeat_ = Clock::now() + options_.heartbeat_interval;
}

void Worker::SendHeartbeat() {
  socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
  socket_.send(Frame(kWorkerHeader), zmq::send_flags::sndmore);
  socket_.send(CommandFrame(WorkerCommand::kHeartbeat), zmq::send_flags::none);
}

void Worker::Close() {
  if (socket_.handle() == nullptr) return;
  socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
  socket_.send(Frame(kWorkerHeader), zmq::send_flags::sndmore);
  socket_.send(CommandFrame(WorkerCommand::kDisconnect), zmq::send_flags::none);
  socket_.set(zmq::sockopt::linger, 200);
  socket_.close();
}

std::optional<WorkerRequest> Worker::Receive(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (socket_.handle() != nullptr) {
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    const auto wait = std::min(deadline, next_heartbeat_) - now;
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1,
              std::max(std::chrono::milliseconds(0),
                       std::chrono::duration_cast<std::chrono::milliseconds>(wait)));
    if ((item.revents & ZMQ_POLLIN) != 0) {
      ReceiveMultipart(socket_, frames_, false);
      liveness_left_ = options_.liveness;
      // [empty] ["MDPW01"] [command] [args...]
      if (frames_.size() < 3 || !frames_[0].empty() || View(frames_[1]) != kWorkerHeader ||
          frames_[2].size() != 1) {
        continue;  // not Majordomo; ignore
      }
      const auto command =
          static_cast<WorkerCommand>(*static_cast<const std::uint8_t*>(frames_[2].data()));
      if (command == WorkerCommand::kRequest) {
        // [client] [empty] [body...]
        if (frames_.size() < 5 || !frames_[4].empty()) continue;
        WorkerRequest request;
        request.client = std::string(View(frames_[3]));
        for (std::size_t i = 5; i < frames_.size(); ++i) {
          request.body.push_back(std::move(frames_[i]));
        }
        return request;
      }
      if (command == WorkerCommand::kDisconnect) {
        std::this_thread::sleep_for(options_.reconnect_delay);
        Connect();
      }
      continue;  // heartbeat: liveness already refreshed
    }
    if (Clock::now() >= next_heartbeat_) {
      if (--liveness_left_ <= 0) {
        std::this_thread::sleep_for(options_.reconnect_delay);
        Connect();
        continue;
      }
      SendHeartbeat();
      next_heartbeat_ = Clock::now() + options_.heartbeat_interval;
    }
  }
  return std::nullopt;
}

void Worker::Reply(const std::string& client, std::vector<zmq::message_t>& body) {
  socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
  socket_.send(Frame(kWorkerHeader), zmq::send_flags::sndmore);
  socket_.send(CommandFrame(WorkerCommand::kReply), zmq::send_flags::sndmore);
  socket_.send(Frame(client), zmq::send_flags::sndmore);
  socket_.send(zmq::message_t(), body.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
  for (std::size_t i = 0; i < body.size(); ++i) {
    socket_.send(body[i], i + 1 < body.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  body.clear();
}

}  // namespace zguard::proto
