// Outside-in runs (issue 13): the built binary on loopback, real HTTP clients, a nemesis, and a
// checker over the recorded history. Each run prints one summary line; a failed run keeps its
// history and the nodes' logs (Harness.h). scripts/jepsen sets the environment for long runs;
// CTest runs the defaults (a short mix) and shows that the checks catch planted defects.

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/jepsen/LockWorkload.h"
#include "tests/jepsen/Nemesis.h"
#include "tests/jepsen/RegisterWorkload.h"
#include "tests/jepsen/SessionWorkload.h"
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

// One register run on a fresh cluster.
RegisterResult runRegister(const Config& config, std::vector<std::string> serverArgs = {}) {
  TestCluster cluster(config.nodes, std::move(serverArgs));
  REQUIRE(cluster.waitForLeader(15000));
  RunClock clock;
  Choices choices(config.seed);
  RegisterWorkload workload(cluster, clock, choices);
  Nemesis nemesis(cluster, config, choices);
  nemesis.onWipe = [&](std::uint64_t node) { workload.noteWiped(node); };
  underNemesis(config, nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  RegisterResult result = workload.check();
  const bool ok = result.verdict.ok && result.staleViolation.empty();
  std::printf("register (%s): %zu ops (%llu ok, %llu writes applied, %llu failed, %llu unknown), %llu stale reads; %s (checked in %.1f s%s); faults: %s\n",
              config.describe().c_str(), result.history.size(), static_cast<unsigned long long>(result.ok),
              static_cast<unsigned long long>(result.writesOk),
              static_cast<unsigned long long>(result.failed), static_cast<unsigned long long>(result.unknown),
              static_cast<unsigned long long>(result.staleReads), ok ? "linearizable" : "VIOLATION", result.checkSeconds,
              result.verdict.exhausted ? ", search exhausted on some key: undecided" : "", nemesis.summary().c_str());
  if (!ok || std::getenv("WARDEN_JEPSEN_KEEP_ALL")) {
    const std::string dir = keepDirectory(config, "register");
    saveHistory(dir, result.history);
    cluster.saveLogs(dir);
    std::printf("register: %s\n  history and node logs kept in %s\n",
                result.verdict.ok ? result.staleViolation.c_str() : result.verdict.explanation.c_str(), dir.c_str());
  }
  std::fflush(stdout);
  return result;
}

// One lock run on a fresh cluster.
// `aimed`: every partition isolates the holder's node, and holders hold for seconds (a schedule
// aimed at fencing, for the planted defect).
LockResult runLocks(const Config& config, std::vector<std::string> serverArgs = {}, bool aimed = false) {
  TestCluster cluster(config.nodes, std::move(serverArgs));
  REQUIRE(cluster.waitForLeader(15000));
  RunClock clock;
  Choices choices(config.seed);
  LockWorkload workload(cluster, clock, choices);
  Nemesis nemesis(cluster, config, choices);
  nemesis.target = [&] { return workload.holderNode(); };
  if (aimed) {
    nemesis.alwaysTarget = true;
    workload.holdMinMs = 3000;
    workload.holdMaxMs = 6000;
  }
  underNemesis(config, nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  const LockResult result = workload.check();
  std::printf("locks (%s): %llu grants, %llu checks (%llu stale), %llu releases, %llu sessions lost; %s; faults: %s\n",
              config.describe().c_str(), static_cast<unsigned long long>(result.grants),
              static_cast<unsigned long long>(result.checks), static_cast<unsigned long long>(result.staleChecks),
              static_cast<unsigned long long>(result.releases), static_cast<unsigned long long>(result.sessionsLost),
              result.violation.empty() ? "one holder at a time, tokens rising" : "VIOLATION", nemesis.summary().c_str());
  if (!result.violation.empty()) {
    const std::string dir = keepDirectory(config, "locks");
    cluster.saveLogs(dir);
    std::printf("locks: %s\n  node logs kept in %s\n", result.violation.c_str(), dir.c_str());
  }
  std::fflush(stdout);
  return result;
}

// One session run on a fresh cluster; the check waits (bounded) until every session walked
// away from is gone.
SessionResult runSessions(const Config& config, std::vector<std::string> serverArgs = {}) {
  TestCluster cluster(config.nodes, std::move(serverArgs));
  REQUIRE(cluster.waitForLeader(15000));
  RunClock clock;
  Choices choices(config.seed);
  SessionWorkload workload(cluster, clock, choices);
  Nemesis nemesis(cluster, config, choices);
  underNemesis(config, nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  const SessionResult result = workload.check();
  std::printf("sessions (%s): %llu sessions, %llu keepalives acknowledged, %llu reads, %llu seen gone; %s; faults: %s\n",
              config.describe().c_str(), static_cast<unsigned long long>(result.sessions),
              static_cast<unsigned long long>(result.keepalivesAcked), static_cast<unsigned long long>(result.reads),
              static_cast<unsigned long long>(result.goneSeen),
              result.violation.empty() ? "none gone early, none left behind" : "VIOLATION", nemesis.summary().c_str());
  if (!result.violation.empty()) {
    const std::string dir = keepDirectory(config, "sessions");
    cluster.saveLogs(dir);
    std::printf("sessions: %s\n  node logs kept in %s\n", result.violation.c_str(), dir.c_str());
  }
  std::fflush(stdout);
  return result;
}

// One writes run on a fresh cluster; the check reads once the cluster is quiet.
WriteResult runWrites(const Config& config, std::vector<std::string> serverArgs = {}) {
  TestCluster cluster(config.nodes, std::move(serverArgs));
  REQUIRE(cluster.waitForLeader(15000));
  Choices choices(config.seed);
  WriteWorkload workload(cluster, choices);
  Nemesis nemesis(cluster, config, choices);
  underNemesis(config, nemesis, [&](std::atomic<bool>& stop) { workload.runClients(stop); });
  // A write given up on by its client may still be applied (504): let it land before counting.
  std::this_thread::sleep_for(std::chrono::seconds(11));
  const WriteResult result = workload.check();
  std::printf("writes (%s): %llu transactions, %llu pair reads, %llu keyed creates (%llu retries); %s; faults: %s\n",
              config.describe().c_str(), static_cast<unsigned long long>(result.txns),
              static_cast<unsigned long long>(result.pairReads), static_cast<unsigned long long>(result.creates),
              static_cast<unsigned long long>(result.retries),
              result.violation.empty() ? "never half applied, each applied once" : "VIOLATION", nemesis.summary().c_str());
  if (!result.violation.empty()) {
    const std::string dir = keepDirectory(config, "writes");
    cluster.saveLogs(dir);
    std::printf("writes: %s\n  node logs kept in %s\n", result.violation.c_str(), dir.c_str());
  }
  std::fflush(stdout);
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

// CTest's short mix: every fault, on three nodes and on five.
TEST_CASE("register histories on three nodes stay linearizable under every fault", "[mix][register]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.seed = Config::fromEnvironment().seed;
  requireLinearizable(runRegister(config));
}

TEST_CASE("register histories on five nodes stay linearizable under every fault", "[mix][register]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.nodes = 5;
  config.seed = Config::fromEnvironment().seed;
  requireLinearizable(runRegister(config));
}

TEST_CASE("lock holders on three nodes stay one at a time with rising tokens under every fault", "[mix][locks]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.seed = Config::fromEnvironment().seed;
  const LockResult result = runLocks(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.grants > 5);  // the workload really ran
}

TEST_CASE("sessions on three nodes never vanish while kept alive and never outlive their ttl under every fault", "[mix][sessions]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.seed = Config::fromEnvironment().seed;
  const SessionResult result = runSessions(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.sessions > 5);
}

TEST_CASE("transactions on three nodes are never half applied and retried writes apply once under every fault", "[mix][writes]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.seed = Config::fromEnvironment().seed;
  const WriteResult result = runWrites(config);
  CHECK(result.violation == "");
  CHECK(result.firstError == "");
  CHECK(result.creates > 20);
}

TEST_CASE("the writes check catches a server that forgets Idempotency-Keys", "[mix][writes][catches]") {
  Config config;
  config.time = std::chrono::seconds(30);
  config.faults = {"kill"};
  config.seed = 5;
  const WriteResult result = runWrites(config, {"--test-bug", "forget-idempotency"});
  CHECK_THAT(result.violation, Catch::Contains("was applied") && Catch::Contains("times"));
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
