// warden_sim: runs the deterministic Paxos simulation over many seeds, or replays one.
//   warden_sim --seeds N [--first S] [--replicas 3|5|both]
//   warden_sim --seed S [--replicas 3|5] [--trace]
//   ... --bug NAME [--skip-check CHECK]: a defect planted in the real replica or keeper code

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "tests/sim/Flags.h"
#include "tests/sim/Simulation.h"

using namespace warden::tests::sim;

namespace {

// Each defect, planted in the real code under test (ReplicaConfig::Bugs, Keeper::Bugs); the
// check that catches it is in the README's simulator section and in SimTest.cpp.
bool plant(const std::string& bug, SimOptions& o) {
  if (bug.empty()) return true;
  if (bug == "skip-phase1") return o.bugs.skipPhase1 = true;
  if (bug == "ignore-lease") return o.bugs.ignoreLeaseOnPrepare = o.bugs.noPreVote = true;
  if (bug == "no-pre-vote") return o.bugs.noPreVote = true;
  if (bug == "lease-read-before-recovery") return o.bugs.leaseReadBeforeRecovery = true;
  if (bug == "read-index-without-round") return o.bugs.readIndexWithoutRound = true;
  if (bug == "rebuild-ignores-promises") return o.bugs.rebuildIgnoresPromises = true;
  if (bug == "votes-in-memory") return o.bugs.votesInMemoryOnly = true;
  if (bug == "wipe-votes") return o.bugs.wipedVotesAtOnce = true;
  if (bug == "hole-as-empty-batch") return o.bugs.holeAsEmptyBatch = true;
  if (bug == "restart-forgets-applied") return o.bugs.restartForgetsApplied = true;
  if (bug == "ignore-compacted-promise") return o.bugs.ignoreCompactedPromise = true;
  if (bug == "lease-from-receipt") return o.bugs.leaseFromReceipt = true;
  if (bug == "push-unchosen") return o.bugs.pushUnchosen = true;
  if (bug == "keeper-keeps-deadlines") return o.keeperBugs.keepDeadlinesOnTakeover = true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  SeedFlags flags;
  std::set<std::string> skipChecks;
  for (int i = 1; i < argc; ++i) {
    if (parseSeedFlag(flags, argc, argv, i)) continue;
    if (std::strcmp(argv[i], "--skip-check") == 0) {
      skipChecks.insert(flagValue(argc, argv, i));
      continue;
    }
    std::fprintf(stderr, "usage: warden_sim --seeds N [--first S] [--replicas 3|5|both] | --seed S [--replicas 3|5] [--trace]\n"
                 "  --bug skip-phase1|ignore-lease|no-pre-vote|rebuild-ignores-promises|votes-in-memory|wipe-votes|\n"
                 "        lease-read-before-recovery|read-index-without-round|hole-as-empty-batch|\n"
                 "        restart-forgets-applied|ignore-compacted-promise|lease-from-receipt|keeper-keeps-deadlines|\n"
                 "        push-unchosen\n"
                 "                    runs a replica (or keeper) with that defect planted\n"
                 "  --skip-check NAME leaves a check out (agreement, validity, in-order-apply, snapshot-prefix,\n"
                 "                    two-leases, stale-lease-read, stale-read-index, expiry-early,\n"
                 "                    keepalive-after-expiry, keepalive-refused, ephemerals, session-lost, liveness)\n");
    return 2;
  }
  {
    SimOptions probe;
    if (!plant(flags.bug, probe)) {
      std::fprintf(stderr, "unknown --bug %s (run without arguments for the list)\n", flags.bug.c_str());
      return 2;
    }
  }
  const std::vector<std::size_t> sizes = flags.finish();
  const std::uint64_t seeds = flags.seeds, first = flags.first;
  const std::string& replicas = flags.replicas;
  const std::string& bug = flags.bug;
  const bool trace = flags.trace;
  auto start = std::chrono::steady_clock::now();
  std::map<std::string, std::uint64_t> caughtBy;
  std::uint64_t runs = 0, failures = 0, events = 0, slots = 0, leaseReads = 0, indexReads = 0, crashes = 0,
                wipes = 0, pauses = 0, partitions = 0, snapshots = 0, sessions = 0, keepalives = 0, expiries = 0;
  for (std::size_t n : sizes) {
    for (std::uint64_t seed = first; seed < first + seeds; ++seed) {
      SimOptions options;
      options.seed = seed;
      options.replicas = n;
      options.trace = trace;
      options.skipChecks = skipChecks;
      plant(bug, options);
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
        caughtBy[r.check]++;
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
  for (const auto& [check, count] : caughtBy) {
    std::printf("  caught by %s: %llu\n", check.c_str(), static_cast<unsigned long long>(count));
  }
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(runs - failures),
              static_cast<unsigned long long>(failures));
  return failures == 0 ? 0 : 1;
}
