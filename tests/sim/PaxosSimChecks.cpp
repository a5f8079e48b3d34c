// The Paxos simulator's state machine and its checks: agreement, validity and identical
// prefixes as nodes apply (and install snapshots), one lease at a time, expiries never early,
// and after healing liveness, convergence and the sessions' fate. Part of class Simulation
// (PaxosSim.h).

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/sim/PaxosSim.h"

namespace warden::tests::sim::paxos_detail {

// ---- the state machine and its checks --------------------------------------------------

void Simulation::apply(SimNode& n, const ChosenEntry& entry) {
  if (entry.slot != n.applied.size() + 1) {
    fail("in-order-apply", "node " + std::to_string(n.id) + " applied slot " + std::to_string(entry.slot) + " after " +
         std::to_string(n.applied.size()));
    return;
  }
  checkChosen(n, entry.slot, entry.value);
  n.applied.push_back(entry.value);
  applySessions(n, entry.value, true);
}

void Simulation::checkChosen(SimNode& n, Slot slot, const Value& value) {
  auto [it, inserted] = chosen_.emplace(slot, value);
  if (!inserted && it->second != value) {
    fail("agreement", "node " + std::to_string(n.id) + " chose a different value for slot " + std::to_string(slot));
    return;
  }
  if (!inserted) return;
  if (!value.noop && value.commands.empty()) fail("validity", "slot " + std::to_string(slot) + " holds an empty batch");
  for (const auto& c : value.commands) {
    if (!proposedCommands_.count(c)) {
      fail("validity", "slot " + std::to_string(slot) + " holds '" + c + "', which nobody proposed");
      return;
    }
    chosenCommands_.insert(c);
    pending_.erase(c);
    if (auto sc = parseSessionCommand(c); sc && sc->kind == 'X') checkExpiry(*sc);
  }
}

void Simulation::maybeCompact(SimNode& n) {
  // Compact often, keeping only a short log, so that laggards need snapshots.
  const Slot applied = n.applied.size();
  if (applied >= n.replica->compactedUpTo() + 40) handle(n, n.replica->compact(applied - 8));
}

void Simulation::installSnapshot(SimNode& n, std::vector<Value> snapshot) {
  if (snapshot.size() <= n.applied.size()) return;
  for (std::size_t i = 0; i < n.applied.size(); ++i) {
    if (n.applied[i] != snapshot[i]) {
      fail("snapshot-prefix", "a snapshot disagrees with node " + std::to_string(n.id) + " at slot " +
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

std::uint64_t Simulation::digest() const {
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

Slot Simulation::maxApplied() const {
  Slot m = 0;
  for (const auto& n : nodes_) m = std::max<Slot>(m, n->applied.size());
  return m;
}

void Simulation::checkLeases() {
  int holders = 0;
  std::string who;
  for (const auto& n : nodes_) {
    if (n->up && n->replica->leaseValid(localNow(*n))) {
      ++holders;
      who += " " + std::to_string(n->id);
    }
  }
  if (holders > 1) fail("two-leases", "nodes" + who + " hold a valid lease at once");
}

// ---- sessions --------------------------------------------------------------------------

// An expiry was chosen: no keepalive acknowledged within ttl (on the slowest clock) before
// its proposal, and none ever after.
void Simulation::checkExpiry(const SessionCommand& x) {
  result_.expiries++;
  expiryChosen_.insert(x.id);
  auto it = clientSessions_.find(x.id);
  if (it == clientSessions_.end() || !it->second.lastAck) return;
  const ClientSession& cs = it->second;
  const double margin = static_cast<double>(cs.ttlMs - 2) * 1000.0 / (1.0 + config_.maxDrift);
  if (static_cast<double>(*cs.lastAck) + margin > static_cast<double>(x.number)) {
    fail("expiry-early", "session " + std::to_string(x.id) + " expired by a proposal made " +
         std::to_string((static_cast<std::int64_t>(x.number) - static_cast<std::int64_t>(*cs.lastAck)) / 1000) +
         "ms after its last acknowledged keepalive (ttl " + std::to_string(cs.ttlMs) + "ms)");
  }
}

// After healing: sessions still kept alive exist with their ephemeral nodes everywhere; those
// abandoned long enough ago are gone everywhere; no node keeps an ephemeral node of a session
// it does not have.
void Simulation::checkSessionsAtEnd() {
  const Time end = options_.faultyFor + options_.healedFor;
  for (auto& n : nodes_) {
    for (const auto& [path, owner] : n->ephemerals) {
      if (!n->sessions.count(owner)) {
        fail("ephemerals", "node " + std::to_string(n->id) + " keeps " + path + " of expired session " + std::to_string(owner));
        return;
      }
    }
    for (const auto& [id, cs] : clientSessions_) {
      if (!chosenCommands_.count(cs.create)) continue;
      const bool has = n->sessions.count(id) > 0;
      if (cs.keep && !cs.lost) {
        if (!has) {
          fail("session-lost", "node " + std::to_string(n->id) + " lost session " + std::to_string(id) + ", which its client keeps alive");
          return;
        }
        for (const auto& c : cs.nodes) {
          if (chosenCommands_.count(c) && !n->ephemerals.count(parseSessionCommand(c)->path)) {
            fail("session-lost", "node " + std::to_string(n->id) + " lost ephemeral " + c + " of a live session");
            return;
          }
        }
      } else if (has && cs.abandonedAt + 3'500'000 < end) {
        fail("liveness", "session " + std::to_string(id) + ", abandoned at " + std::to_string(cs.abandonedAt / 1000) +
             "ms, still exists on node " + std::to_string(n->id));
        return;
      }
    }
  }
}

// ---- after healing ---------------------------------------------------------------------

void Simulation::checkLiveness() {
  if (!pending_.empty()) {
    fail("liveness", std::to_string(pending_.size()) + " commands (first " + pending_.begin()->first +
         ") still not chosen " + std::to_string(options_.healedFor / 1000) + "ms after the faults healed");
    return;
  }
  const Slot top = maxApplied();
  for (auto& n : nodes_) {
    if (n->applied.size() != top) {
      fail("liveness", "node " + std::to_string(n->id) + " applied " + std::to_string(n->applied.size()) +
           " slots, others " + std::to_string(top));
      return;
    }
  }
}

}  // namespace warden::tests::sim::paxos_detail
