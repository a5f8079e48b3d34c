// review11 (adversarial review of 5d0664b, the request memory in deadline order): probes of
// StateMachine::admitRequest under apply's gate (Apply.cpp: a proposal whose deadline is below
// the slot's time, or more than 10 minutes ahead of it, never reaches admitRequest).
//  - the forgetting loop (Cursor::erase then next(), LMDB's C_DEL) against a model, over many
//    pages, in random order: it neither skips nor revisits rows;
//  - exactly once under random copies, stamps, deadlines and duties without a deadline;
//  - a store that applied a prefix under the previous version's memory (requests +
//    requests_by_slot for every proposal) admits exactly what the new memory admits.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "coordinator/storage/Keys.h"
#include "tests/SplitMixRandom.h"
#include "tests/unit/StoreFixture.h"

using warden::coordinator::StateMachine;
using warden::coordinator::storage::Cursor;
using warden::coordinator::storage::decodeU64Key;
using warden::coordinator::storage::encodeU64Key;
using warden::coordinator::storage::Txn;
using warden::tests::SplitMixRandom;
using warden::tests::StoreFixture;

namespace {

constexpr std::uint64_t kT0 = 1'800'000'000'000;
constexpr std::uint64_t kMaxAheadMs = 10 * 60 * 1000;  // Apply.cpp kMaxDeadlineAheadMs
constexpr std::size_t kByDeadlineTable = 9;

struct Prop {
  std::uint64_t origin, incarnation, requestId, deadlineMs;
};

// Apply's gate, then admitRequest (Apply.cpp applyInto), in its own transaction.
enum class Outcome { Late, TooFar, Copy, Admitted };
Outcome applyGate(StoreFixture& store, const Prop& p, std::uint64_t slot, std::uint64_t stamp) {
  if (p.deadlineMs != 0 && stamp > p.deadlineMs) return Outcome::Late;
  if (p.deadlineMs > stamp + kMaxAheadMs) return Outcome::TooFar;
  auto txn = Txn::write(store.env());
  const bool admitted = store.stateMachine().admitRequest(txn, p.origin, p.incarnation, p.requestId, slot, p.deadlineMs, stamp);
  txn.commit();
  return admitted ? Outcome::Admitted : Outcome::Copy;
}

// The previous version's admitRequest (5d0664b^), on the same tables: every proposal in
// requests + requests_by_slot, forgotten past kRequestMemorySlots once its deadline passed.
bool oldAdmit(StoreFixture& store, const Prop& p, std::uint64_t slot, std::uint64_t stamp) {
  auto txn = Txn::write(store.env());
  const auto dbs = StateMachine::openDbs(txn);
  const std::string id = encodeU64Key(p.origin) + encodeU64Key(p.incarnation) + encodeU64Key(p.requestId);
  if (txn.get(dbs.requests, id)) {
    txn.commit();
    return false;
  }
  std::vector<std::string> doomed;
  {
    Cursor cursor(txn, dbs.requestsBySlot);
    int scanned = 0;
    for (auto item = cursor.first(); item && doomed.size() < 4 && scanned < 16; item = cursor.next(), ++scanned) {
      if (decodeU64Key(item->key.substr(0, 8)) + StateMachine::kRequestMemorySlots >= slot) break;
      auto value = txn.get(dbs.requests, item->key.substr(8));
      if (value && value->size() == 16 && decodeU64Key(value->substr(8)) >= stamp) continue;
      doomed.emplace_back(item->key);
    }
  }
  for (const auto& key : doomed) {
    txn.erase(dbs.requestsBySlot, key);
    txn.erase(dbs.requests, key.substr(8));
  }
  txn.put(dbs.requests, id, encodeU64Key(slot) + encodeU64Key(p.deadlineMs));
  txn.put(dbs.requestsBySlot, encodeU64Key(slot) + id, {});
  txn.commit();
  return true;
}

Outcome oldApplyGate(StoreFixture& store, const Prop& p, std::uint64_t slot, std::uint64_t stamp) {
  if (p.deadlineMs != 0 && stamp > p.deadlineMs) return Outcome::Late;
  if (p.deadlineMs > stamp + kMaxAheadMs) return Outcome::TooFar;
  return oldAdmit(store, p, slot, stamp) ? Outcome::Admitted : Outcome::Copy;
}

std::set<std::string> byDeadlineKeys(StoreFixture& store) {
  std::set<std::string> keys;
  for (const auto& row : store.rows()) {
    if (row.table == kByDeadlineTable) keys.insert(row.key);
  }
  return keys;
}

std::string idOf(const Prop& p) { return encodeU64Key(p.origin) + encodeU64Key(p.incarnation) + encodeU64Key(p.requestId); }

// A random history: new proposals (a few without a deadline, most with one around the slot's
// time), copies of earlier ones, stamps that stand still or jump.
struct History {
  std::vector<std::pair<Prop, std::uint64_t>> steps;  // proposal, slot stamp
};

History randomHistory(std::uint64_t seed, int n) {
  SplitMixRandom r(seed);
  History h;
  std::vector<Prop> sent;
  std::uint64_t stamp = kT0;
  std::uint64_t nextId = 1;
  for (int i = 0; i < n; ++i) {
    const auto roll = r.next() % 100;
    if (roll < 2) stamp += 20'000 + r.next() % 20'000;  // a clock jump forward
    else if (roll < 50) stamp += r.next() % 40;
    Prop p;
    if (!sent.empty() && r.next() % 3 == 0) {
      p = sent[sent.size() - 1 - r.next() % std::min<std::size_t>(sent.size(), 400)];  // a copy
    } else {
      p = Prop{1 + r.next() % 3, 77, nextId++, 0};
      const auto kind = r.next() % 20;
      if (kind == 0) p.deadlineMs = 0;                                      // a duty
      else if (kind == 1) p.deadlineMs = stamp - r.next() % 50;             // late already
      else if (kind == 2) p.deadlineMs = stamp + kMaxAheadMs + 1 + r.next() % 5;  // too far
      else p.deadlineMs = stamp + r.next() % 6'000;
      sent.push_back(p);
    }
    h.steps.emplace_back(p, stamp);
  }
  return h;
}

}  // namespace

