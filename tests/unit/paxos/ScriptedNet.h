#pragma once
// A hand-cranked network of Paxos replicas for step-by-step scenarios (like etcd-io/raft's
// interaction tests): the test decides which replica ticks, which message is delivered, held
// back or dropped, and when a disk is wiped. It remembers every slot any replica ever learned as
// chosen, across wipes and restarts, so a scenario ends by asking whether a slot was chosen with
// two values.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/paxos/Replica.h"
#include "tests/SplitMixRandom.h"
#include "tests/sim/MemoryLogStore.h"

namespace warden::tests::paxos {

using namespace coordinator::paxos;

// The configuration of member `id` of a cluster of members 1 to n.
inline ReplicaConfig memberConfig(NodeId id, std::size_t n, bool thrifty, const ReplicaConfig::Bugs& bugs) {
  ReplicaConfig c;
  c.id = id;
  c.bugs = bugs;
  c.thrifty = thrifty;
  for (NodeId m = 1; m <= n; ++m) c.members.push_back(m);
  return c;
}

// Every value any replica ever reported chosen, by slot, across wipes and restarts.
class ChosenLog {
 public:
  void note(const ChosenEntry& e) {
    auto& seen = values_[e.slot];
    if (seen.empty() || seen.back() != e.value) seen.push_back(e.value);
  }
  const std::map<Slot, std::vector<Value>>& bySlot() const { return values_; }
  // A slot chosen with two different values (0: none).
  Slot conflict() const {
    for (const auto& [slot, values] : values_) {
      for (const auto& v : values) {
        if (v != values.front()) return slot;
      }
    }
    return 0;
  }

 private:
  std::map<Slot, std::vector<Value>> values_;
};

class ScriptedNet {
 public:
  using Filter = std::function<bool(const Message&)>;

  // `thrifty`: ReplicaConfig::thrifty (phase 2 asks a majority only), the production default.
  explicit ScriptedNet(std::size_t n, ReplicaConfig::Bugs bugs = {}, bool thrifty = true)
      : n_(n), bugs_(bugs), thrifty_(thrifty) {
    for (NodeId id = 1; id <= n; ++id) {
      stores_[id] = std::make_unique<MemoryLogStore>();
      replicas_[id] = std::make_unique<Replica>(config(id), DurableState{}, 0, false, random_, now);
    }
  }

  ReplicaConfig config(NodeId id) const { return memberConfig(id, n_, thrifty_, bugs_); }

  Replica& replica(NodeId id) { return *replicas_.at(id); }
  // What `id` has made durable.
  const DurableState& durable(NodeId id) const { return stores_.at(id)->state; }

  // The disk of `id` is lost; the process starts again on an empty one, knowing it was wiped.
  void wipe(NodeId id) {
    stores_[id] = std::make_unique<MemoryLogStore>();
    replicas_[id] = std::make_unique<Replica>(config(id), DurableState{}, 0, true, random_, now);
    forgetFrom(id);
  }

  void tick(NodeId id) { handle(id, replica(id).tick(now)); }
  void propose(NodeId id, std::string command) { handle(id, replica(id).propose({std::move(command)}, now)); }
  void requestRead(NodeId id, std::uint64_t readId) { handle(id, replica(id).requestRead(readId, now)); }

  // Delivers, oldest first, every message `deliver` accepts (and what they cause), dropping the
  // ones `drop` names; the rest stay in flight. Bounded.
  void settle(const Filter& deliver, const Filter& drop = [](const Message&) { return false; }) {
    for (int i = 0; i < 100'000; ++i) {
      auto it = inflight_.begin();
      while (it != inflight_.end() && !drop(*it) && !deliver(*it)) ++it;
      if (it == inflight_.end()) return;
      Message m = std::move(*it);
      inflight_.erase(it);
      if (drop(m)) continue;
      handle(m.to, replica(m.to).step(m, now));
    }
  }

