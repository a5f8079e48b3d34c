#include "coordinator/ReplicatedLog.h"

#include <chrono>
#include <cstdio>
#include <random>

#include <boost/asio/ip/address.hpp>

#include "coordinator/Proposal.h"
#include "coordinator/paxos/MessageCodec.h"

namespace warden::coordinator {

namespace net = boost::asio;

namespace {

enum class Frame : std::uint8_t {
  Paxos = 1,
  Forward = 2,           // proposals for the leader
  ReadIndexRequest = 3,  // "confirm you lead and tell me what to apply before I read"
  ReadIndexReply = 4,
  ForwardRejected = 5,  // proposals the addressee could not take: the sender tries elsewhere
  Probe = 6,            // "has this cluster any history?", from a node with an empty disk
  ProbeReply = 7,
  SnapshotChunk = 8,    // part of the whole state, for a peer behind the compacted log
  KeepaliveRequest = 9,  // a follower's keepalives of one turn, for the leader
  KeepaliveReply = 10,
};

// A leader's answer to one relayed keepalive.
enum class KeepaliveAnswer : std::uint8_t { Alive = 0, NotFound = 1, AskAgain = 2 };

constexpr std::size_t kSnapshotChunkBytes = 1 << 20;
constexpr std::size_t kMaxSnapshotBytes = std::size_t{1} << 30;
constexpr std::uint64_t kSnapshotIntervalUs = 2'000'000;

constexpr std::uint64_t kTickUs = 10'000;
constexpr std::uint64_t kHealthyWithinUs = 1'000'000;
constexpr std::uint64_t kReaskReadUs = 200'000;
constexpr std::uint64_t kProbeIntervalUs = 100'000;
constexpr std::size_t kMaxQueuedInputs = 100'000;
constexpr std::uint64_t kReaskKeepaliveUs = 200'000;
// Under load a follower relays keepalives at most this often, many to a frame: the leader then
// wakes for a frame every few milliseconds instead of once per keepalive.
constexpr std::uint64_t kRelayBatchUs = 2'000;
constexpr std::uint64_t kExpiryScanUs = 50'000;
constexpr std::uint64_t kEpochRetryUs = 2'000'000;

class SystemRandom : public paxos::Random {
 public:
  SystemRandom() : engine_(std::random_device{}()) {}
  std::uint64_t next() override { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

net::ip::tcp::endpoint parseEndpoint(const std::string& text) {
  const auto colon = text.rfind(':');
  std::string host = text.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  return {net::ip::make_address(host), static_cast<unsigned short>(std::stoul(text.substr(colon + 1)))};
}

std::string frame(Frame kind, const std::string& body = {}) {
  std::string out(1, static_cast<char>(kind));
  out += body;
  return out;
}

std::string proposalsFrame(Frame kind, const std::vector<std::string>& proposals) {
  Encoder out;
  out.varint(proposals.size());
  for (const auto& p : proposals) out.bytes(p);
  return frame(kind, out.data());
}

std::vector<std::string> decodeProposals(Decoder& in, std::size_t size) {
  std::uint64_t n = in.varint();
  if (n > size) throw DecodeError("too many proposals");
  std::vector<std::string> out;
  for (; n > 0; --n) out.emplace_back(in.bytes());
  return out;
}

// Removes every pending request whose deadline has passed, then tells each (its callback may
// queue more work, so the map is no longer walked by then).
template <typename Pending, typename Tell>
void takeOverdue(std::map<std::uint64_t, Pending>& pending, std::uint64_t nowUs, Tell tell) {
  std::vector<Pending> overdue;
  for (auto it = pending.begin(); it != pending.end();) {
    if (nowUs < it->second.deadlineUs) {
      ++it;
      continue;
    }
    overdue.push_back(std::move(it->second));
    it = pending.erase(it);
  }
  for (auto& p : overdue) tell(p);
}

}  // namespace

ReplicatedLog::ReplicatedLog(storage::Env& env, const StateMachine& stateMachine, ClusterOptions options,
                             AppliedHook onApplied)
    : env_(env),
      stateMachine_(stateMachine),
      options_(std::move(options)),
      onApplied_(std::move(onApplied)),
      store_(env),
      random_(std::make_unique<SystemRandom>()),
      incarnation_(random_->next() | 1) {
  options_.paxos.id = options_.id;
  options_.paxos.members.clear();
  std::map<std::uint64_t, net::ip::tcp::endpoint> peers;
  for (const auto& [id, address] : options_.members) {
    options_.paxos.members.push_back(id);
    peers[id] = parseEndpoint(address);
  }
  {
    storage::Txn txn = storage::Txn::read(env_);
    applied_ = stateMachine_.appliedIndex(txn);
    epoch_ = stateMachine_.sessionEpoch(txn);
  }
  paxos::DurableState durable = store_.load();
  const bool pristine = durable.promised.isZero() && durable.accepted.empty() && durable.compactedUpTo == 0 &&
                        !durable.learner && applied_ == 0;
  if (!pristine || options_.members.size() == 1) {
    replica_ = std::make_unique<paxos::Replica>(options_.paxos, std::move(durable), applied_, false, *random_, nowUs());
  }
  // else: an empty disk. Probe first: a node whose disk was wiped must not vote on what it
  // forgot, while the nodes of a brand-new cluster must. See onPeerFrame(Probe...).
  view_.id = options_.id;
  transport_ = std::make_unique<transport::PeerTransport>(
      ioc_, options_.id, peers.at(options_.id), peers, options_.http,
      [this](std::uint64_t from, std::string body) { push(PeerFrame{from, std::move(body)}); },
      [this](std::uint64_t from, const std::string& http) { push(Hello{from, http}); });
  transport_->start();
  ioThread_ = std::thread([this] {
    auto guard = net::make_work_guard(ioc_);
    ioc_.run();
  });
  updateView();
  driver_ = std::thread([this] { run(); });
}

ReplicatedLog::~ReplicatedLog() { stop(); }

void ReplicatedLog::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (driver_.joinable()) driver_.join();
  transport_->stop();
  ioc_.stop();
  if (ioThread_.joinable()) ioThread_.join();
}

std::uint64_t ReplicatedLog::nowUs() const {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

std::uint64_t ReplicatedLog::wallMs() const {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

void ReplicatedLog::push(Input input) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    inputs_.push_back(std::move(input));
  }
  wake_.notify_one();
}

void ReplicatedLog::submit(Command command, Done done) {
  CommandResult refused;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && inputs_.size() <= kMaxQueuedInputs) {
      inputs_.push_back(Submit{std::move(command), std::move(done)});
      wake_.notify_one();
      return;
    }
    refused.status = stopping_ ? Status::Unavailable : Status::Overloaded;
    refused.message = stopping_ ? "the node is shutting down" : "too many requests are queued; try again";
  }
  done(std::move(refused));
}

