#include "api/Router.h"

#include <cstdio>

#include "api/JsonCodec.h"
#include "api/Url.h"

namespace warden::api {

using json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kNodesRoute = "/v1/nodes";
constexpr std::string_view kSessionsRoute = "/v1/sessions";
constexpr std::string_view kWatchRoute = "/v1/watch";
constexpr std::string_view kLocksRoute = "/v1/locks";
constexpr std::string_view kElectionsRoute = "/v1/elections";

bool underRoute(const std::string& route, std::string_view prefix) {
  return route.starts_with(prefix) && (route.size() == prefix.size() || route[prefix.size()] == '/');
}

// The namespace path after a route's prefix: percent-decoded, never with an encoded '/'.
std::string routePath(const std::string& route, std::string_view prefix) {
  const std::string_view raw = std::string_view(route).substr(prefix.size());
  if (raw.find("%2F") != std::string_view::npos || raw.find("%2f") != std::string_view::npos) {
    throw ApiError(400, "invalid_path", "a path component may not contain an encoded '/' (%2F)");
  }
  auto decoded = percentDecode(raw);
  if (!decoded) throw ApiError(400, "invalid_path", "malformed percent-escape in the path");
  return requirePath(decoded->empty() ? "/" : *decoded);
}

}  // namespace

Router::Router(coordinator::Node& node, std::size_t maxSessions, std::chrono::milliseconds watchProgress)
    : node_(node), watches_(node, watchProgress), nodes_(node, watches_), sessions_(node, maxSessions), locks_(node, watches_),
      elections_(node, watches_) {}

