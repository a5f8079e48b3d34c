// Outside-in runs (issue 13): the built binary on loopback, real HTTP clients, a nemesis, and a
// checker over the recorded history. Each run prints one summary line; a failed run keeps its
// history and the nodes' logs (Harness.h). scripts/jepsen sets the environment for long runs;
// CTest runs the defaults (a short mix) and shows that the checks catch planted defects.

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/jepsen/ElectionWorkload.h"
#include "tests/jepsen/LockWorkload.h"
#include "tests/jepsen/Nemesis.h"
#include "tests/jepsen/RegisterWorkload.h"
#include "tests/jepsen/SessionWorkload.h"
#include "tests/jepsen/WatchWorkload.h"
#include "tests/jepsen/WriteWorkload.h"

using namespace warden::tests;
using namespace warden::tests::jepsen;

namespace {

// The history, one JSON object per line, as the checker saw it.
void saveHistory(const std::string& dir, const std::vector<sim::Operation>& history) {
  std::ofstream out(dir + "/history.jsonl");
  static const char* kinds[] = {"read", "write", "cas"};
  static const char* outcomes[] = {"ok", "fail", "unknown"};
  for (const auto& op : history) {
    nlohmann::ordered_json line = {{"client", op.client},
                                   {"key", op.key},
                                   {"kind", kinds[static_cast<int>(op.kind)]},
                                   {"outcome", outcomes[static_cast<int>(op.outcome)]},
                                   {"invoked_us", op.invokedAt},
                                   {"returned_us", op.returnedAt}};
    if (op.value) line["value"] = *op.value;
    if (op.expected) line["expected"] = *op.expected;
    if (op.kind == sim::Operation::Kind::Read) line["observed"] = op.observed ? nlohmann::ordered_json(*op.observed) : nullptr;
    if (op.kind == sim::Operation::Kind::Cas) line["swapped"] = op.casSucceeded;
    out << line.dump() << "\n";
  }
}

// Runs `clients` (until told to stop) on a cluster under the nemesis: faults for all but the
// last 5 s of the run, then quiet.
void underNemesis(const Config& config, Nemesis& nemesis, const std::function<void(std::atomic<bool>&)>& clients) {
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  std::thread running([&] { clients(stop); });
  try {
    nemesis.run(start + config.time - std::chrono::seconds(5));
  } catch (...) {
    stop = true;
    running.join();
    throw;
  }
  while (Clock::now() < start + config.time) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  running.join();
}

// A fresh cluster for one run, with the run's clock, choices and nemesis.
struct Run {
  TestCluster cluster;
  RunClock clock;
  Choices choices;
  Nemesis nemesis;

  Run(const Config& config, std::vector<std::string> serverArgs)
      : cluster(config.nodes, std::move(serverArgs)), choices(config.seed), nemesis(cluster, config, choices) {
    REQUIRE(cluster.waitForLeader(15000));
  }

