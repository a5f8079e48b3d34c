#pragma once
// The replicated session table's storage layout in LMDB, written only by StateMachine::apply.
//   sessions: u64 id (big-endian)          -> encoded SessionRecord
//   owned:    u64 id ++ shortKey(path)      -> path    (the session's ephemeral nodes)
// Liveness (who sent a keepalive when) is not here: only the leader tracks it, in memory
// (session::Keeper), and expiry reaches this table as a replicated command.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/storage/Lmdb.h"

namespace warden::session {

namespace storage = coordinator::storage;

inline constexpr std::uint64_t kMinTtlMs = 1000;
inline constexpr std::uint64_t kMaxTtlMs = 600'000;
inline constexpr std::size_t kMaxNameBytes = 1024;

struct SessionRecord {
  std::uint64_t ttlMs = 0;
  std::string name;
  std::uint64_t created = 0;  // revision
  std::uint64_t ctime = 0;    // leader-stamped ms since the epoch

  bool operator==(const SessionRecord&) const = default;
};

std::string encodeSessionRecord(const SessionRecord& record);
SessionRecord decodeSessionRecord(std::string_view bytes);  // throws DecodeError

// Session ids travel as 16 lowercase hex digits (1 to 16 are read); 0 is never an id.
std::string formatSessionId(std::uint64_t id);
std::optional<std::uint64_t> parseSessionId(std::string_view text);

class SessionTable {
 public:
  struct Dbs {
    MDB_dbi sessions;
    MDB_dbi owned;
  };
  explicit SessionTable(Dbs dbs) : dbs_(dbs) {}

  std::optional<SessionRecord> get(storage::Txn& txn, std::uint64_t id) const;
  void put(storage::Txn& txn, std::uint64_t id, const SessionRecord& record) const;
  void erase(storage::Txn& txn, std::uint64_t id) const;  // the record and its ownership rows
  void forEach(storage::Txn& txn, const std::function<void(std::uint64_t, const SessionRecord&)>& visit) const;
  std::size_t count(storage::Txn& txn) const;
  // How many ephemeral nodes the session owns, counting no further than `limit`.
  std::size_t ephemeralsUpTo(storage::Txn& txn, std::uint64_t id, std::size_t limit) const;
  // Sessions with ids above `after`, in id order, while `visit` returns true.
  void forEachAfter(storage::Txn& txn, std::uint64_t after,
                    const std::function<bool(std::uint64_t, const SessionRecord&)>& visit) const;
  // (id, ttl_ms) of every session: what a leader's Keeper takes over.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ttls(storage::Txn& txn) const;

  void addEphemeral(storage::Txn& txn, std::uint64_t id, std::string_view path) const;
  void removeEphemeral(storage::Txn& txn, std::uint64_t id, std::string_view path) const;
  std::vector<std::string> ephemerals(storage::Txn& txn, std::uint64_t id) const;  // sorted

 private:
  Dbs dbs_;
};

}  // namespace warden::session
