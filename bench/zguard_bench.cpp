// zguard-bench: requests/s and latency through zguard, against libzmq's own
// zmq_proxy (ROUTER <-> DEALER) with the same clients, workers and payloads,
// measured in the same run. Everything runs in this process over TCP on
// 127.0.0.1, so both sides share the same cores; the ratio is what matters.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bench/echo_workers.hpp"
#include "broker/broker.hpp"
#include "proto/mdp.hpp"
#include "proto/worker.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Scenario {
  int clients = 1;
  int workers = 1;
  std::size_t size = 64;
};

struct Options {
  int window = 1;                 // requests in flight per client
  double seconds = 2.0;           // measuring time per scenario and side
  long max_requests = 2'000'000;  // hard cap per scenario and side
};

struct Result {
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  long completed = 0;
  double routing_cpu_us = 0;  // CPU time of zguard's routing thread per request
};

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// One client thread: keeps `window` requests in flight, records latencies.
// `mdp` selects the Majordomo envelope (zguard) or a bare one (zmq_proxy).
void RunClient(zmq::context_t& context, const std::string& endpoint, bool mdp, std::size_t size,
               int window, Clock::time_point stop_at, long budget,
               std::vector<std::int64_t>& latencies) {
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint);
  std::vector<char> payload(std::max<std::size_t>(size, 16), 'p');
  long sent = 0;
  long outstanding = 0;
  std::vector<zmq::message_t> frames;
  auto send_one = [&] {
    const std::int64_t now = NowNs();
    std::memcpy(payload.data(), &now, sizeof now);
    socket.send(zmq::message_t(), zmq::send_flags::sndmore);
    if (mdp) {
      socket.send(zguard::proto::Frame(zguard::proto::kClientHeader), zmq::send_flags::sndmore);
      socket.send(zguard::proto::Frame("echo"), zmq::send_flags::sndmore);
    }
    socket.send(zmq::message_t(payload.data(), payload.size()), zmq::send_flags::none);
    ++sent;
    ++outstanding;
  };
  while (true) {
    const bool sending = Clock::now() < stop_at && sent < budget;
    while (sending && outstanding < window) send_one();
    if (outstanding == 0) break;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, milliseconds(2000)) == 0) break;  // lost replies: stop waiting
    zguard::proto::ReceiveMultipart(socket, frames, false);
    std::int64_t started = 0;
    const auto& last = frames.back();
    if (last.size() >= sizeof started) std::memcpy(&started, last.data(), sizeof started);
    latencies.push_back(NowNs() - started);
    --outstanding;
  }
}

Result Measure(zmq::context_t& context, const std::string& endpoint, bool mdp,
               const Scenario& scenario, const Options& options) {
  std::vector<std::vector<std::int64_t>> latencies(scenario.clients);
  for (auto& l : latencies) l.reserve(200'000);
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options.seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < scenario.clients; ++c) {
    threads.emplace_back([&, c] {
      RunClient(context, endpoint, mdp, scenario.size, options.window, stop_at,
                options.max_requests / scenario.clients, latencies[c]);
    });
  }
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<std::int64_t> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  Result result;
  result.completed = static_cast<long>(all.size());
  result.rps = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    std::sort(all.begin(), all.end());
    result.p50_us = static_cast<double>(all[all.size() / 2]) / 1000.0;
    result.p99_us = static_cast<double>(all[all.size() * 99 / 100]) / 1000.0;
  }
  return result;
}

// Echo workers that return whatever envelope they get (zmq_proxy side).
class RawEchoWorkers {
 public:
  RawEchoWorkers(zmq::context_t& context, const std::string& endpoint, int count) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, &context, endpoint] {
        zmq::socket_t socket(context, zmq::socket_type::dealer);
        socket.set(zmq::sockopt::linger, 0);
        socket.connect(endpoint);
        std::vector<zmq::message_t> frames;
        while (!stop_) {
          zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
          if (zmq::poll(&item, 1, milliseconds(100)) == 0) continue;
          zguard::proto::ReceiveMultipart(socket, frames, false);
          zguard::proto::SendMultipart(socket, frames);
        }
      });
    }
  }
  ~RawEchoWorkers() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