void ReplicatedLog::readBarrier(ReadDone done) { push(Read{std::move(done)}); }

void ReplicatedLog::keepalive(std::uint64_t session, KeepaliveDone done) {
  // At a leader that may speak for sessions, a keepalive of a session it keeps is answered right
  // here, without a trip through the driver: its lease rules out any other leader until
  // servingUntilUs_. Everything else (unknown, expiring, not leading) takes the driver's path,
  // which says "not found" only with everything chosen before it applied.
  const std::uint64_t now = nowUs();
  if (now < servingUntilUs_.load(std::memory_order_acquire)) {
    if (auto ttl = keepaliveLocked(session, now)) return done(Status::Ok, *ttl);
  }
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && inputs_.size() <= kMaxQueuedInputs) {
      inputs_.push_back(Keepalive{session, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(Status::Unavailable, 0);
}

ClusterView ReplicatedLog::view() const {
  std::lock_guard lock(viewMutex_);
  return view_;
}

// ---- the driver -------------------------------------------------------------------------------

void ReplicatedLog::run() {
  std::uint64_t nextTick = nowUs() + kTickUs;
  std::deque<Input> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      const std::uint64_t wakeAt = relayWakeUs_ != 0 ? std::min(nextTick, relayWakeUs_) : nextTick;
      const auto wait = std::chrono::microseconds(wakeAt > nowUs() ? wakeAt - nowUs() : 0);
      wake_.wait_for(lock, wait, [this] { return stopping_ || !inputs_.empty(); });
      if (stopping_) break;
      batch.swap(inputs_);
    }
    try {
      turn(batch);
      if (nowUs() >= nextTick) {
        if (replica_) readies_.push_back(replica_->tick(nowUs()));
        expire();
        proposeEpoch();
        proposeExpiries();
        nextTick = nowUs() + kTickUs;
      }
      serveKeepalives();
      serveReads();
      finishReadyBatch();
      updateView();
    } catch (const storage::LmdbError& e) {
      // The acceptor state or the state machine could not be written: carrying on could vote
      // on something not durable. Stop loudly.
      std::fprintf(stderr, "warden: fatal storage error in the replicated log: %s\n", e.what());
      std::abort();
    }
    batch.clear();
  }
  // Everyone still waiting hears that the node is going away.
  for (auto& [id, w] : writes_) {
    CommandResult r;
    r.status = Status::Unavailable;
    r.message = "the node is shutting down";
    w.done(std::move(r));
  }
  for (auto& [id, r] : reads_) r.done(Status::Unavailable);
  for (auto& [id, k] : keepalives_) k.done(Status::Unavailable, 0);
}

