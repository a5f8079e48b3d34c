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

  // The session to use now: the one kept, or, when there is none or it was lost (then `*lost`
  // is set), a new one opened through `http` with `ttlMs` and kept from then on. "" when the
  // open was refused; throws api::HttpClientError when it got no answer.
  std::string ensure(api::HttpClient& http, std::uint64_t ttlMs, bool* lost) {
    {
      std::lock_guard lock(mutex_);
      if (!session_.empty() && lost_) {
        *lost = true;
        session_.clear();
      }
      if (!session_.empty()) return session_;
    }
    auto r = http.request("POST", "/v1/sessions", "{\"ttl_ms\": " + std::to_string(ttlMs) + "}");
    if (r.status != 201) return "";
    const std::string session = r.json()["id"];
    keep(session);
    return session;
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
