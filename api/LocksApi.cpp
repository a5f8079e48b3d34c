#include "api/LocksApi.h"

#include "api/JsonCodec.h"
#include "locks/LockQueue.h"

namespace warden::api {

using json = nlohmann::ordered_json;
using coordinator::CommandResult;
using coordinator::CommandType;
using coordinator::Status;

namespace {

constexpr std::uint64_t kMaxWaitMs = 300'000;
constexpr std::size_t kMaxListed = 10'000;  // holders and waiters shown by GET

std::string lockName(const std::string& text) {
  if (auto problem = locks::lockNameProblem(text)) throw ApiError(400, "invalid_argument", *problem);
  return text;
}

Reply failure(const CommandResult& r, std::uint64_t revision) {
  return errorReply(httpStatus(r.status), errorCode(r.status), r.message, std::max(r.revision, revision));
}

}  // namespace

std::pair<std::string, std::string> queueRoute(const std::string& rest, const std::string& route) {
  if (rest.size() < 2 || rest[0] != '/') throw ApiError(404, "not_found", "no route " + route + rest + " (see API.md)");
  const std::string tail = rest.substr(1);
  const auto slash = tail.find('/');
  return {tail.substr(0, slash), slash == std::string::npos ? "" : tail.substr(slash + 1)};
}

std::uint64_t sessionField(const json& body) {
  if (!body.contains("session") || !body["session"].is_string()) {
    throw ApiError(400, "invalid_argument", "session is required (a session id, 16 hex digits)");
  }
  auto id = session::parseSessionId(body["session"].get<std::string>());
  if (!id) throw ApiError(400, "invalid_argument", "session must be a session id (16 hex digits)");
  return *id;
}

std::chrono::milliseconds waitField(const json& value) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > kMaxWaitMs) {
    throw ApiError(400, "invalid_argument", "wait_ms must be an integer from 0 to 300000");
  }
  return std::chrono::milliseconds(value.get<std::uint64_t>());
}

void LocksApi::handle(const Request& request, const std::string& rest, const Query& query, const Respond& respond) {
  // rest: "/{name}" or "/{name}/{action}"; names are one component (percent-decoded by the router).
  const auto [rawName, action] = queueRoute(rest, "/v1/locks");
  const std::string name = lockName(rawName);
  const std::string& method = request.method;
  if (action == "acquire" || action == "release") {
    if (method != "POST") return respond(methodNotAllowed(method, "/v1/locks/{name}/" + action, "POST", node_.revision()));
    allowOnly(query, {});
    return action == "acquire" ? acquire(request, name, respond) : release(request, name, respond);
  }
  if (action == "check") {
    if (method != "GET") return respond(methodNotAllowed(method, "/v1/locks/{name}/check", "GET", node_.revision()));
    // Always linearizable: a fence that trusted a stale state would let an old holder through.
    allowOnly(query, {"token"});
    return answerRead(node_, query, [this, name, query] { return check(name, query); }, respond);
  }
  if (!action.empty()) throw ApiError(404, "not_found", "no route /v1/locks/{name}/" + action + " (see API.md)");
  if (method != "GET") return respond(methodNotAllowed(method, "/v1/locks/{name}", "GET", node_.revision()));
  allowOnly(query, {"consistency", "index", "wait_ms"});
  // Blocks with ?index until the lock (its queue, any holder or waiter) changes.
  if (watches_.blockingRead(locks::lockPath(name), false, true, query, [this, name] { return describe(name); }, respond)) {
    return;
  }
  answerRead(node_, query, [this, name] { return describe(name); }, respond);
}

void LocksApi::acquire(const Request& request, const std::string& name, const Respond& respond) {
  const json body = parseBody(request.body);
  Acquire a;
  a.name = name;
  std::string owner;
  for (const auto& [key, value] : body.items()) {
    if (key == "session") continue;
    if (key == "wait_ms") {
      a.wait = waitField(value);
    } else if (key == "mode") {
      if (value != "exclusive" && value != "shared") throw ApiError(400, "invalid_argument", "mode is exclusive or shared");
      a.shared = value == "shared";
    } else if (key == "owner") {
      if (!value.is_string() || value.get<std::string>().size() > locks::kMaxOwnerBytes) {
        throw ApiError(400, "invalid_argument", "owner must be a string of at most 1024 bytes");
      }
      owner = value.get<std::string>();
    } else if (key == "lock_delay_ms") {
      if (!value.is_number_unsigned() || value.get<std::uint64_t>() > locks::kMaxLockDelayMs) {
        throw ApiError(400, "invalid_argument", "lock_delay_ms must be an integer from 0 to 60000");
      }
      a.delayMs = value.get<std::uint64_t>();
    } else {
      throw ApiError(400, "invalid_argument", "body: unknown field '" + key + "'");
    }
  }
  a.session = sessionField(body);
  a.owner = owner;
  a.hangup = request.hangup;
  a.deadline = std::chrono::steady_clock::now() + a.wait;
  // No Idempotency-Key here: an acquire is a session's own request, which a repeat finds (and
  // waits on) again; a replay of the first result would find it withdrawn when the client that
  // hung up comes back (its wait's hangup withdrew it), where asking again queues it anew.
  if (request.idempotencyKey) checkedIdempotencyKey(*request.idempotencyKey);
  node_.submit(acquireCommand(a), [this, a, respond](CommandResult r) {
    if (r.status != Status::Ok) return respond(failure(r, node_.revision()));
    if (r.results.empty()) return respond(errorReply(500, "internal", "acquire answered without its request", node_.revision()));
    const std::string path = r.results[0].path;
    if (a.wait.count() == 0) return finish(a, path, true, respond);
    waitForGrant(a, path, r.revision, respond);
  });
}