Result RunProxy(const Scenario& scenario, const Options& options, int io_threads) {
  // The proxy gets its own context, as the broker does: it stands for a
  // separate process.
  zmq::context_t proxy_context(io_threads);
  zmq::socket_t frontend(proxy_context, zmq::socket_type::router);
  zmq::socket_t backend(proxy_context, zmq::socket_type::dealer);
  zmq::socket_t control(proxy_context, zmq::socket_type::pair);
  zmq::socket_t control_peer(proxy_context, zmq::socket_type::pair);
  for (auto* s : {&frontend, &backend, &control, &control_peer}) s->set(zmq::sockopt::linger, 0);
  frontend.bind("tcp://127.0.0.1:*");
  backend.bind("tcp://127.0.0.1:*");
  control.bind("inproc://bench-proxy-control");
  control_peer.connect("inproc://bench-proxy-control");
  const std::string front = frontend.get(zmq::sockopt::last_endpoint);
  const std::string back = backend.get(zmq::sockopt::last_endpoint);
  std::thread proxy([&] { zmq::proxy_steerable(frontend, backend, zmq::socket_ref(), control); });
  Result result;
  {
    zmq::context_t context(io_threads);
    RawEchoWorkers workers(context, back, scenario.workers);
    std::this_thread::sleep_for(milliseconds(200));  // let workers connect
    result = Measure(context, front, false, scenario, options);
  }
  control_peer.send(zmq::str_buffer("TERMINATE"), zmq::send_flags::none);
  proxy.join();
  return result;
}