void Router::handle(const Request& request, Respond respond) {
  Respond counted = [this, respond = std::move(respond)](Reply reply) {
    if (reply.later) {
      // Counted once built, where it is sent.
      reply.later = [this, build = std::move(reply.later)] {
        Reply built = settleReply(build(), node_.revision());
        repliesByClass_[std::min<unsigned>(built.status / 100, 5)].fetch_add(1, std::memory_order_relaxed);
        return built;
      };
    } else {
      repliesByClass_[std::min<unsigned>(reply.status / 100, 5)].fetch_add(1, std::memory_order_relaxed);
    }
    respond(std::move(reply));
  };
  try {
    dispatch(request, counted);
  } catch (const ApiError& e) {
    counted(errorReply(e, node_.revision()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warden: internal error on %s %s: %s\n", request.method.c_str(), request.target.c_str(),
                 e.what());
    counted(errorReply(500, "internal", e.what(), node_.revision()));
  }
}

std::uint64_t Router::revision() const { return node_.revision(); }

void Router::dispatch(const Request& request, const Respond& respond) {
  std::string problem;
  auto target = parseTarget(request.target, problem);
  if (!target) throw ApiError(400, "invalid_argument", problem);
  const std::string& route = target->path;
  const std::string& method = request.method;
  const bool isRead = method == "GET" || method == "HEAD";

  if (underRoute(route, kNodesRoute)) {
    nodes_.handle(request, routePath(route, kNodesRoute), target->query, respond);
    return;
  }
  for (const std::string_view prefix : {kLocksRoute, kElectionsRoute}) {
    if (!underRoute(route, prefix)) continue;
    const std::string_view raw = std::string_view(route).substr(prefix.size());
    if (raw.find("%2F") != std::string_view::npos || raw.find("%2f") != std::string_view::npos) {
      throw ApiError(400, "invalid_path", "a name may not contain an encoded '/' (%2F)");
    }
    auto decoded = percentDecode(raw);
    if (!decoded) throw ApiError(400, "invalid_argument", "malformed percent-escape in the name");
    if (prefix == kLocksRoute) {
      locks_.handle(request, *decoded, target->query, respond);
    } else {
      elections_.handle(request, *decoded, target->query, respond);
    }
    return;
  }
  if (underRoute(route, kWatchRoute)) {
    watches_.handle(request, routePath(route, kWatchRoute), target->query, respond);
    return;
  }
  if (underRoute(route, kSessionsRoute)) {
    sessions_.handle(request, route.substr(kSessionsRoute.size()), target->query, respond);
    return;
  }
  if (route == "/v1/txn") {
    nodes_.txn(request, target->query, respond);
    return;
  }

  Reply reply;
  if (route == "/healthz") {
    reply = jsonReply(200, json{{"status", "ok"}}, node_.revision());
  } else if (route == "/readyz") {
    reply = readiness();
  } else if (route == "/v1/status") {
    reply = status();
  } else if (route == "/metrics") {
    reply = metrics();
  } else {
    throw ApiError(404, "not_found", "no route " + route + " (see API.md)");
  }
  if (!isRead) {
    reply = methodNotAllowed(method, route, "GET, HEAD", node_.revision());
  } else {
    allowOnly(target->query, {});
  }
  if (method == "HEAD") reply.body.clear();
  respond(std::move(reply));
}

std::uint64_t Router::usedBytes() {
  auto txn = node_.read();
  return node_.stateMachine().usedBytes(txn);
}

Reply Router::status() {
  const coordinator::ClusterView view = node_.view();
  const std::uint64_t revision = node_.revision();
  json members = json::array();
  for (const auto& m : view.members) {
    members.push_back(json{{"id", m.id},
                           {"peer", m.peer},
                           {"http", m.http ? json(*m.http) : json(nullptr)},
                           {"role", m.leader ? "leader" : "follower"},
                           {"healthy", m.healthy}});
  }
  json body = {{"id", view.id},
               {"leader", view.leader ? json(*view.leader) : json(nullptr)},
               {"revision", revision},
               {"commit_index", view.commitIndex},
               {"applied_index", view.appliedIndex},
               {"members", std::move(members)}};
  if (view.learner) body["rebuilding"] = true;
  if (!view.ballot.empty()) body["ballot"] = view.ballot;
  body["storage"] = json{{"used_bytes", usedBytes()}, {"quota_bytes", node_.quotaBytes()}};
  return jsonReply(200, body, revision);
}

Reply Router::readiness() {
  const coordinator::ClusterView view = node_.view();
  std::string why;
  // Heard lately, not only known: a node cut off keeps the last leader it heard of, and would
  // say ready while the cluster moves on without it. A leader needs a majority heard lately.
  std::size_t heard = 0;
  bool leaderHeard = false;
  for (const auto& m : view.members) {
    heard += m.healthy ? 1 : 0;
    leaderHeard = leaderHeard || (m.leader && m.healthy);
  }
  if (!view.leader) why = "no leader is known";
  else if (!leaderHeard) why = "the leader was not heard from lately";
  else if (*view.leader == view.id && 2 * heard <= view.members.size()) why = "a majority of the members was not heard from lately";
  else if (view.learner) why = "rebuilding after its data directory was lost";
  // Applied, if not yet committed (an apply may wait --apply-commit-delay-us): caught up.
  else if (view.appliedPending < view.commitIndex) why = "catching up with the log";
  if (!why.empty()) return jsonReply(503, json{{"ready", false}, {"reason", why}}, node_.revision());
  return jsonReply(200, json{{"ready", true}}, node_.revision());
}

Reply Router::metrics() {
  std::string out;
  auto line = [&out](const std::string& text) { out += text + "\n"; };
  line("# HELP warden_http_replies_total HTTP replies sent, by status class.");
  line("# TYPE warden_http_replies_total counter");
  for (unsigned c = 1; c <= 5; ++c) {
    line("warden_http_replies_total{code=\"" + std::to_string(c) + "xx\"} " +
         std::to_string(repliesByClass_[c].load(std::memory_order_relaxed)));
  }
  line("# HELP warden_http_connections Open client connections.");
  line("# TYPE warden_http_connections gauge");
  line("warden_http_connections " + std::to_string(openConnections ? openConnections() : 0));
  line("# HELP warden_revision The applied revision.");
  line("# TYPE warden_revision gauge");
  line("warden_revision " + std::to_string(node_.revision()));
  line("# HELP warden_sessions_kept Sessions whose keepalive deadlines this node keeps (the leader keeps all).");
  line("# TYPE warden_sessions_kept gauge");
  line("warden_sessions_kept " + std::to_string(node_.liveSessions()));
  line("# HELP warden_applied_index The applied log index.");
  line("# TYPE warden_applied_index gauge");
  line("warden_applied_index " + std::to_string(node_.appliedIndex()));
  line("# HELP warden_storage_used_bytes What the quota counts: every node's path, data and 100 bytes.");
  line("# TYPE warden_storage_used_bytes gauge");
  line("warden_storage_used_bytes " + std::to_string(usedBytes()));
  line("# HELP warden_storage_quota_bytes Writes that would grow the state beyond this get 507 (--quota-bytes).");
  line("# TYPE warden_storage_quota_bytes gauge");
  line("warden_storage_quota_bytes " + std::to_string(node_.quotaBytes()));
  Reply reply;
  reply.body = std::move(out);
  reply.contentType = "text/plain; version=0.0.4";
  reply.revision = node_.revision();
  return reply;
}

}  // namespace warden::api
