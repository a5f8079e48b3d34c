#pragma once
// /v1/elections (API.md "Leader election"): campaign, proclaim, resign, observe. An election is
// a queue of candidacies like a lock's (coordinator/StateMachineLocks.cpp): the first is the
// leader, its term the revision that made it leader. A campaign waits here, at the node it
// called, on a watch of its own candidacy.

#include <chrono>
#include <cstdint>
#include <string>

#include "api/Reads.h"
#include "api/Reply.h"
#include "api/WatchApi.h"
#include "coordinator/Node.h"

namespace warden::api {

class ElectionsApi {
 public:
  ElectionsApi(coordinator::Node& node, WatchApi& watches) : node_(node), watches_(watches) {}

  // rest is what follows "/v1/elections": "/{name}" or "/{name}/{campaign|proclaim|resign}".
  void handle(const Request& request, const std::string& rest, const Query& query, const Respond& respond);

 private:
  void campaign(const Request& request, const std::string& name, const Respond& respond);
  void answerCampaign(const std::string& name, const std::string& path, const Respond& respond);
  void command(const Request& request, const std::string& name, const std::string& action, const Respond& respond);
  Reply describe(const std::string& name);

  coordinator::Node& node_;
  WatchApi& watches_;
};

}  // namespace warden::api
