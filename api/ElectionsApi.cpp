#include "api/ElectionsApi.h"

#include "api/JsonCodec.h"
#include "api/LocksApi.h"
#include "coordinator/Path.h"
#include "locks/LockQueue.h"

namespace warden::api {

using json = nlohmann::ordered_json;
using coordinator::CommandResult;
using coordinator::CommandType;
using coordinator::Status;

namespace {

std::string electionName(const std::string& text) {
  if (auto problem = locks::lockNameProblem(text)) {
    std::string message = *problem;
    if (message.rfind("a lock name", 0) == 0) message.replace(0, 11, "an election name");
    throw ApiError(400, "invalid_argument", message);
  }
  return text;
}

std::string valueOf(const json& body) {
  if (!body.contains("value")) return {};
  if (!body["value"].is_string() || body["value"].get<std::string>().size() > locks::kMaxOwnerBytes) {
    throw ApiError(400, "invalid_argument", "value must be a string of at most 1024 bytes");
  }
  return body["value"].get<std::string>();
}

void onlyFields(const json& body, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (const char* name : allowed) ok = ok || key == name;
    if (!ok) throw ApiError(400, "invalid_argument", "body: unknown field '" + key + "'");
  }
}

}  // namespace

void ElectionsApi::handle(const Request& request, const std::string& rest, const Query& query, const Respond& respond) {
  const auto [rawName, action] = queueRoute(rest, "/v1/elections");
  const std::string name = electionName(rawName);
  const std::string& method = request.method;
  if (action == "campaign" || action == "proclaim" || action == "resign") {
    if (method != "POST") return respond(methodNotAllowed(method, "/v1/elections/{name}/" + action, "POST", node_.revision()));
    allowOnly(query, {});
    return action == "campaign" ? campaign(request, name, respond) : command(request, name, action, respond);
  }
  if (!action.empty()) throw ApiError(404, "not_found", "no route /v1/elections/{name}/" + action + " (see API.md)");
  if (method != "GET") return respond(methodNotAllowed(method, "/v1/elections/{name}", "GET", node_.revision()));
  allowOnly(query, {"consistency", "index", "wait_ms"});
  if (watches_.blockingRead(locks::electionPath(name), false, true, query, [this, name] { return describe(name); }, respond)) {
    return;
  }
  answerRead(node_, query, [this, name] { return describe(name); }, respond);
}

void ElectionsApi::campaign(const Request& request, const std::string& name, const Respond& respond) {
  const json body = parseBody(request.body);
  onlyFields(body, {"session", "value", "wait_ms"});
  std::uint64_t waitMs = 0;
  if (body.contains("wait_ms")) waitMs = static_cast<std::uint64_t>(waitField(body["wait_ms"]).count());
  coordinator::Command c;
  c.type = CommandType::ElectionCampaign;
  c.session = sessionField(body);
  c.name = name;
  c.text = valueOf(body);
  // As for a lock's acquire: a campaign is the session's own candidacy, found again by a repeat.
  if (request.idempotencyKey) checkedIdempotencyKey(*request.idempotencyKey);
  node_.submit(c, [this, name, waitMs, respond, hangup = request.hangup](CommandResult r) {
    if (r.status != Status::Ok) {
      return respond(errorReply(httpStatus(r.status), errorCode(r.status), r.message, std::max(r.revision, node_.revision())));
    }
    if (r.results.empty()) return respond(errorReply(500, "internal", "campaign answered without its candidacy", node_.revision()));
    const std::string path = r.results[0].path;
    {
      // Leading already (at once, or since an earlier campaign): no wait.
      auto txn = node_.read();
      auto record = node_.stateMachine().tree().get(txn, path);
      auto candidacy = record ? locks::decodeRequest(record->data) : std::nullopt;
      if (!candidacy || candidacy->granted()) return answerCampaign(name, path, respond);
    }
    try {
      // Woken by a change of its own candidacy only: a resignation wakes the next candidate. A
      // client that hangs up ends the wait (its candidacy stays, for its session's life).
      watches_.waitForChange(
          path, false, r.revision, std::chrono::milliseconds(waitMs),
          [this, name, path, respond] { answerCampaign(name, path, respond); }, false, hangup);
    } catch (const ApiError& e) {
      respond(errorReply(e, node_.revision()));
    }
  });
}

void ElectionsApi::answerCampaign(const std::string& name, const std::string& path, const Respond& respond) {
  auto txn = node_.read();
  const auto& sm = node_.stateMachine();
  const std::uint64_t revision = sm.revision(txn);
  auto record = sm.tree().get(txn, path);
  auto candidacy = record ? locks::decodeRequest(record->data) : std::nullopt;
  if (!candidacy) {
    respond(errorReply(404, "session_not_found", "the candidacy ended before it led election '" + name + "' (its session ended?)",
                       revision));
    return;
  }
  if (candidacy->granted()) {
    respond(jsonReply(200, json{{"leader", true}, {"term", candidacy->token}, {"value", candidacy->owner}}, revision));
    return;
  }
  // Still queued (it stays, for the session's life): how many come before it.
  std::size_t position = 0;
  const std::string election = locks::electionPath(name);
  std::string after;
  const std::string self(coordinator::nameOf(path));
  for (bool more = true; more;) {
    const auto page = sm.tree().childrenPage(txn, election, after, 1000);
    more = page.more;
    for (const std::string& child : page.names) {
      after = child;
      if (child == self) {
        more = false;
        break;
      }
      ++position;
    }
  }
  respond(jsonReply(202, json{{"leader", false}, {"position", position}}, revision));
}

void ElectionsApi::command(const Request& request, const std::string& name, const std::string& action, const Respond& respond) {
  const json body = parseBody(request.body);
  coordinator::Command c;
  c.session = sessionField(body);
  c.name = name;
  if (action == "proclaim") {
    onlyFields(body, {"session", "term", "value"});
    if (!body.contains("term") || !body["term"].is_number_unsigned()) {
      throw ApiError(400, "invalid_argument", "term is required (the term campaign returned)");
    }
    c.type = CommandType::ElectionProclaim;
    c.token = body["term"].get<std::uint64_t>();
    c.text = valueOf(body);
  } else {
    onlyFields(body, {"session"});
    c.type = CommandType::ElectionResign;
  }
  if (request.idempotencyKey) c.idempotencyKey = checkedIdempotencyKey(*request.idempotencyKey);
  node_.submit(c, [this, respond](CommandResult r) {
    if (r.status != Status::Ok) {
      return respond(errorReply(httpStatus(r.status), errorCode(r.status), r.message, std::max(r.revision, node_.revision())));
    }
    respond(jsonReply(200, json::object(), r.revision));
  });
}

Reply ElectionsApi::describe(const std::string& name) {
  auto txn = readState(node_);
  const auto& sm = node_.stateMachine();
  const std::string election = locks::electionPath(name);
  json leader = nullptr;
  std::uint64_t candidates = 0;
  if (auto record = sm.tree().get(txn, election)) candidates = record->stat.numChildren;
  const auto first = sm.tree().childrenPage(txn, election, "", 1);
  if (!first.names.empty()) {
    auto record = sm.tree().get(txn, election + "/" + first.names[0]);
    auto candidacy = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (candidacy && candidacy->granted()) {
      leader = json{{"session", session::formatSessionId(candidacy->session)},
                    {"value", candidacy->owner},
                    {"term", candidacy->token},
                    {"since", candidacy->sinceMs}};
    }
  }
  return jsonReply(200, json{{"leader", std::move(leader)}, {"candidates", candidates}}, sm.revision(txn));
}

}  // namespace warden::api
