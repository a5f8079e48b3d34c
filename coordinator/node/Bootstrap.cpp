// An empty data directory: the node of a brand-new cluster, or a member whose disk was wiped.
// It must not vote on what it may have forgotten, while the nodes of a new cluster must vote to
// form it. So it asks every peer (with a nonce of this process) whether the cluster has a past,
// and starts its replica only once the answers decide: any history means the disk was wiped and
// it rebuilds as a learner (PAXOS.md 5, and the argument at the top of paxos/ReplicaLearning.cpp).

#include <cstdio>

#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

namespace {
constexpr std::uint64_t kProbeIntervalUs = 100'000;
}

void NodeCore::startReplica() {
  paxos::DurableState durable = store_.load();
  const bool pristine = durable.promised.isZero() && durable.accepted.empty() && durable.compactedUpTo == 0 &&
                        !durable.started && applied_ == 0;
  if (!pristine || options_.members.size() == 1) {
    replica_ = std::make_unique<paxos::Replica>(options_.paxos, std::move(durable), applied_, false, random_, now());
  }
  // else: an empty disk; probe() until the peers answer.
}

void NodeCore::probe() {
  const std::uint64_t at = now();
  if (replica_ || at < lastProbeUs_ + kProbeIntervalUs) return;
  lastProbeUs_ = at;
  for (const auto& [id, address] : options_.members) {
    if (id == options_.id) continue;
    Encoder nonce;
    nonce.fixed64(incarnation_);
    send(id, frame(Frame::Probe, nonce.data()));
  }
}

void NodeCore::onProbe(std::uint64_t from, Decoder& in) {
  // Any vote leaves a promise behind (an accept raises it too, and a candidate promises itself
  // before it asks), so this is all it takes.
  const std::uint64_t nonce = in.fixed64();
  in.expectDone();
  const bool history = applied_ > 0 || (replica_ && !replica_->promised().isZero());
  Encoder out;
  out.fixed64(nonce);
  out.boolean(history);
  send(from, frame(Frame::ProbeReply, out.data()));
}

void NodeCore::onProbeReply(std::uint64_t from, Decoder& in) {
  const std::uint64_t nonce = in.fixed64();
  const bool history = in.boolean();
  in.expectDone();
  if (replica_ || nonce != incarnation_) return;  // decided already, or an answer to an earlier process
  if (history) {
    log_("empty data directory in a cluster with history: rejoining as a learner");
    replica_ = std::make_unique<paxos::Replica>(options_.paxos, paxos::DurableState{}, 0, true, random_, now());
    return;
  }
  probedEmpty_.insert(from);
  // Every member, asked after this process started, says it never promised anything: no ballot
  // was ever issued (a candidate promises its own ballot before it asks), so this disk cannot
  // have promised or accepted anything either. A majority's "empty" would not do: it rules out
  // chosen values, but not a promise this disk gave to a candidate whose other Prepares are
  // still on their way.
  const std::size_t n = options_.members.size();
  // (The old rule, kept as a bug switch: n - majority + 1 of the others, which rules out chosen
  // values but not a forgotten promise.)
  const std::size_t needed = options_.bugs.bootstrapOnMajority ? n - (n / 2 + 1) + 1 : n - 1;
  if (probedEmpty_.size() >= needed) {
    // Remember the verdict: a crash from now on leaves a disk that is known not to be wiped, so
    // the next process votes at once instead of taking itself for a wiped member.
    store_.markStarted();
    replica_ = std::make_unique<paxos::Replica>(options_.paxos, paxos::DurableState{}, 0, false, random_, now());
  }
}

}  // namespace warden::coordinator::node