void ReplicatedLog::turn(std::deque<Input>& inputs) {
  for (auto& input : inputs) handle(input);
  // Writes not yet handed to a leader go now, if there is one.
  std::vector<std::string> unsent;
  for (auto& [id, w] : writes_) {
    if (!w.proposal.empty()) unsent.push_back(std::move(w.proposal)), w.proposal.clear();
  }
  if (!unsent.empty()) {
    if (replica_ && replica_->isLeader()) {
      proposeLocal(std::move(unsent));
    } else {
      forward(std::move(unsent));
    }
  }
}

void ReplicatedLog::handle(Input& input) {
  if (auto* f = std::get_if<PeerFrame>(&input)) {
    lastHeardUs_[f->from] = nowUs();
    try {
      onPeerFrame(f->from, f->body);
    } catch (const DecodeError& e) {
      std::fprintf(stderr, "warden: dropped a malformed frame from node %llu: %s\n",
                   static_cast<unsigned long long>(f->from), e.what());
    }
  } else if (auto* h = std::get_if<Hello>(&input)) {
    lastHeardUs_[h->from] = nowUs();
    peerHttp_[h->from] = h->http;
  } else if (auto* s = std::get_if<Submit>(&input)) {
    const std::uint64_t requestId = nextRequest_;
    writes_[requestId] = PendingWrite{std::move(s->done), nowUs() + options_.writeTimeoutMs * 1000, ownProposal(s->command)};
  } else if (auto* r = std::get_if<Read>(&input)) {
    reads_[nextRead_++] = PendingRead{std::move(r->done), nowUs() + options_.writeTimeoutMs * 1000};
  } else if (auto* k = std::get_if<Keepalive>(&input)) {
    keepalives_[nextKeepalive_++] =
        PendingKeepalive{k->session, std::move(k->done), nowUs() + options_.writeTimeoutMs * 1000};
  }
}

