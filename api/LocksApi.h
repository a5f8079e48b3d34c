#pragma once
// /v1/locks (API.md "Locks"): acquire, release, inspect and check locks. The queue lives in the
// replicated state (coordinator/StateMachineLocks.cpp); a client waiting for its turn waits here,
// at the node it called, on a watch of its own request, so a release wakes only the next holder.

#include <chrono>
#include <memory>
#include <cstdint>
#include <string>
#include <utility>

#include "api/Reads.h"
#include "api/Reply.h"
#include "api/WatchApi.h"
#include "coordinator/Node.h"

namespace warden::api {

// Shared with /v1/elections: what follows the route, "/{name}" or "/{name}/{action}" (404
// otherwise), and a request body's "session" (400 unless a session id).
std::pair<std::string, std::string> queueRoute(const std::string& rest, const std::string& route);
std::uint64_t sessionField(const nlohmann::ordered_json& body);
// A body's "wait_ms" value (400 unless an integer from 0 to 300000).
std::chrono::milliseconds waitField(const nlohmann::ordered_json& value);

class LocksApi {
 public:
  LocksApi(coordinator::Node& node, WatchApi& watches) : node_(node), watches_(watches) {}

  // rest is what follows "/v1/locks": "/{name}", "/{name}/acquire", "/{name}/release", "/{name}/check".
  void handle(const Request& request, const std::string& rest, const Query& query, const Respond& respond);

 private:
  struct Acquire {
    std::string name;
    std::uint64_t session = 0;
    bool shared = false;
    std::chrono::milliseconds wait{0};
    std::chrono::steady_clock::time_point deadline;
    std::uint64_t delayMs = 0;
    std::string owner;
    std::shared_ptr<Hangup> hangup;  // its client hanging up ends the wait (and leaves the queue)
  };
  coordinator::Command acquireCommand(const Acquire& a) const;
  void acquire(const Request& request, const std::string& name, const Respond& respond);
  void waitForGrant(const Acquire& a, const std::string& path, std::uint64_t index, const Respond& respond);
  void finish(const Acquire& a, const std::string& path, bool withdrawIfWaiting, const Respond& respond);
  void withdrawLater(const Acquire& a, const std::string& path);
  void release(const Request& request, const std::string& name, const Respond& respond);
  Reply describe(const std::string& name);
  Reply check(const std::string& name, const Query& query);

  coordinator::Node& node_;
  WatchApi& watches_;
};

}  // namespace warden::api
