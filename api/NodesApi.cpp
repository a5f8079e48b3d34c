#include "api/NodesApi.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "api/JsonCodec.h"
#include "coordinator/Path.h"

namespace warden::api {

using json = nlohmann::ordered_json;
using coordinator::AnswerWhen;
using coordinator::Command;
using coordinator::CommandResult;
using coordinator::Op;
using coordinator::OpType;
using coordinator::Status;

namespace {

constexpr std::size_t kMaxSubtreeNodes = 10'000;

std::optional<std::int64_t> queryVersion(const Query& query) {
  auto version = queryNumber(query, "version");
  if (!version) return std::nullopt;
  return static_cast<std::int64_t>(*version);
}

// The subtree under path as nested {"path","data","stat","children":[...]}, depth first.
json subtreeJson(coordinator::storage::Txn& txn, const coordinator::Tree& tree, const std::string& path,
                 const coordinator::NodeRecord& record, std::size_t& budget) {
  if (budget == 0) {
    throw ApiError(413, "too_large",
                   "the subtree has more than " + std::to_string(kMaxSubtreeNodes) +
                       " nodes; read it level by level with ?children");
  }
  --budget;
  json out = {{"path", path}};
  putData(out, record.data);
  out["stat"] = statJson(record.stat);
  json children = json::array();
  for (const std::string& name : tree.children(txn, path)) {
    std::string child = coordinator::childOf(path, name);
    auto childRecord = tree.get(txn, child);
    if (childRecord) children.push_back(subtreeJson(txn, tree, child, *childRecord, budget));
  }
  out["children"] = std::move(children);
  return out;
}

}  // namespace

void NodesApi::handle(const Request& request, const std::string& path, const Query& query,
                      const Respond& respond) {
  const std::string& method = request.method;
  if (method == "GET" || method == "HEAD") {
    read(path, query, method == "HEAD", respond);
    return;
  }
  if (method == "POST") {
    allowOnly(query, {});
    requireWritable(path);
    Op op = parseCreateBody(path, request.body);
    write(coordinator::txnCommand(std::move(op)),
          [](const CommandResult& r) {
            const auto& result = r.results.front();
            return textReply(201, pathStatJsonText(result.path, *result.stat), r.revision);
          },
          false, respond, request.idempotencyKey);
    return;
  }
  if (method == "PUT") {
    allowOnly(query, {});
    requireWritable(path);
    Op op = parseSetBody(path, request.body);
    write(coordinator::txnCommand(std::move(op)),
          [](const CommandResult& r) {
            const auto& result = r.results.front();
            return textReply(200, pathStatJsonText(result.path, *result.stat), r.revision);
          },
          false, respond, request.idempotencyKey);
    return;
  }
  if (method == "DELETE") {
    allowOnly(query, {"version", "recursive"});
    requireWritable(path);
    if (!parseBody(request.body).empty()) {
      throw ApiError(400, "invalid_argument", "DELETE takes its options in the query (?version=N&recursive)");
    }
    Op op;
    op.type = OpType::Delete;
    op.path = path;
    op.version = queryVersion(query);
    op.recursive = queryFlag(query, "recursive");
    write(coordinator::txnCommand(std::move(op)),
          [](const CommandResult& r) {
            Reply reply;
            reply.status = 204;
            reply.revision = r.revision;
            return reply;
          },
          false, respond, request.idempotencyKey);
    return;
  }
  respond(methodNotAllowed(method, "/v1/nodes", "GET, HEAD, POST, PUT, DELETE", node_.revision()));
}

void NodesApi::read(const std::string& path, const Query& query, bool head, const Respond& respond) {
  // Everything about the request is checked before waiting, so bad input fails at once.
  allowOnly(query, {"children", "recursive", "raw", "consistency", "min_revision", "wait_ms", "limit", "after", "index"});
  ReadShape shape{.head = head,
                  .children = queryFlag(query, "children"),
                  .recursive = queryFlag(query, "recursive"),
                  .raw = queryFlag(query, "raw"),
                  .limit = pageLimit(query),
                  .after = {}};
  if (auto after = query.find("after"); after != query.end()) shape.after = after->second;
  if ((query.count("limit") || query.count("after")) && !shape.children) {
    throw ApiError(400, "invalid_argument", "limit and after page through ?children; add children");
  }
  if (shape.raw && (shape.children || shape.recursive)) {
    throw ApiError(400, "invalid_argument", "raw returns the data alone; it cannot be combined with children or recursive");
  }
  // A blocking read (Consul style): once the node (or its child set) changed after `index`.
  if (watches_.blockingRead(path, shape.children, false, query, [this, path, shape] { return get(path, shape); }, respond)) {
    return;
  }
  answerRead(node_, query, [this, path, shape] { return get(path, shape); }, respond);
}

Reply NodesApi::tornSubtree(const std::string& path) {
  // Test-only defect (--test-bug torn-reads): the node and its children's names from one state,
  // then each child (one level) from a later state of its own, the second a moment after the
  // first, so that other writes land in between. The outside-in transaction check must catch it.
  // (One pause, not one a child: the check's own reads of a thousand children stay quick.)
  json out = {{"path", path}};
  std::vector<std::string> names;
  std::uint64_t revision = 0;
  {
    auto txn = readState(node_);
    auto record = node_.stateMachine().tree().get(txn, path);
    if (!record) return errorReply(404, "not_found", path + " does not exist", node_.revision());
    putData(out, record->data);
    out["stat"] = statJson(record->stat);
    names = node_.stateMachine().tree().children(txn, path);
    revision = node_.stateMachine().revision(txn);
  }
  json children = json::array();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::string child = coordinator::childOf(path, names[i]);
    auto txn = node_.read();
    auto record = node_.stateMachine().tree().get(txn, child);
    if (!record) continue;
    json c = {{"path", child}};
    putData(c, record->data);
    c["stat"] = statJson(record->stat);
    c["children"] = json::array();
    children.push_back(std::move(c));
  }
  out["children"] = std::move(children);
  return jsonReply(200, out, revision);
}

