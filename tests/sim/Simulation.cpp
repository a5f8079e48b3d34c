#include "tests/sim/Simulation.h"

#include "session/Keeper.h"
#include "tests/sim/MemoryLogStore.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <queue>
#include <sstream>

namespace warden::tests::sim {

namespace paxos = coordinator::paxos;
using paxos::ChosenEntry;
using paxos::Message;
using paxos::Ready;
using paxos::Replica;
using paxos::Value;

namespace {

// SplitMix64: small, fast, and the same sequence on every platform.
class Rng : public paxos::Random {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() override {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }

 private:
  std::uint64_t state_;
};

// The disk keeps only what was synced: persist() is called when a Ready's fsync completes, so a
// crash before that loses the Ready's records and its messages alike.
using MemoryStore = MemoryLogStore;

enum class EventKind { Deliver, Send, Tick, SyncDone, Client, Fault, Read, Snapshot, Resume, Heal, Sessions };

// Session commands in the simulated log, beside the plain "c<n>" ones:
//   "S<id>:<ttl ms>" creates a session, "E<id>:<path>" an ephemeral node it owns,
//   "X<id>@<true time of the proposal>" expires it (proposed by a leader's Keeper).
struct SessionCommand {
  char kind = 0;
  std::uint64_t id = 0;
  std::uint64_t number = 0;  // S: ttl ms; X: true time
  std::string path;          // E
};

std::optional<SessionCommand> parseSessionCommand(const std::string& c) {
  if (c.empty() || (c[0] != 'S' && c[0] != 'E' && c[0] != 'X')) return std::nullopt;
  const auto sep = c.find_first_of(":@");
  SessionCommand out;
  out.kind = c[0];
  out.id = std::stoull(c.substr(1, sep - 1));
  if (c[0] == 'E') {
    out.path = c.substr(sep + 1);
  } else {
    out.number = std::stoull(c.substr(sep + 1));
  }
  return out;
}

// What the client knows of one of its sessions.
struct ClientSession {
  std::uint64_t ttlMs = 0;
  std::string create;       // its create command
  bool createTaken = false;  // a leader took the create; until then the client tries again
  bool keep = true;         // the client still sends keepalives
  bool lost = false;        // a keepalive was refused: it expired
  Time abandonedAt = 0;
  Time nextKeepalive = 0;
  std::optional<Time> lastAck;     // true time of the last acknowledged keepalive
  std::vector<std::string> nodes;  // its ephemeral nodes' create commands
};

struct Event {
  Event() = default;
  Event(Time at_, std::uint64_t seq_, EventKind kind_, NodeId node_ = 0, std::uint64_t incarnation_ = 0,
        Message message_ = {})
      : at(at_), seq(seq_), kind(kind_), node(node_), incarnation(incarnation_), message(std::move(message_)) {}

  Time at = 0;
  std::uint64_t seq = 0;
  EventKind kind = EventKind::Tick;
  NodeId node = 0;
  std::uint64_t incarnation = 0;
  Message message;
  std::vector<Value> snapshot;

