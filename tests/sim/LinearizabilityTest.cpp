// The linearizability checker must accept every history a real register can produce and reject
// the classic anomalies (stale reads, invented values, lying CAS answers), treat Unknown and
// Failed outcomes by their contracts, and give up rather than hang on a hopeless search.

#include <catch2/catch.hpp>

#include <algorithm>
#include <iterator>
#include <random>
#include <string>
#include <tuple>

#include "tests/sim/Linearizability.h"

using namespace warden::tests::sim;

namespace {

using Kind = Operation::Kind;
using Outcome = Operation::Outcome;

Operation read(std::uint64_t client, std::optional<std::string> observed, std::uint64_t from, std::uint64_t to,
               const std::string& key = "x") {
  Operation op;
  op.client = client;
  op.key = key;
  op.kind = Kind::Read;
  op.observed = std::move(observed);
  op.invokedAt = from;
  op.returnedAt = to;
  return op;
}

Operation write(std::uint64_t client, std::optional<std::string> value, std::uint64_t from, std::uint64_t to,
                Outcome outcome = Outcome::Ok, const std::string& key = "x") {
  Operation op;
  op.client = client;
  op.key = key;
  op.kind = Kind::Write;
  op.value = std::move(value);
  op.outcome = outcome;
  op.invokedAt = from;
  op.returnedAt = to;
  return op;
}

Operation cas(std::uint64_t client, std::optional<std::string> expected, std::optional<std::string> value,
              bool succeeded, std::uint64_t from, std::uint64_t to) {
  Operation op;
  op.client = client;
  op.key = "x";
  op.kind = Kind::Cas;
  op.expected = std::move(expected);
  op.value = std::move(value);
  op.casSucceeded = succeeded;
  op.invokedAt = from;
  op.returnedAt = to;
  return op;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A history a real register produced: each client runs its ops one after another, each op takes
// effect at a true instant inside its interval (a late Unknown one possibly long after), and the
// register applies them in the order of those instants. Failed ops and Unknown ones that never
// applied are left out of the register but kept in the history.
std::vector<Operation> generateHistory(std::uint64_t seed, std::size_t clients, std::size_t totalOps) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](std::uint64_t lo, std::uint64_t hi) { return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng); };
  auto someValue = [&uniform]() -> std::optional<std::string> {
    const std::uint64_t v = uniform(0, 4);
    if (v == 4) return std::nullopt;
    return "v" + std::to_string(v);
  };
  std::vector<Operation> history;
  std::vector<std::tuple<std::uint64_t, std::size_t>> effects;  // (true instant, index into history)
  for (std::size_t client = 0; client < clients; ++client) {
    std::uint64_t now = uniform(0, 50);
    const std::size_t count = totalOps / clients + (client < totalOps % clients ? 1 : 0);
    for (std::size_t i = 0; i < count; ++i) {
      Operation op;
      op.client = client;
      op.key = "x";
      const std::uint64_t roll = uniform(0, 9);
      op.kind = roll < 4 ? Kind::Read : roll < 7 ? Kind::Write : Kind::Cas;
      if (op.kind != Kind::Read) op.value = someValue();
      if (op.kind == Kind::Cas) op.expected = someValue();
      op.invokedAt = now;
      std::uint64_t effectAt = now + uniform(0, 100);
      op.returnedAt = effectAt + uniform(0, 100);
      bool applies = true;
      const std::uint64_t fate = uniform(0, 39);
      if (fate == 0) {
        op.outcome = Outcome::Failed;
        op.observed = "garbage";  // a refused op's answer means nothing
        applies = false;
      } else if (fate == 1 && op.kind != Kind::Read) {
        op.outcome = Outcome::Unknown;
        applies = uniform(0, 1) == 0;
        effectAt = op.invokedAt + uniform(0, 400);
      }
      now = op.returnedAt + uniform(1, 30);
      if (applies) effects.emplace_back(effectAt, history.size());
      history.push_back(op);
    }
  }
  std::sort(effects.begin(), effects.end());
  std::optional<std::string> registerValue;
  for (const auto& [instant, index] : effects) {
    Operation& op = history[index];
    if (op.kind == Kind::Read) op.observed = registerValue;
    if (op.kind == Kind::Write) registerValue = op.value;
    if (op.kind == Kind::Cas) {
      op.casSucceeded = op.expected == registerValue;
      if (op.casSucceeded) registerValue = op.value;
    }
  }
  return history;
}

bool overlaps(const Operation& a, const Operation& b) { return a.invokedAt <= b.returnedAt && b.invokedAt <= a.returnedAt; }

