// Snapshot transfer: a peer that asks for slots this node has compacted away gets the whole
// state instead. The sender holds an LMDB read transaction open (that is the snapshot) and cuts
// chunks of about 1 MiB from it, at most kWindow ahead of what the peer has acknowledged, so
// neither side ever holds more than a few chunks in memory and no turn of the driver does more
// than a few chunks' work. The receiver stages each chunk on disk in its own transaction and,
// after the last one, installs the staged state a step per turn (about installStepBytes each,
// StateMachine::installStep), so that a multi-GiB state never holds the driver for long: while
// it installs, it still votes and acknowledges, but applies nothing (chosen slots wait), answers
// no read and serves no snapshot, for its tables are half old, half new. A process that stops
// halfway finishes the install when it starts again (StateMachine::initialize). A stream that
// stops making progress is abandoned; the peer asks again.

#include <limits>

#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

namespace {
constexpr std::uint64_t kWindow = 4;  // chunks in flight
constexpr std::uint64_t kResendUs = 200'000;  // no acknowledgement for this long: go back and resend
constexpr std::uint64_t kStalledUs = 2'000'000;
constexpr std::uint64_t kInstallGraceUs = 30'000'000;  // the least a sent snapshot holds the log for
constexpr std::uint64_t kMaxHeldRetained = 50;          // ...and the most, in retainedSlots
constexpr std::uint64_t kMaxHeldBytes = 8;              // ...and in retainedBytes
constexpr std::uint64_t kMinRetainedSlots = 16;  // kept whatever their bytes (compactionPoint)

void encodeRows(Encoder& out, const std::vector<StateMachine::Row>& rows) {
  for (const auto& row : rows) {
    out.u8(row.table);
    out.bytes(row.key);
    out.bytes(row.value);
  }
}
}  // namespace

void NodeCore::sendSnapshot(std::uint64_t peer) {
  if (outgoing_.count(peer)) return;  // one stream per peer; it asks again while it lasts
  if (installing_) return;            // no state to give until the install is done
  auto stream = std::make_unique<OutgoingSnapshot>();
  stream->id = incarnation_ + nextSnapshotId_++;
  stream->txn = std::make_shared<storage::Txn>(storage::Txn::read(env_));
  stream->applied = stateMachine_.appliedIndex(*stream->txn);
  stream->startedUs = stream->progressUs = stream->sentUs = now();
  outgoing_[peer] = std::move(stream);
}

void NodeCore::pumpSnapshots() {
  // Without a worker, the chunks cut since the last turn go out first (each may cut the next:
  // up to a window's worth per turn).
  for (std::uint64_t round = 0; round < kWindow && !deferred_.empty(); ++round) {
    std::vector<Worker::Continuation> done = std::move(deferred_);
    deferred_.clear();
    for (const auto& continuation : done) continuation();
  }
  const std::uint64_t at = now();
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    const std::uint64_t peer = it->first;
    OutgoingSnapshot& s = *it->second;
    if (s.allCut && s.acked == s.nextChunk) {
      log_("sent node " + std::to_string(peer) + " a snapshot up to slot " + std::to_string(s.applied) + " in " +
           std::to_string(s.nextChunk) + " chunks");
      // It installs for about as long as it took to receive (a step a turn, each a transaction):
      // the slots after the snapshot stay for its catch-up meanwhile, or it would need another.
      sentSnapshots_[peer] = SentSnapshot{s.applied, at + std::max<std::uint64_t>(kInstallGraceUs, 2 * (at - s.startedUs))};
      it = outgoing_.erase(it);
      continue;
    }
    if (at > s.progressUs + kStalledUs) {
      log_("abandoned a snapshot for node " + std::to_string(peer) + " after " + std::to_string(s.acked) + " chunks");
      it = outgoing_.erase(it);
      continue;
    }
    if (s.nextChunk > s.acked && at > std::max(s.progressUs, s.sentUs) + kResendUs) {
      // Lost or reordered on the way: cut again from the first chunk not acknowledged (a chunk
      // being cut meanwhile is thrown away when it comes back).
      s.at = s.unacked.front();
      s.unacked.clear();
      s.nextChunk = s.acked;
      s.allCut = false;
      s.cutting = false;
      s.rewinds++;
    }
    if (!s.allCut && !s.cutting && s.nextChunk < s.acked + kWindow) cutChunk(peer, s);
    ++it;
  }
}

void NodeCore::HeldTail::added(const HeldSizes& sizes, std::uint64_t bound) {
  bytes += sizes.back().second;
  while (bytes > bound && split + 1 < sizes.size()) {
    bytes -= sizes[split].second;
    ++split;
  }
}