  // The run's summary line. A violation keeps the nodes' logs: the directory ("" when none).
  std::string report(const Config& config, const char* workload, const std::string& counts, const char* verdict,
                     const std::string& violation) {
    std::printf("%s (%s): %s; %s; faults: %s\n", workload, config.describe().c_str(), counts.c_str(),
                violation.empty() ? verdict : "VIOLATION", nemesis.summary().c_str());
    std::string dir;
    if (!violation.empty() || std::getenv("WARDEN_JEPSEN_KEEP_ALL")) {
      dir = keepDirectory(config, workload);
      cluster.saveLogs(dir);
      std::printf("%s: %s\n  node logs kept in %s\n", workload, violation.c_str(), dir.c_str());
    }
    std::fflush(stdout);
    return dir;
  }
};

std::string count(std::uint64_t n, const char* what) { return std::to_string(n) + " " + what; }

RegisterResult runRegister(const Config& config, std::vector<std::string> serverArgs = {}) {
  Run run(config, std::move(serverArgs));
  RegisterWorkload workload(run.cluster, run.clock, run.choices);
  run.nemesis.onWipe = [&](std::uint64_t node) { workload.noteWiped(node); };
  underNemesis(config, run.nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  RegisterResult result = workload.check();
  char checked[64];
  std::snprintf(checked, sizeof checked, " (checked in %.1f s)", result.checkSeconds);
  const std::string counts = count(result.history.size(), "ops (") + count(result.ok, "ok, ") +
                             count(result.writesOk, "writes applied, ") + count(result.failed, "failed, ") +
                             count(result.unknown, "unknown), ") + count(result.staleReads, "stale reads") + checked +
                             (result.verdict.exhausted ? ", search exhausted on some key: undecided" : "");
  const std::string violation = !result.verdict.ok ? result.verdict.explanation : result.staleViolation;
  const std::string dir = run.report(config, "register", counts, "linearizable", violation);
  if (!dir.empty()) saveHistory(dir, result.history);
  return result;
}

// `aimed`: every partition isolates the holder's node, and holders hold for seconds (a schedule
// aimed at fencing, for the planted defect).
LockResult runLocks(const Config& config, std::vector<std::string> serverArgs = {}, bool aimed = false) {
  Run run(config, std::move(serverArgs));
  LockWorkload workload(run.cluster, run.clock, run.choices);
  run.nemesis.target = [&] { return workload.holderNode(); };
  if (aimed) {
    run.nemesis.alwaysTarget = true;
    workload.holdMinMs = 3000;
    workload.holdMaxMs = 6000;
  }
  underNemesis(config, run.nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  const LockResult result = workload.check();
  run.report(config, "locks",
             count(result.grants, "grants, ") + count(result.checks, "checks (") + count(result.staleChecks, "stale), ") +
                 count(result.releases, "releases, ") + count(result.sessionsLost, "sessions lost"),
             "one holder at a time, tokens rising", result.violation);
  return result;
}

// The check waits (bounded) until every session walked away from is gone.
SessionResult runSessions(const Config& config, std::vector<std::string> serverArgs = {}) {
  Run run(config, std::move(serverArgs));
  SessionWorkload workload(run.cluster, run.clock, run.choices);
  underNemesis(config, run.nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  const SessionResult result = workload.check();
  run.report(config, "sessions",
             count(result.sessions, "sessions, ") + count(result.keepalivesAcked, "keepalives acknowledged, ") +
                 count(result.reads, "reads, ") + count(result.goneSeen, "seen gone"),
             "none gone early, none left behind", result.violation);
  return result;
}

// `createTimeout`: when a create's client gives up (none: the workload's own default).
WriteResult runWrites(const Config& config, std::vector<std::string> serverArgs = {},
                      std::optional<std::chrono::milliseconds> createTimeout = std::nullopt) {
  Run run(config, std::move(serverArgs));
  WriteWorkload workload(run.cluster, run.choices);
  if (createTimeout) workload.createTimeout = *createTimeout;
  underNemesis(config, run.nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  // A write given up on by its client may still be applied (504): let it land before counting
  // (without faults a 504 is unlikely, and the planted defects' runs need no long wait).
  std::this_thread::sleep_for(std::chrono::seconds(config.faults.empty() ? 2 : 11));
  const WriteResult result = workload.check();
  run.report(config, "writes",
             count(result.txns, "transactions, ") + count(result.pairReads, "pair reads, ") +
                 count(result.creates, "keyed creates (") + count(result.retries, "retries)"),
             "never half applied, each applied once", result.violation);
  return result;
}

// `aimed`: every partition isolates the leader's node, and leaders lead for seconds (a schedule
// aimed at the election's reads, for the planted defect).
ElectionResult runElections(const Config& config, std::vector<std::string> serverArgs = {}, bool aimed = false) {
  Run run(config, std::move(serverArgs));
  ElectionWorkload workload(run.cluster, run.clock, run.choices);
  run.nemesis.target = [&] { return workload.leaderNode(); };
  if (aimed) {
    run.nemesis.alwaysTarget = true;
    workload.leadMinMs = 3000;
    workload.leadMaxMs = 6000;
  }
  underNemesis(config, run.nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  const ElectionResult result = workload.check();
  run.report(config, "elections",
             count(result.wins, "campaigns won, ") + count(result.terms, "terms seen, ") + count(result.reads, "reads, ") +
                 count(result.resigns, "resignations, ") + count(result.sessionsLost, "sessions lost"),
             "one leader per term, terms never back", result.violation);
  return result;
}

WatchResult runWatches(const Config& config, std::vector<std::string> serverArgs = {}) {
  Run run(config, std::move(serverArgs));
  WatchWorkload workload(run.cluster, run.choices);
  underNemesis(config, run.nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  const WatchResult result = workload.check();
  run.report(config, "watches",
             count(result.writes, "writes acknowledged, ") + count(result.events, "events received, ") +
                 count(result.reconnects, "reconnects"),
             "every write seen once, in order", result.violation);
  return result;
}

void requireLinearizable(const RegisterResult& result) {
  INFO(result.verdict.explanation << result.staleViolation);
  CHECK(result.verdict.ok);
  CHECK(result.staleViolation.empty());
  INFO(result.unexpectedCount << " unexpected answers, the first: " << result.unexpected);
  CHECK(result.unexpectedCount == 0);
  CHECK(result.writesOk > 100);  // the workload really ran
}

}  // namespace

// What scripts/jepsen runs: the environment says how (Harness.h). Hidden from CTest.
TEST_CASE("register histories stay linearizable under the nemesis", "[.][run][register]") {
  const Config config = Config::fromEnvironment();
  requireLinearizable(runRegister(config));
}

TEST_CASE("lock holders stay one at a time with rising tokens under the nemesis", "[.][run][locks]") {
  const LockResult result = runLocks(Config::fromEnvironment());
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.grants > 5);  // the workload really ran
}

TEST_CASE("sessions never vanish while kept alive and never outlive their ttl under the nemesis", "[.][run][sessions]") {
  const SessionResult result = runSessions(Config::fromEnvironment());
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.sessions > 5);
}

TEST_CASE("transactions are never half applied and retried writes apply once under the nemesis", "[.][run][writes]") {
  const WriteResult result = runWrites(Config::fromEnvironment());
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.creates > 20);
}

TEST_CASE("elections have one leader per term and terms never go back under the nemesis", "[.][run][elections]") {
  const ElectionResult result = runElections(Config::fromEnvironment());
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.wins > 5);
}

TEST_CASE("reconnecting watchers see every write once and in order under the nemesis", "[.][run][watches]") {
  const WatchResult result = runWatches(Config::fromEnvironment());
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.writes > 20);
}

// CTest's short mix (20 s runs, about 3 minutes at -j2 with the planted defects): every fault,
// on three nodes and on five.
TEST_CASE("register histories on three nodes stay linearizable under every fault", "[mix][register]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.seed = Config::fromEnvironment().seed;
  requireLinearizable(runRegister(config));
}

TEST_CASE("register histories on five nodes stay linearizable under every fault", "[mix][register]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.nodes = 5;
  config.seed = Config::fromEnvironment().seed;
  requireLinearizable(runRegister(config));
}

TEST_CASE("lock holders on three nodes stay one at a time with rising tokens under every fault", "[mix][locks]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.seed = Config::fromEnvironment().seed;
  const LockResult result = runLocks(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.grants > 5);  // the workload really ran
}

TEST_CASE("sessions on three nodes never vanish while kept alive and never outlive their ttl under every fault", "[mix][sessions]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.seed = Config::fromEnvironment().seed;
  const SessionResult result = runSessions(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.sessions > 5);
}

TEST_CASE("transactions on three nodes are never half applied and retried writes apply once under every fault", "[mix][writes]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.seed = Config::fromEnvironment().seed;
  const WriteResult result = runWrites(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.creates > 20);
}

TEST_CASE("the writes check catches a server whose subtree reads are torn", "[mix][writes][catches]") {
  Config config;
  config.time = std::chrono::seconds(15);
  config.faults = {};
  config.seed = 9;
  const WriteResult result = runWrites(config, {"--test-bug", "torn-reads"});
  CHECK_THAT(result.violation, Catch::Contains("half applied"));
}

TEST_CASE("the writes check catches a server that forgets Idempotency-Keys", "[mix][writes][catches]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.faults = {"kill"};
  config.seed = 5;
  // Creates given up on after 300 ms: each kill then leaves retries of applied writes behind
  // (with 12 s, a run of 7 kills once retried 2 writes and caught nothing).
  const WriteResult result = runWrites(config, {"--test-bug", "forget-idempotency"}, std::chrono::milliseconds(300));
  CHECK_THAT(result.violation, Catch::Contains("was applied") && Catch::Contains("times"));
}

TEST_CASE("elections on three nodes have one leader per term and terms never go back under every fault", "[mix][elections]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.seed = Config::fromEnvironment().seed;
  const ElectionResult result = runElections(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.wins > 5);
}

TEST_CASE("reconnecting watchers on three nodes see every write once and in order under every fault", "[mix][watches]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.seed = Config::fromEnvironment().seed;
  const WatchResult result = runWatches(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.writes > 20);
}

// A history of 20 events: a watcher that falls behind by more, after any fault, asks from
// before the history; the defect answers from its start instead of 410, skipping the rest.
TEST_CASE("the watch check catches nodes that answer a watch older than their history from its start", "[mix][watches][catches]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.faults = {"pause", "kill"};
  config.seed = 17;
  const WatchResult result = runWatches(config, {"--test-bug", "watch-from-floor", "--watch-history-events", "20"});
  CHECK_THAT(result.violation, Catch::Contains("missed the acknowledged write"));
}

TEST_CASE("the election check catches nodes that answer reads from local state", "[mix][elections][catches]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.faults = {"partition"};
  config.seed = 13;
  const ElectionResult result = runElections(config, {"--test-bug", "local-reads"}, true);
  CHECK(result.violation != "");
}

TEST_CASE("the session check catches a leader that never expires a session", "[mix][sessions][catches]") {
  Config config;
  config.time = std::chrono::seconds(12);
  config.faults = {};
  config.seed = 3;
  const SessionResult result = runSessions(config, {"--test-bug", "never-expire"});
  CHECK(result.violation != "");
}

TEST_CASE("the lock check catches nodes that answer token checks from local state", "[mix][locks][catches]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.faults = {"partition"};
  config.seed = 11;
  const LockResult result = runLocks(config, {"--test-bug", "local-reads"}, true);
  CHECK(result.violation != "");
}

TEST_CASE("the register check catches nodes that answer linearizable reads from local state", "[mix][register][catches]") {
  Config config;
  config.time = std::chrono::seconds(20);
  config.faults = {"partition"};
  config.seed = 7;
  const RegisterResult result = runRegister(config, {"--test-bug", "local-reads"});
  CHECK_FALSE(result.verdict.ok);
}
