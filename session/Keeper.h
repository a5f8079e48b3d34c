#pragma once
// The leader's record of which sessions are alive: a deadline per session, kept in memory only.
// Keepalives move deadlines; they never enter the log. When a deadline passes, due() names the
// session and the leader proposes its expiry as a replicated command, so every replica removes
// the same ephemeral nodes at the same revision (ARCHITECTURE.md rule 1).
//
// A new leader knows nothing of when clients last spoke to its predecessor, so takeOver() grants
// every session a fresh ttl from that moment: failover never expires a session by itself.
//
// Pure: no clock, no lock. Times are milliseconds of the caller's monotonic clock. The caller
// calls it only while it leads with a valid lease and has applied everything chosen before its
// term, so the table it holds matches the replicated session table.

#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coordinator/Command.h"
#include "coordinator/Status.h"

namespace warden::session {

class Keeper {
 public:
  // An expiry proposed but not applied after this long (the write was lost) is proposed again.
  static constexpr std::uint64_t kRetryExpiryMs = 2000;
  // due() reports a session at most this long after its deadline (see the buckets below).
  static constexpr std::uint64_t kBucketMs = 16;

  // (id, ttl_ms) of every session in the replicated table.
  void takeOver(std::uint64_t nowMs, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& sessions);
  void stepDown();
  bool leading() const { return leading_; }

  // What apply did to the replicated table, reported while leading.
  void created(std::uint64_t id, std::uint64_t ttlMs, std::uint64_t nowMs);
  void ended(std::uint64_t id);
  // Either of the above, for any command the state machine applied.
  void applied(const coordinator::Command& command, const coordinator::CommandResult& result, std::uint64_t nowMs);

  // The session's ttl when it is alive (its deadline moves to now + ttl); nullopt when the
  // session is unknown or its expiry is already under way.
  std::optional<std::uint64_t> keepalive(std::uint64_t id, std::uint64_t nowMs);

  // Sessions whose deadline has passed and whose expiry should be proposed now.
  std::vector<std::uint64_t> due(std::uint64_t nowMs);

  std::size_t size() const { return sessions_.size(); }

  // Deliberate bugs, for tests that prove the simulator's checks can fail. Never set elsewhere.
  struct Bugs {
    // Keep the deadlines across stepDown, and lead again with them instead of a fresh ttl: the
    // clients kept their sessions alive with another leader meanwhile (expiry-early).
    bool keepDeadlinesOnTakeover = false;
  } bugs;

 private:
  // Deadlines sit in buckets of kBucketMs (so due() reports a session up to that much late), looked at once their whole span has passed. A
  // keepalive only moves the deadline, not the bucket; a bucket's entry whose deadline moved on
  // is put into its new bucket then. So each live session costs one look per ttl, not one per
  // scan: with 100,000 sessions a full scan every 50 ms took half of a core.
  struct Entry {
    std::uint64_t deadlineMs;  // while expiring: when to propose the expiry again
    std::uint64_t bucket;      // the bucket holding its one live reference
    std::uint32_t ttlMs;
    bool expiring;
  };
  void track(std::uint64_t id, std::uint64_t deadlineMs, std::uint32_t ttlMs);
  void file(std::uint64_t id, Entry& entry);

  bool leading_ = false;
  std::unordered_map<std::uint64_t, Entry> sessions_;
  std::map<std::uint64_t, std::vector<std::uint64_t>> buckets_;  // bucket -> ids (some stale)
};

}  // namespace warden::session
