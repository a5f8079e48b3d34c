// The leader's session duties (PAXOS.md 9, 9b). A leader speaks for sessions only while it holds
// its lease, has applied everything its lease read index covers (so everything earlier leaders
// may have chosen) and has applied the epoch entry of its own ballot; then the keeper holds the
// deadlines and gives every session a fresh ttl. Any lapse steps the keeper down, and the next
// takeover grants fresh ttls again. Expiries carry the proposing leader's ballot; apply voids
// those older than the latest epoch, so a deposed leader's expiry found by a later phase 1 cannot
// kill a session that a later leader kept alive. A follower relays its clients' keepalives to the
// leader, all of one turn (at most every 2 ms) in one frame, and answers when the leader does.

#include <cstdio>

#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

namespace {
constexpr std::uint64_t kReaskKeepaliveUs = 200'000;
// Under load a follower relays keepalives at most this often, many to a frame: the leader then
// wakes for a frame every few milliseconds instead of once per keepalive.
constexpr std::uint64_t kRelayBatchUs = 2'000;
constexpr std::uint64_t kExpiryScanUs = 50'000;
constexpr std::uint64_t kEpochRetryUs = 2'000'000;
}  // namespace

std::optional<std::uint64_t> NodeCore::fastKeepalive(std::uint64_t session) {
  // Its lease rules out any other leader until servingUntilUs_; everything else (unknown,
  // expiring, not serving) takes the driver's path, which says "not found" only with everything
  // chosen before it applied.
  const std::uint64_t at = now();
  if (at >= servingUntilUs_.load(std::memory_order_acquire)) return std::nullopt;
  return keepaliveLocked(session, at);
}

void NodeCore::onKeepaliveRequest(std::uint64_t from, Decoder& in, std::size_t size) {
  const std::uint64_t incarnation = in.fixed64();
  std::uint64_t n = in.varint();
  if (n > size) throw DecodeError("too many keepalives");
  std::vector<RelayedKeepalive> relayed;
  relayed.reserve(n);
  for (; n > 0; --n) {
    const std::uint64_t id = in.varint();
    relayed.push_back(RelayedKeepalive{from, incarnation, id, in.varint()});
  }
  in.expectDone();
  syncKeeper();
  if (serving_) {
    answerKeepalives(from, relayed, false);
  } else if (replica_ && replica_->isLeader()) {
    // Answered once this leader may speak for the sessions (serveKeepalives).
    heldRelays_.insert(heldRelays_.end(), relayed.begin(), relayed.end());
  } else {
    answerKeepalives(from, relayed, true);
  }
}