// An independent oracle for tiny histories: tries every order that respects real time, with
// Unknown ops free to be left out entirely, against the register's rules written out afresh.
bool bruteLinearizable(const std::vector<Operation>& ops, std::vector<bool>& placed, const std::optional<std::string>& state) {
  bool anyLeft = false;
  for (std::size_t a = 0; a < ops.size(); ++a) {
    if (placed[a]) continue;
    if (ops[a].outcome == Outcome::Ok) anyLeft = true;
    bool mayGoNext = true;
    for (std::size_t b = 0; b < ops.size(); ++b) {
      if (!placed[b] && b != a && ops[b].outcome == Outcome::Ok && ops[b].returnedAt < ops[a].invokedAt) mayGoNext = false;
    }
    if (!mayGoNext) continue;
    const Operation& op = ops[a];
    std::optional<std::string> next = state;
    if (op.kind == Kind::Read && op.observed != state) continue;
    if (op.kind == Kind::Write) next = op.value;
    if (op.kind == Kind::Cas) {
      const bool matches = op.expected == state;
      if (op.outcome == Outcome::Ok && matches != op.casSucceeded) continue;
      if (matches) next = op.value;
    }
    placed[a] = true;
    const bool found = bruteLinearizable(ops, placed, next);
    placed[a] = false;
    if (found) return true;
  }
  return !anyLeft;
}

std::vector<Operation> randomSmallHistory(std::mt19937_64& rng) {
  auto uniform = [&rng](std::uint64_t lo, std::uint64_t hi) { return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng); };
  auto someValue = [&uniform]() -> std::optional<std::string> {
    const std::uint64_t v = uniform(0, 2);
    if (v == 2) return std::nullopt;
    return "v" + std::to_string(v);
  };
  std::vector<Operation> ops(uniform(1, 7));
  for (Operation& op : ops) {
    op.client = uniform(0, 3);
    op.key = "x";
    const std::uint64_t roll = uniform(0, 2);
    op.kind = roll == 0 ? Kind::Read : roll == 1 ? Kind::Write : Kind::Cas;
    if (op.kind != Kind::Read) op.value = someValue();
    if (op.kind == Kind::Cas) op.expected = someValue();
    if (op.kind == Kind::Read) op.observed = someValue();
    op.casSucceeded = uniform(0, 1) == 1;
    const std::uint64_t fate = uniform(0, 5);
    op.outcome = fate == 0 ? Outcome::Unknown : fate == 1 ? Outcome::Failed : Outcome::Ok;
    op.invokedAt = uniform(0, 20);
    op.returnedAt = op.invokedAt + uniform(0, 10);
  }
  return ops;
}
}  // namespace

TEST_CASE("an empty history is linearizable") {
  const CheckResult result = checkLinearizable({});
  CHECK(result.ok);
  CHECK_FALSE(result.exhausted);
  CHECK(result.operations == 0);
}

TEST_CASE("a sequential history is linearizable") {
  const CheckResult result = checkLinearizable({
      read(1, std::nullopt, 0, 10),
      write(1, "a", 20, 30),
      read(2, "a", 40, 50),
      cas(2, "a", "b", true, 60, 70),
      cas(1, "a", "c", false, 80, 90),
      read(1, "b", 100, 110),
      write(2, std::nullopt, 120, 130),
      read(1, std::nullopt, 140, 150),
      cas(1, std::nullopt, "d", true, 160, 170),
      read(2, "d", 180, 190),
  });
  CHECK(result.ok);
  CHECK_FALSE(result.exhausted);
  CHECK(result.operations == 10);
}

TEST_CASE("a read overlapping a write may see the old or the new value") {
  for (const char* seen : {"a", "b"}) {
    const CheckResult result = checkLinearizable({write(1, "a", 0, 10), write(1, "b", 20, 40), read(2, seen, 30, 50)});
    INFO(seen << ": " << result.explanation);
    CHECK(result.ok);
  }
}

TEST_CASE("reads overlapping one write may not flip back from the new value to the old") {
  const CheckResult result = checkLinearizable(
      {write(1, "a", 0, 10), write(1, "b", 20, 100), read(2, "b", 30, 40), read(2, "a", 50, 60)});
  CHECK_FALSE(result.ok);
}