  bool operator>(const Event& other) const { return at != other.at ? at > other.at : seq > other.seq; }
};

struct SimNode {
  NodeId id = 0;
  Rng rng{0};
  MemoryStore store;
  std::unique_ptr<Replica> replica;
  bool up = true;
  bool paused = false;
  bool wiped = false;  // its disk was wiped at some point
  std::uint64_t incarnation = 0;
  double rate = 1.0;  // local clock speed against true time
  Time offset = 0;
  std::vector<Value> applied;  // slot i + 1; durable, as the node's LMDB state is
  std::deque<Ready> unsynced;  // in fsync order
  Time syncFreeAt = 0;
  std::vector<Event> deferred;  // arrived while paused
  // Sessions: the replicated table as this node applied it, and the leader's Keeper.
  std::map<std::uint64_t, std::uint64_t> sessions;  // id -> ttl ms
  std::map<std::string, std::uint64_t> ephemerals;  // path -> owner
  ::warden::session::Keeper keeper;
  Time nextExpiryScan = 0;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options) : options_(options), rng_(options.seed) {
    config_.members.clear();
    for (NodeId id = 1; id <= options.replicas; ++id) config_.members.push_back(id);
    config_.bugs = options.bugs;
    const double drift = config_.maxDrift;
    for (NodeId id = 1; id <= options.replicas; ++id) {
      auto node = std::make_unique<SimNode>();
      node->id = id;
      node->rng = Rng(options.seed * 1000003 + id);
      // Clocks run at a rate within the drift bound and start anywhere.
      node->rate = 1.0 + (rng_.unit() * 2 - 1) * drift * 0.999;
      node->offset = rng_.range(0, 1'000'000'000);
      nodes_.push_back(std::move(node));
    }
    dropRate_ = rng_.unit() * 0.08;
    dupRate_ = rng_.unit() * 0.04;
    maxDelay_ = rng_.range(200, 20'000);
    for (auto& node : nodes_) startReplica(*node, false);
  }

  SimResult run() {
    const Time end = options_.faultyFor + options_.healedFor;
    for (auto& node : nodes_) schedule(Event{rng_.range(0, 10'000), 0, EventKind::Tick, node->id});
    schedule(Event{1'000, 0, EventKind::Client});
    schedule(Event{50'000, 0, EventKind::Read});
    schedule(Event{20'000, 0, EventKind::Sessions});
    schedule(Event{rng_.range(100'000, 600'000), 0, EventKind::Fault});
    schedule(Event{options_.faultyFor, 0, EventKind::Heal});
    while (!queue_.empty() && result_.ok) {
      Event event = queue_.top();
      queue_.pop();
      if (event.at > end) break;
      now_ = event.at;
      ++result_.events;
      dispatch(std::move(event));
      if (result_.ok) checkLeases();
    }
    if (result_.ok) checkLiveness();
    if (result_.ok) checkSessionsAtEnd();
    result_.chosenSlots = chosen_.size();
    result_.commandsChosen = chosenCommands_.size();
    result_.digest = digest();
    return result_;
  }

 private:
  // ---- plumbing ---------------------------------------------------------------------------
  void schedule(Event event) {
    event.seq = ++seq_;
    queue_.push(std::move(event));
  }

  SimNode& node(NodeId id) { return *nodes_[id - 1]; }
  Time localNow(const SimNode& n) const { return n.offset + static_cast<Time>(static_cast<double>(now_) * n.rate); }
  bool runnable(const SimNode& n) const { return n.up && !n.paused; }

  void trace(const std::string& line) {
    if (options_.trace) std::printf("%10.6f %s\n", static_cast<double>(now_) / 1e6, line.c_str());
  }

  void fail(const std::string& what) {
    if (!result_.ok) return;
    result_.ok = false;
    std::ostringstream out;
    out << "seed " << options_.seed << " (" << options_.replicas << " replicas) at t=" << now_ / 1000 << "ms: " << what;
    result_.violation = out.str();
    trace("VIOLATION " + what);
  }

  void startReplica(SimNode& n, bool wiped) {
    paxos::DurableState durable = n.store.load();
    // A wiped node that crashed before it could record that it is rebuilding comes back to an
    // empty disk again; production tells this case by an empty data directory in a cluster
    // with history, the simulator by remembering the wipe.
    const bool pristine = !durable.learner && durable.promised.isZero() && durable.accepted.empty() &&
                          durable.compactedUpTo == 0 && n.applied.empty();
    if (n.wiped && pristine) wiped = true;
    if (wiped) n.wiped = true;
    if (options_.wipedVotesAtOnce) wiped = false;
    if (options_.forgetStateOnRestart && n.incarnation > 0) durable = {};
    n.replica = std::make_unique<Replica>(config(n.id), std::move(durable), n.applied.size(), wiped, n.rng, localNow(n));
  }

  paxos::ReplicaConfig config(NodeId id) const {
    paxos::ReplicaConfig c = config_;
    c.id = id;
    return c;
  }

  // ---- events -----------------------------------------------------------------------------
  void dispatch(Event event) {
    switch (event.kind) {
      case EventKind::Tick: {
        SimNode& n = node(event.node);
        if (runnable(n)) {
          handle(n, n.replica->tick(localNow(n)));
          if (result_.ok) proposeExpiries(n);
        }
        schedule(Event{now_ + 10'000, 0, EventKind::Tick, n.id});
        break;
      }
      case EventKind::Deliver:
      case EventKind::Send:
      case EventKind::SyncDone:
      case EventKind::Snapshot: {
        SimNode& n = node(event.node);
        if (!n.up) break;
        // Work of a process that has since crashed is gone; but a packet that was on its way to
        // an earlier incarnation sometimes still arrives (the core must not rely on TCP).
        if (n.incarnation != event.incarnation &&
            !(event.kind == EventKind::Deliver && rng_.chance(staleDeliveryRate_))) {
          break;
        }
        event.incarnation = n.incarnation;
        if (n.paused) {
          n.deferred.push_back(std::move(event));
          break;
        }
        runNodeEvent(n, std::move(event));
        break;
      }
      case EventKind::Resume: {
        SimNode& n = node(event.node);
        if (!n.up || n.incarnation != event.incarnation || !n.paused) break;
        n.paused = false;
        trace("resume " + std::to_string(n.id));
        std::vector<Event> deferred = std::move(n.deferred);
        n.deferred.clear();
        for (auto& e : deferred) {
          if (!result_.ok || !runnable(n) || n.incarnation != e.incarnation) break;
          runNodeEvent(n, std::move(e));
        }
        break;
      }
      case EventKind::Client: clientStep(); break;
      case EventKind::Sessions: sessionStep(); break;
      case EventKind::Read: readStep(); break;
      case EventKind::Fault: injectFault(); break;
      case EventKind::Heal: heal(); break;
    }
  }

  void runNodeEvent(SimNode& n, Event event) {
    switch (event.kind) {
      case EventKind::Deliver:
        if (options_.trace) trace("deliver " + describe(event.message) + " role " + role(n));
        handle(n, n.replica->step(event.message, localNow(n)));
        break;
      case EventKind::SyncDone: {
        Ready ready = std::move(n.unsynced.front());
        n.unsynced.pop_front();
        auto proof = n.store.persist(ready);
        // Durable now; the messages leave a moment later, so a crash can fall in between.
        Time at = now_ + rng_.range(0, 200);
        for (auto& message : ready.release(proof)) {
          schedule(Event{at, 0, EventKind::Send, n.id, n.incarnation, std::move(message)});
        }
        break;
      }
      case EventKind::Send: transmit(n, std::move(event.message)); break;
      case EventKind::Snapshot: installSnapshot(n, std::move(event.snapshot)); break;
      default: break;
    }
  }

  static std::string describe(const Message& m) {
    std::string out = std::string(paxos::messageName(m.payload)) + " " + std::to_string(m.from) + "->" + std::to_string(m.to);
    if (const auto* p = std::get_if<paxos::Promise>(&m.payload)) {
      out += " " + paxos::toString(p->ballot) + (p->ok ? " ok" : p->leaseHeld ? " lease-held" : " refused") +
             " compacted " + std::to_string(p->compactedUpTo);
    } else if (const auto* pr = std::get_if<paxos::Prepare>(&m.payload)) {
      out += " " + paxos::toString(pr->ballot) + " from slot " + std::to_string(pr->fromSlot);
    } else if (const auto* a = std::get_if<paxos::Accept>(&m.payload)) {
      out += " " + paxos::toString(a->ballot) + " slot " + std::to_string(a->slot);
    }
    return out;
  }

  static std::string role(const SimNode& n) {
    if (!n.replica) return "down";
    const char* names[] = {"follower", "candidate", "leader"};
    return std::string(names[static_cast<int>(n.replica->role())]) + (n.replica->isLearner() ? " learner" : "") +
           " commit " + std::to_string(n.replica->commitIndex());
  }

  // What a node does with a Ready: apply and answer at once, queue the rest behind its fsync.
  void handle(SimNode& n, Ready ready) {
    for (const auto& entry : ready.committed) apply(n, entry);
    for (const auto& read : ready.reads) finishRead(n, read);
    for (const auto& rejected : ready.rejected) {
      if (rejected.leaderHint != 0) knownLeader_ = rejected.leaderHint;
    }
    for (NodeId peer : ready.snapshotNeeded) {
      result_.snapshots++;
      Event e{now_ + rng_.range(1'000, 5'000), 0, EventKind::Snapshot, peer, node(peer).incarnation};
      e.snapshot = n.applied;
      schedule(std::move(e));
    }
    if (!result_.ok) return;
    if (ready.records.empty() && !ready.hasMessages()) return;
    // One disk per node, syncs in order; a Ready without records waits only for earlier ones.
    Time done = std::max(now_, n.syncFreeAt) + (ready.records.empty() ? 0 : rng_.range(50, 1'500));
    n.syncFreeAt = done;
    n.unsynced.push_back(std::move(ready));
    schedule(Event{done, 0, EventKind::SyncDone, n.id, n.incarnation});
    maybeCompact(n);
  }

  void transmit(SimNode& from, Message message) {
    SimNode& to = node(message.to);
    if (message.to == from.id) {  // to itself: no network
      schedule(Event{now_, 0, EventKind::Deliver, to.id, to.incarnation, std::move(message)});
      return;
    }
    if (blocked_.count({from.id, to.id}) || rng_.chance(dropRate_)) return;
    if (rng_.chance(dupRate_)) {
      schedule(Event{now_ + rng_.range(100, maxDelay_), 0, EventKind::Deliver, to.id, to.incarnation, message});
    }
    schedule(Event{now_ + rng_.range(100, maxDelay_), 0, EventKind::Deliver, to.id, to.incarnation, std::move(message)});
  }

  // ---- the state machine and its checks ----------------------------------------------------
  void apply(SimNode& n, const ChosenEntry& entry) {
    if (entry.slot != n.applied.size() + 1) {
      fail("node " + std::to_string(n.id) + " applied slot " + std::to_string(entry.slot) + " after " +
           std::to_string(n.applied.size()));
      return;
    }
    checkChosen(n, entry.slot, entry.value);
    n.applied.push_back(entry.value);
    applySessions(n, entry.value, true);
  }

  void checkChosen(SimNode& n, Slot slot, const Value& value) {
    auto [it, inserted] = chosen_.emplace(slot, value);
    if (!inserted && it->second != value) {
      fail("agreement: node " + std::to_string(n.id) + " chose a different value for slot " + std::to_string(slot));
      return;
    }
    if (!inserted) return;
    if (!value.noop && value.commands.empty()) fail("validity: an empty batch was chosen");
    for (const auto& c : value.commands) {
      if (!proposedCommands_.count(c)) {
        fail("validity: slot " + std::to_string(slot) + " holds '" + c + "', which nobody proposed");
        return;
      }
      chosenCommands_.insert(c);
      pending_.erase(c);
      if (auto sc = parseSessionCommand(c); sc && sc->kind == 'X') checkExpiry(*sc);
    }
  }

  void maybeCompact(SimNode& n) {
    // Compact often, keeping only a short log, so that laggards need snapshots.
    const Slot applied = n.applied.size();
    if (applied >= n.replica->compactedUpTo() + 40) handle(n, n.replica->compact(applied - 8));
  }

  void installSnapshot(SimNode& n, std::vector<Value> snapshot) {
    if (snapshot.size() <= n.applied.size()) return;
    for (std::size_t i = 0; i < n.applied.size(); ++i) {
      if (n.applied[i] != snapshot[i]) {
        fail("identical prefixes: a snapshot disagrees with node " + std::to_string(n.id) + " at slot " +
             std::to_string(i + 1));
        return;
      }
    }
    for (std::size_t i = n.applied.size(); i < snapshot.size(); ++i) checkChosen(n, i + 1, snapshot[i]);
    trace("snapshot to " + std::to_string(n.id) + " up to " + std::to_string(snapshot.size()));
    n.applied = std::move(snapshot);
    rebuildSessions(n);
    handle(n, n.replica->installSnapshot(n.applied.size(), localNow(n)));
  }

  std::uint64_t digest() const {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    auto mix = [&h](std::string_view bytes) {
      for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    };
    mix(std::to_string(result_.events));
    for (const auto& [slot, value] : chosen_) {
      mix(std::to_string(slot) + (value.noop ? "n" : "v"));
      for (const auto& c : value.commands) mix(c);
    }
    return h;
  }

  Slot maxApplied() const {
    Slot m = 0;
    for (const auto& n : nodes_) m = std::max<Slot>(m, n->applied.size());
    return m;
  }

  void checkLeases() {
    int holders = 0;
    std::string who;
    for (const auto& n : nodes_) {
      if (n->up && n->replica->leaseValid(localNow(*n))) {
        ++holders;
        who += " " + std::to_string(n->id);
      }
    }
    if (holders > 1) fail("two leases at once: nodes" + who);
  }

  // ---- the client ---------------------------------------------------------------------------
  void clientStep() {
    const Time stopNew = options_.faultyFor + options_.healedFor / 2;
    if (now_ < stopNew) {
      std::vector<std::string> batch;
      const auto count = rng_.range(1, 3);
      for (std::uint64_t i = 0; i < count; ++i) {
        std::string c = "c" + std::to_string(++commandCounter_);
        proposedCommands_.insert(c);
        pending_[c] = now_;
        batch.push_back(c);
      }
      propose(std::move(batch));
    }
    // Commands not chosen after a while are proposed again (they may end up chosen twice).
    std::vector<std::string> retry;
    for (auto& [command, at] : pending_) {
      if (now_ >= at + 300'000 && retry.size() < 64) {
        retry.push_back(command);
        at = now_;
      }
    }
    if (!retry.empty()) propose(std::move(retry));
    schedule(Event{now_ + rng_.range(5'000, 40'000), 0, EventKind::Client});
  }

  // True when a leader took the commands (they may still be lost with it).
  bool propose(std::vector<std::string> commands) {
    NodeId target = knownLeader_ != 0 ? knownLeader_ : static_cast<NodeId>(rng_.range(1, nodes_.size()));
    SimNode& n = node(target);
    if (!runnable(n)) {
      knownLeader_ = 0;
      return false;
    }
    Ready ready = n.replica->propose(std::move(commands), localNow(n));
    const bool taken = ready.rejected.empty();
    if (!taken && ready.rejected.front().leaderHint == 0) knownLeader_ = 0;
    handle(n, std::move(ready));
    return taken;
  }

  void readStep() {
    schedule(Event{now_ + rng_.range(10'000, 100'000), 0, EventKind::Read});
    SimNode& n = node(static_cast<NodeId>(rng_.range(1, nodes_.size())));
    if (!runnable(n)) return;
    const Slot required = maxApplied();
    // Half the reads try the lease first; the rest take the read-index path.
    auto index = rng_.chance(0.5) ? n.replica->leaseRead(localNow(n)) : std::nullopt;
    if (index) {
      result_.leaseReads++;
      if (*index < required) {
        fail("stale lease read on node " + std::to_string(n.id) + ": index " + std::to_string(*index) +
             " but slot " + std::to_string(required) + " was already chosen");
      }
      return;
    }
    if (n.replica->isLeader()) {
      const std::uint64_t id = ++readCounter_;
      readRequired_[id] = required;
      handle(n, n.replica->requestRead(id, localNow(n)));
    }
  }

  void finishRead(SimNode& n, const paxos::ReadReady& read) {
    auto it = readRequired_.find(read.id);
    if (it == readRequired_.end()) return;
    result_.indexReads++;
    if (read.index < it->second) {
      fail("stale read-index read on node " + std::to_string(n.id) + ": index " + std::to_string(read.index) +
           " but slot " + std::to_string(it->second) + " was chosen before the read began");
    }
    readRequired_.erase(it);
  }

  // ---- sessions -----------------------------------------------------------------------------
  static Time localMs(Time localUs) { return localUs / 1000; }

  // The node's rule (ReplicatedLog::syncKeeper): a leader speaks for sessions only while it holds
  // a lease and has applied every slot that lease read covers.
  bool servesSessions(SimNode& n) {
    if (!runnable(n) || !n.replica->isLeader()) return false;
    if (options_.sessionsWithoutLease) return true;
    auto index = n.replica->leaseRead(localNow(n));
    return index && n.applied.size() >= *index;
  }

  void syncKeeper(SimNode& n) {
    if (!n.replica || !n.replica->isLeader()) {
      if (n.keeper.leading()) n.keeper.stepDown();
      return;
    }
    if (!servesSessions(n) || n.keeper.leading()) return;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> table(n.sessions.begin(), n.sessions.end());
    Time from = localMs(localNow(n));
    if (options_.staleTtlOnTakeover) from = from > 2000 ? from - 2000 : 0;
    n.keeper.takeOver(from, table);
    trace("node " + std::to_string(n.id) + " speaks for " + std::to_string(table.size()) + " sessions");
  }

  void proposeExpiries(SimNode& n) {
    syncKeeper(n);
    if (!servesSessions(n) || !n.keeper.leading() || localNow(n) < n.nextExpiryScan) return;
    n.nextExpiryScan = localNow(n) + 50'000;
    std::vector<std::string> commands;
    for (std::uint64_t id : n.keeper.due(localMs(localNow(n)))) {
      std::string c = "X" + std::to_string(id) + "@" + std::to_string(now_);
      proposedCommands_.insert(c);
      expiryProposed_.insert(id);
      commands.push_back(std::move(c));
    }
    if (commands.empty()) return;
    trace("node " + std::to_string(n.id) + " proposes " + std::to_string(commands.size()) + " expiries");
    handle(n, n.replica->propose(std::move(commands), localNow(n)));
  }

  // The session table's part of apply; `live` tells the Keeper, as the node's apply does.
  void applySessions(SimNode& n, const Value& value, bool live) {
    for (const auto& c : value.commands) {
      auto sc = parseSessionCommand(c);
      if (!sc) continue;
      if (sc->kind == 'S') {
        if (n.sessions.emplace(sc->id, sc->number).second && live) {
          n.keeper.created(sc->id, sc->number, localMs(localNow(n)));
        }
      } else if (sc->kind == 'E') {
        if (n.sessions.count(sc->id)) n.ephemerals.emplace(sc->path, sc->id);
      } else if (n.sessions.erase(sc->id)) {
        std::erase_if(n.ephemerals, [&](const auto& e) { return e.second == sc->id; });
        if (live) n.keeper.ended(sc->id);
      }
    }
  }

  void rebuildSessions(SimNode& n) {
    n.sessions.clear();
    n.ephemerals.clear();
    n.keeper.stepDown();  // rebuilt from the table when it leads again
    for (const auto& value : n.applied) applySessions(n, value, false);
  }

  // An expiry was chosen: no keepalive acknowledged within ttl (on the slowest clock) before
  // its proposal, and none ever after.
  void checkExpiry(const SessionCommand& x) {
    result_.expiries++;
    expiryChosen_.insert(x.id);
    auto it = clientSessions_.find(x.id);
    if (it == clientSessions_.end() || !it->second.lastAck) return;
    const ClientSession& cs = it->second;
    const double margin = static_cast<double>(cs.ttlMs - 2) * 1000.0 / (1.0 + config_.maxDrift);
    if (static_cast<double>(*cs.lastAck) + margin > static_cast<double>(x.number)) {
      fail("session " + std::to_string(x.id) + " expired by a proposal made " +
           std::to_string((static_cast<std::int64_t>(x.number) - static_cast<std::int64_t>(*cs.lastAck)) / 1000) +
           "ms after its last acknowledged keepalive (ttl " + std::to_string(cs.ttlMs) + "ms)");
    }
  }

  void sessionStep() {
    schedule(Event{now_ + rng_.range(10'000, 40'000), 0, EventKind::Sessions});
    const Time stopNew = options_.faultyFor + options_.healedFor / 2;
    std::size_t kept = 0;
    for (const auto& [id, cs] : clientSessions_) kept += cs.keep && !cs.lost;
    if (now_ < stopNew && kept < 6 && rng_.chance(0.3)) {
      const std::uint64_t id = ++sessionCounter_;
      ClientSession cs;
      cs.ttlMs = rng_.range(300, 1500);
      cs.create = "S" + std::to_string(id) + ":" + std::to_string(cs.ttlMs);
      // Some clients walk away at once; the rest keep their session (a few abandon it later).
      cs.keep = rng_.chance(0.8);
      cs.abandonedAt = now_;
      proposedCommands_.insert(cs.create);
      cs.createTaken = propose({cs.create});
      clientSessions_[id] = cs;
      result_.sessions++;
    }
    for (auto& [id, cs] : clientSessions_) {
      // A create no leader took is surely not in the log: sending it again cannot apply it twice.
      if (!cs.createTaken && now_ < stopNew) cs.createTaken = propose({cs.create});
      if (!cs.keep || cs.lost || now_ < cs.nextKeepalive) continue;
      if (!chosenCommands_.count(cs.create)) {
        cs.nextKeepalive = now_ + 20'000;  // not created (yet)
        continue;
      }
      if (now_ < stopNew && rng_.chance(0.01)) {
        cs.keep = false;
        cs.abandonedAt = now_;
        continue;
      }
      keepalive(id, cs);
      if (now_ < stopNew && cs.keep && !cs.lost && cs.nodes.size() < 3 && rng_.chance(0.2)) {
        std::string c = "E" + std::to_string(id) + ":/s" + std::to_string(id) + "/n" + std::to_string(cs.nodes.size());
        proposedCommands_.insert(c);
        cs.nodes.push_back(c);
        propose({c});
      }
    }
  }

  void keepalive(std::uint64_t id, ClientSession& cs) {
    NodeId target = knownLeader_ != 0 ? knownLeader_ : static_cast<NodeId>(rng_.range(1, nodes_.size()));
    SimNode& n = node(target);
    syncKeeper(n);
    if (!servesSessions(n) || !n.keeper.leading()) {
      // Not the leader (or not yet able to speak for sessions): ask again soon, maybe elsewhere.
      knownLeader_ = runnable(n) && n.replica->leaderHint() != n.id ? n.replica->leaderHint() : 0;
      cs.nextKeepalive = now_ + rng_.range(5'000, 30'000);
      return;
    }
    knownLeader_ = n.id;
    if (auto ttl = n.keeper.keepalive(id, localMs(localNow(n)))) {
      if (expiryChosen_.count(id)) {
        fail("node " + std::to_string(n.id) + " acknowledged a keepalive of session " + std::to_string(id) +
             " after its expiry was chosen");
        return;
      }
      result_.keepalivesAcked++;
      cs.lastAck = now_;
      cs.nextKeepalive = now_ + cs.ttlMs * 1000 / 3;
      return;
    }
    if (!expiryProposed_.count(id)) {
      fail("node " + std::to_string(n.id) + " refused a keepalive of live session " + std::to_string(id));
      return;
    }
    cs.lost = true;
    trace("client lost session " + std::to_string(id));
  }

  // After healing: sessions still kept alive exist with their ephemeral nodes everywhere; those
  // abandoned long enough ago are gone everywhere; no node keeps an ephemeral node of a session
  // it does not have.
  void checkSessionsAtEnd() {
    const Time end = options_.faultyFor + options_.healedFor;
    for (auto& n : nodes_) {
      for (const auto& [path, owner] : n->ephemerals) {
        if (!n->sessions.count(owner)) {
          fail("node " + std::to_string(n->id) + " keeps " + path + " of expired session " + std::to_string(owner));
          return;
        }
      }
      for (const auto& [id, cs] : clientSessions_) {
        if (!chosenCommands_.count(cs.create)) continue;
        const bool has = n->sessions.count(id) > 0;
        if (cs.keep && !cs.lost) {
          if (!has) {
            fail("node " + std::to_string(n->id) + " lost session " + std::to_string(id) + ", which its client keeps alive");
            return;
          }
          for (const auto& c : cs.nodes) {
            if (chosenCommands_.count(c) && !n->ephemerals.count(parseSessionCommand(c)->path)) {
              fail("node " + std::to_string(n->id) + " lost ephemeral " + c + " of a live session");
              return;
            }
          }
        } else if (has && cs.abandonedAt + 3'500'000 < end) {
          fail("liveness: session " + std::to_string(id) + ", abandoned at " + std::to_string(cs.abandonedAt / 1000) +
               "ms, still exists on node " + std::to_string(n->id));
          return;
        }
      }
    }
  }

  // ---- faults -------------------------------------------------------------------------------
  void crash(SimNode& n) {
    trace("crash " + std::to_string(n.id));
    result_.crashes++;
    n.up = false;
    n.paused = false;
    n.incarnation++;
    n.unsynced.clear();  // never fsynced: lost, messages and all
    n.deferred.clear();
    n.syncFreeAt = 0;
    n.replica.reset();
    n.keeper.stepDown();  // memory only
  }

  void restart(SimNode& n, bool wiped) {
    trace(std::string(wiped ? "wipe and restart " : "restart ") + std::to_string(n.id));
    if (wiped) {
      n.store.state = {};
      n.applied.clear();
      rebuildSessions(n);
      result_.wipes++;
    }
    n.up = true;
    n.incarnation++;
    startReplica(n, wiped);
  }

  void injectFault() {
    if (now_ >= options_.faultyFor) return;
    schedule(Event{now_ + rng_.range(100'000, 900'000), 0, EventKind::Fault});
    std::vector<SimNode*> up, down;
    for (auto& n : nodes_) (n->up ? up : down).push_back(n.get());
    SimNode* leader = nullptr;
    for (auto* n : up) {
      if (n->replica->isLeader()) leader = n;
    }
    const auto pick = rng_.below(100);
    if (pick < 18 && !up.empty()) {
      crash(*up[rng_.below(up.size())]);
    } else if (pick < 36 && !down.empty()) {
      restart(*down[rng_.below(down.size())], false);
    } else if (pick < 42 && down.empty()) {
      // Wipe one disk, but only while every other node is up and none is still rebuilding:
      // losing a second disk before the first has rebuilt can lose data in any system.
      bool rebuilding = false;
      for (auto* n : up) rebuilding = rebuilding || n->replica->isLearner();
      if (!rebuilding) {
        SimNode* victim = up[rng_.below(up.size())];
        crash(*victim);
        restart(*victim, true);
      }
    } else if (pick < 56 && !up.empty()) {
      SimNode* victim = (leader && rng_.chance(0.7)) ? leader : up[rng_.below(up.size())];
      if (!victim->paused) {
        result_.pauses++;
        victim->paused = true;
        trace("pause " + std::to_string(victim->id));
        // Often longer than the lease: the node must notice when it wakes.
        schedule(Event{now_ + rng_.range(50'000, 1'500'000), 0, EventKind::Resume, victim->id, victim->incarnation});
      }
    } else if (pick < 70) {
      partition(leader);
    } else if (pick < 85) {
      blocked_.clear();
      trace("heal partition");
    } else {
      dropRate_ = rng_.unit() * 0.15;
      dupRate_ = rng_.unit() * 0.05;
      maxDelay_ = rng_.range(200, 30'000);
    }
  }

  void partition(SimNode* leader) {
    result_.partitions++;
    blocked_.clear();
    const auto n = nodes_.size();
    const NodeId someone = static_cast<NodeId>(rng_.range(1, n));
    const NodeId isolated = leader && rng_.chance(0.6) ? leader->id : someone;
    switch (rng_.below(4)) {
      case 0:  // one node cut off both ways
      case 1:  // one node can hear but not be heard
        for (auto& other : nodes_) {
          if (other->id == isolated) continue;
          blocked_.insert({isolated, other->id});
          if (rng_.chance(0.5)) blocked_.insert({other->id, isolated});
        }
        trace("partition around " + std::to_string(isolated));
        break;
      case 2: {  // a single link fails one way: a follower stops hearing the leader
        NodeId to = static_cast<NodeId>(rng_.range(1, n));
        if (to == isolated) to = to % n + 1;
        blocked_.insert({isolated, to});
        trace("link " + std::to_string(isolated) + "->" + std::to_string(to) + " down");
        break;
      }
      default: {  // a random split into two sides
        std::vector<int> side(n + 1);
        for (NodeId id = 1; id <= n; ++id) side[id] = static_cast<int>(rng_.below(2));
        for (NodeId a = 1; a <= n; ++a) {
          for (NodeId b = 1; b <= n; ++b) {
            if (side[a] != side[b]) blocked_.insert({a, b});
          }
        }
        trace("split partition");
        break;
      }
    }
  }

  void heal() {
    trace("heal everything");
    blocked_.clear();
    dropRate_ = 0;
    dupRate_ = 0;
    maxDelay_ = 5'000;
    for (auto& n : nodes_) {
      if (!n->up) restart(*n, false);
      if (n->paused) schedule(Event{now_, 0, EventKind::Resume, n->id, n->incarnation});
    }
  }

  void checkLiveness() {
    if (!pending_.empty()) {
      fail("liveness: " + std::to_string(pending_.size()) + " commands (first " + pending_.begin()->first +
           ") still not chosen " + std::to_string(options_.healedFor / 1000) + "ms after the faults healed");
      return;
    }
    const Slot top = maxApplied();
    for (auto& n : nodes_) {
      if (n->applied.size() != top) {
        fail("liveness: node " + std::to_string(n->id) + " applied " + std::to_string(n->applied.size()) +
             " slots, others " + std::to_string(top));
        return;
      }
    }
  }

  SimOptions options_;
  Rng rng_;
  paxos::ReplicaConfig config_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::uint64_t seq_ = 0;
  Time now_ = 0;
  SimResult result_;

  std::set<std::pair<NodeId, NodeId>> blocked_;  // (from, to)
  double dropRate_ = 0, dupRate_ = 0;
  double staleDeliveryRate_ = 0.3;
  Time maxDelay_ = 5'000;

  std::map<Slot, Value> chosen_;  // every slot any replica applied, and its value
  std::set<std::string> proposedCommands_, chosenCommands_;
  std::map<std::string, Time> pending_;  // proposed, not yet chosen: when last proposed
  std::uint64_t commandCounter_ = 0;
  NodeId knownLeader_ = 0;
  std::uint64_t readCounter_ = 0;
  std::map<std::uint64_t, Slot> readRequired_;
  std::map<std::uint64_t, ClientSession> clientSessions_;
  std::uint64_t sessionCounter_ = 0;
  std::set<std::uint64_t> expiryProposed_, expiryChosen_;
};

}  // namespace

SimResult runSimulation(const SimOptions& options) { return Simulation(options).run(); }

}  // namespace warden::tests::sim
