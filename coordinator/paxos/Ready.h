#pragma once
// What one call into a Replica produced. The caller must make `records` durable, then release
// and send the messages, then apply `committed` in order. Persist-before-send is enforced by
// the types: the messages come out only in exchange for a Persisted proof, and a Persisted is
// made only by a LogStore over this very Ready, once its records are durable (persist, or
// proofFor after a flush behind). The leader's Accepts alone may go first (releaseAccepts).

#include <atomic>
#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

#include "coordinator/paxos/Message.h"
#include "coordinator/paxos/Record.h"

namespace warden::coordinator::paxos {

class Persisted;

struct ReadReady {
  std::uint64_t id = 0;
  Slot index = 0;  // answer once this slot is applied
};

// A proposal this replica could not take (it does not lead); `leaderHint` may know better.
struct Rejected {
  std::vector<std::string> commands;
  NodeId leaderHint = 0;  // 0 when unknown
};

class Ready {
 public:
  Ready() = default;
  Ready(Ready&&) = default;
  Ready& operator=(Ready&&) = default;
  Ready(const Ready&) = delete;
  Ready& operator=(const Ready&) = delete;

  std::vector<Record> records;          // persist these first
  std::vector<ChosenEntry> committed;   // newly chosen, contiguous, in slot order: apply them
  std::vector<ReadReady> reads;         // read-index requests now answerable
  std::vector<std::uint64_t> failedReads;  // read requests this replica can no longer serve
  std::vector<Rejected> rejected;       // proposals to send elsewhere
  std::vector<NodeId> snapshotNeeded;   // peers behind this replica's compacted log

  bool empty() const;
  bool hasMessages() const { return !messages_.empty(); }

  // The messages, in exchange for proof that `records` are durable. Callable once.
  std::vector<Message> release(const Persisted& proof);
  // The leader's Accepts, which need no proof: an Accept carries no acceptor state of its
  // sender (the leader's own vote, made when the Accept to itself is stepped, goes in a Ready of
  // its own and counts only once that Ready's records are durable), so it may leave, or reach
  // this node's acceptor, before any record of this node is durable.
  // (`withVotes`, a planted bug only: the Accepted answers too, votes not yet durable.)
  std::vector<Message> releaseAccepts(bool withVotes = false);

 private:
  friend class Replica;
  friend class Persisted;
  std::uint64_t id_ = 0;
  std::vector<Message> messages_;
};

// Proof that one Ready's records are durable. Only LogStore::persist makes one.
class Persisted {
 private:
  friend class LogStore;
  explicit Persisted(const Ready& ready) : readyId_(ready.id_) {}
  friend class Ready;
  std::uint64_t readyId_;
};

// Where a replica's acceptor state lives: LMDB in production, memory in the simulator.
//
// Records are made durable one of two ways. persist writes and syncs before it returns
// (a sync covers every write before it). writeBehind writes and returns a ticket, and a flush
// asked for with flushBehind, which ends later (on a flusher thread, or the simulator's event),
// makes them durable: durable() then reaches the ticket, and proofFor hands out the proofs.
// Every write is numbered by a ticket, in order; durable() is the last one a flush covered.
class LogStore {
 public:
  virtual ~LogStore() = default;

  // Writes and syncs the Ready's records; only then may its messages leave.
  Persisted persist(const Ready& ready) {
    writeCounted(ready.records);
    syncCounted();
    return Persisted(ready);
  }

  // Writes the Readies' records (moved out) without waiting for them to be durable. Returns the
  // ticket that durable() must reach before their messages may leave (the last write's, when
  // they have none: what they say may rest on it).
  std::uint64_t writeBehind(std::vector<Ready>& readies) {
    writeCounted(takeRecords(readies));
    return written_;
  }
  // Syncs everything written so far before it returns.
  void flushNow() { syncCounted(); }
  // Asks for a flush of everything written so far; durable() moves when it ends. The default
  // flushes at once, on the caller's thread.
  virtual void flushBehind() { syncCounted(); }
  // The newest ticket durable: every write up to it is on disk.
  std::uint64_t durable() const { return durable_.load(std::memory_order_acquire); }
  std::uint64_t written() const { return written_; }
  // The proof for a Ready written (writeBehind) under `ticket`, once a flush covered it.
  std::optional<Persisted> proofFor(const Ready& ready, std::uint64_t ticket) const {
    if (ticket > durable()) return std::nullopt;
    return Persisted(ready);
  }

  // Marks the disk as this replica's (DurableState::started) before it first votes.
  void markStarted() {
    writeCounted({LearnerRecord{false}});
    syncCounted();
  }

  virtual DurableState load() = 0;

 protected:
  virtual void write(const std::vector<Record>& records) = 0;
  // Makes every write before it durable (thread-safe against write() where flushBehind hands
  // it to another thread).
  virtual void sync() = 0;
  // For a flush that ran elsewhere: every ticket up to `ticket` is durable.
  void markDurable(std::uint64_t ticket) {
    std::uint64_t seen = durable_.load(std::memory_order_relaxed);
    while (seen < ticket && !durable_.compare_exchange_weak(seen, ticket, std::memory_order_acq_rel)) {
    }
  }
  // The last ticket written, readable from a flusher thread: taken before its sync, it is what
  // that sync covers.
  std::uint64_t writtenForFlush() const { return writtenShared_.load(std::memory_order_acquire); }

 private:
  static std::vector<Record> takeRecords(std::vector<Ready>& readies) {
    std::vector<Record> all;
    for (auto& ready : readies) {
      std::move(ready.records.begin(), ready.records.end(), std::back_inserter(all));
      ready.records.clear();
    }
    return all;
  }
  void writeCounted(const std::vector<Record>& records) {
    if (records.empty()) return;
    write(records);
    ++written_;
    writtenShared_.store(written_, std::memory_order_release);
  }
  void syncCounted() {
    const std::uint64_t upTo = written_;
    sync();
    markDurable(upTo);
  }

  std::uint64_t written_ = 0;  // the caller's thread
  std::atomic<std::uint64_t> writtenShared_{0};
  std::atomic<std::uint64_t> durable_{0};
};

}  // namespace warden::coordinator::paxos
