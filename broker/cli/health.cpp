// `zguard health`: asks a running broker's HTTP server for /healthz (or /readyz) and exits 0 on
// "200". Container health checks use it, so the image needs no curl.
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>

#include "broker/cli/commands.hpp"
#include "broker/config/config.hpp"

namespace zguard::cli {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on `fd` until `deadline`; false on timeout or error.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd item{fd, events, 0};
    const int ready = poll(&item, 1, static_cast<int>(left));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

// "HOST:PORT" from metrics.listen: a wildcard host means "this machine", asked on loopback.
std::string ProbeAddress(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return "127.0.0.1:" + listen;
  std::string host = listen.substr(0, colon);
  if (host.empty() || host == "0.0.0.0" || host == "*") host = "127.0.0.1";
  return host + listen.substr(colon);
}

// Returns the HTTP status line, or an empty string with `error` set.
std::string FetchStatusLine(const std::string& address, const std::string& path,
                            Clock::time_point deadline, std::string* error) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    *error = "expected HOST:PORT, got " + address;
    return {};
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *error = "cannot resolve " + address + ": " + gai_strerror(rc);
    return {};
  }
  Fd socket_fd(socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int connected =
      socket_fd.get() < 0 ? -1 : connect(socket_fd.get(), found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (socket_fd.get() < 0 || (connected != 0 && errno != EINPROGRESS)) {
    *error = "cannot connect to " + address + ": " + std::strerror(errno);
    return {};
  }
  if (connected != 0) {
    int so_error = 0;
    socklen_t length = sizeof(so_error);
    if (!WaitFor(socket_fd.get(), POLLOUT, deadline)) {
      *error = "timed out connecting to " + address;
      return {};
    }
    getsockopt(socket_fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &length);
    if (so_error != 0) {
      *error = "cannot connect to " + address + ": " + std::strerror(so_error);
      return {};
    }
  }
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    if (!WaitFor(socket_fd.get(), POLLOUT, deadline)) {
      *error = "timed out sending to " + address;
      return {};
    }
    const ssize_t n =
        send(socket_fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      *error = "cannot send to " + address + ": " + std::strerror(errno);
      return {};
    }
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string response;
  std::array<char, 512> buffer{};
  while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
    if (!WaitFor(socket_fd.get(), POLLIN, deadline)) {
      *error = "timed out waiting for " + address;
      return {};
    }
    const ssize_t n = recv(socket_fd.get(), buffer.data(), buffer.size(), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      *error = "cannot read from " + address + ": " + std::strerror(errno);
      return {};
    }
    response.append(buffer.data(), static_cast<std::size_t>(n));
  }
  const auto end = response.find("\r\n");
  if (end == std::string::npos) {
    *error = "no HTTP status line from " + address;
    return {};
  }
  return response.substr(0, end);
}

}  // namespace

int RunHealth(const HealthOptions& options) {
  std::string address = options.address;
  if (address.empty()) {
    const auto loaded = config::LoadConfigFile(options.config_path);
    if (!loaded.config) {
      for (const auto& problem : loaded.errors) std::cerr << problem.ToString() << '\n';
      return 2;
    }
    if (!loaded.config->metrics.enabled) {
      std::cerr << options.config_path
                << ": no metrics section, so the broker serves no /healthz to ask\n";
      return 2;
    }
    address = ProbeAddress(loaded.config->metrics.listen);
  }
  std::string error;
  const std::string status =
      FetchStatusLine(address, options.path, Clock::now() + options.timeout, &error);
  if (status.empty()) {
    std::cerr << "zguard health: " << error << '\n';
    return 1;
  }
  // "HTTP/1.1 200 OK": the code is the second word.
  const auto space = status.find(' ');
  const bool ok = space != std::string::npos && status.compare(space + 1, 3, "200") == 0;
  (ok ? std::cout : std::cerr) << "http://" << address << options.path << ": " << status << '\n';
  return ok ? 0 : 1;
}

}  // namespace zguard::cli
