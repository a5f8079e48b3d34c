#include "api/Reads.h"

#include <algorithm>
#include <chrono>

#include "api/JsonCodec.h"

namespace warden::api {

bool queryFlag(const Query& query, const char* name) {
  auto it = query.find(name);
  if (it == query.end()) return false;
  const std::string& v = it->second;
  if (v.empty() || v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  throw ApiError(400, "invalid_argument", std::string("query parameter '") + name + "' must be true or false");
}

void allowOnly(const Query& query, std::initializer_list<const char*> names) {
  for (const auto& parameter : query) {
    const std::string& key = parameter.first;  // not a structured binding: clang 14 cannot capture one
    if (std::none_of(names.begin(), names.end(), [&](const char* n) { return key == n; })) {
      throw ApiError(400, "invalid_argument", "unknown query parameter '" + key + "'");
    }
  }
}

std::optional<std::uint64_t> queryNumber(const Query& query, const char* name) {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  const std::string& text = it->second;
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw ApiError(400, "invalid_argument", std::string(name) + " must be a non-negative integer");
  }
  return std::stoull(text);
}

std::string checkedIdempotencyKey(const std::string& key) {
  const bool printable = std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
  if (key.empty() || key.size() > 128 || !printable) {
    throw ApiError(400, "invalid_argument", "Idempotency-Key must be 1 to 128 printable ASCII characters");
  }
  return key;
}

std::size_t pageLimit(const Query& query) {
  const auto limit = queryNumber(query, "limit");
  if (limit && (*limit < 1 || *limit > kMaxPage)) {
    throw ApiError(400, "invalid_argument", "limit must be between 1 and " + std::to_string(kMaxPage));
  }
  return limit ? static_cast<std::size_t>(*limit) : kMaxPage;
}

coordinator::storage::Txn readState(coordinator::Node& node) {
  coordinator::storage::Txn txn = node.read();
  if (node.stateMachine().installing(txn)) {
    throw ApiError(503, "unavailable", "this node is installing a snapshot of the state; ask another node");
  }
  return txn;
}

void answerReadChecks(const Query& query) {
  auto consistency = query.find("consistency");
  if (consistency != query.end() && consistency->second != "linearizable" && consistency->second != "stale") {
    throw ApiError(400, "invalid_argument", "consistency must be linearizable or stale");
  }
  if (query.count("wait_ms") && !query.count("min_revision")) {
    throw ApiError(400, "invalid_argument", "wait_ms goes with min_revision or index");
  }
}

void answerRead(coordinator::Node& node, const Query& query, std::function<Reply()> build, const Respond& respond) {
  answerReadChecks(query);
  auto consistency = query.find("consistency");
  if (auto minRevision = queryNumber(query, "min_revision")) {
    // Read-your-writes on any node: wait until this node has applied R, then answer locally.
    const auto waitMs = queryNumber(query, "wait_ms").value_or(5000);
    if (waitMs > 300'000) throw ApiError(400, "invalid_argument", "wait_ms is at most 300000");
    const std::uint64_t wanted = *minRevision;
    const bool queued = node.waitForRevision(wanted, std::chrono::milliseconds(waitMs),
                                             [&node, build, respond, wanted, waitMs](bool reached) {
      if (!reached) {
        respond(errorReply(503, "unavailable",
                           "revision " + std::to_string(wanted) + " was not applied here within " +
                               std::to_string(waitMs) + " ms",
                           node.revision()));
        return;
      }
      respond(deferredReply(build));  // built on the connection's thread
    });
    if (!queued) throw ApiError(429, "too_many_requests", "too many reads are waiting for a revision");
    return;
  }
  if (consistency != query.end() && consistency->second == "stale") {
    respond(deferredReply(build));  // built on the connection's thread
    return;
  }
  // Linearizable: wait until this node's state includes every write acknowledged before now.
  node.readBarrier([&node, build, respond](coordinator::Status status) {
    if (status != coordinator::Status::Ok) {
      respond(errorReply(httpStatus(status), errorCode(status),
                         "no leader with a majority confirmed this read in time; "
                         "?consistency=stale answers from this node's state at once",
                         node.revision()));
      return;
    }
    respond(deferredReply(build));  // built on the connection's thread
  });
}

}  // namespace warden::api
