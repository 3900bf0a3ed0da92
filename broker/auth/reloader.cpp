// Policy hot reload by polling; see reloader.hpp.
#include "broker/auth/reloader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <spdlog/spdlog.h>

namespace zguard::auth {
namespace {

void AppendStat(std::string& out, const std::string& path) {
  struct stat info {};
  out += path;
  if (stat(path.c_str(), &info) == 0) {
    out += ':' + std::to_string(info.st_mtim.tv_sec) + '.' + std::to_string(info.st_mtim.tv_nsec) +
           ':' + std::to_string(info.st_size) + ':' + std::to_string(info.st_ino);
  } else {
    out += ":missing";
  }
  out += '\n';
}

}  // namespace

Reloader::Reloader(const config::Config& config, Authenticator& authenticator,
                   std::chrono::milliseconds interval)
    : config_(config), authenticator_(authenticator), interval_(interval) {
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
  auto loaded = LoadSecurity(config_);
  if (!loaded.errors.empty()) {
    failures_.fetch_add(1);
    for (const auto& error : loaded.errors) {
      spdlog::error("reload failed, keeping the previous policy: {}", error.ToString());
    }
    return false;
  }
  for (const auto& warning : loaded.warnings) spdlog::warn("reload: {}", warning.ToString());
  authenticator_.SetPolicy(std::move(loaded.policy));
  reloads_.fetch_add(1);
  spdlog::info("security policy reloaded");
  return true;
}

void Reloader::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, interval_, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      try {
        CheckNow();
      } catch (const std::exception& e) {
        failures_.fetch_add(1);
        spdlog::error("reload failed, keeping the previous policy: {}", e.what());
      }
      lock.lock();
    }
  });
}

void Reloader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace zguard::auth
