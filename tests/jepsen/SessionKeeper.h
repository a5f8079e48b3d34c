#pragma once
// A session kept alive in the background through one node, as a client library does: the
// client's own requests (a lock holder's checks, a leader's reads) go on while a keepalive waits
// for its answer. The lock and election workloads use one per client.

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "api/HttpClient.h"

namespace warden::tests::jepsen {

class SessionKeeper {
 public:
  SessionKeeper(const std::string& endpoint, std::chrono::milliseconds every, std::atomic<bool>& stop)
      : http_({endpoint}, std::chrono::milliseconds(12'000)), every_(every), thread_([this, &stop] { run(stop); }) {}
  ~SessionKeeper() { thread_.join(); }

  // Keeps `session` alive from now on ("" : none).
  void keep(const std::string& session) {
    std::lock_guard lock(mutex_);
    session_ = session;
    lost_ = false;
  }
  // A keepalive of the session was answered 404: it is gone.
  bool lost() {
    std::lock_guard lock(mutex_);
    return lost_;
  }

 private:
  void run(std::atomic<bool>& stop) {
    while (!stop) {
      std::this_thread::sleep_for(every_);
      std::string session;
      {
        std::lock_guard lock(mutex_);
        if (lost_) continue;
        session = session_;
      }
      if (session.empty()) continue;
      try {
        if (http_.request("POST", "/v1/sessions/" + session + "/keepalive").status == 404) {
          std::lock_guard lock(mutex_);
          if (session_ == session) lost_ = true;
        }
      } catch (const api::HttpClientError&) {
      }
    }
  }

  api::HttpClient http_;
  std::chrono::milliseconds every_;
  std::mutex mutex_;
  std::string session_;
  bool lost_ = false;
  std::thread thread_;
};

}  // namespace warden::tests::jepsen