  // Ticks `ticking` every 10 ms and settles as above until `done` or a bound.
  void runUntil(const std::vector<NodeId>& ticking, const Filter& deliver, const std::function<bool()>& done,
                const Filter& drop = [](const Message&) { return false; }) {
    for (int i = 0; i < 1'000 && !done(); ++i) {
      now += 10'000;
      for (NodeId id : ticking) tick(id);
      settle(deliver, drop);
    }
  }

  // Runs every replica, delivering everything, until one leads, then a few heartbeat rounds more
  // (every follower heard from); returns the leader (0: none within the bound).
  NodeId electAndSettle() {
    std::vector<NodeId> ids;
    for (NodeId id = 1; id <= n_; ++id) ids.push_back(id);
    auto leader = [&]() -> NodeId {
      for (NodeId id : ids) {
        if (replica(id).isLeader()) return id;
      }
      return 0;
    };
    auto all = [](const Message&) { return true; };
    runUntil(ids, all, [&] { return leader() != 0; });
    runUntil(ids, all, [&] { return now > 1'200'000 + 600'000 * (n_ > 3); });
    return leader();
  }

  // The followers `leader` sends slot `slot`'s Accept to, from the frames in flight (left there).
  std::vector<NodeId> askedOf(NodeId leader, Slot slot) const {
    std::vector<NodeId> asked;
    for (const auto& m : inflight_) {
      const auto* a = std::get_if<Accept>(&m.payload);
      if (a && a->slot == slot && m.to != leader) asked.push_back(m.to);
    }
    return asked;
  }

  std::size_t inflight(const Filter& f) const {
    std::size_t n = 0;
    for (const auto& m : inflight_) n += f(m);
    return n;
  }

  // Every value any replica ever reported chosen, by slot; `conflict` names a slot chosen twice
  // with different values (0: none).
  const std::map<Slot, std::vector<Value>>& chosen() const { return chosen_.bySlot(); }
  Slot conflict() const { return chosen_.conflict(); }

  Time now = 1'000'000;

 private:
  void handle(NodeId id, Ready ready) {
    auto proof = stores_.at(id)->persist(ready);
    for (auto& e : ready.committed) chosen_.note(e);
    for (auto& m : ready.release(proof)) inflight_.push_back(std::move(m));
  }

  // A restarted process never receives what was addressed to its previous self... unless the
  // test says so: messages *from* the old process stay in flight, as in link queues.
  void forgetFrom(NodeId id) {
    std::erase_if(inflight_, [id](const Message& m) { return m.to == id; });
  }

  std::size_t n_;
  ReplicaConfig::Bugs bugs_;
  bool thrifty_;
  SplitMixRandom random_{7};
  std::map<NodeId, std::unique_ptr<MemoryLogStore>> stores_;
  std::map<NodeId, std::unique_ptr<Replica>> replicas_;
  std::deque<Message> inflight_;
  ChosenLog chosen_;
};

// Filters by sender and receiver.
inline bool between(const Message& m, std::initializer_list<NodeId> group) {
  auto in = [&](NodeId id) { return std::find(group.begin(), group.end(), id) != group.end(); };
  return in(m.from) && in(m.to);
}

inline bool named(const Message& m, const char* name) { return std::string(messageName(m.payload)) == name; }

// Filters for settle and runUntil: every message, or none.
inline bool all(const Message&) { return true; }
inline bool none(const Message&) { return false; }

inline bool isAccept(const Message& m, Slot slot) {
  const auto* a = std::get_if<Accept>(&m.payload);
  return a && a->slot == slot;
}

// A value of one command.
inline Value command(const std::string& c) {
  Value v;
  v.commands.push_back(c);
  return v;
}

// Members 1 to n.
inline std::vector<NodeId> idsOf(std::size_t n) {
  std::vector<NodeId> ids;
  for (NodeId id = 1; id <= n; ++id) ids.push_back(id);
  return ids;
}

}  // namespace warden::tests::paxos
