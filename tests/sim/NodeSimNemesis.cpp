// The whole-node simulator's nemesis: in some runs, instead of independent random faults for a
// while, one schedule aimed at a rule of the node (coordinator/node/SAFETY.md) — each a family
// of schedules with random nodes and timings, not a replay of one:
//
//   stranded proposal   a serving leader's Accepts are lost (its heartbeats are not) while its
//                       session clients fall silent, so what it proposes (expiries) sits on its
//                       own acceptor alone; it is cut off; the next leader's Accepts are lost
//                       too while the clients come back to it, and it dies; the first leader
//                       returns for the third leader's phase 1 to find its proposals.
//   lease flap          a serving leader's Accepts are held back (to arrive later, in order)
//                       while its clients fall silent; the replies to it are lost just past a
//                       lease, then flow again; the clients come back; the held Accepts arrive.
//   promise before wipe the first Prepare of a campaign reaches one node, the candidate's other
//                       Prepares sit in link queues for seconds; the node that promised loses
//                       its disk; the candidate is cut off from all but it; another node misses
//                       Accepts for a while; the leader of the others dies. In some runs this
//                       starts before the cluster has chosen anything (the bootstrap probe).
//   deposed reads       a serving leader pauses (SIGSTOP) for 1.5 to 2.5 s: the others elect a
//                       leader and take writes; as it resumes, four more clients read from it
//                       before it has taken a turn (the HTTP threads answer lease reads while the
//                       driver has yet to run). Only when NodeSimOptions::deposedReads asks.
//
// Part of class NodeSim (NodeSim.h).

#include <string>

#include "coordinator/node/Frames.h"
#include "coordinator/paxos/MessageCodec.h"
#include "tests/sim/NodeSim.h"

