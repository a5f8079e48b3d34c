#include "coordinator/LmdbLogStore.h"

#include <cstdio>

#include "coordinator/ThreadName.h"
#include "coordinator/paxos/MessageCodec.h"

namespace warden::coordinator {

namespace {
constexpr std::string_view kPromised = "promised";
constexpr std::string_view kCompacted = "compacted";
constexpr std::string_view kLearner = "learner";
constexpr std::string_view kWalId = "wal_id";
constexpr std::string_view kWalFolded = "wal_folded";

enum RecordTag : std::uint8_t { kPromise = 1, kAccept = 2, kCompact = 3, kLearnerTag = 4 };

void encodeRecord(Encoder& out, const paxos::Record& record) {
  if (const auto* p = std::get_if<paxos::PromiseRecord>(&record)) {
    out.u8(kPromise);
    paxos::encodeBallot(out, p->promised);
  } else if (const auto* a = std::get_if<paxos::AcceptRecord>(&record)) {
    out.u8(kAccept);
    out.varint(a->slot);
    paxos::encodeBallot(out, a->ballot);
    paxos::encodeValue(out, a->value);
  } else if (const auto* c = std::get_if<paxos::CompactRecord>(&record)) {
    out.u8(kCompact);
    out.varint(c->upTo);
  } else if (const auto* l = std::get_if<paxos::LearnerRecord>(&record)) {
    out.u8(kLearnerTag);
    out.boolean(l->learner);
  }
}

paxos::Record decodeRecord(Decoder& in) {
  switch (in.u8()) {
    case kPromise:
      return paxos::PromiseRecord{paxos::decodeBallot(in)};
    case kAccept: {
      paxos::AcceptRecord a;
      a.slot = in.varint();
      a.ballot = paxos::decodeBallot(in);
      a.value = paxos::decodeValue(in);
      return a;
    }
    case kCompact:
      return paxos::CompactRecord{in.varint()};
    case kLearnerTag:
      return paxos::LearnerRecord{in.boolean()};
    default:
      throw DecodeError("unknown record type");
  }
}

}  // namespace

void encodeRecordsInto(Encoder& out, const std::vector<paxos::Record>& records) {
  for (const auto& record : records) encodeRecord(out, record);
}

std::string encodeRecords(const std::vector<paxos::Record>& records) {
  Encoder out;
  encodeRecordsInto(out, records);
  return out.take();
}

namespace {
std::string encodeBallot(const paxos::Ballot& ballot) {
  Encoder out;
  paxos::encodeBallot(out, ballot);
  return out.take();
}
}  // namespace

LmdbLogStore::LmdbLogStore(storage::Env& env, std::size_t walSegmentBytes)
    : env_(env), walSegmentBytes_(walSegmentBytes) {
  storage::Txn txn = storage::Txn::write(env_);
  meta_ = txn.openDb("paxos_meta");
  log_ = txn.openDb("paxos_log");
  txn.commit();
}

LmdbLogStore::~LmdbLogStore() { stopFlusher(); }

void LmdbLogStore::startFlusher(std::function<void()> flushed) {
  if (flusher_.joinable()) return;
  flushed_ = std::move(flushed);
  flusher_ = std::thread([this] { flushLoop(); });
}

void LmdbLogStore::stopFlusher() {
  {
    std::lock_guard lock(flushMutex_);
    flusherStopping_ = true;
  }
  flushWake_.notify_one();
  if (flusher_.joinable()) flusher_.join();
}

void LmdbLogStore::flushBehind() {
  // With --fsync off a flush forces nothing: no thread to wake, and no wait for it.
  if (!flusher_.joinable() || !env_.fsync()) return flushNow();
  {
    std::lock_guard lock(flushMutex_);
    flushWanted_ = true;
  }
  flushWake_.notify_one();
}

void LmdbLogStore::flushLoop() {
  nameThisThread("warden-flusher");
  for (;;) {
    {
      std::unique_lock lock(flushMutex_);
      flushWake_.wait(lock, [this] { return flushWanted_ || flusherStopping_; });
      if (flusherStopping_) return;
      flushWanted_ = false;
    }
    // Taken before the sync: what the sync covers (a write after it waits for the next).
    const std::uint64_t upTo = writtenForFlush();
    try {
      sync();
    } catch (const std::exception& e) {
      // A vote that cannot be made durable must never be acted on: stop loudly, as the driver does.
      std::fprintf(stderr, "warden: fatal storage error flushing the replicated log: %s\n", e.what());
      std::abort();
    }
    markDurable(upTo);
    flushed_();
  }
}

paxos::DurableState LmdbLogStore::load() {
  if (!loaded_) {
    std::lock_guard lock(walMutex_);
    wal_.reset();  // written since it was read: read it all again
  }
  open();
  paxos::DurableState state = std::move(*loaded_);
  loaded_.reset();
  return state;
}

void LmdbLogStore::open() {
  if (wal_) return;
  paxos::DurableState state;
  std::uint64_t walId = 0;
  folded_ = 0;
  try {
    storage::Txn txn = storage::Txn::read(env_);
    if (auto promised = txn.get(meta_, kPromised)) {
      Decoder in(*promised);
      state.promised = paxos::decodeBallot(in);
    }
    if (auto compacted = txn.get(meta_, kCompacted)) state.compactedUpTo = storage::decodeU64Key(*compacted);
    if (auto learner = txn.get(meta_, kLearner)) {
      state.learner = *learner == "1";
      state.started = true;
    }
    if (auto id = txn.get(meta_, kWalId)) walId = storage::decodeU64Key(*id);
    if (auto folded = txn.get(meta_, kWalFolded)) folded_ = storage::decodeU64Key(*folded);
    storage::Cursor cursor(txn, log_);
    for (auto item = cursor.first(); item; item = cursor.next()) {
      Decoder in(item->value);
      paxos::AcceptedValue accepted;
      accepted.ballot = paxos::decodeBallot(in);
      accepted.value = paxos::decodeValue(in);
      in.expectDone();
      state.accepted.emplace(storage::decodeU64Key(item->key), std::move(accepted));
    }
    durable_ = paxos::DurableState{state.promised, {}, state.compactedUpTo, state.learner, state.started};
    segmentMaxSlot_.clear();
    auto wal = std::make_shared<storage::Wal>(
        env_.directory() + "/wal", walId, folded_, env_.fsync(),
        [&](std::uint64_t segment, std::uint64_t seq, std::string_view payload) {
          Decoder in(payload);
          while (!in.done()) {
            const paxos::Record record = decodeRecord(in);
            if (const auto* a = std::get_if<paxos::AcceptRecord>(&record)) {
              auto& top = segmentMaxSlot_[segment];
              top = std::max(top, a->slot);
              paxos::applyRecord(state, record);  // the fold holds no accepted values
            } else if (seq > folded_) {
              paxos::applyRecord(state, record);
              paxos::applyRecord(durable_, record);
            }
          }
        },
        walSegmentBytes_);
    std::lock_guard lock(walMutex_);
    wal_ = std::move(wal);
  } catch (const DecodeError& e) {
    // Corrupt acceptor state must never be voted on: stop loudly.
    throw storage::LmdbError(e.what(), MDB_CORRUPTED);
  }
  if (walId == 0) {
    // A new log (a new disk, or one from before the log existed). Named here before anything
    // goes into it, so that losing its files later is noticed.
    storage::Txn txn = storage::Txn::write(env_);
    txn.put(meta_, kWalId, storage::encodeU64Key(wal_->id()));
    txn.put(meta_, kWalFolded, storage::encodeU64Key(folded_));
    txn.commit();
  }
  loaded_ = std::move(state);
}

void LmdbLogStore::write(const std::vector<paxos::Record>& records) {
  if (records.empty()) return;
  open();
  loaded_.reset();
  bool compacts = false;
  bool learns = false;
  paxos::Slot top = 0;
  for (const auto& record : records) {
    compacts |= std::holds_alternative<paxos::CompactRecord>(record);
    learns |= std::holds_alternative<paxos::LearnerRecord>(record);
    if (const auto* a = std::get_if<paxos::AcceptRecord>(&record)) top = std::max(top, a->slot);
  }
  // The applies committed so far are durable before a compaction or a voter mark is (see the
  // top of the header).
  if (compacts || learns) env_.sync();
  // Encoded into one buffer kept from turn to turn (a few KiB a turn under load).
  recordBytes_.clear();
  encodeRecordsInto(recordBytes_, records);
  // Flushed by sync(), or here when the applied state was flushed for it (fold() drops what it
  // covers, so it must be durable first).
  const std::uint64_t seq = wal_->append(recordBytes_.data(), compacts || learns);
  if (recordBytes_.data().capacity() > (1u << 20)) recordBytes_ = Encoder{};  // a rare huge turn
  auto& segmentTop = segmentMaxSlot_[wal_->segments().back().firstSeq];
  segmentTop = std::max(segmentTop, top);
  for (const auto& record : records) {
    if (!std::holds_alternative<paxos::AcceptRecord>(record)) paxos::applyRecord(durable_, record);
  }
  if (compacts) fold(seq);
}

void LmdbLogStore::fold(std::uint64_t seq) {
  storage::Txn txn = storage::Txn::write(env_);
  if (!durable_.promised.isZero()) txn.put(meta_, kPromised, encodeBallot(durable_.promised));
  txn.put(meta_, kCompacted, storage::encodeU64Key(durable_.compactedUpTo));
  if (durable_.started) txn.put(meta_, kLearner, durable_.learner ? "1" : "0");
  txn.put(meta_, kWalFolded, storage::encodeU64Key(seq));
  std::vector<std::string> doomed;
  {
    storage::Cursor cursor(txn, log_);
    for (auto item = cursor.first(); item && storage::decodeU64Key(item->key) <= durable_.compactedUpTo;
         item = cursor.next()) {
      doomed.emplace_back(item->key);
    }
  }
  for (const auto& key : doomed) txn.erase(log_, key);
  txn.commit();
  folded_ = seq;
  wal_->dropBefore([this](const storage::Wal::Segment& segment) {
    return segment.lastSeq <= folded_ && segmentMaxSlot_[segment.firstSeq] <= durable_.compactedUpTo;
  });
  segmentMaxSlot_.erase(segmentMaxSlot_.begin(), segmentMaxSlot_.lower_bound(wal_->segments().front().firstSeq));
}

void LmdbLogStore::sync() {
  // With --fsync off the node accepts losing recent state on a machine crash: the log forces
  // nothing then.
  std::shared_ptr<storage::Wal> wal;
  {
    std::lock_guard lock(walMutex_);
    wal = wal_;
  }
  if (wal) wal->flushWritten();
}

}  // namespace warden::coordinator
