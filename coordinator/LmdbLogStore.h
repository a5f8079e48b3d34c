#pragma once
// The Paxos acceptor's durable state. Its records go to a write-ahead log in the data directory
// (`wal/`), one append and one flush per persist; LMDB, in the same environment as the
// namespace, holds what they fold into at each compaction:
//   paxos_meta: "promised" -> ballot, "compacted" -> slot, "learner" -> 0/1,
//               "wal_id" -> the log that goes with this file, "wal_folded" -> its last batch
//               whose promise and learner state the rows above include
//   paxos_log:  slot (big-endian) -> ballot and value (only from before the log existed)
// Accepted values stay in the log's segments until compaction passes them; a segment goes once
// every slot in it is compacted and the fold covers it.
//
// The applied state commits without a flush (NodeCore::commitApply) and is rebuilt from the log
// after a machine crash, with two exceptions that flush it first: a compaction (the slots it
// drops must be in the durable state) and a learner's turn to voter (the slots it learned by
// catch-up are in no acceptor log, so they must be durable before its vote counts).

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "coordinator/Bytes.h"
#include "coordinator/paxos/Ready.h"
#include "coordinator/storage/Lmdb.h"
#include "coordinator/storage/Wal.h"

namespace warden::coordinator {

// One write-ahead log batch: the records, each behind a tag of its kind.
std::string encodeRecords(const std::vector<paxos::Record>& records);
void encodeRecordsInto(Encoder& out, const std::vector<paxos::Record>& records);  // appended to `out`

class LmdbLogStore : public paxos::LogStore {
 public:
  explicit LmdbLogStore(storage::Env& env, std::size_t walSegmentBytes = std::size_t{64} << 20);
  ~LmdbLogStore() override;

  paxos::DurableState load() override;

  // Flushes behind the driver from here on: flushBehind() wakes a thread of the store's own,
  // which syncs the log and then calls `flushed` (the driver's nudge). Without it, flushBehind()
  // syncs on the caller's thread.
  void startFlusher(std::function<void()> flushed);
  // Stops that thread, after the flush it is in (before the driver that `flushed` wakes goes).
  void stopFlusher();
  void flushBehind() override;

 protected:
  void write(const std::vector<paxos::Record>& records) override;
  void sync() override;

 private:
  void open();
  void fold(std::uint64_t seq);

  storage::Env& env_;
  std::size_t walSegmentBytes_;
  MDB_dbi meta_;
  MDB_dbi log_;
  std::shared_ptr<storage::Wal> wal_;  // replaced only by the driver; the flusher takes a copy
  std::mutex walMutex_;                  // for that copy
  void flushLoop();
  std::function<void()> flushed_;
  std::thread flusher_;
  std::mutex flushMutex_;
  std::condition_variable flushWake_;
  bool flushWanted_ = false;
  bool flusherStopping_ = false;
  std::optional<paxos::DurableState> loaded_;  // what open() read, until load() takes it
  paxos::DurableState durable_;                // promise, learner and compaction (no accepted values)
  std::uint64_t folded_ = 0;
  std::map<std::uint64_t, paxos::Slot> segmentMaxSlot_;  // by first sequence number
  Encoder recordBytes_;                                   // a turn's records, encoded
};

}  // namespace warden::coordinator
