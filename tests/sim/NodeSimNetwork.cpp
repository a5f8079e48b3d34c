// The whole-node simulator's network (links that drop, delay, duplicate and reorder frames, and
// hold them for nodes that do not run) and its processes and disks (start, crash, restart,
// resume, wipe). Part of class NodeSim (NodeSim.h).

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/NodeSim.h"

namespace warden::tests::sim::detail {

// ---- the network ------------------------------------------------------------------------

void NodeSim::post(NodeId from, NodeId to, std::string frame) {
  if (frame.size() > kFrameLimit) fail("frame-limit", "a frame of " + std::to_string(frame.size()) + " bytes");
  if (nemesisTakes(from, to, frame)) return;
  if (blocked_.count({from, to})) {
    // A cut link: most frames are lost; some sit in a queue and arrive long after.
    if (!healed_ && rng_.chance(0.3)) late_.emplace_back(from, to, std::move(frame));
    return;
  }
  Time& linkClear = linkClear_[{from, to}];
  if (healed_) {
    linkClear = std::max(linkClear, now_ + rng_.range(100, 2'000));
    schedule(linkClear, Event{Kind::Deliver, to, from, std::move(frame)});
    return;
  }
  if (rng_.chance(0.03)) return;
  if (rng_.chance(0.005)) {
    // Seconds late, across reconnects and restarts, overtaken by everything after it.
    result_.lateFrames++;
    schedule(now_ + rng_.range(500'000, 3'000'000), Event{Kind::Deliver, to, from, std::move(frame)});
    return;
  }
  if (rng_.chance(0.02)) {
    // A frame resent on a new connection after the old one carried it: it comes again, later.
    schedule(now_ + rng_.range(1'000, 50'000), Event{Kind::Deliver, to, from, frame});
  }
  // Otherwise a link delivers in order, as TCP does: a slow frame holds up those behind it.
  Time delay = rng_.range(100, 3'000);
  if (rng_.chance(0.05)) delay = rng_.range(10'000, 100'000);
  linkClear = std::max(linkClear, now_ + delay);
  schedule(linkClear, Event{Kind::Deliver, to, from, std::move(frame)});
}

void NodeSim::deliver(NodeId from, NodeId to, std::string frame) {
  if (blocked_.count({from, to})) return;  // the link was cut while the frame was on it
  SimNode& n = *nodes_[to];
  if (!runs(n)) {
    // Down: the sender's link queue keeps some for the next process. Paused: TCP buffers it.
    if (n.core || rng_.chance(0.5)) n.held.emplace_back(from, std::move(frame));
    return;
  }
  // Frames wait in the node's input queue until its driver's next turn takes them all, as in
  // the shell: several frames (a Paxos step and a snapshot chunk, say) share one turn.
  n.inbox.emplace_back(from, std::move(frame));
  if (!n.wakeScheduled) {
    n.wakeScheduled = true;
    schedule(now_ + rng_.range(0, 1'000), Event{Kind::Wake, n.id});
  }
}

void NodeSim::wake(SimNode& n) {
  n.wakeScheduled = false;
  if (!runs(n)) {
    for (auto& f : n.inbox) n.held.push_back(std::move(f));
    n.inbox.clear();
    return;
  }
  auto inbox = std::move(n.inbox);
  n.inbox.clear();
  // The late node's first turn after its cut takes frames that reached it before the cut (none
  // can reach it since): their effect on its promise counts as from before the cut. Measured
  // before endTurn(), whose timer tick is the node's own doing while cut off.
  const bool takesFramesFromBeforeCut = n.id == lateNode_ && lateFramesAtCut_;
  lateFramesAtCut_ = lateFramesAtCut_ && !takesFramesFromBeforeCut;
  const auto promised = [&n] { return n.core->replica() ? n.core->replica()->promised() : paxos::Ballot{}; };
  const paxos::Ballot before = takesFramesFromBeforeCut ? promised() : paxos::Ballot{};
  for (auto& [from, frame] : inbox) {
    if (options_.traceFrames) trace("node " + std::to_string(n.id) + " <- " + std::to_string(from) + " " + describe(frame));
    n.core->peerFrame(from, frame);
  }
  if (takesFramesFromBeforeCut && before < promised()) {
    latePromiseAtCut_ = std::max(latePromiseAtCut_, promised());
    trace("node " + std::to_string(n.id) + " promises " + paxos::toString(promised()) +
          " on frames that reached it before its cut");
  }
  n.core->endTurn();
}

void NodeSim::releaseHeld(SimNode& n) {
  auto held = std::move(n.held);
  n.held.clear();
  for (auto& [from, frame] : held) schedule(now_ + rng_.range(100, 5'000), Event{Kind::Deliver, n.id, from, std::move(frame)});
}

// ---- processes and disks ----------------------------------------------------------------

void NodeSim::freshDisk(SimNode& n) {
  closeDisk(n);
  const auto dir = root_ / ("node" + std::to_string(n.id) + "-disk" + std::to_string(++n.disk));
  std::filesystem::create_directories(dir);
  n.store = std::make_unique<MemoryLogStore>();
  openDisk(n, dir);
}

// Opens the node's LMDB directory as a starting process does (that commit is durable). With
// power losses on, its file is imaged after every commit: what a machine crash would leave.
void NodeSim::openDisk(SimNode& n, const std::filesystem::path& dir) {
  n.env = std::make_unique<storage::Env>(dir.string(), storage::EnvOptions{std::size_t{256} << 20, 16, false});
  storage::Txn txn = storage::Txn::write(*n.env);
  n.stateMachine = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
  n.stateMachine->lockBugs = options_.lockBugs;
  n.stateMachine->initialize(txn);
  txn.commit();
  n.store->env = n.env.get();
  if (options_.powerLossShare <= 0) return;
  auto image = [&n, file = dir / "data.mdb"](bool synced) {
    std::ifstream in(file, std::ios::binary);
    std::string now{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    // MDB_NOMETASYNC: a commit without a sync may be undone by a crash, but its flush of pages
    // made the commit before it durable.
    n.image = synced ? now : std::move(n.lastImage);
    n.lastImage = std::move(now);
  };
  image(true);
  n.env->afterCommit = image;
}

// A machine crash: the process dies (as crash()) and the page cache is lost. The acceptor state
// stays (its write-ahead log is flushed before anything leaves); the LMDB file goes back to its
// last durable commit, or to the one after it, made without a flush, if its meta page happened
// to reach the disk.
void NodeSim::powerLoss(SimNode& n) {
  crash(n);
  closeDisk(n);
  const auto dir = root_ / ("node" + std::to_string(n.id) + "-disk" + std::to_string(++n.disk));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "data.mdb", std::ios::binary);
    const std::string& image = rng_.chance(0.5) ? n.image : n.lastImage;
    out.write(image.data(), static_cast<std::streamsize>(image.size()));
  }
  openDisk(n, dir);
  result_.powerLosses++;
  trace("node " + std::to_string(n.id) + " loses power: its disk is as of its last durable commit, or the one after");
}

void NodeSim::closeDisk(SimNode& n) {
  n.core.reset();
  n.stateMachine.reset();
  n.env.reset();
}

void NodeSim::startProcess(SimNode& n) {
  node::ClusterOptions options;
  options.id = n.id;
  for (NodeId id = 1; id <= options_.replicas; ++id) options.members[id] = "sim:" + std::to_string(id);
  options.http = "sim:" + std::to_string(n.id);
  options.writeTimeoutMs = kWriteTimeoutMs;
  options.retainedSlots = 40;
  if (options_.retainedBytes != 0) options.retainedBytes = options_.retainedBytes;
  options.snapshotChunkBytes = 300;  // many chunks: the stream's flow control is exercised
  options.installStepBytes = 400;    // installs take many turns, and a crash may stop one halfway
  options.pingUs = 0;  // they feed only the health view, which nothing here checks
  // Applies committed every turn, lazily as in production, or held long enough for many reads
  // and writes to meet an uncommitted one.
  constexpr std::uint64_t kApplyDelays[] = {0, 1000, 20'000};
  options.applyCommitDelayUs = kApplyDelays[rng_.range(0, 2)];
  options.paxos.maxBatchBytes = 256u << 10;
  options.paxos.catchupBytes = 512u << 10;
  options.paxos.promiseBytes = 12u << 20;
  options.paxos.bugs = options_.paxosBugs;
  options.paxos.thrifty = options_.thrifty < 0 ? options_.seed % 2 == 1 : options_.thrifty == 1;
  options.bugs = options_.nodeBugs;
  options.flushBehind = options_.flushBehind < 0 ? (options_.seed >> 1) % 2 == 1 : options_.flushBehind == 1;
  if (options.flushBehind) {
    n.store->onFlushBehind = [this, &n] { beginFlush(n); };
  } else {
    n.store->onFlushBehind = nullptr;
  }
  n.random = std::make_unique<SimRandom>(rng_.next());
  n.process++;
  n.core = std::make_unique<NodeCore>(
      *n.env, *n.stateMachine, options,
      NodeCore::Ports{*n.outbox, *n.clock, *n.random, *n.store,
                      [this, id = n.id](const std::string& line) {
                        if (line.rfind("installed a snapshot", 0) == 0) result_.snapshots++;
                        trace("node " + std::to_string(id) + ": " + line);
                      }},
      [](coordinator::watch::Applied&) {},
      [this, id = n.id](std::uint64_t slot, const paxos::Value& value, const Entry& entry,
                        const std::vector<CommandResult>& results) { onApplied(id, slot, value, entry, results); });
  trace("node " + std::to_string(n.id) + " starts process " + std::to_string(n.process));
}

void NodeSim::beginFlush(SimNode& n) {
  if (n.flushing) {
    n.flushAgain = true;
    return;
  }
  n.flushing = true;
  n.flushTicket = n.store->written();
  schedule(now_ + flushRng_.range(50, 3'000), Event{Kind::Flushed, n.id, 0, {}, n.process});
}

void NodeSim::endFlush(SimNode& n, std::uint64_t process) {
  if (!n.core || process != n.process || !n.flushing) return;  // its process died meanwhile
  n.flushing = false;
  n.store->endFlush(n.flushTicket);
  if (n.flushAgain) {
    n.flushAgain = false;
    beginFlush(n);
  }
  // The flusher wakes the driver, which releases what the flush covered (paused: once it runs).
  if (runs(n)) n.core->endTurn();
}

void NodeSim::crash(SimNode& n) {
  if (!n.core) return;
  n.core.reset();  // kill -9: nobody is answered, and what waited in its input queue is gone
  n.store->loseUnflushed();
  n.flushing = false;
  n.flushAgain = false;
  n.inbox.clear();
  n.pausedUntil = 0;
  result_.crashes++;
  for (std::size_t c = 0; c < clients_.size(); ++c) {
    Client& client = clients_[c];
    if (client.busy && client.node == n.id) finishOp(c, Operation::Outcome::Unknown, std::nullopt, false);
  }
  for (auto& s : sessionClients_) {
    if (s.pending && pendingNode_[s.id] == n.id) sessionGaveNoAnswer(s);
  }
  lockGaveNoAnswer(n.id);
  trace("node " + std::to_string(n.id) + " crashes");
}

void NodeSim::restart(SimNode& n) {
  if (n.core) return;
  startProcess(n);
  releaseHeld(n);
}

void NodeSim::resume(SimNode& n) {
  // Not when the pause already ended otherwise (the heal, or a crash, set pausedUntil to 0):
  // that node has been running since, and "resumes" here would misdate it in a trace.
  if (!n.core || n.pausedUntil == 0 || now_ < n.pausedUntil) return;
  trace("node " + std::to_string(n.id) + " resumes");
  if (nemesis_.program == Program::DeposedReads && nemesis_.leader == n.id) {
    for (std::size_t c = clients_.size() - kDeposedReaders; c < clients_.size(); ++c) clientStep(c, &n);
  }
  releaseHeld(n);
}

// A disk that does not hold a voter's state (lost, or never got past the bootstrap: the node
// cannot tell the two apart) counts until its node votes again, whether it is up or down.
bool NodeSim::someoneRebuilding() {
  for (auto& [id, n] : nodes_) {
    if (!n->store->state.started || n->store->state.learner) return true;
  }
  return false;
}

}  // namespace warden::tests::sim::detail
