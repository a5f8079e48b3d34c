#pragma once
// Dispatches a request to its handler and turns every refusal into the JSON error of API.md.
// handle() never throws: a handler's ApiError becomes its 4xx, anything unexpected a 500.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "api/NodesApi.h"
#include "api/Reply.h"
#include "coordinator/Node.h"

namespace warden::api {

struct ServerInfo {
  std::uint64_t id = 1;
  std::string http;  // the address this node's HTTP server listens on
  std::string peer;  // this node's peer (replication) address
};

class Router {
 public:
  Router(coordinator::Node& node, ServerInfo info);

  void handle(const Request& request, Respond respond);
  // The HTTP address once bound (it differs from the configured one when that asked for port 0).
  void setAdvertisedHttp(std::string http) { info_.http = std::move(http); }

  // How many client connections are open; set by the server for /metrics.
  std::function<std::size_t()> openConnections;

 private:
  void dispatch(const Request& request, const Respond& respond);
  Reply status();
  Reply metrics();

  coordinator::Node& node_;
  ServerInfo info_;
  NodesApi nodes_;
  std::array<std::atomic<std::uint64_t>, 6> repliesByClass_{};  // index: status / 100
};

}  // namespace warden::api