TEST_CASE("review11: forgetting from the front of the deadline order matches a model, across pages", "[review11]") {
  // The model of what requests_by_deadline must hold: each admission that reaches admitRequest
  // first forgets up to 8 of the smallest keys whose deadline is below the stamp, then inserts.
  StoreFixture store;
  SplitMixRandom r(11);
  std::set<std::string> model;
  std::uint64_t stamp = kT0;
  std::uint64_t slot = 0;
  for (int round = 0; round < 6; ++round) {
    // Fill: thousands of rows (many leaf pages), deadlines random within a window ahead.
    for (int i = 0; i < 3'000; ++i) {
      ++slot;
      Prop p{1 + r.next() % 5, 9, slot, stamp + r.next() % 20'000};
      const std::string key = encodeU64Key(p.deadlineMs) + idOf(p);
      // model
      int forgotten = 0;
      for (auto it = model.begin(); it != model.end() && forgotten < 8 && decodeU64Key(it->substr(0, 8)) < stamp; ++forgotten) {
        it = model.erase(it);
      }
      const bool fresh = model.insert(key).second;
      REQUIRE(applyGate(store, p, slot, stamp) == (fresh ? Outcome::Admitted : Outcome::Copy));
      if (r.next() % 4 == 0) stamp += r.next() % 30;
    }
    REQUIRE(byDeadlineKeys(store) == model);
    // Time moves past a random part of it: the next admissions drain the front, 8 at a time.
    stamp += 5'000 + r.next() % 15'000;
    for (int i = 0; i < 700; ++i) {
      ++slot;
      Prop p{9, 9, slot, stamp + 100'000};
      int forgotten = 0;
      for (auto it = model.begin(); it != model.end() && forgotten < 8 && decodeU64Key(it->substr(0, 8)) < stamp; ++forgotten) {
        it = model.erase(it);
      }
      model.insert(encodeU64Key(p.deadlineMs) + idOf(p));
      REQUIRE(applyGate(store, p, slot, stamp) == Outcome::Admitted);
      if (i % 97 == 0) REQUIRE(byDeadlineKeys(store) == model);
    }
    REQUIRE(byDeadlineKeys(store) == model);
  }
  // Everything passed: the table drains to only what is still ahead.
  stamp += 1'000'000;
  for (int i = 0; i < 3'000; ++i) {
    ++slot;
    Prop p{10, 9, slot, stamp};
    int forgotten = 0;
    for (auto it = model.begin(); it != model.end() && forgotten < 8 && decodeU64Key(it->substr(0, 8)) < stamp; ++forgotten) {
      it = model.erase(it);
    }
    model.insert(encodeU64Key(p.deadlineMs) + idOf(p));
    REQUIRE(applyGate(store, p, slot, stamp) == Outcome::Admitted);
  }
  CHECK(byDeadlineKeys(store) == model);
  CHECK(model.size() == 3'000);
}

TEST_CASE("review11: under apply's gate a proposal is admitted at most once, and every copy within its deadline is refused",
          "[review11]") {
  for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
    StoreFixture store;
    const History h = randomHistory(seed, 12'000);
    std::map<std::string, std::uint64_t> admittedAt;  // id -> stamp
    std::uint64_t slot = 0;
    for (const auto& [p, stamp] : h.steps) {
      const Outcome o = applyGate(store, p, ++slot, stamp);
      const std::string id = idOf(p);
      if (o == Outcome::Admitted) {
        INFO("seed " << seed << " slot " << slot);
        REQUIRE(admittedAt.count(id) == 0);  // never twice
        admittedAt[id] = stamp;
      } else if (o == Outcome::Copy) {
        REQUIRE(admittedAt.count(id) == 1);  // refused only as a copy of an admitted one
      }
    }
    // Bounded: what is left in the deadline order is what is ahead, plus a small backlog.
    const std::uint64_t last = h.steps.back().second;
    std::size_t passed = 0;
    for (const auto& key : byDeadlineKeys(store)) passed += decodeU64Key(key.substr(0, 8)) < last;
    CHECK(passed <= 8 * 50);
  }
}

TEST_CASE("review11: a store that applied a prefix under the previous version admits what the new memory admits",
          "[review11]") {
  // Stop, replace, start (SAFETY.md, Upgrades): one replica had applied the first `cut` slots
  // under the previous version's memory before it stopped, another only `cut / 2` of them (it
  // replays the rest under the new one). Every admission must come out alike on both, and alike
  // on a replica that never upgraded.
  for (std::uint64_t seed : {21, 22, 23}) {
    const History h = randomHistory(seed, 15'000);
    for (std::size_t cut : {std::size_t{500}, std::size_t{4'000}, std::size_t{12'000}}) {
      StoreFixture upgradedLate, upgradedEarly, neverUpgraded;
      std::uint64_t slot = 0;
      for (std::size_t i = 0; i < h.steps.size(); ++i) {
        const auto& [p, stamp] = h.steps[i];
        ++slot;
        const Outcome a = i < cut ? oldApplyGate(upgradedLate, p, slot, stamp) : applyGate(upgradedLate, p, slot, stamp);
        const Outcome b = i < cut / 2 ? oldApplyGate(upgradedEarly, p, slot, stamp) : applyGate(upgradedEarly, p, slot, stamp);
        const Outcome c = oldApplyGate(neverUpgraded, p, slot, stamp);
        INFO("seed " << seed << " cut " << cut << " step " << i);
        REQUIRE(a == b);
        REQUIRE(a == c);
      }
    }
  }
}