void ReplicatedLog::onPeerFrame(std::uint64_t from, const std::string& body) {
  if (body.empty()) throw DecodeError("empty frame");
  const auto kind = static_cast<Frame>(body[0]);
  const std::string_view rest = std::string_view(body).substr(1);
  Decoder in(rest);
  switch (kind) {
    case Frame::Paxos: {
      paxos::Message message = paxos::decodeMessage(rest);
      if (message.from != from || message.to != options_.id) throw DecodeError("misaddressed message");
      if (replica_) readies_.push_back(replica_->step(message, nowUs()));
      break;
    }
    case Frame::Forward: {
      auto proposals = decodeProposals(in, rest.size());
      in.expectDone();
      if (replica_ && replica_->isLeader()) {
        proposeLocal(std::move(proposals));
      } else {
        transport_->send(from, proposalsFrame(Frame::ForwardRejected, proposals));
      }
      break;
    }
    case Frame::ForwardRejected: {
      for (const auto& bytes : decodeProposals(in, rest.size())) {
        Proposal p = decodeProposal(bytes);
        auto it = writes_.find(p.requestId);
        if (ours(p) && it != writes_.end()) {
          p.timestampMs = 0;
          it->second.proposal = encodeProposal(p);  // try again next turn
        }
      }
      break;
    }
    case Frame::ReadIndexRequest: {
      const ForwardedRead read{from, in.fixed64(), in.varint()};
      in.expectDone();
      if (!replica_ || !replica_->isLeader()) {
        answerForwardedRead(read, false, 0);
      } else if (auto index = replica_->leaseRead(nowUs())) {
        answerForwardedRead(read, true, *index);
      } else {
        const std::uint64_t rid = nextRead_++;
        forwardedReads_[rid] = read;
        readies_.push_back(replica_->requestRead(rid, nowUs()));
      }
      break;
    }
    case Frame::ReadIndexReply: {
      const std::uint64_t incarnation = in.fixed64();
      const std::uint64_t id = in.varint();
      const bool ok = in.boolean();
      const std::uint64_t index = in.varint();
      in.expectDone();
      auto it = reads_.find(id);
      // A reply to an earlier process of this node (queued across its restart) is not ours.
      if (incarnation != incarnation_ || it == reads_.end()) break;
      if (ok) {
        it->second.indexKnown = true;
        it->second.index = index;
      } else {
        it->second.asked = false;
      }
      break;
    }
    case Frame::Probe: {
      // Any vote leaves a promise behind (an accept raises it too, and a candidate promises
      // itself before it asks), so this is all it takes.
      const std::uint64_t nonce = in.fixed64();
      in.expectDone();
      const bool history = applied_ > 0 || (replica_ && !replica_->promised().isZero());
      Encoder out;
      out.fixed64(nonce);
      out.boolean(history);
      transport_->send(from, frame(Frame::ProbeReply, out.data()));
      break;
    }
    case Frame::ProbeReply: {
      const std::uint64_t nonce = in.fixed64();
      const bool history = in.boolean();
      in.expectDone();
      if (replica_ || nonce != incarnation_) break;  // an answer to an earlier process
      if (history) {
        // The cluster has a past this node does not remember: its disk was wiped. Rebuild as
        // a learner (PAXOS.md 5).
        std::fprintf(stderr, "warden: empty data directory in a cluster with history: rejoining as a learner\n");
        replica_ = std::make_unique<paxos::Replica>(options_.paxos, paxos::DurableState{}, 0, true, *random_, nowUs());
      } else {
        probedEmpty_.insert(from);
        // Every member, asked after this process started, says it never promised anything: no
        // ballot was ever issued (a candidate promises its own ballot before it asks), so this
        // disk cannot have promised or accepted anything either. A majority's "empty" would not
        // do: it rules out chosen values, but not a promise this disk gave to a candidate whose
        // other Prepares are still on their way (PAXOS.md 5).
        if (probedEmpty_.size() + 1 >= options_.members.size()) {
          replica_ = std::make_unique<paxos::Replica>(options_.paxos, paxos::DurableState{}, 0, false, *random_, nowUs());
        }
      }
      break;
    }
    case Frame::SnapshotChunk: receiveSnapshotChunk(from, in, rest.size()); break;
    case Frame::KeepaliveRequest: {
      const std::uint64_t incarnation = in.fixed64();
      std::uint64_t n = in.varint();
      if (n > rest.size()) throw DecodeError("too many keepalives");
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
      break;
    }
    case Frame::KeepaliveReply: onKeepaliveReply(in, rest.size()); break;
    default: throw DecodeError("unknown frame kind");
  }
}

void ReplicatedLog::sendSnapshot(std::uint64_t peer) {
  const std::uint64_t now = nowUs();
  auto& last = lastSnapshotUs_[peer];
  if (last != 0 && now < last + kSnapshotIntervalUs) return;  // one at a time, roughly
  last = now;
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
    transport_->send(peer, frame(Frame::SnapshotChunk, body));
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
  std::fprintf(stderr, "warden: sent node %llu a snapshot up to slot %llu in %llu chunks\n",
               static_cast<unsigned long long>(peer), static_cast<unsigned long long>(applied),
               static_cast<unsigned long long>(chunk));
}

void ReplicatedLog::receiveSnapshotChunk(std::uint64_t from, Decoder& in, std::size_t size) {
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
    std::fprintf(stderr, "warden: dropped a snapshot larger than 1 GiB\n");
    incoming_.erase(from);
    return;
  }
  if (!last) return;
  IncomingSnapshot done = std::move(incoming);
  incoming_.erase(from);
  // Chosen entries handed out this turn but not yet applied may already cover it: then the log
  // is enough, and installing would apply those entries on top of a newer state.
  if (!replica_ || done.applied <= applied_ || done.applied <= replica_->commitIndex()) return;
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
  std::fprintf(stderr, "warden: installed a snapshot from node %llu up to slot %llu\n",
               static_cast<unsigned long long>(from), static_cast<unsigned long long>(done.applied));
  readies_.push_back(replica_->installSnapshot(done.applied, nowUs()));
  if (onApplied_) onApplied_(revision);
}