coordinator::Command LocksApi::acquireCommand(const Acquire& a) const {
  coordinator::Command command;
  command.type = CommandType::LockAcquire;
  command.session = a.session;
  command.name = a.name;
  command.shared = a.shared;
  command.text = a.owner;
  command.token = a.delayMs;
  return command;
}

void LocksApi::waitForGrant(const Acquire& a, const std::string& path, std::uint64_t index, const Respond& respond) {
  {
    auto txn = node_.read();
    auto record = node_.stateMachine().tree().get(txn, path);
    auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (!request || request->granted()) return finish(a, path, true, respond);
  }
  // A change of this request alone (its grant, or its removal) wakes this wait: a release
  // wakes the next in line, not every waiter.
  try {
    watches_.waitForChange(
        path, false, index, a.wait, [this, a, path, respond] { finish(a, path, true, respond); }, false, a.hangup);
  } catch (const ApiError&) {
    // Too many watchers to wait here: the request leaves the queue at once, as at the end of
    // its wait (a grant that came meanwhile is the caller's), rather than stay queued unwatched.
    finish(a, path, true, respond);
  }
}

void LocksApi::withdrawLater(const Acquire& a, const std::string& path) {
  // Its client hung up and the withdrawal could not be done now: nobody is left to tell "it may
  // still be queued", so it is tried again every second until the request is out (or granted,
  // or gone with its session).
  node_.watches().at(std::chrono::steady_clock::now() + std::chrono::seconds(1),
                     [this, a, path] { finish(a, path, true, [](Reply) {}); });
}

void LocksApi::finish(const Acquire& a, const std::string& path, bool withdrawIfWaiting, const Respond& respond) {
  std::optional<locks::Request> request;
  std::uint64_t revision = 0;
  {
    auto txn = node_.read();
    const auto& sm = node_.stateMachine();
    revision = sm.revision(txn);
    if (sm.installing(txn) && withdrawIfWaiting && a.hangup && a.hangup->gone()) {
      withdrawLater(a, path);  // nobody to answer: looked at again once the install is done
      return;
    }
    if (sm.installing(txn)) {
      // Half old, half new: nothing here can be trusted, and the request may still queue.
      respond(errorReply(504, "timeout",
                         "this node is installing a snapshot: the request for lock '" + a.name +
                             "' may still be queued; acquire again (wait_ms 0 settles it) or close the session",
                         revision));
      return;
    }
    auto record = sm.tree().get(txn, path);
    if (record) request = locks::decodeRequest(record->data);
    // Names are never reused, but the request must also be this session's own.
    if (request && request->session != a.session) request.reset();
  }
  if (request && request->granted() && request->shared != a.shared) {
    respond(errorReply(409, "locked",
                       "session " + session::formatSessionId(a.session) + " holds lock '" + a.name + "' in " +
                           (request->shared ? "shared" : "exclusive") + " mode; release it to ask for the other",
                       revision));
    return;
  }
  if (request && request->granted()) {
    respond(jsonReply(200,
                      json{{"name", a.name}, {"token", request->token}, {"mode", request->shared ? "shared" : "exclusive"},
                           {"session", session::formatSessionId(a.session)}},
                      revision));
    return;
  }
  if (request && withdrawIfWaiting) {
    // Out of the queue, unless the grant came meanwhile: then it is the caller's after all.
    coordinator::Command command;
    command.type = CommandType::LockWithdraw;
    command.session = a.session;
    command.name = a.name;
    command.token = locks::queuedRevision(path);
    node_.submit(command, [this, a, path, respond](CommandResult r) {
      if (r.status == Status::SessionNotFound) {
        // The session ended meanwhile, and its requests with it: nothing is queued.
        respond(failure(r, node_.revision()));
        return;
      }
      if (r.status != Status::Ok && a.hangup && a.hangup->gone()) {
        withdrawLater(a, path);
        return;
      }
      if (r.status != Status::Ok) {
        // The request may still be queued (and be granted later): not "never applied".
        respond(errorReply(504, "timeout",
                           "the wait for lock '" + a.name + "' ended, but its request could not be withdrawn (" + r.message +
                               "): it may still be queued; acquire again (wait_ms 0 settles it) or close the session",
                           node_.revision()));
        return;
      }
      finish(a, path, false, respond);
    });
    return;
  }
  if (!withdrawIfWaiting || request) {
    // Withdrawn by this request (or, granted meanwhile, answered above).
    respond(errorReply(409, "locked", "lock '" + a.name + "' is held; not granted within wait_ms (the request left the queue)",
                       revision));
    return;
  }
  // Gone without a withdrawal of this wait's: another wait of the session withdrew it (the
  // session's requests are one per lock), or the session ended.
  bool alive = false;
  {
    auto txn = node_.read();
    alive = node_.stateMachine().sessions().get(txn, a.session).has_value();
  }
  if (alive) {
    respond(errorReply(409, "locked", "lock '" + a.name + "' is held; the request left the queue (withdrawn by another wait of session " +
                                          session::formatSessionId(a.session) + ")",
                       revision));
    return;
  }
  respond(errorReply(404, "session_not_found",
                     "session " + session::formatSessionId(a.session) + " ended before it was granted lock '" + a.name + "'",
                     revision));
}

