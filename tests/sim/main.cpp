// warden_sim: runs the deterministic Paxos simulation over many seeds, or replays one.
//   warden_sim --seeds N [--first S] [--replicas 3|5|both]
//   warden_sim --seed S [--replicas 3|5] [--trace]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/sim/Flags.h"
#include "tests/sim/Simulation.h"

using namespace warden::tests::sim;

int main(int argc, char** argv) {
  SeedFlags flags;
  for (int i = 1; i < argc; ++i) {
    if (parseSeedFlag(flags, argc, argv, i)) continue;
    std::fprintf(stderr, "usage: warden_sim --seeds N [--first S] [--replicas 3|5|both] | --seed S [--replicas 3|5] [--trace]\n"
                 "  --bug skip-phase1|ignore-lease|forget-state|wipe-votes|sessions-without-lease|stale-ttl|\n"
                 "        no-pre-vote|rebuild-ignores-promises|\n"
                 "        lease-read-before-recovery|read-index-without-round runs a deliberately broken replica\n");
    return 2;
  }
  const std::vector<std::size_t> sizes = flags.finish();
  const std::uint64_t seeds = flags.seeds, first = flags.first;
  const std::string& replicas = flags.replicas;
  const std::string& bug = flags.bug;
  const bool trace = flags.trace;
  auto start = std::chrono::steady_clock::now();
  std::uint64_t runs = 0, failures = 0, events = 0, slots = 0, leaseReads = 0, indexReads = 0, crashes = 0,
                wipes = 0, pauses = 0, partitions = 0, snapshots = 0, sessions = 0, keepalives = 0, expiries = 0;
  for (std::size_t n : sizes) {
    for (std::uint64_t seed = first; seed < first + seeds; ++seed) {
      SimOptions options;
      options.seed = seed;
      options.replicas = n;
      options.trace = trace;
      // Deliberately broken replicas, to see the checks catch them.
      if (bug == "skip-phase1") options.bugs.skipPhase1 = true;
      if (bug == "ignore-lease") options.bugs.ignoreLeaseOnPrepare = options.bugs.noPreVote = true;
      if (bug == "no-pre-vote") options.bugs.noPreVote = true;
      if (bug == "lease-read-before-recovery") options.bugs.leaseReadBeforeRecovery = true;
      if (bug == "read-index-without-round") options.bugs.readIndexWithoutRound = true;
      if (bug == "rebuild-ignores-promises") options.bugs.rebuildIgnoresPromises = true;
      if (bug == "forget-state") options.forgetStateOnRestart = true;
      if (bug == "wipe-votes") options.wipedVotesAtOnce = true;
      if (bug == "sessions-without-lease") options.sessionsWithoutLease = true;
      if (bug == "stale-ttl") options.staleTtlOnTakeover = true;
      SimResult r = runSimulation(options);
      ++runs;
      events += r.events;
      slots += r.chosenSlots;
      leaseReads += r.leaseReads;
      indexReads += r.indexReads;
      crashes += r.crashes;
      wipes += r.wipes;
      pauses += r.pauses;
      partitions += r.partitions;
      snapshots += r.snapshots;
      sessions += r.sessions;
      keepalives += r.keepalivesAcked;
      expiries += r.expiries;
      if (!r.ok) {
        ++failures;
        std::printf("FAIL %s\n  replay: scripts/sim --seed %llu --replicas %zu --trace\n", r.violation.c_str(),
                    static_cast<unsigned long long>(seed), n);
      }
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu runs (seeds %llu..%llu, replicas %s): %llu failed; %.1f s, %.1f runs/s\n",
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(first + seeds - 1), replicas.c_str(),
              static_cast<unsigned long long>(failures), seconds, static_cast<double>(runs) / seconds);
  std::printf("  %llu events, %llu slots chosen, %llu lease reads, %llu read-index reads checked\n",
              static_cast<unsigned long long>(events), static_cast<unsigned long long>(slots),
              static_cast<unsigned long long>(leaseReads), static_cast<unsigned long long>(indexReads));
  std::printf("  faults: %llu crashes, %llu disk wipes, %llu pauses, %llu partitions, %llu snapshots sent\n",
              static_cast<unsigned long long>(crashes), static_cast<unsigned long long>(wipes),
              static_cast<unsigned long long>(pauses), static_cast<unsigned long long>(partitions),
              static_cast<unsigned long long>(snapshots));
  std::printf("  sessions: %llu created, %llu keepalives acknowledged, %llu expiries chosen\n",
              static_cast<unsigned long long>(sessions), static_cast<unsigned long long>(keepalives),
              static_cast<unsigned long long>(expiries));
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(runs - failures),
              static_cast<unsigned long long>(failures));
  return failures == 0 ? 0 : 1;
}
