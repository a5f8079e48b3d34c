#include "api/SessionsApi.h"

#include <random>

#include "api/JsonCodec.h"
#include "coordinator/Path.h"
#include "coordinator/storage/Keys.h"
#include "coordinator/storage/Lmdb.h"
#include "locks/LockQueue.h"
#include "session/SessionTable.h"

namespace warden::api {

using json = nlohmann::ordered_json;
using coordinator::CommandResult;
using coordinator::CommandType;
using coordinator::Status;

namespace {

constexpr int kCreateAttempts = 3;  // a fresh random id after a (vanishingly rare) collision

std::uint64_t randomSessionId() {
  // Random rather than sequential: an id is all it takes to keep alive or close a session.
  thread_local std::mt19937_64 engine{std::random_device{}()};
  std::uint64_t id = 0;
  while (id == 0) id = engine();
  return id;
}

std::uint64_t requireSessionId(const std::string& text) {
  auto id = session::parseSessionId(text);
  if (!id) throw ApiError(400, "invalid_argument", "'" + text + "' is not a session id (16 hex digits)");
  return *id;
}

void requireEmptyBody(const Request& request, const char* what) {
  if (!parseBody(request.body).empty()) throw ApiError(400, "invalid_argument", std::string(what) + " takes no body");
}

json sessionJson(coordinator::storage::Txn& txn, const session::SessionTable& table, std::uint64_t id,
                 const session::SessionRecord& record) {
  // Its lock requests are ephemeral nodes under /_warden/locks: listed as locks, not ephemerals.
  json ephemerals = json::array(), locks = json::array();
  for (const std::string& path : table.ephemerals(txn, id)) {
    const std::string_view queue = coordinator::parentOf(path);
    if (locks::isQueue(queue) && !locks::isElection(queue)) {
      locks.push_back(std::string(coordinator::nameOf(queue)));
    } else {
      ephemerals.push_back(path);
    }
  }
  return json{{"id", session::formatSessionId(id)},
              {"ttl_ms", record.ttlMs},
              {"name", record.name},
              {"ephemerals", std::move(ephemerals)},
              {"locks", std::move(locks)}};
}

}  // namespace

void SessionsApi::handle(const Request& request, const std::string& rest, const Query& query,
                         const Respond& respond) {
  const std::string& method = request.method;
  if (rest.empty() || rest == "/") {
    if (method == "POST") {
      allowOnly(query, {});
      create(request, respond);
    } else if (method == "GET") {
      allowOnly(query, {"consistency", "min_revision", "wait_ms", "limit", "after"});
      const std::size_t limit = pageLimit(query);
      std::uint64_t after = 0;
      if (auto it = query.find("after"); it != query.end()) {
        auto id = session::parseSessionId(it->second);
        if (!id) throw ApiError(400, "invalid_argument", "after must be a session id, got '" + it->second + "'");
        after = *id;
      }
      answerRead(node_, query, [this, limit, after] { return list(limit, after); }, respond);
    } else {
      respond(methodNotAllowed(method, "/v1/sessions", "GET, POST", node_.revision()));
    }
    return;
  }
  const auto slash = rest.find('/', 1);
  const std::string idText = rest.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash);
  if (action == "/keepalive") {
    const std::uint64_t id = requireSessionId(idText);
    if (method != "POST") {
      return respond(methodNotAllowed(method, "/v1/sessions/{id}/keepalive", "POST", node_.revision()));
    }
    allowOnly(query, {});
    requireEmptyBody(request, "a keepalive");
    keepalive(id, respond);
    return;
  }
  if (!action.empty()) throw ApiError(404, "not_found", "no route /v1/sessions" + rest + " (see API.md)");
  const std::uint64_t id = requireSessionId(idText);
  if (method == "GET") {
    allowOnly(query, {"consistency", "min_revision", "wait_ms"});
    answerRead(node_, query, [this, id] { return describe(id); }, respond);
  } else if (method == "DELETE") {
    allowOnly(query, {});
    requireEmptyBody(request, "closing a session");
    close(id, request.idempotencyKey ? checkedIdempotencyKey(*request.idempotencyKey) : std::string(), respond);
  } else {
    respond(methodNotAllowed(method, "/v1/sessions/{id}", "GET, DELETE", node_.revision()));
  }
}