void NodeCore::syncKeeper() {
  if (!replica_ || !replica_->isLeader()) {
    serving_ = false;
    servingUntilUs_.store(0, std::memory_order_release);
    {
      std::lock_guard lock(keeperMutex_);
      if (keeper_.leading()) keeper_.stepDown();
    }
    answerHeldRelays(true);  // held for a leadership that ended: ask whoever leads now
    return;
  }
  // A lease read index covers every slot adopted from earlier leaders (PAXOS.md): once they are
  // applied, the session table here is the one every keepalive and expiry must go by. The
  // epoch makes it this leadership's own: expiries of deposed leaders found later are void.
  const std::uint64_t at = now();
  if (ownEpoch_.ballot != replica_->ballot()) ownEpoch_ = SessionEpoch{replica_->ballot(), 0};
  std::lock_guard lock(keeperMutex_);
  if (!replica_->leaseValid(at) && keeper_.leading() && !options_.bugs.serveWithoutLease) {
    // The lease lapsed (a pause, a lost round): keepalives may have waited in queues meanwhile,
    // so when it serves again every session gets a fresh ttl, as at a takeover, under a new
    // epoch that voids the expiries it proposed before the lapse. (Entries chosen but not yet
    // applied only hold keepalives back for a turn; they are no lapse.)
    keeper_.stepDown();
    if (!options_.bugs.sameEpochAfterLapse) ownEpoch_.takeover++;
  }
  const auto index = replica_->leaseRead(at);
  serving_ = index && applied_ >= *index && !installing_ && (epoch_ == ownEpoch_ || options_.bugs.serveWithoutEpoch);
  if (options_.bugs.serveWithoutLease) serving_ = true;
  if (serving_ && !keeper_.leading()) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> sessions;
    readState([&](storage::Txn& txn) { sessions = stateMachine_.sessions().ttls(txn); });
    // Fresh ttls from now: nobody knows when clients last spoke to the previous leader.
    const std::uint64_t from = now() / 1000 - (options_.bugs.staleTtlOnTakeover ? std::min<std::uint64_t>(now() / 1000, 10'000) : 0);
    keeper_.takeOver(from, sessions);
    if (!sessions.empty()) {
      log_("leading: " + std::to_string(sessions.size()) + " sessions get a fresh ttl from now");
    }
  }
  servingUntilUs_.store(serving_ ? replica_->leaseEnd() : 0, std::memory_order_release);
}

void NodeCore::serveKeepalives() {
  syncKeeper();
  const std::uint64_t at = now();
  if (serving_) answerHeldRelays(false);
  const bool leader = replica_ && replica_->isLeader();
  const std::uint64_t target = replica_ ? replica_->leaderHint() : 0;
  const bool relayNow = at >= lastRelayUs_ + kRelayBatchUs;
  relayWakeUs_ = 0;
  Encoder relay;
  std::uint64_t relayCount = 0;
  for (auto it = keepalives_.begin(); it != keepalives_.end();) {
    PendingKeepalive& k = it->second;
    if (serving_) {
      const auto ttl = keepaliveLocked(k.session, at);
      KeepaliveDone done = std::move(k.done);
      it = keepalives_.erase(it);
      done(ttl ? Status::Ok : Status::SessionNotFound, ttl.value_or(0));
      continue;
    }
    if (options_.bugs.followersAnswerKeepalives && !leader) {
      // The planted bug: a follower vouches for a session from its own, possibly stale, table.
      storage::Txn txn = storage::Txn::read(env_);
      const auto record = stateMachine_.sessions().get(txn, k.session);
      KeepaliveDone done = std::move(k.done);
      it = keepalives_.erase(it);
      done(record ? Status::Ok : Status::SessionNotFound, record ? record->ttlMs : 0);
      continue;
    }
    if (!leader && target != 0 && target != options_.id && (k.askedAtUs == 0 || at >= k.askedAtUs + kReaskKeepaliveUs)) {
      if (!relayNow) {
        relayWakeUs_ = lastRelayUs_ + kRelayBatchUs;  // the driver wakes then to send them
        ++it;
        continue;
      }
      relay.varint(it->first);
      relay.varint(k.session);
      ++relayCount;
      k.askedAtUs = at;
    }
    ++it;
  }
  if (relayCount > 0) {
    lastRelayUs_ = at;
    Encoder out;
    out.fixed64(incarnation_);
    out.varint(relayCount);
    send(target, frame(Frame::KeepaliveRequest, out.take() + relay.take()));
  }
}

void NodeCore::answerHeldRelays(bool retry) {
  if (heldRelays_.empty()) return;
  std::map<std::uint64_t, std::vector<RelayedKeepalive>> byFollower;
  for (const auto& r : heldRelays_) byFollower[r.from].push_back(r);
  heldRelays_.clear();
  for (const auto& [follower, relayed] : byFollower) answerKeepalives(follower, relayed, retry);
}

std::optional<std::uint64_t> NodeCore::keepaliveLocked(std::uint64_t session, std::uint64_t atUs) {
  std::lock_guard lock(keeperMutex_);
  return keeper_.keepalive(session, atUs / 1000);
}

void NodeCore::answerKeepalives(std::uint64_t follower, const std::vector<RelayedKeepalive>& relayed, bool retry) {
  // One frame per incarnation of the follower (nearly always one).
  std::map<std::uint64_t, std::vector<const RelayedKeepalive*>> byIncarnation;
  for (const auto& r : relayed) byIncarnation[r.incarnation].push_back(&r);
  for (const auto& [incarnation, group] : byIncarnation) answerKeepalives(follower, incarnation, group, retry);
}

void NodeCore::answerKeepalives(std::uint64_t follower, std::uint64_t incarnation,
                                     const std::vector<const RelayedKeepalive*>& relayed, bool retry) {
  const std::uint64_t at = now();
  Encoder out;
  out.fixed64(incarnation);
  out.varint(relayed.size());
  for (const auto* r : relayed) {
    out.varint(r->id);
    const auto ttl = retry ? std::nullopt : keepaliveLocked(r->session, at);
    const auto answer = retry ? KeepaliveAnswer::AskAgain : ttl ? KeepaliveAnswer::Alive : KeepaliveAnswer::NotFound;
    out.u8(static_cast<std::uint8_t>(answer));
    out.varint(ttl.value_or(0));
  }
  send(follower, frame(Frame::KeepaliveReply, out.data()));
}

void NodeCore::onKeepaliveReply(Decoder& in, std::size_t size) {
  const std::uint64_t incarnation = in.fixed64();
  std::uint64_t n = in.varint();
  if (n > size) throw DecodeError("too many keepalive answers");
  const std::uint64_t at = now();
  for (; n > 0; --n) {
    const std::uint64_t id = in.varint();
    const std::uint8_t raw = in.u8();
    if (raw > static_cast<std::uint8_t>(KeepaliveAnswer::AskAgain)) throw DecodeError("unknown keepalive answer");
    const auto answer = static_cast<KeepaliveAnswer>(raw);
    const std::uint64_t ttl = in.varint();
    auto it = keepalives_.find(id);
    if ((incarnation != incarnation_ && !options_.bugs.ignoreIncarnation) || it == keepalives_.end()) continue;  // an earlier process's, or timed out
    if (answer == KeepaliveAnswer::AskAgain) {
      // The addressee no longer leads: ask again soon, once a new leader is known.
      it->second.askedAtUs = at > kReaskKeepaliveUs ? at - kReaskKeepaliveUs + 20'000 : 0;
      continue;
    }
    KeepaliveDone done = std::move(it->second.done);
    keepalives_.erase(it);
    done(answer == KeepaliveAnswer::Alive ? Status::Ok : Status::SessionNotFound, ttl);
  }
  in.expectDone();
}

void NodeCore::proposeEpoch() {
  if (!replica_ || !replica_->isLeader() || ownEpoch_.ballot != replica_->ballot() || epoch_ == ownEpoch_) return;
  const std::uint64_t at = now();
  if (epochProposed_ == ownEpoch_ && at < epochProposedAtUs_ + kEpochRetryUs) return;
  epochProposed_ = ownEpoch_;
  epochProposedAtUs_ = at;
  proposeLocal({ownProposal(epochCommand(ownEpoch_))});
}

void NodeCore::proposeExpiries() {
  const std::uint64_t at = now();
  // The lease is checked at this instant: a leader waking from a pause must not propose on the
  // strength of a lease that ran out while it slept (PAXOS.md 9).
  if (!serving_ || at < nextExpiryScanUs_ || !replica_->leaseValid(at) || options_.bugs.neverExpire) return;
  nextExpiryScanUs_ = at + kExpiryScanUs;
  std::vector<std::uint64_t> due;
  {
    std::lock_guard lock(keeperMutex_);
    due = keeper_.due(at / 1000);
  }
  std::vector<std::string> proposals;
  for (std::uint64_t id : due) {
    // Nobody waits for the answer: apply tells the keeper, and a lost expiry is due again.
    proposals.push_back(ownProposal(expireCommand(id, ownEpoch_)));
  }
  if (!proposals.empty()) proposeLocal(std::move(proposals));
}

}  // namespace warden::coordinator::node