void ReplicatedLog::proposeLocal(std::vector<std::string> proposals) {
  // The leader stamps time once per command; apply uses only these stamps (ARCHITECTURE.md 1).
  std::uint64_t now = std::max(wallMs(), lastTimestampMs_);
  for (auto& bytes : proposals) {
    Proposal p = decodeProposal(bytes);
    p.timestampMs = now;
    bytes = encodeProposal(p);
  }
  readies_.push_back(replica_->propose(std::move(proposals), nowUs()));
}

void ReplicatedLog::forward(std::vector<std::string> proposals) {
  const std::uint64_t leader = replica_ ? replica_->leaderHint() : 0;
  auto heard = lastHeardUs_.find(leader);
  const bool recent = heard != lastHeardUs_.end() && nowUs() - heard->second < 3 * options_.paxos.heartbeatInterval;
  if (leader == 0 || leader == options_.id || !recent) {
    // No leader that spoke lately: keep them for the next turn (their deadline still runs).
    // What never left cannot be chosen, so trying again later cannot apply a write twice.
    for (auto& bytes : proposals) {
      Proposal p = decodeProposal(bytes);
      auto it = writes_.find(p.requestId);
      if (ours(p) && it != writes_.end()) it->second.proposal = std::move(bytes);
    }
    return;
  }
  transport_->send(leader, proposalsFrame(Frame::Forward, proposals));
}

void ReplicatedLog::answerForwardedRead(const ForwardedRead& read, bool ok, std::uint64_t index) {
  Encoder out;
  out.fixed64(read.incarnation);
  out.varint(read.id);
  out.boolean(ok);
  out.varint(index);
  transport_->send(read.origin, frame(Frame::ReadIndexReply, out.data()));
}

bool ReplicatedLog::ours(const Proposal& p) const { return p.origin == options_.id && p.incarnation == incarnation_; }

void ReplicatedLog::serveReads() {
  const std::uint64_t now = nowUs();
  for (auto it = reads_.begin(); it != reads_.end();) {
    PendingRead& r = it->second;
    if (!r.indexKnown && replica_) {
      if (replica_->isLeader()) {
        if (auto index = replica_->leaseRead(now)) {
          r.indexKnown = true;
          r.index = *index;
        } else if (!r.asked) {
          r.asked = true;
          r.deadlineUs = std::max(r.deadlineUs, now);
          readies_.push_back(replica_->requestRead(it->first, now));
        }
      } else if (!r.asked || now >= r.askedAtUs + kReaskReadUs) {
        const std::uint64_t leader = replica_->leaderHint();
        if (leader != 0 && leader != options_.id) {
          r.asked = true;
          r.askedAtUs = now;
          Encoder out;
          out.fixed64(incarnation_);
          out.varint(it->first);
          transport_->send(leader, frame(Frame::ReadIndexRequest, out.data()));
        }
      }
    }
    if (r.indexKnown && applied_ >= r.index) {
      r.done(Status::Ok);
      it = reads_.erase(it);
    } else {
      ++it;
    }
  }
}

void ReplicatedLog::finishReadyBatch() {
  // Persist, release, deliver to self, repeat: self-addressed messages may produce more.
  for (int round = 0; round < 64 && !readies_.empty(); ++round) {
    std::vector<paxos::Ready> batch = std::move(readies_);
    readies_.clear();
    auto proofs = store_.persistAll(batch);
    std::vector<paxos::Message> toSelf;
    std::vector<paxos::ChosenEntry> chosen;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      paxos::Ready& ready = batch[i];
      for (auto& message : ready.release(proofs[i])) {
        if (message.to == options_.id) {
          toSelf.push_back(std::move(message));
        } else {
          transport_->send(message.to, frame(Frame::Paxos, paxos::encodeMessage(message)));
        }
      }
      std::move(ready.committed.begin(), ready.committed.end(), std::back_inserter(chosen));
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
      for (auto& rejected : ready.rejected) {
        std::map<std::uint64_t, std::vector<std::string>> byOrigin;
        for (auto& bytes : rejected.commands) {
          Proposal p = decodeProposal(bytes);
          p.timestampMs = 0;
          byOrigin[p.origin].push_back(encodeProposal(p));
        }
        for (auto& [origin, proposals] : byOrigin) {
          if (origin == options_.id) {
            for (auto& bytes : proposals) {
              const Proposal p = decodeProposal(bytes);
              auto it = writes_.find(p.requestId);
              if (ours(p) && it != writes_.end()) it->second.proposal = std::move(bytes);
            }
          } else {
            transport_->send(origin, proposalsFrame(Frame::ForwardRejected, proposals));
          }
        }
      }
      for (std::uint64_t peer : ready.snapshotNeeded) sendSnapshot(peer);
    }
    if (!chosen.empty()) apply(chosen);
    for (const auto& message : toSelf) readies_.push_back(replica_->step(message, nowUs()));
    if (replica_ && applied_ > replica_->compactedUpTo() + 2 * options_.retainedSlots) {
      readies_.push_back(replica_->compact(applied_ - options_.retainedSlots));
    }
  }
  serveReads();
}

