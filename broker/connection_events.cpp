// The socket-monitor thread; see connection_events.hpp.
#include "broker/connection_events.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "proto/mdp.hpp"

namespace zguard {
namespace {

constexpr int kEvents = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                        ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

int MakeEventFd() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

void Signal(int fd) {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = write(fd, &one, sizeof one);
}

void Clear(int fd) {
  std::uint64_t count = 0;
  [[maybe_unused]] const auto got = read(fd, &count, sizeof count);
}

}  // namespace

ConnectionEvents::ConnectionEvents(zmq::context_t& context,
                                   const std::vector<zmq::socket_t*>& sockets) {
  ready_fd_ = MakeEventFd();
  wake_fd_ = MakeEventFd();
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    const std::string address = "inproc://zguard.monitor." +
                                std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "." +
                                std::to_string(i);
    if (zmq_socket_monitor(sockets[i]->handle(), address.c_str(), kEvents) != 0) {
      throw zmq::error_t();
    }
    zmq::socket_t monitor(context, zmq::socket_type::pair);
    monitor.set(zmq::sockopt::linger, 0);
    // No limit: libzmq's I/O thread blocks when the monitor pipe is full, so it must never be.
    monitor.set(zmq::sockopt::rcvhwm, 0);
    monitor.connect(address);
    monitors_.push_back(std::move(monitor));
  }
  thread_ = std::thread([this] { Run(); });
}

ConnectionEvents::~ConnectionEvents() {
  stop_ = true;
  Signal(wake_fd_);
  if (thread_.joinable()) thread_.join();
  close(ready_fd_);
  close(wake_fd_);
}

void ConnectionEvents::Take(std::vector<ConnectionEvent>& out) {
  Clear(ready_fd_);
  std::lock_guard<std::mutex> lock(mutex_);
  out.insert(out.end(), queue_.begin(), queue_.end());
  queue_.clear();
  waiting_.store(false, std::memory_order_relaxed);
}

bool ConnectionEvents::Sync(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::uint64_t ticket = ++sync_requested_;
  Signal(wake_fd_);
  return synced_.wait_for(lock, timeout, [&] { return sync_done_ >= ticket || stop_; });
}

void ConnectionEvents::Drain(std::size_t index) {
  std::vector<ConnectionEvent> events;
  while (proto::ReceiveMultipart(monitors_[index], frames_, true)) {
    if (frames_.empty() || frames_[0].size() < 6) continue;
    ConnectionEvent event;
    event.endpoint = static_cast<std::uint16_t>(index);
    std::memcpy(&event.type, frames_[0].data(), sizeof event.type);
    std::memcpy(&event.value, static_cast<const char*>(frames_[0].data()) + 2, sizeof event.value);
    events.push_back(event);
  }
  if (events.empty()) return;
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = queue_.empty();
    queue_.insert(queue_.end(), events.begin(), events.end());
    waiting_.store(true, std::memory_order_relaxed);
  }
  if (was_empty) Signal(ready_fd_);
}

void ConnectionEvents::Run() {
  std::vector<zmq::pollitem_t> items;
  for (auto& monitor : monitors_) items.push_back({monitor.handle(), 0, ZMQ_POLLIN, 0});
  items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
  try {
    while (!stop_) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      const bool woken = (items.back().revents & ZMQ_POLLIN) != 0;
      std::uint64_t ticket = 0;
      if (woken) {
        Clear(wake_fd_);
        std::lock_guard<std::mutex> lock(mutex_);
        ticket = sync_requested_;
      }
      for (std::size_t i = 0; i < monitors_.size(); ++i) {
        // After a wake-up every monitor is drained, readable or not: a Sync() waits for that.
        if (woken || (items[i].revents & ZMQ_POLLIN) != 0) Drain(i);
      }
      if (woken) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          sync_done_ = std::max(sync_done_, ticket);
        }
        synced_.notify_all();
      }
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != ETERM) spdlog::error("socket monitor stopped: {}", e.what());
  }
  for (auto& monitor : monitors_) monitor.close();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  synced_.notify_all();
}

}  // namespace zguard
