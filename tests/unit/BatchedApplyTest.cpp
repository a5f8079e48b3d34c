// Apply's batched path (StateMachine::apply): an entry's commands share one LMDB child
// transaction, and the entry starts over a child transaction a command when a command that
// writes in steps fails. These tests check that both paths answer, note and store alike.

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <iterator>

#include "locks/LockQueue.h"

#include "tests/SplitMixRandom.h"
#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;
namespace locks = warden::locks;

TEST_CASE("an entry's commands applied together leave nothing of one that fails halfway and answer as one at a time would") {
  for (bool planted : {false, true}) {
    DYNAMIC_SECTION((planted ? "with keepFailedBatchWrites planted" : "as built")) {
      StoreFixture store;
      store.stateMachine().keepFailedBatchWrites = planted;
      REQUIRE(store.apply({createOp("/a", "1")}).status == Status::Ok);
      const std::uint64_t before = store.revision();
      // The second command creates /b, then fails on /a (it exists): all of it must go.
      auto results = store.applyAll({txnCommand({createOp("/x", "x")}),
                                     txnCommand({createOp("/b", "b"), createOp("/a", "again")}),
                                     txnCommand({setOp("/a", "2")})});
      REQUIRE(results.size() == 3);
      CHECK(results[0].status == Status::Ok);
      CHECK(results[1].status == Status::Exists);
      CHECK(results[1].failedOp == 1);
      CHECK(results[2].status == Status::Ok);
      CHECK(results[0].revision == before + 1);
      CHECK(results[2].revision == before + 2);
      CHECK(store.get("/x").has_value());
      CHECK(store.get("/a")->data == "2");
      if (planted) {
        CHECK(store.get("/b").has_value());  // what the check below catches
      } else {
        CHECK_FALSE(store.get("/b").has_value());
      }
    }
  }
}

namespace {

// Differential: random mixes of node writes (some failing halfway), sessions with ephemeral
// nodes, locks and elections, in entries of 1 to 8 commands on one store and one command an
// entry on the other (same timestamps). The first difference in results or state, or "".
std::string batchedApplyDifference(bool keepFailedBatchWrites, std::size_t& failed) {
  SplitMixRandom rng(20261129);
  auto pick = [&rng](std::uint64_t n) { return rng.next() % n; };
  const std::vector<std::string> paths{"/a", "/b", "/a/x", "/a/y", "/b/z", "/c"};
  auto randomOp = [&]() {
    const std::string& path = paths[pick(paths.size())];
    const std::optional<std::int64_t> version =
        pick(3) == 0 ? std::optional<std::int64_t>(static_cast<std::int64_t>(pick(3))) : std::nullopt;
    switch (pick(5)) {
      case 0: return createOp(path, "c" + std::to_string(pick(100)));
      case 1: return setOp(path, "s" + std::to_string(pick(100)), version);
      case 2: return deleteOp(path, version, pick(2) == 0);
      case 3: return checkOp(path, version);
      default: return ephemeralOp(path + "/e", 1 + pick(3), pick(2) == 0);
    }
  };
  auto randomCommand = [&]() -> Command {
    const std::uint64_t session = 1 + pick(3);
    switch (pick(8)) {
      case 0: return sessionCreate(session);
      case 1: return sessionCommand(CommandType::SessionClose, session);
      case 2: return lockCommand(CommandType::LockAcquire, session, "l" + std::to_string(pick(2)), pick(2) == 0);
      case 3: return lockCommand(CommandType::LockRelease, session, "l" + std::to_string(pick(2)), false, pick(40));
      case 4: return lockCommand(CommandType::ElectionCampaign, session, "e");
      default: {
        std::vector<Op> ops;
        for (std::uint64_t i = 0, n = 1 + pick(3); i < n; ++i) ops.push_back(randomOp());
        return txnCommand(std::move(ops));
      }
    }
  };
  StoreFixture together;
  together.stateMachine().keepFailedBatchWrites = keepFailedBatchWrites;
  StoreFixture alone;
  std::uint64_t timestamp = 1000;
  for (int round = 0; round < 400; ++round) {
    std::vector<Command> commands;
    for (std::uint64_t i = 0, n = 1 + pick(8); i < n; ++i) commands.push_back(randomCommand());
    timestamp += 7;
    const auto batched = together.applyAll(commands, timestamp);
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const CommandResult single = alone.applyAll({commands[i]}, timestamp).front();
      if (batched.at(i).status != single.status || batched[i].revision != single.revision ||
          batched[i].failedOp != single.failedOp) {
        return "round " + std::to_string(round) + " command " + std::to_string(i) + ": results differ";
      }
      if (single.status != Status::Ok) ++failed;
    }
    if (together.dump() != alone.dump()) return "round " + std::to_string(round) + ": the trees differ";
    for (std::uint64_t s = 1; s <= 3; ++s) {
      if (together.ephemerals(s) != alone.ephemerals(s)) return "round " + std::to_string(round) + ": ephemerals differ";
    }
  }
  return "";
}

}  // namespace