void ReplicatedLog::apply(const std::vector<paxos::ChosenEntry>& entries) {
  struct Origin {
    std::uint64_t requestId = 0;
    bool ours = false;
  };
  std::vector<std::vector<Origin>> origins;
  std::uint64_t revision = 0;
  std::vector<std::pair<std::uint64_t, CommandResult>> answers;
  {
    storage::Txn txn = storage::Txn::write(env_);
    for (const auto& chosen : entries) {
      if (chosen.slot <= applied_) continue;  // a snapshot installed this turn covers it
      Entry entry;
      entry.index = chosen.slot;
      entry.timestampMs = lastTimestampMs_;
      std::vector<Origin> slotOrigins;
      for (const auto& bytes : chosen.value.commands) {
        // A proposal that does not decode is skipped the same way on every replica.
        try {
          Proposal p = decodeProposal(bytes);
          Decoder in(p.command);
          Command command = decodeCommand(in);
          in.expectDone();
          entry.timestampMs = std::max(entry.timestampMs, p.timestampMs);
          entry.commands.push_back(std::move(command));
          slotOrigins.push_back(Origin{p.requestId, ours(p)});
        } catch (const DecodeError&) {
        }
      }
      auto results = stateMachine_.apply(txn, entry);
      lastTimestampMs_ = entry.timestampMs;
      {
        std::lock_guard lock(keeperMutex_);
        for (std::size_t i = 0; i < results.size(); ++i) keeper_.applied(entry.commands[i], results[i], nowUs() / 1000);
      }
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (slotOrigins[i].ours) answers.emplace_back(slotOrigins[i].requestId, std::move(results[i]));
      }
      applied_ = chosen.slot;
    }
    revision = stateMachine_.revision(txn);
    epoch_ = stateMachine_.sessionEpoch(txn);
    txn.commit();
  }
  if (onApplied_) onApplied_(revision);
  for (auto& [requestId, result] : answers) {
    auto it = writes_.find(requestId);
    if (it == writes_.end()) continue;  // answered already (timed out)
    Done done = std::move(it->second.done);
    writes_.erase(it);
    // A callback that throws must not take the driver (and the node's vote) with it.
    try {
      done(std::move(result));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warden: a write's completion failed: %s\n", e.what());
    }
  }
}

// ---- sessions --------------------------------------------------------------------------------

void ReplicatedLog::syncKeeper() {
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
  const auto index = replica_->leaseRead(nowUs());
  serving_ = index && applied_ >= *index && (epoch_ == replica_->ballot() || options_.bugs.serveWithoutEpoch);
  std::lock_guard lock(keeperMutex_);
  if (!serving_ && keeper_.leading()) {
    // The lease lapsed (a pause, a lost round): keepalives may have waited in queues meanwhile,
    // so when it serves again every session gets a fresh ttl, as at a takeover.
    keeper_.stepDown();
  }
  if (serving_ && !keeper_.leading()) {
    storage::Txn txn = storage::Txn::read(env_);
    const auto sessions = stateMachine_.sessions().ttls(txn);
    keeper_.takeOver(nowUs() / 1000, sessions);
    if (!sessions.empty()) {
      std::fprintf(stderr, "warden: leading: %zu sessions get a fresh ttl from now\n", sessions.size());
    }
  }
  servingUntilUs_.store(serving_ ? replica_->leaseEnd() : 0, std::memory_order_release);
}

