// The whole-node simulator's skeleton: setting up the nodes, the run, the event loop that
// drives everything, and tracing and failing. The class is in NodeSim.h; the network, faults,
// clients and checks are in NodeSimNetwork.cpp, NodeSimFaults.cpp, NodeSimClients.cpp and
// NodeSimChecks.cpp.

#include "tests/sim/NodeSimulation.h"

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <unistd.h>

#include "coordinator/node/Frames.h"
#include "coordinator/paxos/MessageCodec.h"
#include "tests/sim/Linearizability.h"
#include "tests/sim/NodeSim.h"

namespace warden::tests::sim {

namespace detail {

NodeSim::NodeSim(const NodeSimOptions& options)
    : options_(options),
      rng_(options.seed * 7919 + options.replicas),
      flushRng_(options.seed * 104729 + options.replicas) {
  for (NodeId id = 1; id <= options_.replicas; ++id) {
    auto n = std::make_unique<SimNode>();
    n->id = id;
    n->clock = std::make_unique<SimClock>(now_, static_cast<std::int64_t>(rng_.range(0, 2 * kMaxDriftPpm)) - kMaxDriftPpm,
                                          rng_.range(1'000'000, 100'000'000));
    n->outbox = std::make_unique<Outbox>(*this, id);
    nodes_[id] = std::move(n);
  }
  root_ = (std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path()) /
          ("warden-nodesim-" + std::to_string(::getpid()) + "-" + std::to_string(options_.seed) + "-" +
           std::to_string(options_.replicas));
  std::filesystem::remove_all(root_);
  for (auto& [id, n] : nodes_) {
    freshDisk(*n);
    startProcess(*n);
  }
}

NodeSim::~NodeSim() {
  for (auto& [id, n] : nodes_) closeDisk(*n);
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

NodeSimResult NodeSim::run() {
  const Time faultyEnd = options_.faultyForUs;
  const Time end = faultyEnd + options_.healedForUs;
  for (auto& [id, n] : nodes_) schedule(rng_.range(0, kTurnUs), Event{Kind::Turn, id});
  for (std::size_t c = 0; c < 3; ++c) {
    clients_.push_back(Client{});
    schedule(rng_.range(10'000, 50'000), Event{Kind::ClientStep, 0, 0, {}, c});
  }
  // The deposed-reads schedule's readers wait idle for the paused leader to resume (after their
  // read they step like the others).
  if (options_.deposedReads) clients_.resize(clients_.size() + kDeposedReaders);
  schedule(20'000, Event{Kind::SessionStep});
  lockClients_.resize(3);
  schedule(30'000, Event{Kind::LockStep});
  schedule(rng_.range(100'000, 400'000), Event{Kind::Fault});
  schedule(faultyEnd, Event{Kind::Heal});
  planNemesis();
  clientsStopAt_ = end - 2'000'000;
  loop([&] { return now_ >= end; });
  if (result_.ok) checkEnd();
  if (result_.ok) checkLocks();
  // A write still waiting at the end (one sent before its node installed a snapshot waits for
  // its give-up time) may or may not be applied.
  for (std::size_t c = 0; c < clients_.size(); ++c) finishOp(c, Operation::Outcome::Unknown, std::nullopt, false);
  if (result_.ok) {
    const auto verdict = checkLinearizable(history_);
    if (!verdict.ok) fail("linearizability", verdict.explanation);
  }
  result_.digest = mix(result_.digest, result_.events);
  return result_;
}

// ---- the event loop ---------------------------------------------------------------------

void NodeSim::schedule(Time at, Event e) { events_.emplace(std::make_pair(at, seq_++), std::move(e)); }

void NodeSim::loop(const std::function<bool()>& done) {
  while (result_.ok && !events_.empty() && !done()) {
    auto it = events_.begin();
    now_ = it->first.first;
    Event e = std::move(it->second);
    events_.erase(it);
    result_.events++;
    handle(e);
  }
}

void NodeSim::handle(Event& e) {
  switch (e.kind) {
    case Kind::Deliver: deliver(e.from, e.node, std::move(e.frame)); break;
    case Kind::Wake: wake(*nodes_[e.node]); break;
    case Kind::Turn: {
      SimNode& n = *nodes_[e.node];
      if (runs(n)) n.core->endTurn();
      if (e.node == 1) noteServing();
      if (options_.trace && e.node == 1 && now_ / 500'000 != lastStatus_) {
        lastStatus_ = now_ / 500'000;
        traceStatus();
      }
      schedule(now_ + kTurnUs, Event{Kind::Turn, e.node});
      break;
    }
    case Kind::Restart: restart(*nodes_[e.node]); break;
    case Kind::Flushed: endFlush(*nodes_[e.node], e.client); break;
    case Kind::Resume: resume(*nodes_[e.node]); break;
    case Kind::ClientStep: clientStep(e.client); break;
    case Kind::SessionStep: sessionStep(); break;
    case Kind::Fault: fault(); break;
    case Kind::Heal: heal(); break;
    case Kind::LateHeal: lateHeal(); break;
    case Kind::NemesisStep: nemesisStep(); break;
    case Kind::RebuildCheck: checkRebuilt(); break;
    case Kind::LockStep: lockStep(); break;
  }
}

void NodeSim::traceStatus() {
  std::string line = "status:";
  for (const auto& [id, n] : nodes_) {
    line += " [" + std::to_string(id) + " ";
    const auto* r = n->core ? n->core->replica() : nullptr;
    if (!n->core) {
      line += "down]";
      continue;
    }
    if (!r) {
      line += "probing]";
      continue;
    }
    line += r->isLeader() ? "L" : r->role() == paxos::Replica::Role::Candidate ? "C" : "F";
    if (r->isLearner()) line += " learner";
    line += " b" + paxos::toString(r->ballot()) + " p" + paxos::toString(r->promised()) + " hint " +
            std::to_string(r->leaderHint()) + " commit " + std::to_string(r->commitIndex()) + " applied " +
            std::to_string(n->core->applied()) + (n->core->servesSessions() ? " serving" : "") + "]";
  }
  trace(line);
}

std::string NodeSim::describe(const std::string& frame) {
  if (frame.empty()) return "empty";
  if (frame[0] != static_cast<char>(node::Frame::Paxos)) return "frame kind " + std::to_string(static_cast<int>(frame[0]));
  try {
    const auto m = paxos::decodeMessage(std::string_view(frame).substr(1));
    std::string what = paxos::messageName(m.payload);
    std::visit(
        [&](const auto& p) {
          if constexpr (requires { p.ballot; }) what += " " + paxos::toString(p.ballot);
          if constexpr (requires { p.ok; }) what += p.ok ? " ok" : " refused";
          if constexpr (requires { p.promised; }) what += " promised " + paxos::toString(p.promised);
          if constexpr (requires { p.granted; }) what += p.granted ? " granted" : " denied";
        },
        m.payload);
    return what;
  } catch (const DecodeError&) {
    return "undecodable";
  }
}

void NodeSim::trace(const std::string& what) {
  if (options_.trace) std::printf("%10.3f ms  %s\n", static_cast<double>(now_) / 1000.0, what.c_str());
}

void NodeSim::fail(const std::string& check, const std::string& what) {
  if (!result_.ok || options_.skipChecks.count(check)) return;
  result_.ok = false;
  result_.check = check;
  result_.violation = check + ": " + what + " (seed " + std::to_string(options_.seed) + ", " +
                      std::to_string(options_.replicas) + " nodes, at " + std::to_string(now_ / 1000) + " ms)";
}

}  // namespace detail

NodeSimResult runNodeSimulation(const NodeSimOptions& options) {
  detail::NodeSim sim(options);
  return sim.run();
}

}  // namespace warden::tests::sim
