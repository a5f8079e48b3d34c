#pragma once
// /v1/nodes/{path} and /v1/txn: the namespace over HTTP (API.md "Nodes").

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "api/Reply.h"
#include "coordinator/Node.h"

namespace warden::api {

using Query = std::map<std::string, std::string>;

class NodesApi {
 public:
  explicit NodesApi(coordinator::Node& node) : node_(node) {}

  // path is the decoded namespace path. Throws ApiError for bad input before anything changes.
  void handle(const Request& request, const std::string& path, const Query& query, const Respond& respond);
  void txn(const Request& request, const Query& query, const Respond& respond);

 private:
  struct ReadShape {
    bool head = false;
    bool children = false;
    bool recursive = false;
    bool raw = false;
  };
  void read(const std::string& path, const Query& query, bool head, const Respond& respond);
  Reply get(const std::string& path, const ReadShape& shape);
  void readNow(const std::string& path, const ReadShape& shape, const Respond& respond);
  void write(coordinator::Command command, std::function<Reply(const coordinator::CommandResult&)> onOk,
             bool isTxn, const Respond& respond);

  coordinator::Node& node_;
};

// Flags in a query: "?children", "?children=true" or "=1" are on; "=false" or "=0" off.
bool queryFlag(const Query& query, const char* name);
// Rejects any parameter not in the list (400 invalid_argument).
void allowOnly(const Query& query, std::initializer_list<const char*> names);

}  // namespace warden::api
