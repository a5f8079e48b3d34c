// The Paxos simulator's skeleton: setting up the nodes, the run, the event loop that drives
// everything, and tracing and failing. The class is in PaxosSim.h; the nodes and the network,
// faults, the client, sessions and the checks are in PaxosSimNodes.cpp, PaxosSimFaults.cpp,
// PaxosSimClients.cpp, PaxosSimSessions.cpp and PaxosSimChecks.cpp.

#include "tests/sim/Simulation.h"

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tests/sim/PaxosSim.h"

namespace warden::tests::sim {

namespace paxos_detail {

Simulation::Simulation(const SimOptions& options) : options_(options), rng_(options.seed) {
  config_.members.clear();
  for (NodeId id = 1; id <= options.replicas; ++id) config_.members.push_back(id);
  config_.bugs = options.bugs;
  config_.thrifty = options.thrifty < 0 ? options.seed % 2 == 1 : options.thrifty == 1;
  const double drift = config_.maxDrift;
  for (NodeId id = 1; id <= options.replicas; ++id) {
    auto node = std::make_unique<SimNode>();
    node->id = id;
    node->rng = Rng(options.seed * 1000003 + id);
    node->keeper.bugs = options.keeperBugs;
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

SimResult Simulation::run() {
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

// ---- plumbing --------------------------------------------------------------------------

void Simulation::schedule(Event event) {
  event.seq = ++seq_;
  queue_.push(std::move(event));
}

void Simulation::trace(const std::string& line) {
  if (options_.trace) std::printf("%10.6f %s\n", static_cast<double>(now_) / 1e6, line.c_str());
}

void Simulation::fail(const std::string& check, const std::string& what) {
  if (!result_.ok || options_.skipChecks.count(check)) return;
  result_.ok = false;
  result_.check = check;
  std::ostringstream out;
  out << "seed " << options_.seed << " (" << options_.replicas << " replicas) at t=" << now_ / 1000 << "ms: " << check
      << ": " << what;
  result_.violation = out.str();
  trace("VIOLATION " + check + ": " + what);
}

// ---- events ----------------------------------------------------------------------------

void Simulation::dispatch(Event event) {
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

void Simulation::runNodeEvent(SimNode& n, Event event) {
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

std::string Simulation::describe(const Message& m) {
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

std::string Simulation::role(const SimNode& n) {
  if (!n.replica) return "down";
  const char* names[] = {"follower", "candidate", "leader"};
  return std::string(names[static_cast<int>(n.replica->role())]) + (n.replica->isLearner() ? " learner" : "") +
         " commit " + std::to_string(n.replica->commitIndex());
}

}  // namespace paxos_detail

SimResult runSimulation(const SimOptions& options) { return paxos_detail::Simulation(options).run(); }

}  // namespace warden::tests::sim
