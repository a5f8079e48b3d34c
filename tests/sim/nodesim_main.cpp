// warden_nodesim: runs the whole-node simulation (tests/sim/NodeSimulation) over many seeds, or
// replays one.
//   warden_nodesim --seeds N [--first S] [--replicas 3|5|both] [--bug NAME] [--large-writes P] [--retained-bytes N]
//   warden_nodesim --seed S [--replicas 3|5] [--trace] [--bug NAME] [--large-writes P] [--retained-bytes N]

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "tests/sim/Flags.h"
#include "tests/sim/NodeSimulation.h"

using namespace warden::tests::sim;

namespace {

// Each fixed defect, planted back in the real node code.
bool plant(const std::string& bug, NodeSimOptions& o) {
  if (bug.empty()) return true;
  if (bug == "ignore-incarnation") return o.nodeBugs.ignoreIncarnation = true;
  if (bug == "serve-without-epoch") return o.nodeBugs.serveWithoutEpoch = true;
  if (bug == "same-epoch-after-lapse") return o.nodeBugs.sameEpochAfterLapse = true;
  if (bug == "serve-without-lease") return o.nodeBugs.serveWithoutLease = true;
  if (bug == "stale-ttl") return o.nodeBugs.staleTtlOnTakeover = true;
  if (bug == "followers-answer-keepalives") return o.nodeBugs.followersAnswerKeepalives = true;
  if (bug == "never-expire") return o.nodeBugs.neverExpire = true;
  if (bug == "rebuild-shares-catchup-timer") return o.paxosBugs.rebuildSharesCatchupTimer = true;
  if (bug == "bootstrap-on-majority") return o.nodeBugs.bootstrapOnMajority = true;
  if (bug == "apply-past-deadline") return o.nodeBugs.applyPastDeadline = true;
  if (bug == "refuse-on-deadline") return o.nodeBugs.refuseOnDeadline = true;
  if (bug == "rebuild-ignores-promises") return o.paxosBugs.rebuildIgnoresPromises = true;
  if (bug == "skip-phase1") return o.paxosBugs.skipPhase1 = true;
  if (bug == "ignore-lease") return o.paxosBugs.ignoreLeaseOnPrepare = o.paxosBugs.noPreVote = true;
  if (bug == "catchup-by-count") {
    // With writes as large as the workload makes them, 64 slots of them overflow a frame.
    o.largeWriteShare = 1.0;
    return o.paxosBugs.catchupByCountOnly = true;
  }
  if (bug == "no-pre-vote") return o.paxosBugs.noPreVote = true;
  if (bug == "push-unchosen") return o.paxosBugs.pushUnchosen = true;
  if (bug == "fast-read-without-lease") return o.nodeBugs.fastReadWithoutLease = true;
  if (bug == "never-end-lock-delays") return o.nodeBugs.neverEndLockDelays = true;
  if (bug == "grant-everyone") return o.lockBugs.grantEveryone = true;
  if (bug == "requests-by-session") return o.lockBugs.requestsBySession = true;
  if (bug == "token-per-lock-node") return o.lockBugs.tokenPerLockNode = true;
  return false;
}

// Takes argv[i + 1] into `out` (1 for "on", 0 for "off"); false, and nothing taken, otherwise.
bool onOffNext(int argc, char** argv, int& i, int& out) {
  if (i + 1 >= argc) return false;
  const std::string value = argv[i + 1];
  if (value != "on" && value != "off") return false;
  out = value == "on";
  ++i;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  SeedFlags flags;
  std::set<std::string> skipChecks;
  bool traceFrames = false, deposedReads = false;
  std::optional<double> largeWrites;
  std::uint64_t retainedBytes = 0;
  double powerLoss = 0;
  int thrifty = -1;
  int flushBehind = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (parseSeedFlag(flags, argc, argv, i)) continue;
    if (a == "--trace-frames") flags.trace = traceFrames = true;
    else if (a == "--skip-check") skipChecks.insert(flagValue(argc, argv, i));
    else if (a == "--large-writes") largeWrites = std::stod(flagValue(argc, argv, i));
    else if (a == "--retained-bytes") retainedBytes = std::stoull(flagValue(argc, argv, i));
    else if (a == "--power-loss") powerLoss = std::stod(flagValue(argc, argv, i));
    else if (a == "--deposed-reads") deposedReads = true;
    else if (a == "--thrifty" && onOffNext(argc, argv, i, thrifty)) continue;
    else if (a == "--flush-behind" && onOffNext(argc, argv, i, flushBehind)) continue;
    else {
      std::fprintf(stderr,
                   "usage: warden_nodesim --seeds N [--first S] [--replicas 3|5|both] | --seed S [--replicas 3|5] [--trace]\n"
                   "  --bug ignore-incarnation|serve-without-epoch|bootstrap-on-majority|serve-without-lease|stale-ttl|\n"
                   "        followers-answer-keepalives|never-expire|same-epoch-after-lapse|\n"
                   "        rebuild-shares-catchup-timer|apply-past-deadline|refuse-on-deadline|\n"
                   "        rebuild-ignores-promises|skip-phase1|ignore-lease|no-pre-vote|catchup-by-count|\n"
                   "        grant-everyone|requests-by-session|token-per-lock-node|never-end-lock-delays|\n"
                   "        fast-read-without-lease|push-unchosen   plants a fixed defect\n"
                   "  --skip-check NAME leaves a check out (agreement, linearizability, expiry-early, keepalive-late, liveness,\n"
                   "                    stable-leader, rebuild, frame-limit, lock-exclusive, lock-tokens, lock-fifo)\n"
                   "  --large-writes P  the share of writes with a large value (default 0.01; catchup-by-count sets 1)\n"
                   "  --retained-bytes N  each node's retained log slots in bytes (default: production's)\n"
                   "  --power-loss P    the share of crashes that are power losses (default 0: the disk keeps every commit)\n"
                   "  --deposed-reads   every run pauses a serving leader, and clients read from it as it resumes\n"
                   "  --thrifty on|off  phase 2 asks a majority only, or every member (default: on for odd seeds)\n"
                   "  --flush-behind on|off  records flushed behind the driver, their messages held until then\n"
                   "                    (default: on for seeds whose second bit is set, 2, 3, 6, 7, ...)\n");
      return 2;
    }
  }
  const std::string& bug = flags.bug;
  NodeSimOptions probe;
  if (!plant(bug, probe)) {
    std::fprintf(stderr, "unknown --bug %s\n", bug.c_str());
    return 2;
  }
  const std::vector<std::size_t> sizes = flags.finish();
  const std::uint64_t seeds = flags.seeds, first = flags.first;
  const std::string& replicas = flags.replicas;
  const bool trace = flags.trace;
  const auto start = std::chrono::steady_clock::now();
  NodeSimResult total;
  std::uint64_t runs = 0, failures = 0;
  std::map<std::string, std::uint64_t> caughtBy;
  for (std::size_t n : sizes) {
    for (std::uint64_t seed = first; seed < first + seeds; ++seed) {
      NodeSimOptions options;
      options.seed = seed;
      options.replicas = n;
      options.trace = trace;
      options.traceFrames = traceFrames;
      options.skipChecks = skipChecks;
      plant(bug, options);
      if (largeWrites) options.largeWriteShare = *largeWrites;
      options.retainedBytes = retainedBytes;
      options.powerLossShare = powerLoss;
      options.deposedReads = deposedReads;
      options.thrifty = thrifty;
      options.flushBehind = flushBehind;
      const NodeSimResult r = runNodeSimulation(options);
      ++runs;
      total.events += r.events;
      total.slots += r.slots;
      total.operations += r.operations;
      total.okOperations += r.okOperations;
      total.unknownOperations += r.unknownOperations;
      total.reads += r.reads;
      total.crashes += r.crashes;
      total.powerLosses += r.powerLosses;
      total.wipes += r.wipes;
      total.pauses += r.pauses;
      total.partitions += r.partitions;
      total.lateFrames += r.lateFrames;
      total.snapshots += r.snapshots;
      total.sessions += r.sessions;
      total.keepalivesAcked += r.keepalivesAcked;
      total.expiries += r.expiries;
      total.lockGrants += r.lockGrants;
      total.lockChecks += r.lockChecks;
      if (!r.ok) {
        ++failures;
        caughtBy[r.check]++;
        const std::string extra = (powerLoss > 0 ? " --power-loss " + std::to_string(powerLoss) : "") +
                                  (deposedReads ? " --deposed-reads" : "");
        std::printf("FAIL %s\n  replay: scripts/sim --node --seed %llu --replicas %zu%s --trace\n", r.violation.c_str(),
                    static_cast<unsigned long long>(seed), n, extra.c_str());
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("%llu whole-node runs (seeds %llu..%llu, replicas %s): %llu failed; %.1f s, %.1f runs/s\n", u(runs),
              u(first), u(first + seeds - 1), replicas.c_str(), u(failures), seconds, static_cast<double>(runs) / seconds);
  std::printf("  %llu events, %llu slots applied, %llu client operations (%llu ok, %llu unknown, %llu reads) judged linearizable\n",
              u(total.events), u(total.slots), u(total.operations), u(total.okOperations), u(total.unknownOperations),
              u(total.reads));
  std::printf("  faults: %llu crashes, %llu disk wipes, %llu pauses, %llu partitions, %llu frames seconds late; %llu snapshots installed\n",
              u(total.crashes), u(total.wipes), u(total.pauses), u(total.partitions), u(total.lateFrames), u(total.snapshots));
  if (total.powerLosses > 0) std::printf("  of the crashes, %llu were power losses\n", u(total.powerLosses));
  std::printf("  sessions: %llu created, %llu keepalives acknowledged, %llu expiries applied\n", u(total.sessions),
              u(total.keepalivesAcked), u(total.expiries));
  std::printf("  locks: %llu grants seen, %llu fenced checks\n", u(total.lockGrants), u(total.lockChecks));
  for (const auto& [check, count] : caughtBy) std::printf("  caught by %s: %llu\n", check.c_str(), u(count));
  std::printf("%llu passed, %llu failed\n", u(runs - failures), u(failures));
  return failures == 0 ? 0 : 1;
}