void ReplicatedLog::serveKeepalives() {
  syncKeeper();
  const std::uint64_t now = nowUs();
  if (serving_) answerHeldRelays(false);
  const bool leader = replica_ && replica_->isLeader();
  const std::uint64_t target = replica_ ? replica_->leaderHint() : 0;
  const bool relayNow = now >= lastRelayUs_ + kRelayBatchUs;
  relayWakeUs_ = 0;
  Encoder relay;
  std::uint64_t relayCount = 0;
  for (auto it = keepalives_.begin(); it != keepalives_.end();) {
    PendingKeepalive& k = it->second;
    if (serving_) {
      const auto ttl = keepaliveLocked(k.session, now);
      KeepaliveDone done = std::move(k.done);
      it = keepalives_.erase(it);
      done(ttl ? Status::Ok : Status::SessionNotFound, ttl.value_or(0));
      continue;
    }
    if (!leader && target != 0 && target != options_.id && (k.askedAtUs == 0 || now >= k.askedAtUs + kReaskKeepaliveUs)) {
      if (!relayNow) {
        relayWakeUs_ = lastRelayUs_ + kRelayBatchUs;  // the driver wakes then to send them
        ++it;
        continue;
      }
      relay.varint(it->first);
      relay.varint(k.session);
      ++relayCount;
      k.askedAtUs = now;
    }
    ++it;
  }
  if (relayCount > 0) {
    lastRelayUs_ = now;
    Encoder out;
    out.fixed64(incarnation_);
    out.varint(relayCount);
    transport_->send(target, frame(Frame::KeepaliveRequest, out.take() + relay.take()));
  }
}

void ReplicatedLog::answerHeldRelays(bool retry) {
  if (heldRelays_.empty()) return;
  std::map<std::uint64_t, std::vector<RelayedKeepalive>> byFollower;
  for (const auto& r : heldRelays_) byFollower[r.from].push_back(r);
  heldRelays_.clear();
  for (const auto& [follower, relayed] : byFollower) answerKeepalives(follower, relayed, retry);
}

std::optional<std::uint64_t> ReplicatedLog::keepaliveLocked(std::uint64_t session, std::uint64_t atUs) {
  std::lock_guard lock(keeperMutex_);
  return keeper_.keepalive(session, atUs / 1000);
}

void ReplicatedLog::answerKeepalives(std::uint64_t follower, const std::vector<RelayedKeepalive>& relayed, bool retry) {
  // One frame per incarnation of the follower (nearly always one).
  std::map<std::uint64_t, std::vector<const RelayedKeepalive*>> byIncarnation;
  for (const auto& r : relayed) byIncarnation[r.incarnation].push_back(&r);
  for (const auto& [incarnation, group] : byIncarnation) answerKeepalives(follower, incarnation, group, retry);
}

void ReplicatedLog::answerKeepalives(std::uint64_t follower, std::uint64_t incarnation,
                                     const std::vector<const RelayedKeepalive*>& relayed, bool retry) {
  const std::uint64_t now = nowUs();
  Encoder out;
  out.fixed64(incarnation);
  out.varint(relayed.size());
  for (const auto* r : relayed) {
    out.varint(r->id);
    const auto ttl = retry ? std::nullopt : keepaliveLocked(r->session, now);
    const auto answer = retry ? KeepaliveAnswer::AskAgain : ttl ? KeepaliveAnswer::Alive : KeepaliveAnswer::NotFound;
    out.u8(static_cast<std::uint8_t>(answer));
    out.varint(ttl.value_or(0));
  }
  transport_->send(follower, frame(Frame::KeepaliveReply, out.data()));
}

void ReplicatedLog::onKeepaliveReply(Decoder& in, std::size_t size) {
  const std::uint64_t incarnation = in.fixed64();
  std::uint64_t n = in.varint();
  if (n > size) throw DecodeError("too many keepalive answers");
  const std::uint64_t now = nowUs();
  for (; n > 0; --n) {
    const std::uint64_t id = in.varint();
    const std::uint8_t raw = in.u8();
    if (raw > static_cast<std::uint8_t>(KeepaliveAnswer::AskAgain)) throw DecodeError("unknown keepalive answer");
    const auto answer = static_cast<KeepaliveAnswer>(raw);
    const std::uint64_t ttl = in.varint();
    auto it = keepalives_.find(id);
    if (incarnation != incarnation_ || it == keepalives_.end()) continue;  // an earlier process's, or timed out
    if (answer == KeepaliveAnswer::AskAgain) {
      // The addressee no longer leads: ask again soon, once a new leader is known.
      it->second.askedAtUs = now > kReaskKeepaliveUs ? now - kReaskKeepaliveUs + 20'000 : 0;
      continue;
    }
    KeepaliveDone done = std::move(it->second.done);
    keepalives_.erase(it);
    done(answer == KeepaliveAnswer::Alive ? Status::Ok : Status::SessionNotFound, ttl);
  }
  in.expectDone();
}

