// Test harness for a real in-process broker; see broker_fixture.hpp.
#include "broker_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace zguard::testing {

std::string TestConfigYaml(const std::string& broker, const std::string& extra) {
  std::string yaml = "broker:\n";
  yaml += broker.empty() ? "  request_timeout: 2s\n" : broker;
  yaml += R"(log: { level: warn }
endpoints:
  - name: public
    bind: tcp://127.0.0.1:*
    role: clients
    profile: grasslands
  - name: workers
    bind: tcp://127.0.0.1:*
    role: workers
    profile: grasslands
)";
  return yaml + extra;
}

RunningBroker::RunningBroker(const std::string& yaml) {
  auto loaded = config::LoadConfigString(yaml, "test.yaml");
  if (!loaded.config) {
    ADD_FAILURE() << "bad test config: " << loaded.errors.at(0).ToString();
    throw std::runtime_error("bad test config");
  }
  broker_ = std::make_unique<Broker>(std::move(*loaded.config));
  const auto problems = broker_->Start();
  if (!problems.empty()) throw std::runtime_error(problems[0]);
  clients_ = broker_->Endpoint("public");
  workers_ = broker_->Endpoint("workers");
  thread_ = std::thread([this] { broker_->Run(); });
}

RunningBroker::~RunningBroker() { Stop(); }

void RunningBroker::Stop() {
  if (thread_.joinable()) {
    broker_->Stop();
    thread_.join();
  }
}

WorkerThread::WorkerThread(zmq::context_t& context, const std::string& endpoint,
                           const std::string& service, Handler handler,
                           proto::WorkerOptions options) {
  thread_ = std::thread([this, &context, endpoint, service, handler, options] {
    proto::Worker worker(context, endpoint, service, options);
    while (!stop_) {
      auto request = worker.Receive(std::chrono::milliseconds(50));
      if (!request) continue;
      if (handler) handler(request->body);
      ++answered_;  // before the reply: a client that has its reply sees the count
      worker.Reply(request->client, request->body);
    }
  });
}

WorkerThread::~WorkerThread() {
  stop_ = true;
  thread_.join();
}

std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n = 0;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return predicate();
}

}  // namespace zguard::testing
