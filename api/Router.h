#pragma once
// Dispatches a request to its handler and turns every refusal into the JSON error of API.md.
// handle() never throws: a handler's ApiError becomes its 4xx, anything unexpected a 500.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "api/ElectionsApi.h"
#include "api/LocksApi.h"
#include "api/NodesApi.h"
#include "api/Reply.h"
#include "api/SessionsApi.h"
#include "api/WatchApi.h"
#include "coordinator/Node.h"

namespace warden::api {

class Router {
 public:
  explicit Router(coordinator::Node& node, std::size_t maxSessions = 1'000'000,
                  std::chrono::milliseconds watchProgress = std::chrono::seconds(15));

  void handle(const Request& request, Respond respond);
  // The applied revision, for replies made before a request reaches a route.
  std::uint64_t revision() const;

  // How many client connections are open; set by the server for /metrics.
  std::function<std::size_t()> openConnections;

 private:
  void dispatch(const Request& request, const Respond& respond);
  std::uint64_t usedBytes();
  Reply status();
  Reply readiness();
  Reply metrics();

  coordinator::Node& node_;
  WatchApi watches_;
  NodesApi nodes_;
  SessionsApi sessions_;
  LocksApi locks_;
  ElectionsApi elections_;
  std::array<std::atomic<std::uint64_t>, 6> repliesByClass_{};  // index: status / 100
};

}  // namespace warden::api