void LocksApi::release(const Request& request, const std::string& name, const Respond& respond) {
  const json body = parseBody(request.body);
  for (const auto& [key, value] : body.items()) {
    if (key != "session" && key != "token") throw ApiError(400, "invalid_argument", "body: unknown field '" + key + "'");
  }
  if (!body.contains("token") || !body["token"].is_number_unsigned()) {
    throw ApiError(400, "invalid_argument", "token is required (the token acquire returned)");
  }
  coordinator::Command command;
  command.type = CommandType::LockRelease;
  command.session = sessionField(body);
  command.name = name;
  command.token = body["token"].get<std::uint64_t>();
  if (request.idempotencyKey) command.idempotencyKey = checkedIdempotencyKey(*request.idempotencyKey);
  node_.submit(command, [this, respond](CommandResult r) {
    if (r.status != Status::Ok) return respond(failure(r, node_.revision()));
    respond(jsonReply(200, json::object(), r.revision));
  }, coordinator::AnswerWhen::Applied);  // (acquire and withdraw read the state: Visible)
}

Reply LocksApi::describe(const std::string& name) {
  auto txn = readState(node_);
  const auto& sm = node_.stateMachine();
  const std::string lock = locks::lockPath(name);
  json holders = json::array(), waiters = json::array();
  const auto page = sm.tree().childrenPage(txn, lock, "", kMaxListed);
  for (const std::string& child : page.names) {
    auto record = sm.tree().get(txn, lock + "/" + child);
    auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (!request) continue;
    json entry = {{"session", session::formatSessionId(request->session)},
                  {"mode", request->shared ? "shared" : "exclusive"},
                  {"owner", request->owner}};
    if (request->granted()) {
      entry["token"] = request->token;
      entry["since"] = request->sinceMs;
      holders.push_back(std::move(entry));
    } else {
      waiters.push_back(std::move(entry));
    }
  }
  json body = {{"name", name}, {"holders", std::move(holders)}, {"waiters", std::move(waiters)}};
  if (page.more) body["truncated"] = true;
  return jsonReply(200, body, sm.revision(txn));
}

Reply LocksApi::check(const std::string& name, const Query& query) {
  const auto token = queryNumber(query, "token");
  if (!token) throw ApiError(400, "invalid_argument", "token is required: check?token=T");
  auto txn = readState(node_);
  const auto& sm = node_.stateMachine();
  const std::string lock = locks::lockPath(name);
  // Holders lead the queue; they are few.
  std::string after;
  for (bool more = true; more;) {
    const auto page = sm.tree().childrenPage(txn, lock, after, 64);
    more = page.more;
    for (const std::string& child : page.names) {
      after = child;
      auto record = sm.tree().get(txn, lock + "/" + child);
      auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
      if (!request) continue;
      if (!request->granted()) {
        more = false;
        break;
      }
      if (request->token == *token) return jsonReply(200, json{{"valid", true}}, sm.revision(txn));
    }
  }
  return errorReply(409, "stale_token", "token " + std::to_string(*token) + " is not held on lock '" + name + "'",
                    sm.revision(txn), json{{"valid", false}});
}

}  // namespace warden::api