void NodeCore::HeldTail::poppedFront(std::size_t frontBytes) {
  if (split > 0) {
    --split;
  } else {
    bytes -= frontBytes;
  }
}

void NodeCore::trackHeldSizes() {
  const std::uint64_t compacted = replica_->compactedUpTo();
  while (!heldSizes_.empty() && heldSizes_.front().first <= compacted) {
    heldBytes_ -= heldSizes_.front().second;
    retainedTail_.poppedFront(heldSizes_.front().second);
    holdTail_.poppedFront(heldSizes_.front().second);
    heldSizes_.pop_front();
  }
  // A new replica (a restart) or an install starts the tracking over from its compaction point.
  if (heldTracked_ < compacted || heldTracked_ > applied_) {
    heldSizes_.clear();
    heldBytes_ = 0;
    retainedTail_ = holdTail_ = HeldTail{};
    heldTracked_ = compacted;
  }
  if (heldTracked_ >= applied_) return;
  const std::uint64_t holdBound = options_.bugs.unboundedSnapshotHold ? std::numeric_limits<std::uint64_t>::max()
                                                                      : kMaxHeldBytes * options_.retainedBytes;
  replica_->forEachHeld(heldTracked_ + 1, applied_, [this, holdBound](std::uint64_t slot, std::size_t bytes) {
    heldSizes_.emplace_back(slot, bytes);
    heldBytes_ += bytes;
    retainedTail_.added(heldSizes_, options_.retainedBytes);
    holdTail_.added(heldSizes_, holdBound);
  });
  heldTracked_ = applied_;
}

std::uint64_t NodeCore::compactionPoint() {
  if (!replica_) return 0;
  trackHeldSizes();
  const bool bySlots = applied_ > replica_->compactedUpTo() + 2 * options_.retainedSlots;
  // Large slots: compacted once they hold twice retainedBytes, down to the newest retainedBytes
  // of them; but the last kMinRetainedSlots always stay, so that a follower that missed a slot
  // or a commit index (a lost frame, a leader change) gets it from the log, not in a snapshot.
  const std::uint64_t floor = options_.bugs.noMinRetainedSlots ? 0 : kMinRetainedSlots;
  const bool byBytes = heldBytes_ > 2 * options_.retainedBytes && heldSizes_.size() > 2 * floor &&
                       retainedTail_.split > 0 && !options_.bugs.unboundedHeldBytes;
  if (!bySlots && !byBytes) return 0;
  std::uint64_t normal = applied_ > options_.retainedSlots ? applied_ - options_.retainedSlots : 0;
  if (byBytes) {
    const std::uint64_t tail = std::min(heldSizes_[retainedTail_.split - 1].first, applied_ - kMinRetainedSlots);
    normal = std::max(normal, options_.bugs.noMinRetainedSlots ? applied_ : tail);
  }
  if (options_.bugs.compactUnderSnapshot) return normal;
  // A peer rebuilt from a snapshot asks for the slots after it once installed; compacted, it
  // needs a newer snapshot, and under steady writes a large state may never catch up (each
  // install outlasting the retained slots). Keeping more of the log is always safe; bounded in
  // slots and in bytes (the slots sit in memory), so that a receiver that never finishes, or
  // asks again and again, cannot pin it.
  const std::uint64_t held = options_.retainedSlots * kMaxHeldRetained;
  std::uint64_t lowest = applied_ > held ? applied_ - held : 0;
  // Past the byte bound, the newest kMaxHeldBytes x retainedBytes stay (the 16-slot floor too).
  const std::uint64_t belowHoldTail = holdTail_.split > 0 ? heldSizes_[holdTail_.split - 1].first : 0;
  std::uint64_t byBytesLowest = 0;
  if (belowHoldTail != 0 && heldSizes_.size() > floor) {
    byBytesLowest = std::min(belowHoldTail, applied_ - floor);
    lowest = std::max(lowest, byBytesLowest);
  }
  std::uint64_t point = normal;
  for (const auto& [peer, stream] : outgoing_) point = std::min(point, std::max(stream->applied, lowest));
  const std::uint64_t at = now();
  for (auto it = sentSnapshots_.begin(); it != sentSnapshots_.end();) {
    if (at > it->second.untilUs) {
      it = sentSnapshots_.erase(it);
      continue;
    }
    point = std::min(point, std::max(it->second.slot, lowest));
    ++it;
  }
  // Held: compact only once that frees as much as a normal compaction would (each is a durable
  // commit and a trim): retainedSlots slots, or retainedBytes of them. (The bytes below the hold's
  // tail are what compacting to its first slot frees; not when the 16-slot floor set the point.)
  const bool freesBytes = byBytesLowest != 0 && point == byBytesLowest && byBytesLowest == belowHoldTail &&
                          heldBytes_ - holdTail_.bytes >= options_.retainedBytes;
  if (point < normal && point < replica_->compactedUpTo() + options_.retainedSlots && !freesBytes) return 0;
  return point;
}