TEST_CASE("a stale read after a completed write fails and names the key") {
  const CheckResult result = checkLinearizable(
      {write(1, "a", 0, 10, Outcome::Ok, "config"), write(1, "b", 20, 30, Outcome::Ok, "config"),
       read(2, "a", 40, 50, "config")});
  CHECK_FALSE(result.ok);
  CHECK_FALSE(result.exhausted);
  INFO(result.explanation);
  CHECK(contains(result.explanation, "\"config\""));
  CHECK(contains(result.explanation, "client 2 Read [40, 50] -> \"a\""));  // the op that cannot be placed
  CHECK(contains(result.explanation, "the value \"b\""));                   // the value it ran into
}

TEST_CASE("a read of a value never written fails") {
  const CheckResult result = checkLinearizable({write(1, "a", 0, 10), read(2, "zzz", 5, 20)});
  CHECK_FALSE(result.ok);
  CHECK(contains(result.explanation, "\"zzz\""));
}

TEST_CASE("an unknown write may have taken effect whether or not it is read") {
  const Operation unknown = write(2, "b", 20, 0, Outcome::Unknown);  // returnedAt is ignored
  CHECK(checkLinearizable({write(1, "a", 0, 10), unknown, read(1, "b", 100, 110)}).ok);
  CHECK(checkLinearizable({write(1, "a", 0, 10), unknown, read(1, "a", 100, 110)}).ok);
  CHECK(checkLinearizable({write(1, "a", 0, 10), unknown, read(1, "a", 100, 110), read(1, "b", 200, 210)}).ok);
}

TEST_CASE("an unknown write cannot take effect before it was invoked") {
  const CheckResult result = checkLinearizable({read(1, "b", 0, 10), write(2, "b", 20, 30, Outcome::Unknown)});
  CHECK_FALSE(result.ok);
}

TEST_CASE("a value once overwritten cannot come back from an unknown write that was read earlier") {
  const CheckResult result = checkLinearizable({write(2, "b", 0, 0, Outcome::Unknown), read(1, "b", 10, 20),
                                                write(1, "c", 30, 40), read(1, "b", 50, 60)});
  CHECK_FALSE(result.ok);
}

TEST_CASE("a failed write never takes effect") {
  const CheckResult result = checkLinearizable({write(1, "a", 0, 10), write(1, "b", 20, 30, Outcome::Failed), read(2, "b", 40, 50)});
  CHECK_FALSE(result.ok);
  CHECK(result.operations == 2);
  CHECK(checkLinearizable({write(1, "a", 0, 10), write(1, "b", 20, 30, Outcome::Failed), read(2, "a", 40, 50)}).ok);
}

TEST_CASE("a CAS that succeeded on a mismatched value fails") {
  const CheckResult result = checkLinearizable({write(1, "a", 0, 10), cas(2, "zzz", "b", true, 20, 30)});
  CHECK_FALSE(result.ok);
  CHECK(contains(result.explanation, "Cas \"zzz\" to \"b\" [20, 30] -> succeeded"));
}

TEST_CASE("a CAS answered false while the value matched and nobody wrote fails") {
  CHECK_FALSE(checkLinearizable({write(1, "a", 0, 10), cas(2, "a", "b", false, 20, 30)}).ok);
  CHECK_FALSE(checkLinearizable({cas(2, std::nullopt, "b", false, 0, 10)}).ok);  // absent matches nullopt
}

TEST_CASE("a CAS answered false passes when a concurrent write could have changed the value") {
  CHECK(checkLinearizable({write(1, "a", 0, 10), write(3, "c", 15, 35), cas(2, "a", "b", false, 20, 30)}).ok);
}

TEST_CASE("a successful CAS takes effect for later reads") {
  CHECK_FALSE(checkLinearizable({write(1, "a", 0, 10), cas(2, "a", "b", true, 20, 30), read(1, "a", 40, 50)}).ok);
  CHECK(checkLinearizable({write(1, "a", 0, 10), cas(2, "a", "b", true, 20, 30), read(1, "b", 40, 50)}).ok);
}

TEST_CASE("keys are checked independently and a violation is reported for its key") {
  // Interleaved in real time, these would clash if the keys shared one register.
  const std::vector<Operation> good = {write(1, "a", 0, 10, Outcome::Ok, "left"), write(2, "b", 20, 30, Outcome::Ok, "right"),
                                       read(1, "a", 40, 50, "left"), read(2, "b", 40, 50, "right")};
  CHECK(checkLinearizable(good).ok);

  std::vector<Operation> bad = good;
  bad.push_back(read(3, "zzz", 60, 70, "right"));
  const CheckResult result = checkLinearizable(bad);
  CHECK_FALSE(result.ok);
  INFO(result.explanation);
  CHECK(contains(result.explanation, "key \"right\""));
  CHECK_FALSE(contains(result.explanation, "\"left\""));
  CHECK(result.operations == 5);
}

