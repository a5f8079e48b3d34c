#pragma once
// The Paxos simulator's private header, shared by its files (Simulation.cpp and the
// PaxosSim*.cpp beside it): class Simulation, its events and nodes, and the session commands
// in its log. Only Simulation.h is public.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/paxos/Replica.h"
#include "session/Keeper.h"
#include "tests/sim/MemoryLogStore.h"
#include "tests/sim/Simulation.h"

// Not namespace detail: the whole-node simulator (NodeSim.h) has its own detail::Rng, and two
// classes of one name in one program would break the one-definition rule.
namespace warden::tests::sim::paxos_detail {

namespace paxos = coordinator::paxos;
using paxos::ChosenEntry;
using paxos::Message;
using paxos::Ready;
using paxos::Replica;
using paxos::Value;

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

inline std::optional<SessionCommand> parseSessionCommand(const std::string& c) {
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
  explicit Simulation(const SimOptions& options);
  SimResult run();

 private:
  SimNode& node(NodeId id) { return *nodes_[id - 1]; }
  Time localNow(const SimNode& n) const { return n.offset + static_cast<Time>(static_cast<double>(now_) * n.rate); }
  bool runnable(const SimNode& n) const { return n.up && !n.paused; }

  // ---- Simulation.cpp: the event loop, tracing and failing -----------------------------

  void schedule(Event event);
  void trace(const std::string& line);
  // Ends the run with the named check's violation, unless that check is skipped.
  void fail(const std::string& check, const std::string& what);
  void dispatch(Event event);
  void runNodeEvent(SimNode& n, Event event);
  static std::string describe(const Message& m);
  static std::string role(const SimNode& n);

  // ---- PaxosSimNodes.cpp: processes, their disks and the network ----------------------

  void startReplica(SimNode& n, bool wiped);
  paxos::ReplicaConfig config(NodeId id) const;
  void handle(SimNode& n, Ready ready);
  void transmit(SimNode& from, Message message);
  void crash(SimNode& n);
  void restart(SimNode& n, bool wiped);

  // ---- PaxosSimFaults.cpp: faults and healing -----------------------------------------

  void injectFault();
  void partition(SimNode* leader);
  void heal();

  // ---- PaxosSimClients.cpp: the client's commands and reads ----------------------------

  void clientStep();
  bool propose(std::vector<std::string> commands);
  void readStep();
  void finishRead(SimNode& n, const paxos::ReadReady& read);

  // ---- PaxosSimSessions.cpp: the session table, the leader's Keeper, session clients ----

  static Time localMs(Time localUs);
  bool servesSessions(SimNode& n);
  void syncKeeper(SimNode& n);
  void proposeExpiries(SimNode& n);
  void applySessions(SimNode& n, const Value& value, bool live);
  void rebuildSessions(SimNode& n);
  void sessionStep();
  void keepalive(std::uint64_t id, ClientSession& cs);

  // ---- PaxosSimChecks.cpp: the state machine and its checks ----------------------------

  void apply(SimNode& n, const ChosenEntry& entry);
  void checkChosen(SimNode& n, Slot slot, const Value& value);
  void maybeCompact(SimNode& n);
  void installSnapshot(SimNode& n, std::vector<Value> snapshot);
  std::uint64_t digest() const;
  Slot maxApplied() const;
  void checkLeases();
  void checkExpiry(const SessionCommand& x);
  void checkSessionsAtEnd();
  void checkLiveness();

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

}  // namespace warden::tests::sim::paxos_detail
