// Read barriers: a linearizable read waits until this node has applied every write acknowledged
// anywhere before the read began (PAXOS.md 6-8). At the leader that is its commit index under a
// valid lease, else after a heartbeat round (read index). A follower asks the leader for the
// index; the answer carries the follower's incarnation, so a reply queued for an earlier process
// of this node never completes a read of this one.

#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

namespace {
constexpr std::uint64_t kReaskReadUs = 200'000;
}

bool NodeCore::fastRead() const {
  // A lease rules out any other leader until fastReadUntilUs_, so every write acknowledged
  // anywhere before this call was chosen by this leader or recovered by it, and the replica had
  // it in its commit index (published here) before any node could acknowledge it. Once that
  // index is applied and committed, the state as it is now holds every such write.
  if (now() >= fastReadUntilUs_.load(std::memory_order_acquire)) return false;
  const std::uint64_t chosen = knownChosen_.load(std::memory_order_acquire);
  return visibleApplied_.load(std::memory_order_acquire) >= chosen;
}

void NodeCore::publishChosen() {
  if (!replica_) return;
  const std::uint64_t index = replica_->commitIndex();
  if (index > knownChosen_.load(std::memory_order_relaxed)) knownChosen_.store(index, std::memory_order_release);
}

void NodeCore::publishLeaseReads() {
  publishChosen();
  const std::uint64_t at = now();
  const bool leaseReads = replica_ && !installing_ && replica_->leaseRead(at).has_value();
  std::uint64_t until = leaseReads ? replica_->leaseEnd() : 0;
  if (options_.bugs.fastReadWithoutLease && replica_ && replica_->isLeader()) until = UINT64_MAX;
  fastReadUntilUs_.store(until, std::memory_order_release);
}

void NodeCore::serveReads(bool mayCommit) {
  const std::uint64_t at = now();
  for (auto it = reads_.begin(); it != reads_.end();) {
    PendingRead& r = it->second;
    if (!r.indexKnown && replica_) {
      if (replica_->isLeader()) {
        if (auto index = replica_->leaseRead(at)) {
          r.indexKnown = true;
          r.index = *index;
        } else if (!r.asked) {
          r.asked = true;
          r.deadlineUs = std::max(r.deadlineUs, at);
          readies_.push_back(replica_->requestRead(it->first, at));
        }
      } else if (!r.asked || at >= r.askedAtUs + kReaskReadUs) {
        const std::uint64_t leader = replica_->leaderHint();
        if (leader != 0 && leader != options_.id) {
          r.asked = true;
          r.askedAtUs = at;
          Encoder out;
          out.fixed64(incarnation_);
          out.varint(it->first);
          send(leader, frame(Frame::ReadIndexRequest, out.data()));
        }
      }
    }
    // (Not while a snapshot is being installed: the tables are half old, half new. Its old
    // applied index is below any read index anyway; this keeps it so if that ever changes.)
    if (r.indexKnown && applied_ >= r.index && !installing_) {
      // The reader reads what is committed. An index the committed state covers is answered at
      // once; one that needs the apply still open waits for the end of the turn, where that apply
      // may have ridden in the votes' commit already, else is committed then (mayCommit).
      if (visibleApplied_.load(std::memory_order_relaxed) < r.index && !options_.bugs.readsBeforeApplyCommitted) {
        if (!mayCommit) {
          ++it;
          continue;
        }
        commitApply();
      }
      ReadDone done = std::move(r.done);
      it = reads_.erase(it);
      done(Status::Ok);
    } else {
      ++it;
    }
  }
}

void NodeCore::onReadIndexRequest(std::uint64_t from, Decoder& in) {
  const std::uint64_t incarnation = in.fixed64();
  const ForwardedRead read{from, incarnation, in.varint()};
  in.expectDone();
  if (!replica_ || !replica_->isLeader()) {
    answerForwardedRead(read, false, 0);
  } else if (auto index = replica_->leaseRead(now())) {
    answerForwardedRead(read, true, *index);
  } else {
    const std::uint64_t rid = nextRead_++;
    forwardedReads_[rid] = read;
    readies_.push_back(replica_->requestRead(rid, now()));
  }
}

void NodeCore::onReadIndexReply(Decoder& in) {
  const std::uint64_t incarnation = in.fixed64();
  const std::uint64_t id = in.varint();
  const bool ok = in.boolean();
  const std::uint64_t index = in.varint();
  in.expectDone();
  auto it = reads_.find(id);
  // A reply to an earlier process of this node (queued across its restart) is not ours.
  if ((incarnation != incarnation_ && !options_.bugs.ignoreIncarnation) || it == reads_.end()) return;
  if (ok) {
    it->second.indexKnown = true;
    it->second.index = index;
  } else {
    it->second.asked = false;
  }
}

void NodeCore::takeReadAnswers(const paxos::Ready& ready) {
  for (const auto& read : ready.reads) {
    if (auto f = forwardedReads_.find(read.id); f != forwardedReads_.end()) {
      answerForwardedRead(f->second, true, read.index);
      forwardedReads_.erase(f);
    } else if (auto r = reads_.find(read.id); r != reads_.end()) {
      r->second.indexKnown = true;
      r->second.index = read.index;
    }
  }
  for (std::uint64_t id : ready.failedReads) {
    if (auto f = forwardedReads_.find(id); f != forwardedReads_.end()) {
      answerForwardedRead(f->second, false, 0);
      forwardedReads_.erase(f);
    } else if (auto r = reads_.find(id); r != reads_.end()) {
      r->second.asked = false;
    }
  }
}

void NodeCore::answerForwardedRead(const ForwardedRead& read, bool ok, std::uint64_t index) {
  Encoder out;
  out.fixed64(read.incarnation);
  out.varint(read.id);
  out.boolean(ok);
  out.varint(index);
  send(read.origin, frame(Frame::ReadIndexReply, out.data()));
}

}  // namespace warden::coordinator::node