void NodeCore::cutChunk(std::uint64_t peer, OutgoingSnapshot& s) {
  // The job reads only the stream's own read transaction (one job at a time per stream), so the
  // driver never waits for a cursor walk of a large state; the continuation takes the chunk
  // back, if the stream it was cut for is still there and has not rewound since.
  s.cutting = true;
  const std::uint64_t id = s.id, chunk = s.nextChunk, rewinds = s.rewinds, applied = s.applied;
  const std::size_t budget = options_.snapshotChunkBytes;
  offload([this, peer, id, chunk, rewinds, applied, budget, txn = s.txn, from = s.at]() -> Worker::Continuation {
    StateMachine::ExportPosition next = from;
    std::vector<StateMachine::Row> rows;
    const bool last = stateMachine_.exportPiece(*txn, next, budget, [&rows](StateMachine::Row row) { rows.push_back(std::move(row)); });
    Encoder out;
    out.varint(id);
    out.varint(chunk);
    out.boolean(last);
    out.varint(applied);
    out.varint(rows.size());
    encodeRows(out, rows);
    return [this, peer, id, chunk, rewinds, last, from, next, body = out.take()]() mutable {
      auto it = outgoing_.find(peer);
      if (it == outgoing_.end() || it->second->id != id) return;  // abandoned or finished meanwhile
      OutgoingSnapshot& s = *it->second;
      if (s.rewinds != rewinds || s.nextChunk != chunk) return;  // rewound: cut again from elsewhere
      s.cutting = false;
      s.unacked.push_back(from);
      s.at = std::move(next);
      s.nextChunk++;
      s.allCut = last;
      s.sentUs = now();
      send(peer, frame(Frame::SnapshotChunk, body));
      if (!s.allCut && s.nextChunk < s.acked + kWindow) cutChunk(peer, s);
    };
  });
}

void NodeCore::offload(Worker::Job job) {
  if (worker_) return worker_->run(std::move(job));
  deferred_.push_back(job());
}

void NodeCore::resume(const Worker::Continuation& continuation) { continuation(); }

void NodeCore::onSnapshotAck(std::uint64_t from, Decoder& in) {
  const std::uint64_t id = in.varint();
  const std::uint64_t chunk = in.varint();
  in.expectDone();
  auto it = outgoing_.find(from);
  if (it == outgoing_.end() || it->second->id != id || chunk >= it->second->nextChunk) return;
  OutgoingSnapshot& s = *it->second;
  while (s.acked < chunk + 1) {
    s.acked++;
    s.unacked.pop_front();
    s.progressUs = now();
  }
}

