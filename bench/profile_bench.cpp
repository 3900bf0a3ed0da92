// zguard-profile-bench: what each security profile costs, measured in one run
// on one broker. The broker has one client endpoint per profile (grasslands,
// strawhouse, woodhouse, stonehouse, ironhouse) and a grasslands workers
// endpoint with echo workers; everything runs in this process over TCP on
// 127.0.0.1, so all threads share the same cores and the ratios against
// grasslands (same run) are what matters.
//
// Three measurements:
//  1. handshakes: sequential fresh connections (connect, security handshake
//     with its ZAP round trip, first request, reply), one at a time;
//  2. requests on long-lived connections: N clients, one request in flight each;
//  3. stall: ironhouse handshakes while K threads keep failing woodhouse
//     logins (each failure costs the broker one argon2id hash).
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "bench/echo_workers.hpp"
#include "broker/auth/password_file.hpp"
#include "broker/broker.hpp"
#include "proto/client.hpp"
#include "proto/mdp.hpp"
#include "proto/security.hpp"
#include "proto/worker.hpp"
#include "proto/zpl.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Longest wait for one handshake + reply (or one refusal) before it counts as failed.
constexpr milliseconds kAttemptTimeout{5000};
// Longest wait for the first replies on the long-lived connections (woodhouse
// connections need one argon2id check each before their first reply).
constexpr milliseconds kWarmupTimeout{10000};
// Longest wait for one reply on a long-lived connection.
constexpr milliseconds kReplyTimeout{2000};
constexpr const char* kService = "echo";
constexpr const char* kUser = "bench";
constexpr const char* kPassword = "bench-password";
constexpr const char* kWrongPassword = "not-the-password";

struct Options {
  double seconds = 2.0;           // measuring time of each measurement
  long max_handshakes = 20'000;   // cap per profile (and per stall thread)
  long max_requests = 2'000'000;  // cap per profile, shared by the clients
  int clients = 4;                // long-lived clients per profile (window 1)
  int workers = 4;                // echo workers
  int stall_threads = 4;          // wrong-password woodhouse threads in the stall test
  std::size_t size = 64;          // request body size in bytes
  int io_threads = 1;             // libzmq I/O threads, broker side and client side
};

struct Profile {
  std::string name;      // the profile, and the name of its endpoint in the config
  std::string endpoint;  // the address it is bound to
  zguard::proto::Security security;
};

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double ElapsedSeconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::int64_t Nanoseconds(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// Sorts `samples` (ns) and returns the q-quantile in ns, 0 when empty.
double Quantile(std::vector<std::int64_t>& samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto index = std::min(samples.size() - 1,
                              static_cast<std::size_t>(static_cast<double>(samples.size()) * q));
  return static_cast<double>(samples[index]);
}

std::string Fixed(double value, int decimals) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(decimals);
  out << value;
  return out.str();
}

std::string Ratio(double value, double base) { return base > 0 ? Fixed(value / base, 2) : "-"; }

// A private folder for the keys, the certificate store and the password file.
using zguard::testing::TempDir;

zguard::proto::Certificate MakeCertificate(const std::string& dir, const std::string& name,
                                           const std::string& identity) {
  zguard::proto::Certificate cert = zguard::proto::GenerateCertificate();
  if (cert.public_key.empty()) throw std::runtime_error("libzmq was built without CURVE");
  if (!identity.empty()) cert.metadata = {{"name", identity}};
  if (const auto problem = zguard::proto::WriteCertificatePair(dir, name, cert)) {
    throw std::runtime_error("cannot write certificate " + name + ": " + *problem);
  }
  return cert;
}

// ---------------------------------------------------------------------------
// 1. Handshakes: one fresh client per sample, one sample at a time.

struct HandshakeResult {
  long ok = 0;
  long failed = 0;
  double elapsed = 0;  // s, whole loop (closing sockets included)
  double rate = 0;     // ok / elapsed
  double p50_ms = 0;
  double p99_ms = 0;
  std::string last_failure;
};