TEST_CASE("commands applied together in an entry change the state and answer exactly as when applied one entry each") {
  std::size_t failed = 0;
  CHECK(batchedApplyDifference(false, failed) == "");
  CHECK(failed > 100);  // the start-over path ran often
  // The planted bug (a failed command's first steps kept) is caught.
  std::size_t ignored = 0;
  CHECK(batchedApplyDifference(true, ignored) != "");
}

namespace {

// Every lock's and election's request, as the generator below reads them to aim its commands.
struct QueuedRequest {
  std::string name;  // the lock's or election's
  bool election = false;
  locks::Request request;
  std::uint64_t queued = 0;  // the revision that queued it (its name)
};

std::vector<QueuedRequest> queuedRequests(StoreFixture& store) {
  std::vector<QueuedRequest> out;
  for (const std::string& root : {std::string(locks::kLocksRoot), std::string(locks::kElectionsRoot)}) {
    for (const auto& name : store.children(root)) {
      const std::string queue = childOf(root, name);
      for (const auto& child : store.children(queue)) {
        const std::string path = childOf(queue, child);
        auto record = store.get(path);
        auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
        if (request) out.push_back(QueuedRequest{name, locks::isElection(queue), *request, locks::queuedRevision(path)});
      }
    }
  }
  return out;
}

std::vector<StateMachine::RunningDelay> runningDelays(StoreFixture& store) {
  auto txn = storage::Txn::read(store.env());
  return store.stateMachine().lockDelays(txn);
}

SessionEpoch sessionEpochOf(StoreFixture& store) {
  auto txn = storage::Txn::read(store.env());
  return store.stateMachine().sessionEpoch(txn);
}

// Rows as comparable text; with `perEntry`, leaving out what differs only because the other
// store applied one command an entry (its applied index, and the slot each idempotency key
// remembers).
std::vector<std::string> rowTexts(StoreFixture& store, bool perEntry) {
  std::vector<std::string> out;
  for (const auto& row : store.rows()) {
    if (perEntry && row.table == 2 && (row.key == "applied_index" || row.key == "idempotency_bytes")) continue;
    if (perEntry && row.table == 7) {
      out.push_back("7 " + row.key);
      continue;
    }
    out.push_back(std::to_string(row.table) + " " + row.key + " = " + row.value);
  }
  return out;
}

struct BatchCoverage {
  std::size_t batchedEntries = 0;     // of 2 or more commands, every stepwise one succeeded
  std::size_t fallbackEntries = 0;    // a stepwise command failed: applied one child txn each
  std::size_t failedSessionCommandsBatched = 0;  // a session command failed inside a batch that held
  std::size_t replays = 0;
  std::size_t replaysWithinEntry = 0;  // of a key first used earlier in the same entry
  std::size_t keyReused = 0;
  std::size_t noSpace = 0;
  std::size_t tooLarge = 0;
  std::size_t staleExpiries = 0;
  std::size_t expiries = 0;
  std::size_t releases = 0;
  std::size_t proclaims = 0;
  std::size_t withdrawals = 0;  // that took a request out
  std::size_t resignations = 0;
  std::size_t delayEnds = 0;  // that ended a delay
  std::size_t recursiveDeletes = 0;
  std::size_t flatEntries = 0;    // of 2 or more commands none of which may fail after writing
  std::size_t flatFailures = 0;   // commands that failed in such entries
  std::size_t flatNoSpace = 0;    // of them, refused by their quota
};

// Differential, wider than batchedApplyDifference: every command type (session expiries in
// several epochs, epochs, ticks, lock withdrawals, election proclaims and resignations, lock
// delays and their ends, idempotency keys reused within an entry and across, tight quotas and
// node limits, recursive deletes of subtrees holding ephemerals). Three stores: entries applied
// as built (`together`), the same entries forced down the one-child-transaction-a-command path
// by a failing check appended (`reference`: what apply did before batching), and one command an
// entry (`alone`). Results, notes (events and replays) and every replicated row are compared.
// `configure` sets the test-only flags that change apply on every store alike.
std::string batchedApplyDifferenceNoted(const std::function<void(StateMachine&)>& plant, std::uint64_t seed, int rounds,
                                        BatchCoverage& cov,
                                        const std::function<void(StateMachine&)>& configure = [](StateMachine&) {}) {
  SplitMixRandom rng(seed);
  auto pick = [&rng](std::uint64_t n) { return rng.next() % n; };
  const std::vector<std::string> paths{"/a", "/b", "/a/x", "/a/y", "/a/x/q", "/b/z", "/c", "/c/d/e"};
  const std::vector<std::string> keys{"k0", "k1", "k2", "k3"};
  std::uint64_t freshKeys = 0;
  // A key used once (a fresh one: later repeats of its command replay it) or one of a few
  // shared by different writes (reused).
  auto someKey = [&]() { return pick(3) == 0 ? keys[pick(keys.size())] : "u" + std::to_string(++freshKeys); };
  StoreFixture together;
  StoreFixture reference;
  StoreFixture alone;
  for (StoreFixture* store : {&together, &reference, &alone}) configure(store->stateMachine());
  plant(together.stateMachine());
  reference.stateMachine().ownTxnEveryCommand = true;
  auto randomEpoch = [&]() { return SessionEpoch{paxos::Ballot{pick(4), 1 + pick(2)}, pick(2)}; };
  auto randomOp = [&]() {
    const std::string& path = paths[pick(paths.size())];
    const std::optional<std::int64_t> version =
        pick(4) == 0 ? std::optional<std::int64_t>(static_cast<std::int64_t>(pick(3))) : std::nullopt;
    switch (pick(9)) {
      case 0: return createOp(path, std::string(pick(60), 'c'));
      case 1: {
        Op op = createOp(path, "p");
        op.makeParents = true;
        return op;
      }
      case 2: return setOp(path, std::string(pick(80), 's'), version);
      case 3: {
        Op op = setOp(path, "m");
        op.createIfMissing = true;
        return op;
      }
      case 4:
      case 5: return deleteOp(path, version, pick(3) != 0);
      case 6: return checkOp(path, version);
      default: return ephemeralOp(path + "/e", 1 + pick(4), pick(2) == 0);
    }
  };
  std::uint64_t subtrees = 0;
  std::vector<std::string> made;  // subtrees /sN made and not deleted yet
  bool safe = false;
  auto limits = [&](Command& c, std::uint64_t used) {
    if (safe) return;
    if (pick(4) == 0) c.quotaBytes = used + pick(300);
    if (pick(5) == 0) c.maxNodes = 1 + pick(3);
  };
  std::uint64_t timestamp = 1000;
  StateMachine::Notes togetherNotes;
  StateMachine::Notes referenceNotes;
  for (int round = 0; round < rounds; ++round) {
    const auto requests = queuedRequests(reference);
    const auto delays = runningDelays(reference);
    const std::uint64_t used = reference.usedBytes();
    const std::uint64_t revision = reference.revision();
    const SessionEpoch epoch = sessionEpochOf(reference);
    auto someRequest = [&](bool election, bool waiting = false) -> std::optional<QueuedRequest> {
      std::vector<QueuedRequest> of;
      for (const auto& r : requests) {
        if (r.election == election && (!waiting || !r.request.granted())) of.push_back(r);
      }
      if (of.empty()) return std::nullopt;
      return of[pick(of.size())];
    };
    // Half the entries are "safe": commands likely to succeed (live sessions, right tokens,
    // writes that cannot fail but for what earlier commands of the entry did), so that many
    // entries stay on the batched path; the others fail often and start over.
    safe = pick(2) == 0;
    std::vector<std::uint64_t> live;
    for (std::uint64_t s = 1; s <= 4; ++s) {
      if (reference.session(s)) live.push_back(s);
    }
    auto safeOps = [&]() {
      std::vector<Op> ops;
      for (std::uint64_t k = 0, m = 1 + pick(3); k < m; ++k) {
        switch (pick(4)) {
          case 0: {
            Op op = setOp("/" + std::string(1, static_cast<char>('a' + pick(3))), std::string(pick(80), 'd'));
            op.createIfMissing = true;
            ops.push_back(op);
            break;
          }
          case 1: {  // a subtree, with an ephemeral in it, that a later entry deletes whole
            const std::string top = "/s" + std::to_string(++subtrees);
            Op op = createOp(top + "/x", "t");
            op.makeParents = true;
            ops.push_back(op);
            if (!live.empty()) ops.push_back(ephemeralOp(top + "/x/e", live[pick(live.size())], pick(2) == 0));
            made.push_back(top);
            break;
          }
          case 2:
            if (made.size() > 1) {
              const std::size_t at = pick(made.size() - 1);  // not one this entry may make
              ops.push_back(deleteOp(made[at], std::nullopt, true));
              made.erase(made.begin() + static_cast<std::ptrdiff_t>(at));
              break;
            }
            [[fallthrough]];
          default: ops.push_back(checkOp("/"));
        }
      }
      return ops;
    };
    std::vector<Command> commands;
    // A quarter of the entries hold single-op writes only, as a node's under load of puts do:
    // those that cannot fail after writing share the parent transaction with no child at all.
    const bool singles = !safe && pick(4) == 0;
    for (std::uint64_t i = 0, n = 1 + pick(8); i < n; ++i) {
      const std::uint64_t session = safe && !live.empty() ? live[pick(live.size())] : 1 + pick(4);
      Command c;
      if (singles) {
        c = txnCommand(randomOp());
        if (pick(3) == 0) c.idempotencyKey = someKey();
        if (pick(2) == 0) c.quotaBytes = used + pick(120);
        commands.push_back(std::move(c));
        continue;
      }
      if (safe && pick(2) == 0) {
        c = txnCommand(safeOps());
        if (pick(3) == 0) c.idempotencyKey = someKey();
        commands.push_back(std::move(c));
        continue;
      }
      switch (pick(20)) {
        case 0:
        case 16:
          c = sessionCreate(1 + pick(4), pick(8) == 0 ? 1 : 10'000);
          if (pick(2) == 0) c.idempotencyKey = someKey();
          break;
        case 1:
          c = sessionCommand(CommandType::SessionClose, session);
          if (pick(2) == 0) c.idempotencyKey = someKey();
          break;
        case 3: c = expireCommand(session, pick(3) == 0 ? randomEpoch() : epoch); break;
        case 4: c = epochCommand(randomEpoch()); break;
        case 5: c = tickCommand(); break;
        case 2:
        case 6:
        case 14:
        case 17:
          c = lockCommand(CommandType::LockAcquire, session, "l" + std::to_string(pick(2)), pick(3) == 0,
                          pick(3) == 0 ? 0 : 500);
          c.text = std::string(pick(40), 'o');
          limits(c, used);
          break;
        case 7: {
          auto r = someRequest(false);
          c = r && (safe || pick(4) != 0) ? lockCommand(CommandType::LockRelease, r->request.session, r->name, false, r->request.token)
                                : lockCommand(CommandType::LockRelease, session, "l0", false, revision - pick(5));
          break;
        }
        case 8: {
          auto r = someRequest(false, pick(4) != 0);
          const std::uint64_t token = pick(3) == 0 ? 0 : (r ? r->queued : 0) + (pick(4) == 0 ? 1 : 0);
          c = lockCommand(CommandType::LockWithdraw, r ? r->request.session : session, r ? r->name : "l1", false, token);
          break;
        }
        case 9:
          c = lockCommand(CommandType::ElectionCampaign, session, "e" + std::to_string(pick(2)));
          c.text = std::string(pick(30), 'v');
          limits(c, used);
          break;
        case 10: {
          auto r = someRequest(true);
          c = r && (safe || pick(4) != 0)
                  ? lockCommand(CommandType::ElectionProclaim, r->request.session, r->name, false, r->request.token)
                  : lockCommand(CommandType::ElectionProclaim, session, "e0", false, revision);
          c.text = std::string(pick(200), 'w');
          limits(c, used);
          break;
        }
        case 11: c = lockCommand(CommandType::ElectionResign, session, "e" + std::to_string(pick(2))); break;
        case 12: {
          if (!delays.empty() && pick(4) != 0) {
            const auto& d = delays[pick(delays.size())];
            c = lockCommand(CommandType::LockDelayEnd, 0, std::string(nameOf(d.lock)), false,
                            d.revision + (pick(5) == 0 ? 1 : 0));
          } else {
            c = lockCommand(CommandType::LockDelayEnd, 0, "l" + std::to_string(pick(2)), false, revision);
          }
          break;
        }
        case 13:
        case 15:
          if (!commands.empty()) {  // the same command again, in the same entry
            c = commands[pick(commands.size())];
            break;
          }
          [[fallthrough]];
        default: {
          std::vector<Op> ops;
          for (std::uint64_t k = 0, m = pick(25) == 0 ? 0 : 1 + pick(3); k < m; ++k) ops.push_back(randomOp());
          c = txnCommand(std::move(ops));
          if (pick(2) == 0) c.idempotencyKey = someKey();
          limits(c, used);
        }
      }
      // The lock and election commands a client may send with a key (api/LocksApi, ElectionsApi).
      const bool keyable = c.type == CommandType::LockRelease || c.type == CommandType::ElectionProclaim ||
                           c.type == CommandType::ElectionResign;
      if (keyable && c.idempotencyKey.empty() && pick(2) == 0) c.idempotencyKey = someKey();
      commands.push_back(std::move(c));
    }
    timestamp += 1 + pick(20);
    const std::string where = "round " + std::to_string(round) + ": ";

    // Every store's notes hold an earlier entry's events, as a node's apply does.
    togetherNotes.events.resize(std::min<std::size_t>(togetherNotes.events.size(), 1));
    referenceNotes.events.resize(std::min<std::size_t>(referenceNotes.events.size(), 1));
    if (togetherNotes.events.size() != referenceNotes.events.size()) return where + "earlier events differ";
    const std::size_t before = togetherNotes.events.size();
    const auto batched = together.applyNoted(commands, timestamp, togetherNotes);
    std::vector<Command> forced = commands;
    forced.push_back(txnCommand({checkOp("/no/such/node")}));  // fails: the entry goes one child txn a command
    const auto old = reference.applyNoted(forced, timestamp, referenceNotes);
    if (batched.size() != commands.size() || old.size() != forced.size()) return where + "result counts";
    if (old.back().status != Status::NotFound) return where + "the forcing check did not fail";

    std::vector<watch::Event> aloneEvents;
    std::vector<bool> aloneReplays;
    std::vector<CommandResult> aloneResults;
    for (const auto& command : commands) {
      StateMachine::Notes notes;
      aloneResults.push_back(alone.applyNoted({command}, timestamp, notes).front());
      std::move(notes.events.begin(), notes.events.end(), std::back_inserter(aloneEvents));
      aloneReplays.push_back(notes.replays.at(0));
    }

    bool stepwiseFailed = false;
    bool sessionFailed = false;
    // The entries apply's rule leaves without a child transaction (StateMachine::mayFailAfterWriting).
    const bool flat = commands.size() > 1 && std::all_of(commands.begin(), commands.end(), [](const Command& c) {
                        if (c.type != CommandType::Txn) return !isLockCommand(c.type);
                        if (c.ops.size() != 1) return false;
                        const Op& op = c.ops.front();
                        return op.type != OpType::Create || (!op.makeParents && !op.sequential);
                      });
    if (flat) ++cov.flatEntries;
    std::uint64_t lastRevision = revision;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const std::string at = where + "command " + std::to_string(i) + " (type " +
                             std::to_string(static_cast<int>(commands[i].type)) + "): ";
      if (!(batched[i] == old[i])) {
        return at + "result differs from one child txn a command: " + batched[i].message + " / " + old[i].message;
      }
      if (!(batched[i] == aloneResults[i])) return at + "result differs from one command an entry";
      if (togetherNotes.replays.at(i) != referenceNotes.replays.at(i)) return at + "replay differs";
      if (togetherNotes.replays[i] != aloneReplays[i]) return at + "replay differs from one command an entry";
      const CommandResult& r = batched[i];
      const CommandType type = commands[i].type;
      const bool stepwise = type == CommandType::Txn || isLockCommand(type);
      if (togetherNotes.replays[i]) {
        ++cov.replays;
        for (std::size_t j = 0; j < i; ++j) {
          if (commands[j].idempotencyKey == commands[i].idempotencyKey && !togetherNotes.replays[j]) {
            ++cov.replaysWithinEntry;
            break;
          }
        }
        if (r.status == Status::KeyReused) ++cov.keyReused;
        continue;
      }
      const bool changed = r.revision > lastRevision;
      lastRevision = std::max(lastRevision, r.revision);
      if (r.status != Status::Ok) {
        if (stepwise) stepwiseFailed = true;
        if (!stepwise) sessionFailed = true;
      }
      if (r.status == Status::NoSpace) ++cov.noSpace;
      if (flat && r.status != Status::Ok) ++cov.flatFailures;
      if (flat && r.status == Status::NoSpace) ++cov.flatNoSpace;
      if (r.status == Status::TooLarge) ++cov.tooLarge;
      if (type == CommandType::SessionExpire) ++(r.status == Status::Unavailable ? cov.staleExpiries : cov.expiries);
      if (r.status == Status::Ok) {
        if (type == CommandType::LockRelease) ++cov.releases;
        if (type == CommandType::ElectionProclaim) ++cov.proclaims;
        if (type == CommandType::ElectionResign && changed) ++cov.resignations;
        if (type == CommandType::LockWithdraw && changed) ++cov.withdrawals;
        if (type == CommandType::LockDelayEnd && changed) ++cov.delayEnds;
        if (type == CommandType::Txn) {
          for (const auto& op : commands[i].ops) {
            if (op.type == OpType::Delete && op.recursive) ++cov.recursiveDeletes;
          }
        }
      }
    }
    if (commands.size() > 1) {
      ++(stepwiseFailed ? cov.fallbackEntries : cov.batchedEntries);
      if (!stepwiseFailed && sessionFailed) ++cov.failedSessionCommandsBatched;
    }
    if (referenceNotes.replays.size() != forced.size() || referenceNotes.replays.back()) return where + "forced replays";
    if (togetherNotes.replays.size() != commands.size()) return where + "replays' size";
    if (togetherNotes.events != referenceNotes.events) return where + "events differ from one child txn a command";
    if (!std::equal(togetherNotes.events.begin() + static_cast<std::ptrdiff_t>(before), togetherNotes.events.end(),
                    aloneEvents.begin(), aloneEvents.end())) {
      return where + "events differ from one command an entry";
    }
    if (rowTexts(together, false) != rowTexts(reference, false)) return where + "rows differ from one child txn a command";
    if (rowTexts(together, true) != rowTexts(alone, true)) {
      const auto a = rowTexts(together, true);
      const auto b = rowTexts(alone, true);
      std::size_t k = 0;
      while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
      return where + "rows differ from one command an entry at row " + std::to_string(k) + ": " +
             (k < a.size() ? a[k] : "(none)") + " / " + (k < b.size() ? b[k] : "(none)");
    }
    if (together.dump() != alone.dump()) return where + "the trees differ";
    if (sessionEpochOf(together) != sessionEpochOf(alone)) return where + "session epochs differ";
  }
  return "";
}

}  // namespace

