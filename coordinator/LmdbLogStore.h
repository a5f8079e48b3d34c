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

#include <map>
#include <memory>
#include <optional>

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
  std::unique_ptr<storage::Wal> wal_;
  std::optional<paxos::DurableState> loaded_;  // what open() read, until load() takes it
  paxos::DurableState durable_;                // promise, learner and compaction (no accepted values)
  std::uint64_t folded_ = 0;
  std::map<std::uint64_t, paxos::Slot> segmentMaxSlot_;  // by first sequence number
  Encoder recordBytes_;                                   // a turn's records, encoded
};

}  // namespace warden::coordinator
