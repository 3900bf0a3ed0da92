// `zguard serve`: load the config, bind, route until a signal, drain, exit.
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include <pthread.h>
#include <spdlog/spdlog.h>

#include "broker/broker.hpp"
#include "broker/cli/commands.hpp"
#include "broker/logging.hpp"

namespace zguard::cli {

int RunServe(const std::string& path) {
  auto loaded = config::LoadConfigFile(path);
  for (const auto& warning : loaded.warnings) {
    std::cerr << warning.ToString() << " (warning)\n";
  }
  if (!loaded.config) {
    for (const auto& error : loaded.errors) std::cerr << error.ToString() << '\n';
    std::cerr << path << ": " << loaded.errors.size() << " error(s); not starting\n";
    return 1;
  }
  SetupLogging(loaded.config->log);

  // Block the stop signals in every thread (libzmq's included, which inherit
  // the mask); one watcher thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);   // re-read security files
  sigaddset(&signals, SIGUSR1);  // internal: tells the watcher to leave
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Broker broker(std::move(*loaded.config));
  const auto problems = broker.Start();
  if (!problems.empty()) {
    for (const auto& problem : problems) spdlog::critical("{}", problem);
    return 1;
  }
  std::thread watcher([&] {
    int stops = 0;
    std::chrono::steady_clock::time_point first_stop;
    while (true) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0 || signal == SIGUSR1) return;
      if (signal == SIGHUP) {
        spdlog::info(
            "received SIGHUP: re-reading password files, certificate stores and "
            "revocation lists");
        broker.ReloadSecurity();
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (++stops == 1) {
        first_stop = now;
        spdlog::info("received {}: draining in-flight requests", strsignal(signal));
        broker.Stop();
      } else if (now - first_stop < std::chrono::seconds(1)) {
        // The same stop delivered twice (e.g. `timeout` signals the process
        // and its group): not a request to hurry.
        --stops;
        spdlog::info("received {} again within 1 s: still draining (repeat later to force)",
                     strsignal(signal));
      } else {
        spdlog::warn("received {} again: exiting without draining", strsignal(signal));
        std::_Exit(1);
      }
    }
  });
  spdlog::info("zguard {} running with {} ({} I/O thread(s))", ZGUARD_VERSION, path,
               broker.config().broker.io_threads);
  int code = 0;
  try {
    broker.Run();
  } catch (const std::exception& e) {
    spdlog::critical("routing loop failed: {}", e.what());
    code = 1;
  }
  pthread_kill(watcher.native_handle(), SIGUSR1);
  watcher.join();
  spdlog::info("zguard stopped");
  return code;
}

}  // namespace zguard::cli