void NodeCore::receiveSnapshotChunk(std::uint64_t from, Decoder& in, std::size_t size) {
  const std::uint64_t id = in.varint();
  const std::uint64_t chunk = in.varint();
  const bool last = in.boolean();
  const std::uint64_t applied = in.varint();
  std::uint64_t count = in.varint();
  if (count > size) throw DecodeError("too many snapshot rows");
  std::vector<StateMachine::Row> rows;
  for (; count > 0; --count) {
    StateMachine::Row row;
    row.table = in.u8();
    row.key = std::string(in.bytes());
    row.value = std::string(in.bytes());
    // Staging a row no table can take would stop this node (a storage error); the frame is bad.
    if (!stateMachine_.rowFits(row)) throw DecodeError("snapshot row for an unknown table or with a key LMDB cannot hold");
    rows.push_back(std::move(row));
  }
  in.expectDone();
  if (installing_) return;  // staging holds the state being installed; the sender gives up
  // A stream begun before this node caught up (by an install or the log) has nothing to give.
  if (chunk == 0 && replica_ && applied <= std::max(applied_, replica_->commitIndex())) return;
  auto ack = [&] {
    Encoder out;
    out.varint(id);
    out.varint(chunk);
    send(from, frame(Frame::SnapshotAck, out.data()));
  };
  const bool same = incoming_ && incoming_->from == from && incoming_->id == id && incoming_->applied == applied;
  if (same && chunk < incoming_->nextChunk) return ack();  // staged already: its ack was lost
  if (chunk == 0 && !same) {
    // Several peers may answer one catch-up request with a stream each: keep the one that is
    // making progress (the others get no acknowledgement and give up), or they would keep
    // replacing each other and none would finish.
    // A new stream from the same peer replaces its old one at once: that peer gave the old one
    // up (or restarted), and late frames of it must not keep it looking alive. So does a stream
    // from the leader this node follows once the current one has staged nothing for two resend
    // intervals: a late frame of a stream another peer has given up can make that one look
    // alive for a while longer (the 200,000-run sweep found a wiped node turning the leader's
    // stream away for 2 s that way: seed 1007743, 3 nodes), while a live stream stages chunks
    // back to back, and its sender resends within one interval. (A wiped node's leader hint
    // follows any ballot, so a late heartbeat can name a deposed leader: the quiet time keeps
    // such a hint from displacing a live stream.)
    const bool leaderAfterQuiet =
        replica_ && replica_->leaderHint() == from && incoming_ && now() >= incoming_->lastChunkUs + 2 * kResendUs;
    if (incoming_ && incoming_->from != from && now() < incoming_->lastChunkUs + kStalledUs && !leaderAfterQuiet) return;
    incoming_ = IncomingSnapshot{from, id, applied, 0, now()};
    storage::Txn txn = writeTxn();
    stateMachine_.clearStaging(txn);
    txn.commit();
  } else if (!same || chunk != incoming_->nextChunk) {
    // A gap (or a stream this node has moved on from): no ack; the sender goes back and resends.
    log_("snapshot chunk " + std::to_string(chunk) + " from node " + std::to_string(from) + " out of order (" +
         (same ? "expected " + std::to_string(incoming_->nextChunk) : std::string("another stream")) + ")");
    return;
  }
  {
    storage::Txn txn = writeTxn();
    stateMachine_.stageRows(txn, rows);
    txn.commit();
  }
  incoming_->nextChunk++;
  incoming_->lastChunkUs = now();
  ack();
  if (!last) return;
  const IncomingSnapshot done = *incoming_;
  incoming_.reset();
  beginInstall(done);
}

void NodeCore::beginInstall(const IncomingSnapshot& done) {
  // Chosen entries handed out this turn but not yet applied may already cover it: then the log
  // is enough, and installing would apply those entries on top of a newer state.
  if (!replica_ || done.applied <= applied_) return;
  if (done.applied <= replica_->commitIndex() && !options_.bugs.installOverUnapplied) return;
  {
    storage::Txn txn = writeTxn();
    stateMachine_.beginInstall(txn);
    txn.commit();
  }
  installing_ = done;
  replica_->beginInstall();
  {
    std::lock_guard lock(keeperMutex_);
    if (keeper_.leading()) keeper_.stepDown();  // rebuilt from the new table when it leads again
  }
  serving_ = false;
  servingUntilUs_.store(0, std::memory_order_release);
  // The steps run from endTurn, where a storage failure stops the node loudly.
}

void NodeCore::stepInstall() {
  if (!installing_) return;
  bool done = false;
  {
    storage::Txn txn = writeTxn();
    done = stateMachine_.installStep(txn, options_.installStepBytes);
    txn.commit();
  }
  if (done) finishInstall();
}

void NodeCore::finishInstall() {
  const IncomingSnapshot done = *installing_;
  installing_.reset();
  std::uint64_t revision = 0;
  {
    storage::Txn txn = storage::Txn::read(env_);
    if (stateMachine_.appliedIndex(txn) != done.applied) {
      throw storage::LmdbError("the installed snapshot disagrees with its applied index", MDB_CORRUPTED);
    }
    revision = stateMachine_.revision(txn);
    epoch_ = stateMachine_.sessionEpoch(txn);
    noteAppliedStamp(stateMachine_.timestampMs(txn));
  }
  applied_ = done.applied;
  visibleApplied_.store(applied_, std::memory_order_release);
  appliedRevision_.store(revision, std::memory_order_release);
  timeLockDelays();
  log_("installed a snapshot from node " + std::to_string(done.from) + " up to slot " + std::to_string(done.applied));
  readies_.push_back(replica_->installSnapshot(done.applied, now(), done.from));
  if (onApplied_) {
    watch::Applied replaced{revision, {}, true};
    onApplied_(replaced);
  }
  // A write sent before now may have been applied inside the snapshot, unseen here: it is no
  // longer answered "never applied" (503), only with its result if a later slot applies it,
  // else "unknown" (504) at its give-up time. Then the slots chosen meanwhile: those the
  // snapshot covers are skipped by apply(), the others answer their writes.
  for (auto& [id, w] : writes_) w.mayBeInSnapshot = w.mayBeInSnapshot || w.everSent;
  std::vector<paxos::ChosenEntry> held = std::move(heldChosen_);
  heldChosen_.clear();
  if (!held.empty()) apply(held);
}

}  // namespace warden::coordinator::node
