#pragma once
// What one call into a Replica produced. The caller must make `records` durable, then release
// and send the messages, then apply `committed` in order. Persist-before-send is enforced by
// the types: the messages come out only in exchange for a Persisted proof, and a Persisted is
// made only by LogStore::persist over this very Ready.

#include <cstdint>
#include <iterator>
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
class LogStore {
 public:
  virtual ~LogStore() = default;

  // Writes and syncs the Ready's records; only then may its messages leave.
  Persisted persist(const Ready& ready) {
    write(ready.records);
    sync();
    return Persisted(ready);
  }

  // The same for several Readies at once: one write, one sync. Their records are moved out.
  std::vector<Persisted> persistAll(std::vector<Ready>& readies) {
    std::vector<Record> all;
    for (auto& ready : readies) {
      std::move(ready.records.begin(), ready.records.end(), std::back_inserter(all));
      ready.records.clear();
    }
    write(all);
    sync();
    std::vector<Persisted> proofs;
    for (const auto& ready : readies) proofs.push_back(Persisted(ready));
    return proofs;
  }

  // Marks the disk as this replica's (DurableState::started) before it first votes.
  void markStarted() {
    write({LearnerRecord{false}});
    sync();
  }

  virtual DurableState load() = 0;

 protected:
  virtual void write(const std::vector<Record>& records) = 0;
  virtual void sync() = 0;
};

}  // namespace warden::coordinator::paxos