void ReplicatedLog::proposeEpoch() {
  if (!replica_ || !replica_->isLeader() || epoch_ == replica_->ballot()) return;
  const std::uint64_t now = nowUs();
  if (epochProposed_ == replica_->ballot() && now < epochProposedAtUs_ + kEpochRetryUs) return;
  epochProposed_ = replica_->ballot();
  epochProposedAtUs_ = now;
  proposeLocal({ownProposal(epochCommand(replica_->ballot()))});
}

std::string ReplicatedLog::ownProposal(const Command& command) {
  Proposal p;
  p.origin = options_.id;
  p.incarnation = incarnation_;
  p.requestId = nextRequest_++;
  Encoder out;
  encodeCommand(out, command);
  p.command = out.take();
  return encodeProposal(p);
}

void ReplicatedLog::proposeExpiries() {
  const std::uint64_t now = nowUs();
  // The lease is checked at this instant: a leader waking from a pause must not propose on the
  // strength of a lease that ran out while it slept (PAXOS.md 9).
  if (!serving_ || now < nextExpiryScanUs_ || !replica_->leaseValid(now)) return;
  nextExpiryScanUs_ = now + kExpiryScanUs;
  std::vector<std::uint64_t> due;
  {
    std::lock_guard lock(keeperMutex_);
    due = keeper_.due(now / 1000);
  }
  std::vector<std::string> proposals;
  for (std::uint64_t id : due) {
    // Nobody waits for the answer: apply tells the keeper, and a lost expiry is due again.
    proposals.push_back(ownProposal(expireCommand(id, replica_->ballot())));
  }
  if (!proposals.empty()) proposeLocal(std::move(proposals));
}

void ReplicatedLog::expire() {
  const std::uint64_t now = nowUs();
  if (!replica_ && now >= lastProbeUs_ + kProbeIntervalUs) {
    // Still probing an empty disk: ask again until the peers answer.
    lastProbeUs_ = now;
    for (const auto& [id, address] : options_.members) {
      if (id != options_.id) {
        Encoder nonce;
        nonce.fixed64(incarnation_);
        transport_->send(id, frame(Frame::Probe, nonce.data()));
      }
    }
  }
  takeOverdue(writes_, now, [this](PendingWrite& w) {
    CommandResult r;
    r.status = Status::NoQuorum;
    r.message = "no leader with a majority committed the write within " + std::to_string(options_.writeTimeoutMs) +
                " ms; it may still be applied later";
    w.done(std::move(r));
  });
  takeOverdue(reads_, now, [](PendingRead& r) { r.done(Status::NoQuorum); });
  takeOverdue(keepalives_, now, [](PendingKeepalive& k) { k.done(Status::NoQuorum, 0); });
}

void ReplicatedLog::updateView() {
  ClusterView v;
  v.id = options_.id;
  const std::uint64_t now = nowUs();
  if (replica_) {
    const std::uint64_t leader = replica_->isLeader() ? options_.id : replica_->leaderHint();
    if (leader != 0) v.leader = leader;
    v.commitIndex = replica_->commitIndex();
    v.learner = replica_->isLearner();
  } else {
    v.learner = true;
  }
  v.appliedIndex = applied_;
  {
    std::lock_guard lock(keeperMutex_);
    liveSessions_.store(keeper_.size(), std::memory_order_relaxed);
  }
  for (const auto& [id, address] : options_.members) {
    MemberView m;
    m.id = id;
    m.peer = address;
    if (id == options_.id) {
      m.http = options_.http;
      m.healthy = true;
    } else {
      if (auto it = peerHttp_.find(id); it != peerHttp_.end()) m.http = it->second;
      auto heard = lastHeardUs_.find(id);
      // Followers rarely hear each other, so a live connection counts as much as a message.
      m.healthy = transport_->connected(id) || (heard != lastHeardUs_.end() && now - heard->second < kHealthyWithinUs);
    }
    m.leader = v.leader && *v.leader == id;
    v.members.push_back(std::move(m));
  }
  std::lock_guard lock(viewMutex_);
  view_ = std::move(v);
}

}  // namespace warden::coordinator
