// Watches the files the security policy is built from (password files,
// certificate stores, revocation lists) and, when any of them changes,
// rebuilds the policy and hands it to the authenticator. A rebuild that
// fails keeps the previous policy and logs every problem. inotify on the
// folders holding those files wakes the reloader at once; a fingerprint
// (modification time, size and inode of every watched file and store entry)
// is also compared every `interval`, as the fallback that works on every file
// system, including the bind mounts and ConfigMap volumes of containers.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "broker/auth/authenticator.hpp"
#include "broker/config/config.hpp"

namespace zguard::auth {

class Reloader {
 public:
  // `config` and `authenticator` must outlive the Reloader.
  Reloader(const config::Config& config, Authenticator& authenticator,
           std::chrono::milliseconds interval = std::chrono::milliseconds(250),
           Metrics* metrics = nullptr);
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  void Start();
  void Stop();

  // Rebuilds now if anything changed since the last look; returns true when
  // a new policy was installed. Used by the thread, and by SIGHUP handling.
  bool CheckNow();

  // Rebuilds now whether or not anything changed (SIGHUP). Thread-safe with
  // the polling thread. Returns true when a new policy was installed.
  bool ReloadNow();

  std::uint64_t reloads() const { return reloads_.load(); }
  std::uint64_t failures() const { return failures_.load(); }

 private:
  std::string Fingerprint() const;
  bool Rebuild();  // caller holds reload_mutex_

  const config::Config& config_;
  Authenticator& authenticator_;
  Metrics* metrics_;
  std::chrono::milliseconds interval_;
  std::string fingerprint_;  // guarded by reload_mutex_
  std::mutex reload_mutex_;  // one rebuild at a time
  int stop_fd_ = -1;         // eventfd written by Stop()
  int inotify_fd_ = -1;      // -1 when inotify is not available
  std::thread thread_;
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::uint64_t> failures_{0};
};

}  // namespace zguard::auth
