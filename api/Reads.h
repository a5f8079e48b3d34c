#pragma once
// Query parameters, and answering a read at the consistency its query asks for
// (API.md "Reads and consistency"). Shared by every read route.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>

#include "api/Reply.h"
#include "coordinator/Node.h"

namespace warden::api {

using Query = std::map<std::string, std::string>;

// Flags in a query: "?children", "?children=true" or "=1" are on; "=false" or "=0" off.
bool queryFlag(const Query& query, const char* name);
// Rejects any parameter not in the list (400 invalid_argument).
void allowOnly(const Query& query, std::initializer_list<const char*> names);
// A non-negative integer parameter, if present (400 invalid_argument when malformed).
std::optional<std::uint64_t> queryNumber(const Query& query, const char* name);
// Lists come in pages: ?limit=N (1 to kMaxPage, kMaxPage when absent).
inline constexpr std::size_t kMaxPage = 10'000;
std::size_t pageLimit(const Query& query);
// The Idempotency-Key header's value, if valid (1 to 128 printable ASCII); else 400.
std::string checkedIdempotencyKey(const std::string& key);

// ?consistency=stale answers at once from this node's state; ?min_revision=R[&wait_ms=W] once
// this node has applied R; otherwise the read is linearizable, answered after a read barrier.
// The query's own parameters are checked before anything waits. build() may run on another
// thread, after this returns; whatever it throws becomes an error reply.
void answerRead(coordinator::Node& node, const Query& query, std::function<Reply()> build, const Respond& respond);
// The checks answerRead makes of its query, for a caller that waits before calling it.
void answerReadChecks(const Query& query);
// A read transaction on this node's replicated state, for a reply built from it: 503
// unavailable while the node installs a snapshot (its tables are then half old, half new).
coordinator::storage::Txn readState(coordinator::Node& node);

}  // namespace warden::api