// Each sample: create a DEALER (proto::Client), connect, send one request,
// wait for the reply; timed from before the socket exists to the reply.
// The socket is closed (linger 0) after the sample, outside the timing.
HandshakeResult MeasureHandshakes(zmq::context_t& context, const std::string& endpoint,
                                  const zguard::proto::Security& security, const std::string& body,
                                  double seconds, long max) {
  HandshakeResult result;
  std::vector<std::int64_t> samples;
  samples.reserve(static_cast<std::size_t>(std::min<long>(max, 200'000)));
  const auto start = Clock::now();
  const auto stop_at = start + Seconds(seconds);
  zguard::proto::ClientOptions options;
  options.security = security;
  while (Clock::now() < stop_at && result.ok + result.failed < max) {
    zguard::proto::CallResult reply;
    const auto began = Clock::now();
    Clock::time_point ended;
    {
      zguard::proto::Client client(context, endpoint, options);
      reply = client.Call(kService, {body}, kAttemptTimeout);
      ended = Clock::now();
    }
    if (reply.outcome == zguard::proto::CallResult::Outcome::kOk && reply.body.size() == 1 &&
        reply.body[0] == body) {
      ++result.ok;
      samples.push_back(Nanoseconds(ended - began));
    } else {
      ++result.failed;
      result.last_failure = reply.outcome == zguard::proto::CallResult::Outcome::kOk
                                ? "reply body differs from the request"
                                : std::to_string(reply.code) + " " + reply.reason;
    }
  }
  result.elapsed = ElapsedSeconds(start);
  result.rate = result.elapsed > 0 ? static_cast<double>(result.ok) / result.elapsed : 0;
  result.p50_ms = Quantile(samples, 0.50) / 1e6;
  result.p99_ms = Quantile(samples, 0.99) / 1e6;
  return result;
}

// ---------------------------------------------------------------------------
// 2. Requests on long-lived connections: N clients, window 1.

struct RequestResult {
  long completed = 0;
  long failed = 0;  // error replies, malformed replies, lost replies
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::string problem;  // why the measurement could not run, if it could not
};

void SendRequest(zmq::socket_t& socket, const std::string& body) {
  socket.send(zmq::message_t(), zmq::send_flags::sndmore);
  socket.send(zguard::proto::Frame(zguard::proto::kClientHeader), zmq::send_flags::sndmore);
  socket.send(zguard::proto::Frame(kService), zmq::send_flags::sndmore);
  socket.send(zguard::proto::Frame(body), zmq::send_flags::none);
}

bool IsGoodReply(const std::vector<zmq::message_t>& frames, std::size_t body_size) {
  const auto parsed = zguard::proto::ParseClientReply(frames, kService);
  return parsed.error == nullptr && !parsed.is_error && parsed.body + 1 == frames.size() &&
         frames.back().size() == body_size;
}

struct ClientTally {
  long completed = 0;
  long failed = 0;
  std::vector<std::int64_t> samples;
  std::string error;
};

// One client thread on an already connected and warmed-up socket.
void RunRequests(zmq::socket_t& socket, const std::string& body, Clock::time_point stop_at,
                 long budget, ClientTally& tally) {
  try {
    std::vector<zmq::message_t> frames;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    long sent = 0;
    while (Clock::now() < stop_at && sent < budget) {
      const auto began = Clock::now();
      SendRequest(socket, body);
      ++sent;
      if (zmq::poll(&item, 1, kReplyTimeout) == 0) {
        ++tally.failed;  // lost reply: a late one would be taken for the next, so stop
        break;
      }
      zguard::proto::ReceiveMultipart(socket, frames, false);
      const auto ended = Clock::now();
      if (IsGoodReply(frames, body.size())) {
        ++tally.completed;
        tally.samples.push_back(Nanoseconds(ended - began));
      } else {
        ++tally.failed;
      }
    }
  } catch (const std::exception& e) {
    tally.error = e.what();
  }
}

RequestResult MeasureRequests(zmq::context_t& context, const std::string& endpoint,
                              const zguard::proto::Security& security, const std::string& body,
                              const Options& options) {
  RequestResult result;
  // Connect every client and get one reply on each before the clock starts, so
  // that the handshakes (and woodhouse's hashes) are not part of the figures.
  std::vector<zmq::socket_t> sockets;
  for (int c = 0; c < options.clients; ++c) {
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndtimeo, 1000);
    zguard::proto::ApplySecurity(socket, security);
    socket.connect(endpoint);
    SendRequest(socket, body);
    sockets.push_back(std::move(socket));
  }
  std::vector<bool> warm(sockets.size(), false);
  std::size_t warmed = 0;
  std::vector<zmq::message_t> frames;
  const auto warmup_deadline = Clock::now() + kWarmupTimeout;
  while (warmed < sockets.size() && Clock::now() < warmup_deadline) {
    std::vector<zmq::pollitem_t> items;
    items.reserve(sockets.size());
    for (auto& socket : sockets) items.push_back({socket.handle(), 0, ZMQ_POLLIN, 0});
    zmq::poll(items.data(), items.size(), milliseconds(100));
    for (std::size_t i = 0; i < sockets.size(); ++i) {
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      zguard::proto::ReceiveMultipart(sockets[i], frames, false);
      if (!IsGoodReply(frames, body.size())) {
        result.problem = "client " + std::to_string(i) + ": bad first reply";
        return result;
      }
      if (!warm[i]) ++warmed;
      warm[i] = true;
    }
  }
  if (warmed < sockets.size()) {
    result.problem = std::to_string(sockets.size() - warmed) + " of " +
                     std::to_string(sockets.size()) + " clients got no first reply within " +
                     std::to_string(kWarmupTimeout.count()) + "ms";
    return result;
  }

  std::vector<ClientTally> tallies(sockets.size());
  for (auto& tally : tallies) tally.samples.reserve(100'000);
  const long budget = std::max<long>(1, options.max_requests / options.clients);
  const auto start = Clock::now();
  const auto stop_at = start + Seconds(options.seconds);
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < sockets.size(); ++c) {
    threads.emplace_back([&, c] { RunRequests(sockets[c], body, stop_at, budget, tallies[c]); });
  }
  for (auto& thread : threads) thread.join();
  const double elapsed = ElapsedSeconds(start);
  std::vector<std::int64_t> all;
  for (auto& tally : tallies) {
    result.completed += tally.completed;
    result.failed += tally.failed;
    all.insert(all.end(), tally.samples.begin(), tally.samples.end());
    if (!tally.error.empty()) result.problem = tally.error;
  }
  result.rps = elapsed > 0 ? static_cast<double>(result.completed) / elapsed : 0;
  result.p50_us = Quantile(all, 0.50) / 1e3;
  result.p99_us = Quantile(all, 0.99) / 1e3;
  return result;
}

// ---------------------------------------------------------------------------
// 3. Stall: wrong-password woodhouse logins in the background.

struct WrongLoginTally {
  long refused = 0;    // ERROR from the broker (ZAP 4xx/5xx): the expected outcome
  long dropped = 0;    // disconnected without ERROR (e.g. ZAP 300) or a protocol failure
  long admitted = 0;   // the handshake succeeded: must never happen
  long timed_out = 0;  // no outcome within kAttemptTimeout
  std::vector<std::int64_t> samples;  // ns, connect to refusal
  std::string error;
};

// One background thread: fresh PLAIN socket with a wrong password, connect,
// wait for the handshake's outcome on a socket monitor, close, repeat. Runs
// until `stop` (finishing the attempt in progress) or `max` attempts.
void RunWrongLogins(zmq::context_t& context, const std::string& endpoint,
                    const std::atomic<bool>& stop, long max, std::atomic<long>& monitor_ids,
                    WrongLoginTally& tally) {
  try {
    zguard::proto::Security wrong;
    wrong.username = kUser;
    wrong.password = kWrongPassword;
    std::vector<zmq::message_t> frames;
    for (long attempt = 0; attempt < max && !stop.load(); ++attempt) {
      zmq::socket_t socket(context, zmq::socket_type::dealer);
      socket.set(zmq::sockopt::linger, 0);
      zguard::proto::ApplySecurity(socket, wrong);
      const std::string monitor_endpoint =
          "inproc://zguard-profile-bench-monitor-" + std::to_string(monitor_ids.fetch_add(1));
      constexpr int kEvents = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                              ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                              ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                              ZMQ_EVENT_DISCONNECTED;
      if (zmq_socket_monitor(socket.handle(), monitor_endpoint.c_str(), kEvents) != 0) {
        throw zmq::error_t();
      }
      zmq::socket_t monitor(context, zmq::socket_type::pair);
      monitor.set(zmq::sockopt::linger, 0);
      monitor.connect(monitor_endpoint);  // before the connect: no event is lost
      const auto began = Clock::now();
      socket.connect(endpoint);
      const auto deadline = began + kAttemptTimeout;
      bool done = false;
      zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
      while (!done && Clock::now() < deadline) {
        if (zmq::poll(&item, 1, milliseconds(50)) == 0) continue;
        zguard::proto::ReceiveMultipart(monitor, frames, false);
        std::uint16_t event = 0;
        if (!frames.empty() && frames[0].size() >= sizeof event) {
          std::memcpy(&event, frames[0].data(), sizeof event);
        }
        done = true;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
          ++tally.refused;
          tally.samples.push_back(Nanoseconds(Clock::now() - began));
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
          ++tally.admitted;
        } else {
          ++tally.dropped;
        }
      }
      if (!done) ++tally.timed_out;
      zmq_socket_monitor(socket.handle(), nullptr, 0);  // stops the monitor
    }
  } catch (const std::exception& e) {
    tally.error = e.what();
  }
}

struct StallResult {
  HandshakeResult loaded;  // ironhouse handshakes during the wrong logins
  WrongLoginTally wrong;   // all background threads together
  double wrong_elapsed = 0;
  double wrong_rate = 0;  // refusals/s over the whole background period
  double wrong_p50_ms = 0;
};

StallResult MeasureStall(zmq::context_t& context, const std::string& woodhouse,
                         const Profile& ironhouse, const std::string& body,
                         const Options& options) {
  StallResult result;
  std::atomic<bool> stop{false};
  std::atomic<long> monitor_ids{0};
  std::vector<WrongLoginTally> tallies(static_cast<std::size_t>(options.stall_threads));
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(tallies.size());
  for (auto& tally : tallies) {
    threads.emplace_back([&] {
      RunWrongLogins(context, woodhouse, stop, options.max_handshakes, monitor_ids, tally);
    });
  }
  std::string failure;
  try {
    std::this_thread::sleep_for(milliseconds(100));  // let the verifier queue fill
    result.loaded = MeasureHandshakes(context, ironhouse.endpoint, ironhouse.security, body,
                                      options.seconds, options.max_handshakes);
  } catch (const std::exception& e) {
    failure = e.what();  // stop the background threads before reporting it
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  if (!failure.empty()) throw std::runtime_error("stall: " + failure);
  result.wrong_elapsed = ElapsedSeconds(start);
  for (auto& tally : tallies) {
    result.wrong.refused += tally.refused;
    result.wrong.dropped += tally.dropped;
    result.wrong.admitted += tally.admitted;
    result.wrong.timed_out += tally.timed_out;
    result.wrong.samples.insert(result.wrong.samples.end(), tally.samples.begin(),
                                tally.samples.end());
    if (!tally.error.empty()) result.wrong.error = tally.error;
  }
  result.wrong_rate = result.wrong_elapsed > 0
                          ? static_cast<double>(result.wrong.refused) / result.wrong_elapsed
                          : 0;
  result.wrong_p50_ms = Quantile(result.wrong.samples, 0.50) / 1e6;
  return result;
}

// ---------------------------------------------------------------------------

std::string BrokerYaml(int io_threads) {
  return "broker:\n"
         "  io_threads: " +
         std::to_string(io_threads) +
         "\n"
         "  request_timeout: 30s\n"
         // Every client here comes from 127.0.0.1: the failure limiter would
         // soon refuse them all (ironhouse included) because of the stall
         // test's wrong passwords. The stall test measures the hashing itself.
         "  auth_failure_limit: 0\n"
         "log: { level: warn }\n"
         "keys:\n"
         "  broker: keys/broker.key_secret\n"
         "endpoints:\n"
         "  - { name: grasslands, bind: \"tcp://127.0.0.1:*\", role: clients, "
         "profile: grasslands }\n"
         "  - { name: strawhouse, bind: \"tcp://127.0.0.1:*\", role: clients, "
         "profile: strawhouse, allow: [127.0.0.0/8] }\n"
         "  - { name: woodhouse, bind: \"tcp://127.0.0.1:*\", role: clients, "
         "profile: woodhouse, passwords: passwd }\n"
         "  - { name: stonehouse, bind: \"tcp://127.0.0.1:*\", role: clients, "
         "profile: stonehouse }\n"
         "  - { name: ironhouse, bind: \"tcp://127.0.0.1:*\", role: clients, "
         "profile: ironhouse, certificates: store }\n"
         "  - { name: workers, bind: \"tcp://127.0.0.1:*\", role: workers, "
         "profile: grasslands }\n"
         "services:\n"
         "  echo: {}\n";
}

int Run(const Options& options) {
  TempDir tmp;
  const std::string& dir = tmp.path();
  mkdir((dir + "/keys").c_str(), 0700);
  mkdir((dir + "/store").c_str(), 0755);
  const auto broker_cert = MakeCertificate(dir + "/keys", "broker", "");
  const auto client_cert = MakeCertificate(dir + "/keys", "client", "bench-client");
  {
    std::ifstream in(dir + "/keys/client.key");
    std::ofstream out(dir + "/store/client.key");
    out << in.rdbuf();
    if (!out) throw std::runtime_error("cannot fill the certificate store");
  }
  if (const auto problem =
          zguard::auth::SetPassword(dir + "/passwd", kUser, kPassword, std::nullopt)) {
    throw std::runtime_error("cannot write the password file: " + *problem);
  }

  auto loaded =
      zguard::config::LoadConfigString(BrokerYaml(options.io_threads), "profile-bench.yaml", dir);
  if (!loaded.config) throw std::runtime_error(loaded.errors.at(0).ToString());
  zguard::Broker broker(std::move(*loaded.config));
  if (const auto problems = broker.Start(); !problems.empty()) {
    throw std::runtime_error(problems[0]);
  }
  std::thread routing([&] { broker.Run(); });
  struct StopBroker {
    zguard::Broker& broker;
    std::thread& routing;
    ~StopBroker() {
      broker.Stop();
      routing.join();
    }
  } stop_broker{broker, routing};

  zguard::proto::Security curve;
  curve.server_key = broker_cert.public_key;
  curve.public_key = client_cert.public_key;
  curve.secret_key = client_cert.secret_key;
  zguard::proto::Security plain;
  plain.username = kUser;
  plain.password = kPassword;
  // Stonehouse and ironhouse use the same client key (it is in the store), so
  // the difference between them is the store look-up alone.
  std::vector<Profile> profiles = {{"grasslands", "", {}},
                                   {"strawhouse", "", {}},
                                   {"woodhouse", "", plain},
                                   {"stonehouse", "", curve},
                                   {"ironhouse", "", curve}};
  for (auto& profile : profiles) {
    profile.endpoint = broker.Endpoint(profile.name);
    if (profile.endpoint.empty()) throw std::runtime_error("no endpoint " + profile.name);
  }
  const Profile& woodhouse = profiles[2];
  const Profile& ironhouse = profiles[4];
  const std::string body(options.size, 'p');
  std::vector<std::string> problems;

  zmq::context_t context(options.io_threads);
  zguard::bench::EchoWorkers workers(context, broker.Endpoint("workers"), kService,
                                     options.workers);
  std::this_thread::sleep_for(milliseconds(200));  // let the workers register

  std::cout << "zguard-profile-bench: seconds=" << options.seconds
            << " max-handshakes=" << options.max_handshakes << " clients=" << options.clients
            << " workers=" << options.workers << " stall-threads=" << options.stall_threads
            << " size=" << options.size << " io-threads=" << options.io_threads << "\n\n";

  // 1. Handshakes.
  std::cout << "### Handshakes: fresh connection, first request, reply (one at a time)\n\n"
               "| profile | handshakes | failed | handshakes/s | ratio | p50 (ms) | p99 (ms) |\n"
               "|---|---|---|---|---|---|---|\n";
  std::vector<HandshakeResult> handshakes;
  for (const auto& profile : profiles) {
    const auto r = MeasureHandshakes(context, profile.endpoint, profile.security, body,
                                     options.seconds, options.max_handshakes);
    handshakes.push_back(r);
    std::cout << "| " << profile.name << " | " << r.ok << " | " << r.failed << " | "
              << Fixed(r.rate, 1) << " | " << Ratio(r.rate, handshakes[0].rate) << " | "
              << Fixed(r.p50_ms, 2) << " | " << Fixed(r.p99_ms, 2) << " |" << std::endl;
    if (r.ok == 0) problems.emplace_back("handshakes, " + profile.name + ": none completed");
    if (r.failed > 0) {
      std::cerr << "handshakes, " << profile.name << ": " << r.failed
                << " failed, last: " << r.last_failure << "\n";
    }
  }

  // 2. Requests on long-lived connections.
  std::cout << "\n### Requests on long-lived connections: " << options.clients
            << " clients x window 1, " << options.size << " B\n\n"
            << "| profile | requests | failed | req/s | ratio | p50 (us) | p99 (us) |\n"
               "|---|---|---|---|---|---|---|\n";
  std::vector<RequestResult> requests;
  for (const auto& profile : profiles) {
    const auto r = MeasureRequests(context, profile.endpoint, profile.security, body, options);
    requests.push_back(r);
    std::cout << "| " << profile.name << " | " << r.completed << " | " << r.failed << " | "
              << Fixed(r.rps, 0) << " | " << Ratio(r.rps, requests[0].rps) << " | "
              << Fixed(r.p50_us, 0) << " | " << Fixed(r.p99_us, 0) << " |" << std::endl;
    if (!r.problem.empty()) std::cerr << "requests, " << profile.name << ": " << r.problem << "\n";
    if (r.completed == 0) problems.emplace_back("requests, " + profile.name + ": none completed");
  }

  // 3. Stall.
  const HandshakeResult& unloaded = handshakes[4];  // ironhouse
  const StallResult stall = MeasureStall(context, woodhouse.endpoint, ironhouse, body, options);
  const HandshakeResult& busy = stall.loaded;
  std::cout << "\n### Stall: ironhouse handshakes while " << options.stall_threads
            << " threads keep failing woodhouse logins (one argon2id hash each)\n\n"
            << "| ironhouse handshakes | handshakes | failed | handshakes/s | p50 (ms) | "
               "p99 (ms) | p50 ratio | p99 ratio |\n"
               "|---|---|---|---|---|---|---|---|\n"
            << "| unloaded (first table) | " << unloaded.ok << " | " << unloaded.failed << " | "
            << Fixed(unloaded.rate, 1) << " | " << Fixed(unloaded.p50_ms, 2) << " | "
            << Fixed(unloaded.p99_ms, 2) << " | 1.00 | 1.00 |\n"
            << "| during wrong-password logins | " << busy.ok << " | " << busy.failed << " | "
            << Fixed(busy.rate, 1) << " | " << Fixed(busy.p50_ms, 2) << " | "
            << Fixed(busy.p99_ms, 2) << " | " << Ratio(busy.p50_ms, unloaded.p50_ms) << " | "
            << Ratio(busy.p99_ms, unloaded.p99_ms) << " |\n\n"
            << "Background load: " << stall.wrong.refused << " wrong-password logins refused in "
            << Fixed(stall.wrong_elapsed, 2) << " s (" << Fixed(stall.wrong_rate, 1) << "/s, p50 "
            << Fixed(stall.wrong_p50_ms, 1) << " ms from connect to refusal); "
            << stall.wrong.dropped << " dropped without a refusal, " << stall.wrong.timed_out
            << " timed out, " << stall.wrong.admitted << " admitted." << std::endl;
  if (busy.ok == 0) problems.emplace_back("stall: no ironhouse handshake completed");
  if (busy.failed > 0) {
    std::cerr << "stall: " << busy.failed
              << " ironhouse handshakes failed, last: " << busy.last_failure << "\n";
  }
  if (stall.wrong.refused == 0) problems.emplace_back("stall: no wrong-password login was refused");
  if (stall.wrong.admitted > 0) problems.emplace_back("stall: a wrong password was admitted");
  if (!stall.wrong.error.empty()) problems.emplace_back("stall: " + stall.wrong.error);

  for (const auto& problem : problems) std::cerr << "zguard-profile-bench: " << problem << "\n";
  return problems.empty() ? 0 : 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"zguard-profile-bench: cost of each security profile, same broker, same run"};
  Options options;
  app.add_option("--seconds", options.seconds,
                 "Measuring time of each measurement (per profile and table)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-handshakes", options.max_handshakes,
                 "Cap on handshakes per profile, and per thread in the stall test")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-requests", options.max_requests,
                 "Cap on requests per profile on long-lived connections")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--clients", options.clients, "Long-lived clients per profile (window 1 each)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--workers", options.workers, "Echo workers")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--stall-threads", options.stall_threads,
                 "Threads making wrong-password woodhouse logins in the stall test")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--size", options.size, "Request body size in bytes")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--io-threads", options.io_threads,
                 "libzmq I/O threads on each side (broker, clients)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::warn);
  try {
    return Run(options);
  } catch (const std::exception& e) {
    std::cerr << "zguard-profile-bench: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (...) {
    return 1;  // Main reports what it can; this only keeps exceptions out of main
  }
}
