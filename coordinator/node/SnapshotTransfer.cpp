// Snapshot transfer: a peer that asks for slots this node has compacted away gets the whole
// state instead, in chunks of about 1 MiB, and installs it in one transaction that replaces the
// state, its applied index and its revision together.

#include <cstdio>

#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

namespace {
constexpr std::size_t kSnapshotChunkBytes = 1 << 20;
constexpr std::size_t kMaxSnapshotBytes = std::size_t{1} << 30;
constexpr std::uint64_t kSnapshotIntervalUs = 2'000'000;
}  // namespace

void NodeCore::sendSnapshot(std::uint64_t peer) {
  const std::uint64_t at = now();
  auto& last = lastSnapshotUs_[peer];
  if (last != 0 && at < last + kSnapshotIntervalUs) return;  // one at a time, roughly
  last = at;
  storage::Txn txn = storage::Txn::read(env_);
  const std::uint64_t applied = stateMachine_.appliedIndex(txn);
  const std::uint64_t id = nextSnapshotId_++;
  std::uint64_t chunk = 0;
  Encoder rows;
  std::uint64_t count = 0;
  auto flush = [&](bool last) {
    Encoder out;
    out.varint(id);
    out.varint(chunk++);
    out.boolean(last);
    out.varint(applied);
    out.varint(count);
    std::string body = out.take() + rows.take();
    send(peer, frame(Frame::SnapshotChunk, body));
    rows = Encoder();
    count = 0;
  };
  stateMachine_.exportState(txn, [&](StateMachine::Row row) {
    rows.u8(row.table);
    rows.bytes(row.key);
    rows.bytes(row.value);
    ++count;
    if (rows.data().size() >= kSnapshotChunkBytes) flush(false);
  });
  flush(true);
  log_("sent node " + std::to_string(peer) + " a snapshot up to slot " + std::to_string(applied) + " in " + std::to_string(chunk) + " chunks");
}

void NodeCore::receiveSnapshotChunk(std::uint64_t from, Decoder& in, std::size_t size) {
  const std::uint64_t id = in.varint();
  const std::uint64_t chunk = in.varint();
  const bool last = in.boolean();
  const std::uint64_t applied = in.varint();
  std::uint64_t count = in.varint();
  if (count > size) throw DecodeError("too many snapshot rows");
  IncomingSnapshot& incoming = incoming_[from];
  if (chunk == 0) incoming = IncomingSnapshot{id, applied, 0, 0, {}};
  if (incoming.id != id || incoming.nextChunk != chunk || incoming.applied != applied) {
    incoming_.erase(from);  // a chunk went missing: the sender will try again
    return;
  }
  for (; count > 0; --count) {
    StateMachine::Row row;
    row.table = in.u8();
    row.key = std::string(in.bytes());
    row.value = std::string(in.bytes());
    incoming.bytes += row.key.size() + row.value.size();
    incoming.rows.push_back(std::move(row));
  }
  in.expectDone();
  incoming.nextChunk++;
  if (incoming.bytes > kMaxSnapshotBytes) {
    log_("dropped a snapshot larger than 1 GiB");
    incoming_.erase(from);
    return;
  }
  if (!last) return;
  IncomingSnapshot done = std::move(incoming);
  incoming_.erase(from);
  // Chosen entries handed out this turn but not yet applied may already cover it: then the log
  // is enough, and installing would apply those entries on top of a newer state.
  if (!replica_ || done.applied <= applied_) return;
  if (done.applied <= replica_->commitIndex()) return;
  std::uint64_t revision = 0;
  {
    // The state, its applied index and its revision are replaced in one transaction.
    storage::Txn txn = storage::Txn::write(env_);
    stateMachine_.importState(txn, done.rows);
    if (stateMachine_.appliedIndex(txn) != done.applied) throw DecodeError("snapshot disagrees with its applied index");
    revision = stateMachine_.revision(txn);
    epoch_ = stateMachine_.sessionEpoch(txn);
    txn.commit();
  }
  applied_ = done.applied;
  {
    std::lock_guard lock(keeperMutex_);
    if (keeper_.leading()) keeper_.stepDown();  // rebuilt from the new table when it leads again
  }
  log_("installed a snapshot from node " + std::to_string(from) + " up to slot " + std::to_string(done.applied));
  readies_.push_back(replica_->installSnapshot(done.applied, now()));
  if (onApplied_) onApplied_(revision);
}

}  // namespace warden::coordinator::node
