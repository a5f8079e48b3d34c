#pragma once
// /v1/sessions: client sessions over HTTP (API.md "Sessions").

#include <cstdint>
#include <string>

#include "api/Reads.h"
#include "api/Reply.h"
#include "coordinator/Node.h"

namespace warden::api {

class SessionsApi {
 public:
  // Creating a session while this node's state holds maxSessions or more answers 429.
  SessionsApi(coordinator::Node& node, std::size_t maxSessions) : node_(node), maxSessions_(maxSessions) {}

  // rest is what follows "/v1/sessions": "", "/{id}" or "/{id}/keepalive".
  void handle(const Request& request, const std::string& rest, const Query& query, const Respond& respond);

 private:
  void create(const Request& request, const Respond& respond);
  void submitCreate(coordinator::Command command, const Respond& respond, int attempt);
  void keepalive(std::uint64_t id, const Respond& respond);
  void close(std::uint64_t id, std::string idempotencyKey, const Respond& respond);
  Reply describe(std::uint64_t id);
  Reply list(std::size_t limit, std::uint64_t after);

  coordinator::Node& node_;
  std::size_t maxSessions_;
};

}  // namespace warden::api