void SessionsApi::create(const Request& request, const Respond& respond) {
  json body = parseBody(request.body);
  coordinator::Command command = coordinator::sessionCommand(CommandType::SessionCreate, randomSessionId());
  if (request.idempotencyKey) {
    // The id comes from the key, so that a retry is the same command and gets the first answer.
    command.idempotencyKey = checkedIdempotencyKey(*request.idempotencyKey);
    command.session = coordinator::storage::decodeU64Key(coordinator::storage::sha256("session:" + command.idempotencyKey).substr(0, 8)) | 1;
  }
  bool ttlGiven = false;
  for (auto& [key, value] : body.items()) {
    if (key == "ttl_ms") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < static_cast<std::int64_t>(session::kMinTtlMs) ||
          value.get<std::int64_t>() > static_cast<std::int64_t>(session::kMaxTtlMs)) {
        throw ApiError(400, "invalid_argument", "ttl_ms must be an integer from 1000 to 600000");
      }
      command.ttlMs = value.get<std::uint64_t>();
      ttlGiven = true;
    } else if (key == "name") {
      if (!value.is_string()) throw ApiError(400, "invalid_argument", "name must be a string");
      command.name = value.get<std::string>();
      if (command.name.size() > session::kMaxNameBytes) {
        throw ApiError(400, "invalid_argument", "name holds at most 1024 bytes");
      }
    } else {
      throw ApiError(400, "invalid_argument", "body: unknown field '" + key + "'");
    }
  }
  if (!ttlGiven) throw ApiError(400, "invalid_argument", "ttl_ms is required (1000 to 600000)");
  {
    // Counted in this node's applied state, so creates racing at the limit may pass it a little.
    auto txn = node_.read();
    if (node_.stateMachine().sessions().count(txn) >= maxSessions_) {
      throw ApiError(429, "too_many_requests",
                     "this cluster holds " + std::to_string(maxSessions_) + " sessions already (--max-sessions)");
    }
  }
  submitCreate(std::move(command), respond, 1);
}

void SessionsApi::submitCreate(coordinator::Command command, const Respond& respond, int attempt) {
  // Runs again from the log's callback after a collision: nothing here may throw.
  const std::uint64_t id = command.session, ttl = command.ttlMs;
  node_.submit(command, [this, command, respond, attempt, id, ttl](CommandResult r) mutable {
    if (r.status == Status::Exists && attempt < kCreateAttempts && command.idempotencyKey.empty()) {
      command.session = randomSessionId();
      return submitCreate(std::move(command), respond, attempt + 1);
    }
    if (r.status != Status::Ok) {
      respond(errorReply(httpStatus(r.status), errorCode(r.status), r.message, std::max(r.revision, node_.revision())));
      return;
    }
    respond(jsonReply(201, json{{"id", session::formatSessionId(id)}, {"ttl_ms", ttl}}, r.revision));
  });  // Visible: the --max-sessions check counts the sessions in the committed state
}

void SessionsApi::keepalive(std::uint64_t id, const Respond& respond) {
  node_.keepalive(id, [this, id, respond](Status status, std::uint64_t ttl) {
    const std::string idText = session::formatSessionId(id);
    if (status == Status::Ok) {
      respond(jsonReply(200, json{{"id", idText}, {"ttl_ms", ttl}}, node_.revision()));
    } else if (status == Status::SessionNotFound) {
      respond(errorReply(404, "session_not_found", "session " + idText + " does not exist (it expired or was closed)",
                         node_.revision()));
    } else {
      respond(errorReply(httpStatus(status), errorCode(status),
                         "no leader answered the keepalive in time; send it again", node_.revision()));
    }
  });
}

void SessionsApi::close(std::uint64_t id, std::string idempotencyKey, const Respond& respond) {
  // With a key, a retry of a close that went through gets its 204 again, not 404.
  coordinator::Command command = coordinator::sessionCommand(CommandType::SessionClose, id);
  command.idempotencyKey = std::move(idempotencyKey);
  node_.submit(command, [this, respond](CommandResult r) {
    if (r.status != Status::Ok) {
      respond(errorReply(httpStatus(r.status), errorCode(r.status), r.message, std::max(r.revision, node_.revision())));
      return;
    }
    Reply reply;
    reply.status = 204;
    reply.revision = r.revision;
    respond(std::move(reply));
  });
}

Reply SessionsApi::describe(std::uint64_t id) {
  auto txn = readState(node_);
  const auto& sm = node_.stateMachine();
  const std::uint64_t revision = sm.revision(txn);
  auto record = sm.sessions().get(txn, id);
  if (!record) {
    return errorReply(404, "session_not_found",
                      "session " + session::formatSessionId(id) + " does not exist (it expired or was closed)", revision);
  }
  return jsonReply(200, sessionJson(txn, sm.sessions(), id, *record), revision);
}

Reply SessionsApi::list(std::size_t limit, std::uint64_t after) {
  auto txn = readState(node_);
  const auto& sm = node_.stateMachine();
  json sessions = json::array();
  std::optional<std::uint64_t> last;
  bool more = false;
  sm.sessions().forEachAfter(txn, after, [&](std::uint64_t id, const session::SessionRecord& record) {
    if (sessions.size() == limit) {
      more = true;
      return false;
    }
    sessions.push_back(sessionJson(txn, sm.sessions(), id, record));
    last = id;
    return true;
  });
  json body = {{"sessions", std::move(sessions)}};
  if (more && last) body["next"] = session::formatSessionId(*last);
  return jsonReply(200, body, sm.revision(txn));
}

}  // namespace warden::api
