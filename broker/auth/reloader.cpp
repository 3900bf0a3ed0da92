// Policy hot reload by polling; see reloader.hpp.
#include "broker/auth/reloader.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>

namespace zguard::auth {
namespace {

void AppendStat(std::string& out, const std::string& path) {
  struct stat info {};
  out += path;
  if (stat(path.c_str(), &info) == 0) {
    out += ':' + std::to_string(info.st_mtim.tv_sec) + '.' + std::to_string(info.st_mtim.tv_nsec) +
           ':' + std::to_string(info.st_size) + ':' + std::to_string(info.st_ino) + ':' +
           std::to_string(info.st_mode) + ':' + std::to_string(info.st_uid);
  } else {
    out += ":missing";
  }
  out += '\n';
}

}  // namespace

Reloader::Reloader(const config::Config& config, Authenticator& authenticator,
                   std::chrono::milliseconds interval, Metrics* metrics)
    : config_(config), authenticator_(authenticator), metrics_(metrics), interval_(interval) {
  fingerprint_ = Fingerprint();
}

Reloader::~Reloader() { Stop(); }

std::string Reloader::Fingerprint() const {
  std::string out;
  for (const auto& endpoint : config_.endpoints) {
    if (!endpoint.passwords.empty()) AppendStat(out, endpoint.passwords);
    if (!endpoint.revoked.empty()) AppendStat(out, endpoint.revoked);
    if (!endpoint.certificates.empty()) {
      AppendStat(out, endpoint.certificates);
      std::vector<std::string> entries;
      std::error_code ec;
      for (std::filesystem::directory_iterator it(endpoint.certificates, ec), end; !ec && it != end;
           it.increment(ec)) {
        entries.push_back(it->path().string());
      }
      std::sort(entries.begin(), entries.end());
      for (const auto& entry : entries) AppendStat(out, entry);
    }
  }
  return out;
}

bool Reloader::CheckNow() {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  std::string now = Fingerprint();
  if (now == fingerprint_) return false;
  fingerprint_ = std::move(now);
  return Rebuild();
}

bool Reloader::ReloadNow() {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  fingerprint_ = Fingerprint();
  return Rebuild();
}

bool Reloader::Rebuild() {
  auto loaded = LoadSecurity(config_, /*with_server_keys=*/false);
  if (!loaded.errors.empty()) {
    failures_.fetch_add(1);
    if (metrics_ != nullptr) metrics_->CountReload(false);
    for (const auto& error : loaded.errors) {
      spdlog::error("reload failed, keeping the previous policy: {}", error.ToString());
    }
    return false;
  }
  for (const auto& warning : loaded.warnings) spdlog::warn("reload: {}", warning.ToString());
  authenticator_.SetPolicy(std::move(loaded.policy));
  reloads_.fetch_add(1);
  if (metrics_ != nullptr) metrics_->CountReload(true);
  spdlog::info("security policy reloaded");
  return true;
}

void Reloader::Start() {
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // inotify wakes us as soon as a watched folder changes; the fingerprint
  // poll every `interval_` stays on as the fallback (file systems without
  // inotify, watches that could not be added, missed events).
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    std::set<std::string> folders;
    for (const auto& endpoint : config_.endpoints) {
      for (const auto* file : {&endpoint.passwords, &endpoint.revoked}) {
        if (file->empty()) continue;
        const auto parent = std::filesystem::path(*file).parent_path().string();
        folders.insert(parent.empty() ? "." : parent);
      }
      if (!endpoint.certificates.empty()) folders.insert(endpoint.certificates);
    }
    for (const auto& folder : folders) {
      if (inotify_add_watch(inotify_fd_, folder.c_str(),
                            IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                IN_ATTRIB) < 0) {
        spdlog::debug("reloader: no inotify watch on {} ({}); polling only", folder,
                      std::strerror(errno));
      }
    }
  }
  thread_ = std::thread([this] {
    while (true) {
      pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
      const int ready = poll(fds, inotify_fd_ >= 0 ? 2 : 1, static_cast<int>(interval_.count()));
      if (ready > 0 && (fds[0].revents & POLLIN) != 0) break;
      if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
        char buffer[4096];
        while (read(inotify_fd_, buffer, sizeof buffer) > 0) {
        }
        // Let a writer that replaces several files finish before we look.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      try {
        CheckNow();
      } catch (const std::exception& e) {
        failures_.fetch_add(1);
        spdlog::error("reload failed, keeping the previous policy: {}", e.what());
      }
    }
  });
}

void Reloader::Stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  for (int* fd : {&stop_fd_, &inotify_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

}  // namespace zguard::auth