TEST_CASE("a malformed operation that returns before its invocation is reported as a recorder bug") {
  const CheckResult result = checkLinearizable({write(1, "a", 50, 10)});
  CHECK_FALSE(result.ok);
  CHECK(contains(result.explanation, "malformed"));
}

TEST_CASE("a generated linearizable history of 200 overlapping ops passes and fails once a read is corrupted") {
  const std::vector<Operation> history = generateHistory(20240611, 3, 200);
  REQUIRE(history.size() == 200);

  // The generator must really produce concurrency and every outcome, or the test proves little.
  std::size_t overlapping = 0, unknowns = 0, failed = 0, falseCas = 0;
  for (std::size_t i = 0; i < history.size(); ++i) {
    for (std::size_t j = i + 1; j < history.size(); ++j) {
      if (history[i].client != history[j].client && overlaps(history[i], history[j])) ++overlapping;
    }
    unknowns += history[i].outcome == Outcome::Unknown;
    failed += history[i].outcome == Outcome::Failed;
    falseCas += history[i].kind == Kind::Cas && history[i].outcome == Outcome::Ok && !history[i].casSucceeded;
  }
  CHECK(overlapping > 100);
  CHECK(unknowns > 0);
  CHECK(failed > 0);
  CHECK(falseCas > 0);

  const CheckResult result = checkLinearizable(history);
  INFO(result.explanation);
  CHECK(result.ok);
  CHECK_FALSE(result.exhausted);
  CHECK(result.operations == history.size() - failed);

  std::vector<Operation> corrupted = history;
  const auto victim = std::find_if(corrupted.begin() + 100, corrupted.end(), [](const Operation& op) {
    return op.kind == Kind::Read && op.outcome == Outcome::Ok;
  });
  REQUIRE(victim != corrupted.end());
  victim->observed = "never written";
  const CheckResult broken = checkLinearizable(corrupted);
  CHECK_FALSE(broken.ok);
  CHECK(contains(broken.explanation, "key \"x\""));
  CHECK(contains(broken.explanation, "\"never written\""));
}

TEST_CASE("a tiny step budget gives up as exhausted instead of hanging") {
  // Forty concurrent unknown writes may take effect in any order: 2^40 subsets to try before the
  // last read, which nothing could have written, is known to be impossible.
  std::vector<Operation> history;
  for (std::uint64_t i = 0; i < 40; ++i) history.push_back(write(10 + i, "w" + std::to_string(i), i, 0, Outcome::Unknown));
  for (std::uint64_t j = 0; j < 20; ++j) {
    history.push_back(read(100 + j, "w" + std::to_string((j * 7) % 40), 1000 + 10 * j, 1005 + 10 * j));
  }
  history.push_back(read(200, "never", 5000, 5010));
  history.push_back(read(1, "zzz", 0, 10, "other"));  // a definite violation on another key still counts

  const CheckResult result = checkLinearizable(history, 1000);
  CHECK(result.exhausted);
  CHECK_FALSE(result.ok);
  CHECK(contains(result.explanation, "key \"other\""));

  history.pop_back();
  const CheckResult undecided = checkLinearizable(history, 1000);
  CHECK(undecided.exhausted);
  CHECK(undecided.ok);
}

TEST_CASE("the checker agrees with a brute-force search on small random histories") {
  std::mt19937_64 rng(4242);
  std::size_t violations = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::vector<Operation> history = randomSmallHistory(rng);
    std::vector<Operation> kept;
    std::copy_if(history.begin(), history.end(), std::back_inserter(kept), [](const Operation& op) {
      return op.outcome != Outcome::Failed && !(op.outcome == Outcome::Unknown && op.kind == Kind::Read);
    });
    std::vector<bool> placed(kept.size());
    const bool expected = bruteLinearizable(kept, placed, std::nullopt);
    const CheckResult result = checkLinearizable(history);
    INFO("history " << i << ": " << result.explanation);
    REQUIRE(result.ok == expected);
    REQUIRE_FALSE(result.exhausted);
    violations += !expected;
  }
  CHECK(violations > 1000);  // both verdicts are well represented
  CHECK(violations < 4000);
}

TEST_CASE("the same history gives the same verdict and explanation every time") {
  std::vector<Operation> history = generateHistory(7, 3, 90);
  history.push_back(read(9, "never written", 100000, 100010));
  const CheckResult first = checkLinearizable(history);
  const CheckResult second = checkLinearizable(history);
  CHECK_FALSE(first.ok);
  CHECK(first.explanation == second.explanation);
}
