#pragma once
// A deterministic simulation of whole Warden nodes: the real node core (coordinator/node, with
// the Paxos replica inside it and the real StateMachine on a tmpfs LMDB) for every member, driven
// from one thread by one seeded PRNG over a simulated network and clocks. The same seed replays
// the same run.
//
// Faults: frames dropped, duplicated, delayed (some by seconds), delivered across reconnects and
// to a restarted process; one-way and two-way partitions; crashes (kill -9: nothing answered,
// durable state kept) and restarts with a new incarnation; with powerLossShare, some crashes are
// power losses instead (the LMDB file goes back to the node's last durable commit: applies made
// since, which commit without a flush, are lost); wiped disks (one at a time); pauses
// (SIGSTOP) past the lease with frames queued meanwhile; clocks drifting within the bound and
// wall clocks jumping.
//
// Clients record every operation (invoke, ok / fail / unknown, with data) on a few registers:
// writes, compare-and-swaps by version and linearizable reads, each at a random node. Session
// clients create sessions with an ephemeral node and keep them alive at random nodes; some walk
// away. Lock clients contend for one lock, each through its own session.
//
// Checks, each with a name a test can ask for:
//   agreement          no slot is ever applied with two different values, on any node
//   linearizability    the client history is linearizable (tests/sim/Linearizability)
//   expiry-early       no session expiry takes effect sooner than a ttl (on the slowest clock)
//                      after the invocation of its latest acknowledged keepalive
//   keepalive-late     no keepalive invoked after its session's expiry took effect is acknowledged
//   liveness           once healed, every node applies the same state and a write through each
//                      node succeeds; sessions still kept alive exist everywhere, with their
//                      ephemeral node; sessions abandoned long ago exist nowhere
//   stable-leader      one node stays cut off 2 s longer than the rest; once the others have a
//                      leader serving for a second, its return costs no election (pre-vote),
//                      unless it returns with a promise above that leader's ballot given before
//                      its cut (its campaign begun on pre-votes granted while it was connected):
//                      that one change is exempt, and the check settles again on the next leader
//   rebuild            1.5 s after a leader serves with that node back, every node votes (no
//                      lost disk is still being rebuilt), while the clients' writes keep coming
//   frame-limit        no frame is larger than the transport takes
//   lock-exclusive, lock-tokens, lock-fifo   judged over the lock clients' history (NodeSimLocks.cpp)
//
// In half of the runs a nemesis (NodeSimNemesis.cpp) replaces the random faults for a while with
// one schedule aimed at a rule: a stranded proposal, a lease flap, a promise given before a wipe.

#include <cstdint>
#include <set>
#include <string>

#include "coordinator/StateMachine.h"
#include "coordinator/node/ClusterOptions.h"
#include "coordinator/paxos/Replica.h"

namespace warden::tests::sim {

struct NodeSimOptions {
  std::uint64_t seed = 1;
  std::size_t replicas = 3;
  std::uint64_t faultyForUs = 5'000'000;  // true microseconds of faults...
  std::uint64_t healedForUs = 6'000'000;  // ...then this long with every node up and the network clean
  bool trace = false;
  bool traceFrames = false;  // with trace: every frame a node takes
  // The share of client writes whose value is large (100 to 900 KB, near the byte caps): more
  // makes every frame the node cuts by bytes (batches, catch-up replies, promises) run full.
  double largeWriteShare = 0.01;
  // The share of crashes that are power losses (0: none, and the PRNG draws as before, so seeds
  // replay unchanged). A power loss keeps what the node's last durable commit left on disk: the
  // acceptor state (MemoryLogStore) and the LMDB file imaged at that commit.
  double powerLossShare = 0;
  // Every run takes the "deposed reads" nemesis schedule (NodeSimNemesis.cpp) once the cluster
  // settles, instead of half the runs one of the others: a hunt for a planted lease-read bug,
  // which the random schedules reach once in hundreds of seeds. Off: the PRNG draws as before.
  bool deposedReads = false;
  // Each node's ClusterOptions::retainedBytes (0: the production default, which no run here
  // reaches): small, the log is compacted by the bytes of its slots more than by their number.
  std::uint64_t retainedBytes = 0;
  coordinator::paxos::ReplicaConfig::Bugs paxosBugs;
  coordinator::node::ClusterOptions::Bugs nodeBugs;
  coordinator::StateMachine::LockBugs lockBugs;
  // Checks to leave out, by name: to show that each check catches a planted bug by itself,
  // when another would have caught it first.
  std::set<std::string> skipChecks;
  // Phase 2 asks a majority only (ReplicaConfig::thrifty, the production default): 1 on, 0 off,
  // -1 on odd seeds, so that a sweep covers both ways (the PRNG draws the same either way).
  int thrifty = -1;
  // Records flushed behind the driver (ClusterOptions::flushBehind, the production default), each
  // flush taking 50 us to 3 ms of simulated time: 1 on, 0 off, -1 on for seeds whose second bit
  // is set (with thrifty, a sweep covers all four ways).
  int flushBehind = -1;
};

struct NodeSimResult {
  bool ok = true;
  std::string check;      // the name of the first check that failed
  std::string violation;  // what it saw, with the seed
  std::uint64_t events = 0, slots = 0;
  std::uint64_t operations = 0, okOperations = 0, unknownOperations = 0, reads = 0;
  std::uint64_t powerLosses = 0;
  std::uint64_t crashes = 0, wipes = 0, pauses = 0, partitions = 0, lateFrames = 0, snapshots = 0;
  std::uint64_t sessions = 0, keepalivesAcked = 0, expiries = 0;
  std::uint64_t lockGrants = 0, lockChecks = 0;  // grants the lock clients saw; fenced checks
  std::uint64_t readsAtResume = 0;  // reads the deposed-reads schedule sent to a resumed leader
  std::uint64_t digest = 0;  // of every applied slot and the event count: equal runs, equal digests
};

NodeSimResult runNodeSimulation(const NodeSimOptions& options);

}  // namespace warden::tests::sim