Result RunZguard(const Scenario& scenario, const Options& options, int io_threads,
                 bool metrics = false) {
  const std::string yaml = "broker:\n  io_threads: " + std::to_string(io_threads) +
                           "\n  request_timeout: 30s\n"
                           "log: { level: warn }\n" +
                           std::string(metrics ? "metrics: { listen: \"127.0.0.1:0\" }\n" : "") +
                           "endpoints:\n"
                           "  - { name: public, bind: tcp://127.0.0.1:*, role: clients, "
                           "profile: grasslands }\n"
                           "  - { name: workers, bind: tcp://127.0.0.1:*, role: workers, "
                           "profile: grasslands }\n"
                           "services:\n  echo: {}\n";
  auto loaded = zguard::config::LoadConfigString(yaml, "bench.yaml");
  if (!loaded.config) throw std::runtime_error(loaded.errors.at(0).ToString());
  zguard::Broker broker(std::move(*loaded.config));
  if (const auto problems = broker.Start(); !problems.empty()) {
    throw std::runtime_error(problems[0]);
  }
  double routing_cpu_seconds = 0;
  std::thread routing([&] {
    broker.Run();
    // CPU time, not wall time: what the routing thread itself spent,
    // whatever else the machine was doing.
    timespec cpu{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    routing_cpu_seconds = static_cast<double>(cpu.tv_sec) + static_cast<double>(cpu.tv_nsec) / 1e9;
  });
  Result result;
  {
    zmq::context_t context(io_threads);
    zguard::bench::EchoWorkers workers(context, broker.Endpoint("workers"), "echo",
                                       scenario.workers);
    std::this_thread::sleep_for(milliseconds(200));
    result = Measure(context, broker.Endpoint("public"), true, scenario, options);
  }
  broker.Stop();
  routing.join();
  if (result.completed > 0) {
    result.routing_cpu_us = routing_cpu_seconds * 1e6 / static_cast<double>(result.completed);
  }
  return result;
}

std::string Fixed(double value, int decimals) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(decimals);
  out << value;
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"zguard-bench: zguard vs zmq_proxy, same run, same machine"};
  std::vector<int> clients{1, 8};
  std::vector<int> workers{1, 4};
  std::vector<std::size_t> sizes{64, 4096, 65536};
  std::vector<int> windows{1, 8};
  Options options;
  int io_threads = 1;
  int metrics_rounds = 3;
  app.add_option("--clients", clients, "Client counts (paired with --workers)")
      ->capture_default_str();
  app.add_option("--workers", workers, "Worker counts (paired with --clients)")
      ->capture_default_str();
  app.add_option("--sizes", sizes, "Payload sizes in bytes")->capture_default_str();
  app.add_option("--windows", windows, "Requests in flight per client; each value is a run")
      ->capture_default_str();
  app.add_option("--seconds", options.seconds, "Measuring time per scenario and side")
      ->capture_default_str();
  app.add_option("--max-requests", options.max_requests, "Cap per scenario and side")
      ->capture_default_str();
  app.add_option("--io-threads", io_threads, "libzmq I/O threads on each side")
      ->capture_default_str();
  app.add_option("--metrics-rounds", metrics_rounds,
                 "Alternating metrics off/on runs per window for the metrics-cost table "
                 "(0: skip it)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (clients.size() != workers.size()) {
    std::cerr << "--clients and --workers need the same number of values\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);

  std::cout << "| window | clients x workers | size (B) | zguard req/s | zmq_proxy req/s | ratio | "
               "zguard p50/p99 (us) | zmq_proxy p50/p99 (us) |\n"
               "|---|---|---|---|---|---|---|---|\n";
  bool all_ran = true;
  for (const int window : windows) {
    options.window = window;
    for (std::size_t t = 0; t < clients.size(); ++t) {
      for (const auto size : sizes) {
        const Scenario scenario{clients[t], workers[t], size};
        const Result baseline = RunProxy(scenario, options, io_threads);
        const Result ours = RunZguard(scenario, options, io_threads);
        all_ran = all_ran && baseline.completed > 0 && ours.completed > 0;
        const double ratio = baseline.rps > 0 ? ours.rps / baseline.rps : 0;
        std::cout << "| " << window << " | " << scenario.clients << " x " << scenario.workers
                  << " | " << size << " | " << Fixed(ours.rps, 0) << " | " << Fixed(baseline.rps, 0)
                  << " | " << Fixed(ratio, 2) << " | " << Fixed(ours.p50_us, 0) << " / "
                  << Fixed(ours.p99_us, 0) << " | " << Fixed(baseline.p50_us, 0) << " / "
                  << Fixed(baseline.p99_us, 0) << " |" << std::endl;
      }
    }
  }
  if (metrics_rounds > 0) {
    // Metrics cost: zguard with metrics off and on, alternating rounds so that
    // drift in the machine's speed hits both sides alike.
    std::cout << "\n| window | clients x workers | size (B) | metrics off req/s | metrics on req/s "
                 "| on/off | routing CPU us/req off | on | on/off |\n"
                 "|---|---|---|---|---|---|---|---|---|\n";
    for (const int window : windows) {
      options.window = window;
      const Scenario scenario{clients.back(), workers.back(), sizes.front()};
      double off = 0;
      double on = 0;
      double cpu_off = 0;
      double cpu_on = 0;
      for (int round = 0; round < metrics_rounds; ++round) {
        const Result without = RunZguard(scenario, options, io_threads, false);
        const Result with = RunZguard(scenario, options, io_threads, true);
        all_ran = all_ran && without.completed > 0 && with.completed > 0;
        off += without.rps;
        on += with.rps;
        cpu_off += without.routing_cpu_us;
        cpu_on += with.routing_cpu_us;
      }
      std::cout << "| " << window << " | " << scenario.clients << " x " << scenario.workers << " | "
                << scenario.size << " | " << Fixed(off / metrics_rounds, 0) << " | "
                << Fixed(on / metrics_rounds, 0) << " | " << Fixed(off > 0 ? on / off : 0, 3)
                << " | " << Fixed(cpu_off / metrics_rounds, 2) << " | "
                << Fixed(cpu_on / metrics_rounds, 2) << " | "
                << Fixed(cpu_off > 0 ? cpu_on / cpu_off : 0, 3) << " |" << std::endl;
    }
  }
  if (!all_ran) {
    std::cerr << "zguard-bench: a run completed no request\n";
    return 1;
  }
  return 0;
}