Reply NodesApi::get(const std::string& path, const ReadShape& shape) {
  const bool head = shape.head, children = shape.children, recursive = shape.recursive, raw = shape.raw;
  if (recursive && !head && node_.bugs().tornReads) return tornSubtree(path);
  auto txn = readState(node_);
  const auto& sm = node_.stateMachine();
  const std::uint64_t revision = sm.revision(txn);
  auto record = sm.tree().get(txn, path);
  if (!record) {
    if (head) return Reply{404, {}, "application/json", revision, {}, nullptr, {}};
    return errorReply(404, "not_found", path + " does not exist", revision);
  }
  if (head) return Reply{200, {}, "application/json", revision, {}, nullptr, {}};
  if (raw) return Reply{200, std::move(record->data), "application/octet-stream", revision, {}, nullptr, {}};
  if (recursive) {
    std::size_t budget = kMaxSubtreeNodes;
    return jsonReply(200, subtreeJson(txn, sm.tree(), path, *record, budget), revision);
  }
  if (!children) return textReply(200, nodeJsonText(path, record->data, record->stat), revision);
  json body = {{"path", path}};
  putData(body, record->data);
  body["stat"] = statJson(record->stat);
  auto page = sm.tree().childrenPage(txn, path, shape.after, shape.limit);
  if (page.more) body["next"] = page.names.back();
  body["children"] = std::move(page.names);
  return jsonReply(200, body, revision);
}

void NodesApi::txn(const Request& request, const Query& query, const Respond& respond) {
  if (request.method != "POST") {
    respond(methodNotAllowed(request.method, "/v1/txn (use POST)", "POST", node_.revision()));
    return;
  }
  allowOnly(query, {});
  json body = parseBody(request.body);
  for (auto& [key, value] : body.items()) {
    if (key != "ops") throw ApiError(400, "invalid_argument", "body: unknown field '" + key + "'");
  }
  auto ops = body.find("ops");
  if (ops == body.end() || !ops->is_array() || ops->empty() || ops->size() > coordinator::kMaxTxnOps) {
    throw ApiError(400, "invalid_argument", "'ops' must be an array of 1 to 1024 ops");
  }
  Command command;
  command.ops.reserve(ops->size());
  for (std::size_t i = 0; i < ops->size(); ++i) {
    try {
      command.ops.push_back(parseTxnOp((*ops)[i]));
    } catch (const ApiError& e) {
      throw ApiError(e.status(), e.code(), "op " + std::to_string(i) + ": " + e.what(), json{{"failed_op", i}});
    }
  }
  write(std::move(command),
        [](const CommandResult& r) {
          json results = json::array();
          for (const auto& result : r.results) results.push_back(opResultJson(result));
          return jsonReply(200, json{{"results", std::move(results)}, {"revision", r.revision}}, r.revision);
        },
        true, respond, request.idempotencyKey);
}

void NodesApi::write(Command command, std::function<Reply(const CommandResult&)> onOk, bool isTxn,
                     const Respond& respond, const std::optional<std::string>& idempotencyKey) {
  if (idempotencyKey) command.idempotencyKey = checkedIdempotencyKey(*idempotencyKey);
  // The reply is built from the result alone (and from node_.revision() at most as a floor).
  node_.submit(std::move(command), [this, onOk = std::move(onOk), isTxn, respond](CommandResult r) {
    if (r.status == Status::Ok) {
      // Built where it is sent: this runs on the replicated log's driver thread.
      respond(deferredReply([onOk, r = std::move(r)] { return onOk(r); }));
      return;
    }
    unsigned status = httpStatus(r.status);
    // A transaction whose condition failed is a conflict, whatever the op's own error was.
    if (isTxn && status == 404) status = 409;
    json extra = nullptr;
    if (isTxn && r.failedOp) {
      extra = json{{"failed_op", *r.failedOp}};
      r.message = "op " + std::to_string(*r.failedOp) + ": " + r.message;
    }
    respond(errorReply(status, errorCode(r.status), r.message, std::max(r.revision, node_.revision()), extra));
  }, AnswerWhen::Applied);
}

}  // namespace warden::api