TEST_CASE("every command type applied together in an entry answers and notes and stores exactly as one child txn a command and one entry a command") {
  const auto asBuilt = [](StateMachine&) {};
  BatchCoverage cov;
  for (std::uint64_t seed : {20261130ull, 7ull, 99ull}) {
    INFO("seed " << seed);
    CHECK(batchedApplyDifferenceNoted(asBuilt, seed, 300, cov) == "");
  }
  INFO("batched " << cov.batchedEntries << " fallback " << cov.fallbackEntries << " failed session commands batched "
                  << cov.failedSessionCommandsBatched << " replays " << cov.replays << " within an entry "
                  << cov.replaysWithinEntry << " key reused " << cov.keyReused << " no space " << cov.noSpace
                  << " too large " << cov.tooLarge << " stale expiries " << cov.staleExpiries << " expiries "
                  << cov.expiries << " releases " << cov.releases << " proclaims " << cov.proclaims
                  << " withdrawals " << cov.withdrawals << " resignations " << cov.resignations << " delay ends "
                  << cov.delayEnds << " recursive deletes " << cov.recursiveDeletes << " flat " << cov.flatEntries
                  << " failing in them " << cov.flatFailures << " no space in them " << cov.flatNoSpace);
  CHECK(cov.batchedEntries > 50);
  CHECK(cov.fallbackEntries > 50);
  CHECK(cov.failedSessionCommandsBatched > 10);
  CHECK(cov.replaysWithinEntry > 5);
  CHECK(cov.keyReused > 5);
  CHECK(cov.noSpace > 5);
  CHECK(cov.tooLarge > 2);
  CHECK(cov.staleExpiries > 5);
  CHECK(cov.expiries > 5);
  CHECK(cov.releases > 5);
  CHECK(cov.proclaims > 5);
  CHECK(cov.withdrawals > 2);
  CHECK(cov.resignations > 2);
  CHECK(cov.delayEnds > 2);
  CHECK(cov.recursiveDeletes > 20);
  CHECK(cov.flatEntries > 40);
  CHECK(cov.flatFailures > 20);
  CHECK(cov.flatNoSpace > 3);
  WARN("coverage: batched " << cov.batchedEntries << " fallback " << cov.fallbackEntries
                            << " failed session commands batched " << cov.failedSessionCommandsBatched << " replays "
                            << cov.replays << " within an entry " << cov.replaysWithinEntry << " key reused "
                            << cov.keyReused << " no space " << cov.noSpace << " too large " << cov.tooLarge
                            << " stale expiries " << cov.staleExpiries << " expiries " << cov.expiries << " releases "
                            << cov.releases << " proclaims " << cov.proclaims << " withdrawals " << cov.withdrawals
                            << " resignations " << cov.resignations << " delay ends " << cov.delayEnds
                            << " recursive deletes " << cov.recursiveDeletes << " flat " << cov.flatEntries
                            << " failing in them " << cov.flatFailures << " no space in them " << cov.flatNoSpace);
  // The test-only flags that change apply (set on every replica alike) change it alike.
  BatchCoverage ignored;
  CHECK(batchedApplyDifferenceNoted(asBuilt, 5, 300, ignored, [](StateMachine& sm) { sm.forgetIdempotencyKeys = true; }) == "");
  CHECK(batchedApplyDifferenceNoted(asBuilt, 6, 300, ignored, [](StateMachine& sm) { sm.lockBugs.grantEveryone = true; }) == "");
  CHECK(batchedApplyDifferenceNoted(asBuilt, 8, 300, ignored, [](StateMachine& sm) { sm.lockBugs.requestsBySession = true; }) == "");
  CHECK(batchedApplyDifferenceNoted(asBuilt, 9, 300, ignored, [](StateMachine& sm) { sm.lockBugs.tokenPerLockNode = true; }) == "");
  // The planted bug (a failed command's first steps kept) is caught here too.
  CHECK(batchedApplyDifferenceNoted([](StateMachine& sm) { sm.keepFailedBatchWrites = true; }, 20261130, 300, ignored) != "");
  // And so is the other (every command applied as one that cannot fail after writing: a failed
  // transaction of several ops, a create that made parents, a write over its quota keep part).
  CHECK(batchedApplyDifferenceNoted([](StateMachine& sm) { sm.noOwnTxnEver = true; }, 20261130, 300, ignored) != "");
}