namespace warden::tests::sim::detail {

namespace {

constexpr Time kStepUs = 10'000;
constexpr Time kLongestTtlUs = 2'500'000;  // sessionStep's longest ttl
constexpr Time kGiveUpUs = 3'000'000;      // a step that waits longer than this ends the schedule

const char* programName(NodeSim::Program p) {
  switch (p) {
    case NodeSim::Program::StrandedProposal: return "stranded proposal";
    case NodeSim::Program::LeaseFlap: return "lease flap";
    case NodeSim::Program::PromiseBeforeWipe: return "promise before wipe";
    case NodeSim::Program::DeposedReads: return "deposed reads";
    case NodeSim::Program::None: break;
  }
  return "none";
}

}  // namespace

// ---- choosing and running a schedule ----------------------------------------------------

void NodeSim::planNemesis() {
  if (options_.deposedReads) {
    nemesis_ = Nemesis{};
    nemesis_.program = Program::DeposedReads;
    schedule(rng_.range(300'000, 1'000'000), Event{Kind::NemesisStep});
    return;
  }
  if (!rng_.chance(0.5)) return;
  nemesis_ = Nemesis{};
  nemesis_.program = static_cast<Program>(rng_.range(1, 3));
  // The lost-disk schedule also runs from the very start: the empty-disk bootstrap's turn.
  const bool fromStart = nemesis_.program == Program::PromiseBeforeWipe && rng_.chance(0.4);
  schedule(fromStart ? 0 : rng_.range(300'000, 2'000'000), Event{Kind::NemesisStep});
}

NodeSim::SimNode* NodeSim::servingLeader() {
  for (auto& [id, n] : nodes_) {
    if (runs(*n) && n->core->servesSessions()) return n.get();
  }
  return nullptr;
}

bool NodeSim::everyNodeRuns() const {
  for (const auto& [id, n] : nodes_) {
    if (!runs(*n)) return false;
  }
  return true;
}

void NodeSim::nemesisStep() {
  if (healed_ || nemesis_.program == Program::None) return;
  Nemesis& m = nemesis_;
  if (m.step > 0 && now_ > m.giveUpAt) {
    if (m.program != Program::PromiseBeforeWipe || m.step > 2) return endNemesis("gives up");
    m = Nemesis{};  // no campaign of the right node yet: another try
    m.program = Program::PromiseBeforeWipe;
    trace("nemesis: promise before wipe: another try");
  }
  schedule(now_ + kStepUs, Event{Kind::NemesisStep});
  switch (m.program) {
    case Program::StrandedProposal: return strandedProposalStep();
    case Program::LeaseFlap: return leaseFlapStep();
    case Program::PromiseBeforeWipe: return promiseBeforeWipeStep();
    case Program::DeposedReads: return deposedReadsStep();
    case Program::None: return;
  }
}

void NodeSim::nextStep(Time giveUpAfter) {
  nemesis_.step++;
  nemesis_.giveUpAt = now_ + giveUpAfter;
}

// Waits for a quiet moment: every node up, a leader serving sessions, a session kept alive.
NodeSim::SimNode* NodeSim::settledLeader() {
  if (!everyNodeRuns() || someoneRebuilding()) return nullptr;
  bool keeping = false;
  for (const auto& s : sessionClients_) keeping = keeping || (s.keep && s.phase == SessionClient::Phase::Keeping);
  return keeping ? servingLeader() : nullptr;
}

// Both session schedules begin alike: once a leader serves, its Accepts are lost (or held back,
// to arrive later) while the session clients fall silent for longer than any ttl.
void NodeSim::silenceSessionsUnder(bool holdAccepts) {
  Nemesis& m = nemesis_;
  SimNode* leader = settledLeader();
  if (!leader) return;
  m.leader = leader->id;
  (holdAccepts ? m.holdAcceptsFrom : m.dropAcceptsFrom) = m.leader;
  sessionsQuietUntil_ = ~Time{0};
  m.stepAt = now_ + kLongestTtlUs + rng_.range(100'000, 600'000);
  trace("nemesis: " + std::string(programName(m.program)) + ": node " + std::to_string(m.leader) + "'s Accepts are " +
        (holdAccepts ? "held back" : "lost") + "; session clients fall silent");
  nextStep(m.stepAt - now_ + kGiveUpUs);
}

void NodeSim::strandedProposalStep() {
  Nemesis& m = nemesis_;
  switch (m.step) {
    case 0: return silenceSessionsUnder(false);
    case 1: {
      if (now_ < m.stepAt) return;
      m.dropAcceptsFrom = 0;
      m.isolated = m.leader;
      trace("nemesis: node " + std::to_string(m.leader) + " is cut off");
      return nextStep(kGiveUpUs);
    }
    case 2: {
      SimNode* next = servingLeaderOrLeading(m.leader);
      if (!next) return;
      m.next = next->id;
      m.dropAcceptsFrom = m.next;
      sessionsQuietUntil_ = 0;
      m.stepAt = now_ + rng_.range(100'000, 600'000);
      trace("nemesis: node " + std::to_string(m.next) + " leads; its Accepts are lost; session clients come back");
      return nextStep(kGiveUpUs);
    }
    case 3: {
      if (now_ < m.stepAt) return;
      SimNode& next = *nodes_[m.next];
      crash(next);
      schedule(now_ + rng_.range(1'000'000, 2'000'000), Event{Kind::Restart, m.next});
      return endNemesis("node " + std::to_string(m.next) + " dies; node " + std::to_string(m.leader) + " is back");
    }
  }
}

// The leader elected after `than` lost touch, once it leads (serving sessions or not).
NodeSim::SimNode* NodeSim::servingLeaderOrLeading(NodeId than) {
  for (auto& [id, n] : nodes_) {
    if (id != than && runs(*n) && n->core->replica() && n->core->replica()->isLeader()) return n.get();
  }
  return nullptr;
}

void NodeSim::leaseFlapStep() {
  Nemesis& m = nemesis_;
  switch (m.step) {
    case 0: return silenceSessionsUnder(true);
    case 1: {
      if (now_ < m.stepAt) return;
      // Past a lease (300 ms), short of the followers' election timeout (500 ms and more):
      // its heartbeats still reach them, so nobody else campaigns.
      m.dropRepliesTo = m.leader;
      m.stepAt = now_ + rng_.range(320'000, 480'000);
      trace("nemesis: the replies to node " + std::to_string(m.leader) + " are lost");
      return nextStep(kGiveUpUs);
    }
    case 2: {
      if (now_ < m.stepAt) return;
      m.dropRepliesTo = 0;
      sessionsQuietUntil_ = 0;
      m.stepAt = now_ + rng_.range(100'000, 700'000);
      trace("nemesis: the replies to node " + std::to_string(m.leader) + " flow again; session clients come back");
      return nextStep(kGiveUpUs);
    }
    case 3: {
      if (now_ < m.stepAt) return;
      return endNemesis("node " + std::to_string(m.leader) + "'s held Accepts arrive");
    }
  }
}

void NodeSim::deposedReadsStep() {
  Nemesis& m = nemesis_;
  switch (m.step) {
    case 0: {
      SimNode* leader = settledLeader();
      if (!leader) return;
      m.leader = leader->id;
      leader->pausedUntil = m.stepAt = now_ + rng_.range(1'500'000, 2'500'000);
      schedule(m.stepAt, Event{Kind::Resume, m.leader});
      trace("nemesis: deposed reads: node " + std::to_string(m.leader) + ", the leader, pauses");
      return nextStep(m.stepAt - now_ + kGiveUpUs);
    }
    case 1: {
      if (now_ < m.stepAt) return;
      return endNemesis("node " + std::to_string(m.leader) + " has resumed");
    }
  }
}

void NodeSim::promiseBeforeWipeStep() {
  Nemesis& m = nemesis_;
  switch (m.step) {
    case 0: {
      if (now_ == 0) {
        m.fromStart = true;
        trace("nemesis: promise before wipe, from the start: waiting for the first campaign");
        return nextStep(2'000'000);
      }
      // Later on, the leader dies to start a campaign.
      SimNode* leader = everyNodeRuns() && !someoneRebuilding() ? servingLeader() : nullptr;
      if (!leader || leader->id == options_.replicas) return;  // the candidate-to-be must be up
      crash(*leader);
      schedule(now_ + rng_.range(1'000'000, 2'500'000), Event{Kind::Restart, leader->id});
      trace("nemesis: promise before wipe: node " + std::to_string(leader->id) + ", the leader, dies");
      return nextStep(2'000'000);
    }
    case 1:
    case 2: return;  // frames move these on (nemesisTakes): the candidate's first Prepare, its Promise
    case 3: {
      SimNode& w = *nodes_[m.promiser];
      if (!w.core) return endNemesis("the node that promised is down");
      crash(w);
      freshDisk(w);
      w.held.clear();
      result_.wipes++;
      schedule(now_ + (m.fromStart ? rng_.range(10'000, 60'000) : rng_.range(50'000, 300'000)), Event{Kind::Restart, m.promiser});
      // The candidate talks only to the node that promised it.
      m.isolated = m.candidate;
      m.keepLink = m.promiser;
      trace("nemesis: node " + std::to_string(m.promiser) + " promised node " + std::to_string(m.candidate) +
            " and loses its disk; node " + std::to_string(m.candidate) + " talks only to it");
      return nextStep(kGiveUpUs);
    }
    case 4: {
      // Once the wiped node votes again, another node misses the Accepts of a while's writes.
      SimNode& w = *nodes_[m.promiser];
      if (!w.core || !w.store->state.started || w.store->state.learner) return;
      SimNode* leader = servingLeaderOrLeading(m.candidate);
      if (!leader) return;
      do {
        m.starved = static_cast<NodeId>(rng_.range(1, options_.replicas));
      } while (m.starved == m.candidate || m.starved == m.promiser || m.starved == leader->id);
      m.starveUntil = ~Time{0};
      m.stepAt = now_ + rng_.range(200'000, 800'000);
      // The leader falls silent the moment it learns something chosen without the starved node,
      // before it tells anyone (nemesisTakes), and dies.
      m.leader = leader->id;
      m.commitBefore = leader->core->replica()->commitIndex();
      // A write of its own, for the others to choose without the starved node.
      Op set;
      set.type = OpType::Set;
      set.path = "/nemesis";
      set.data = std::to_string(now_);
      set.createIfMissing = true;
      leader->core->submit(txnCommand({set}), [](CommandResult) {});
      leader->core->endTurn();
      trace("nemesis: node " + std::to_string(m.promiser) + " votes again; node " + std::to_string(m.starved) +
            " misses Accepts");
      return nextStep(m.stepAt - now_ + kGiveUpUs);
    }
    case 5: {
      if (now_ < m.stepAt && !m.muted) return;
      SimNode* leader = nodes_[m.leader].get();
      if (runs(*leader)) {
        crash(*leader);
        schedule(now_ + rng_.range(1'500'000, 3'000'000), Event{Kind::Restart, leader->id});
      }
      m.starveUntil = 0;
      // The candidate's queued Prepares arrive once the leases lapsed, before the others' next
      // campaign.
      m.stepAt = now_ + rng_.range(330'000, 480'000);
      trace("nemesis: node " + std::to_string(m.leader) + ", the others' leader, dies");
      return nextStep(m.stepAt - now_ + kGiveUpUs);
    }
    case 6: {
      if (now_ < m.stepAt) return;
      for (auto& [from, to, frame] : m.heldPrepares) {
        result_.lateFrames++;
        schedule(now_ + rng_.range(100, 20'000), Event{Kind::Deliver, to, from, std::move(frame)});
      }
      m.heldPrepares.clear();
      return endNemesis("the candidate's queued Prepares arrive; its links come back");
    }
  }
}

void NodeSim::endNemesis(const std::string& why) {
  Nemesis& m = nemesis_;
  trace("nemesis: " + std::string(programName(m.program)) + " ends: " + why);
  for (auto& held : m.heldPrepares) m.heldAccepts.push_back(std::move(held));
  for (auto& [from, to, frame] : m.heldAccepts) {
    Time& linkClear = linkClear_[{from, to}];
    linkClear = std::max(linkClear, now_ + rng_.range(100, 3'000));
    schedule(linkClear, Event{Kind::Deliver, to, from, std::move(frame)});
  }
  nemesis_ = Nemesis{};
  sessionsQuietUntil_ = 0;
}

// ---- what the nemesis does to frames ----------------------------------------------------

namespace {

const paxos::Payload* decodePaxos(const std::string& frame, paxos::Message& holder) {
  if (frame.empty() || frame[0] != static_cast<char>(coordinator::node::Frame::Paxos)) return nullptr;
  try {
    holder = paxos::decodeMessage(std::string_view(frame).substr(1));
    return &holder.payload;
  } catch (const DecodeError&) {
    return nullptr;
  }
}

}  // namespace

bool NodeSim::nemesisTakes(NodeId from, NodeId to, std::string& frame) {
  Nemesis& m = nemesis_;
  if (m.program == Program::None || from == to) return false;
  if (m.isolated && (from == m.isolated || to == m.isolated) && (m.isolatedUntil == 0 || now_ < m.isolatedUntil) &&
      (m.keepLink == 0 || (from != m.keepLink && to != m.keepLink))) {
    return true;
  }
  if (m.dropRepliesTo == to) return true;
  // From the start, the candidate's answers to the wiped node's probe are slow: the others' come first.
  if (m.fromStart && m.step >= 3 && from == m.candidate && to == m.promiser &&
      !(nodes_[to]->core && nodes_[to]->core->replica())) {
    return true;
  }
  if (m.program == Program::PromiseBeforeWipe && m.step == 5 && from == m.leader) {
    const auto* replica = nodes_[from]->core->replica();
    if (replica && replica->commitIndex() > m.commitBefore) m.muted = true;
    if (m.muted) return true;
  }
  paxos::Message message;
  const paxos::Payload* payload = decodePaxos(frame, message);
  if (!payload) return false;
  const bool accept = std::holds_alternative<paxos::Accept>(*payload);
  if (accept && m.dropAcceptsFrom == from) return true;
  if (accept && m.holdAcceptsFrom == from) {
    m.heldAccepts.emplace_back(from, to, std::move(frame));
    return true;
  }
  // A starved node misses what is chosen meanwhile, by Accept and by catch-up alike.
  if ((accept || std::holds_alternative<paxos::CatchupReply>(*payload)) && m.starved == to && now_ < m.starveUntil) {
    return true;
  }
  // Until the highest node has campaigned, the others' campaigns are lost; from the start, also
  // until the node that promised it is back from its wipe and has probed the cluster.
  const bool othersWait =
      m.step == 1 || (m.fromStart && m.step >= 2 && m.step <= 4 &&
                      !(nodes_[m.promiser]->core && nodes_[m.promiser]->core->replica() && m.step >= 4));
  if (m.program == Program::PromiseBeforeWipe && othersWait && from != options_.replicas &&
      (std::holds_alternative<paxos::Prepare>(*payload) || std::holds_alternative<paxos::PreVote>(*payload))) {
    return true;
  }
  if (m.program == Program::PromiseBeforeWipe && std::holds_alternative<paxos::Prepare>(*payload)) {
    // The candidate is the highest node: whoever the others elect next has a lower ballot in the
    // same round, and so yields to the candidate's queued Prepares when they arrive.
    if (m.step == 1 && from == options_.replicas) {
      m.candidate = from;
      m.promiser = to;
      m.step = 2;
      m.giveUpAt = now_ + 1'000'000;
      return false;
    }
    if (m.step >= 2 && from == m.candidate && to != m.promiser) {
      m.heldPrepares.emplace_back(from, to, std::move(frame));
      return true;
    }
  }
  if (m.program == Program::PromiseBeforeWipe && m.step == 2 && from == m.promiser && to == m.candidate) {
    const auto* promise = std::get_if<paxos::Promise>(payload);
    if (promise && promise->ok) m.step = 3;
    if (promise && !promise->ok) m.giveUpAt = 0;  // refused: another try
  }
  return false;
}

}  // namespace warden::tests::sim::detail
