// Connection events of the endpoint sockets: libzmq's socket monitor (connections accepted
// and closed, handshakes failed), read on a thread of its own and queued for the routing
// thread, which needs every "closed" event to end the state of that connection at once.
// Polling the monitor sockets in the routing loop itself costs every request (measured in
// bench/README.md), so the routing loop polls one eventfd instead, and asks for a Sync() only
// when a connection it has not seen before sends its first message.
//
// Ordering: libzmq reports a connection closed before it closes the descriptor, so before any
// later connection can get the same descriptor number; after Sync() every event libzmq had
// emitted when Sync() was called is in the queue.
//
// Construct after the sockets exist and before they bind; destroy before they close. Take(),
// Sync() and fd() are for one thread (the routing thread).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

namespace zguard {

struct ConnectionEvent {
  std::uint16_t endpoint = 0;  // index of the socket it came from
  std::uint16_t type = 0;      // ZMQ_EVENT_*
  std::uint32_t value = 0;     // descriptor (ACCEPTED, DISCONNECTED), errno or protocol code
};

class ConnectionEvents {
 public:
  // Monitors every socket in `sockets` (they must outlive this object) in `context`.
  ConnectionEvents(zmq::context_t& context, const std::vector<zmq::socket_t*>& sockets);
  ~ConnectionEvents();
  ConnectionEvents(const ConnectionEvents&) = delete;
  ConnectionEvents& operator=(const ConnectionEvents&) = delete;

  // Readable (an eventfd) while events wait; Take() empties it.
  int fd() const { return ready_fd_; }
  // True while events wait: one relaxed load, for hot paths.
  bool waiting() const { return waiting_.load(std::memory_order_relaxed); }

  // Appends every waiting event to `out`, oldest first.
  void Take(std::vector<ConnectionEvent>& out);

  // Returns once every event libzmq emitted before this call has been queued (then Take()
  // them), or false after `timeout` (the monitor thread is stuck: should not happen).
  bool Sync(std::chrono::milliseconds timeout);

 private:
  void Run();
  void Drain(std::size_t index);

  std::vector<zmq::socket_t> monitors_;
  std::vector<zmq::message_t> frames_;  // monitor thread
  int ready_fd_ = -1;                   // written by the monitor thread
  int wake_fd_ = -1;                    // written by Sync() and the destructor
  std::atomic<bool> stop_{false};
  std::atomic<bool> waiting_{false};
  std::mutex mutex_;
  std::condition_variable synced_;
  std::vector<ConnectionEvent> queue_;  // guarded by mutex_
  std::uint64_t sync_requested_ = 0;    // guarded by mutex_
  std::uint64_t sync_done_ = 0;         // guarded by mutex_
  std::thread thread_;
};

}  // namespace zguard
