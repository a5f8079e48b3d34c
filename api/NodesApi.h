#pragma once
// /v1/nodes/{path} and /v1/txn: the namespace over HTTP (API.md "Nodes").

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api/Reads.h"
#include "api/WatchApi.h"
#include "api/Reply.h"
#include "coordinator/Node.h"

namespace warden::api {

class NodesApi {
 public:
  NodesApi(coordinator::Node& node, WatchApi& watches) : node_(node), watches_(watches) {}

  // path is the decoded namespace path. Throws ApiError for bad input before anything changes.
  void handle(const Request& request, const std::string& path, const Query& query, const Respond& respond);
  void txn(const Request& request, const Query& query, const Respond& respond);

 private:
  struct ReadShape {
    bool head = false;
    bool children = false;
    bool recursive = false;
    bool raw = false;
    std::size_t limit = 0;  // children: page size...
    std::string after;      // ...and the name the page starts after
  };
  void read(const std::string& path, const Query& query, bool head, const Respond& respond);
  Reply get(const std::string& path, const ReadShape& shape);
  Reply tornSubtree(const std::string& path);
  void write(coordinator::Command command, std::function<Reply(const coordinator::CommandResult&)> onOk,
             bool isTxn, const Respond& respond, const std::optional<std::string>& idempotencyKey);

  coordinator::Node& node_;
  WatchApi& watches_;  // blocking reads (?index=R&wait_ms=W) wait on the watch history
};

}  // namespace warden::api
