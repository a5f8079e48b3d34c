// Locks in the state machine (issue 12): FIFO grants, shared and exclusive modes, fencing tokens
// (the granting revision), idempotent acquire, release by token, withdrawal of a waiting request,
// and the session's end passing its locks on in the same revision.

#include <catch2/catch.hpp>

#include "locks/LockQueue.h"
#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;
using warden::locks::Request;

namespace {


struct Locks {
  StoreFixture store;
  Locks() {
    for (std::uint64_t s = 1; s <= 5; ++s) REQUIRE(store.applyCommand(sessionCreate(s)).status == Status::Ok);
  }
  // The session's request: its path, and its token (0 while waiting).
  std::pair<std::string, std::uint64_t> acquire(std::uint64_t session, const std::string& name, bool shared = false) {
    auto r = store.applyCommand(lockCommand(CommandType::LockAcquire, session, name, shared));
    REQUIRE(r.status == Status::Ok);
    REQUIRE(r.results.size() == 1);
    return {r.results[0].path, token(r.results[0].path)};
  }
  std::uint64_t token(const std::string& path) {
    auto record = store.get(path);
    if (!record) return 0;
    auto request = warden::locks::decodeRequest(record->data);
    REQUIRE(request);
    return request->token;
  }
  Status release(std::uint64_t session, const std::string& name, std::uint64_t token) {
    return store.applyCommand(lockCommand(CommandType::LockRelease, session, name, false, token)).status;
  }
};

}  // namespace

TEST_CASE("an exclusive lock goes to its waiters first come first served, each token larger") {
  Locks l;
  auto [p1, t1] = l.acquire(1, "db");
  CHECK(t1 == l.store.revision());  // granted at once: the token is the granting revision
  auto [p2, t2] = l.acquire(2, "db");
  auto [p3, t3] = l.acquire(3, "db");
  CHECK(t2 == 0);
  CHECK(t3 == 0);
  CHECK(l.release(2, "db", t1) == Status::NotHolder);  // not its lock
  CHECK(l.release(1, "db", t1 + 1) == Status::NotHolder);  // not its token
  REQUIRE(l.release(1, "db", t1) == Status::Ok);
  CHECK_FALSE(l.store.get(p1));
  const std::uint64_t granted2 = l.token(p2);
  CHECK(granted2 == l.store.revision());
  CHECK(granted2 > t1);
  CHECK(l.token(p3) == 0);  // one release, one grant
  REQUIRE(l.release(2, "db", granted2) == Status::Ok);
  CHECK(l.token(p3) > granted2);
  // The last release removes the lock's node too.
  REQUIRE(l.release(3, "db", l.token(p3)) == Status::Ok);
  CHECK_FALSE(l.store.get(warden::locks::lockPath("db")));
}

TEST_CASE("shared holders share, an exclusive request waits for them, and shared ones behind it wait for it") {
  Locks l;
  auto [a, ta] = l.acquire(1, "cfg", true);
  auto [b, tb] = l.acquire(2, "cfg", true);
  auto [x, tx] = l.acquire(3, "cfg", false);
  auto [c, tc] = l.acquire(4, "cfg", true);
  CHECK(ta != 0);
  CHECK(tb != 0);
  CHECK(tx == 0);
  CHECK(tc == 0);  // behind an exclusive request: fair
  REQUIRE(l.release(1, "cfg", ta) == Status::Ok);
  CHECK(l.token(x) == 0);
  REQUIRE(l.release(2, "cfg", tb) == Status::Ok);
  CHECK(l.token(x) != 0);
  CHECK(l.token(c) == 0);
  REQUIRE(l.release(3, "cfg", l.token(x)) == Status::Ok);
  CHECK(l.token(c) != 0);
}

TEST_CASE("acquiring a lock the session already asked for returns the same request and changes nothing") {
  Locks l;
  auto [p, t] = l.acquire(1, "job");
  const auto revision = l.store.revision();
  auto [again, t2] = l.acquire(1, "job");
  CHECK(again == p);
  CHECK(t2 == t);
  CHECK(l.store.revision() == revision);
}

TEST_CASE("a session's end releases its locks and grants the next in the same revision") {
  Locks l;
  auto [p1, t1] = l.acquire(1, "a");
  auto [p2, t2] = l.acquire(2, "a");
  REQUIRE(t2 == 0);
  auto r = l.store.applyCommand(sessionCommand(CommandType::SessionClose, 1));
  REQUIRE(r.status == Status::Ok);
  CHECK_FALSE(l.store.get(p1));
  CHECK(l.token(p2) == r.revision);
  // Expiry likewise.
  auto [p3, t3] = l.acquire(3, "a");
  REQUIRE(t3 == 0);
  auto e = l.store.applyCommand(expireCommand(2, SessionEpoch{}));
  REQUIRE(e.status == Status::Ok);
  CHECK(l.token(p3) == e.revision);
}

TEST_CASE("withdrawing takes a waiting request out of the queue, but not one granted meanwhile") {
  Locks l;
  auto [p1, t1] = l.acquire(1, "w");
  auto [p2, t2] = l.acquire(2, "w");
  REQUIRE(l.store.applyCommand(lockCommand(CommandType::LockWithdraw, 2, "w")).status == Status::Ok);
  CHECK_FALSE(l.store.get(p2));
  auto [p3, t3] = l.acquire(3, "w");
  REQUIRE(l.release(1, "w", t1) == Status::Ok);
  REQUIRE(l.token(p3) != 0);
  REQUIRE(l.store.applyCommand(lockCommand(CommandType::LockWithdraw, 3, "w")).status == Status::Ok);
  CHECK(l.token(p3) != 0);  // it holds the lock: the withdrawal came too late
}

TEST_CASE("lock commands refuse bad names, unknown sessions, and keep their fields on the wire") {
  Locks l;
  CHECK(l.store.applyCommand(lockCommand(CommandType::LockAcquire, 1, "a/b")).status == Status::InvalidArgument);
  CHECK(l.store.applyCommand(lockCommand(CommandType::LockAcquire, 1, "")).status == Status::InvalidArgument);
  CHECK(l.store.applyCommand(lockCommand(CommandType::LockAcquire, 99, "x")).status == Status::SessionNotFound);
  Command c = lockCommand(CommandType::LockRelease, 7, "name", true, 42);
  c.text = "me";
  c.maxNodes = 10;
  Encoder out;
  encodeCommand(out, c);
  Decoder in(out.data());
  CHECK(decodeCommand(in) == c);
  CHECK(warden::locks::holders({}) == 0);
  auto request = [](bool shared) {
    Request r;
    r.shared = shared;
    return r;
  };
  CHECK(warden::locks::holders({request(true), request(true), request(false), request(true)}) == 2);
  CHECK(warden::locks::holders({request(false), request(true)}) == 1);
}

TEST_CASE("an election's first candidate leads, terms rise with each new leader, and proclaim needs the term") {
  Locks l;
  auto campaign = [&](std::uint64_t session, std::string value) {
    Command c = lockCommand(CommandType::ElectionCampaign, session, "svc");
    c.text = std::move(value);
    auto r = l.store.applyCommand(c);
    REQUIRE(r.status == Status::Ok);
    return r.results.at(0).path;
  };
  const std::string first = campaign(1, "a:1"), second = campaign(2, "b:1");
  auto read = [&](const std::string& path) { return warden::locks::decodeRequest(l.store.get(path)->data); };
  const std::uint64_t term1 = read(first)->token;
  CHECK(term1 != 0);
  CHECK(read(second)->token == 0);
  CHECK(l.store.get(first)->data.find("\"term\"") != std::string::npos);  // read as an election's
  Command proclaim = lockCommand(CommandType::ElectionProclaim, 2, "svc", false, term1);
  proclaim.text = "x";
  CHECK(l.store.applyCommand(proclaim).status == Status::NotLeader);
  proclaim.session = 1;
  proclaim.token = term1 + 1;
  CHECK(l.store.applyCommand(proclaim).status == Status::NotLeader);
  proclaim.token = term1;
  proclaim.text = "a:2";
  REQUIRE(l.store.applyCommand(proclaim).status == Status::Ok);
  CHECK(read(first)->owner == "a:2");
  REQUIRE(l.store.applyCommand(lockCommand(CommandType::ElectionResign, 1, "svc")).status == Status::Ok);
  CHECK(read(second)->token > term1);
  // Resigning again, or without a candidacy: fine.
  CHECK(l.store.applyCommand(lockCommand(CommandType::ElectionResign, 1, "svc")).status == Status::Ok);
  // The leader's session ends: the election has no candidate left, and its node goes.
  REQUIRE(l.store.applyCommand(sessionCommand(CommandType::SessionClose, 2)).status == Status::Ok);
  CHECK_FALSE(l.store.get(warden::locks::electionPath("svc")));
}

TEST_CASE("a lock-delay holds a lock after its holder's session expired until the leader ends it, not after a release or close") {
  Locks l;
  Command acquire = lockCommand(CommandType::LockAcquire, 1, "d");
  acquire.token = 5000;  // its lock-delay, ms
  REQUIRE(l.store.applyCommand(acquire, 1000).status == Status::Ok);
  auto [p2, t2] = l.acquire(2, "d");
  REQUIRE(t2 == 0);
  // Expired at 2000: nobody gets the lock until the leader ends the delay, whatever the time.
  REQUIRE(l.store.applyCommand(expireCommand(1, SessionEpoch{}), 2000).status == Status::Ok);
  CHECK(l.token(p2) == 0);
  auto lockNode = [&] { return l.store.get(warden::locks::lockPath("d")); };
  auto delay = warden::locks::decodeDelay(lockNode()->data);
  REQUIRE(delay);
  CHECK(delay->availableAtMs == 7000);
  CHECK(delay->delayMs == 5000);
  const std::uint64_t setAt = static_cast<std::uint64_t>(lockNode()->stat.modified);
  REQUIRE(l.store.applyCommand(lockCommand(CommandType::LockAcquire, 2, "d"), 60000).status == Status::Ok);
  CHECK(l.token(p2) == 0);
  // An end naming another revision (a delay extended since) changes nothing.
  Command stale = lockCommand(CommandType::LockDelayEnd, 0, "d");
  stale.token = setAt - 1;
  REQUIRE(l.store.applyCommand(stale, 60001).status == Status::Ok);
  CHECK(l.token(p2) == 0);
  // The leader's end: granted, and the lock says it is available again. No session needed.
  Command end = lockCommand(CommandType::LockDelayEnd, 0, "d");
  end.token = setAt;
  auto ended = l.store.applyCommand(end, 60002);
  REQUIRE(ended.status == Status::Ok);
  CHECK(ended.results.empty());
  CHECK(l.token(p2) != 0);
  CHECK(lockNode()->data.empty());
  // Again: nothing.
  CHECK(l.store.applyCommand(end, 60003).status == Status::Ok);
  // A holder that releases (or closes its session) passes the lock on at once.
  Command delayed = lockCommand(CommandType::LockAcquire, 3, "e");
  delayed.token = 5000;
  REQUIRE(l.store.applyCommand(delayed, 80000).status == Status::Ok);
  auto [p4, t4] = l.acquire(4, "e");
  REQUIRE(l.store.applyCommand(sessionCommand(CommandType::SessionClose, 3), 80001).status == Status::Ok);
  CHECK(l.token(p4) != 0);
  CHECK(l.store.usedBytes() > 0);
}

TEST_CASE("a second expiry during a lock-delay extends it under a newer revision, and an empty delayed lock goes at its end") {
  Locks l;
  for (std::uint64_t s : {1, 2}) {
    Command shared = lockCommand(CommandType::LockAcquire, s, "x", true);
    shared.token = s == 1 ? 1000 : 3000;
    REQUIRE(l.store.applyCommand(shared, 1500).status == Status::Ok);
  }
  REQUIRE(l.store.applyCommand(expireCommand(1, SessionEpoch{}), 2000).status == Status::Ok);
  const std::uint64_t first = static_cast<std::uint64_t>(l.store.get(warden::locks::lockPath("x"))->stat.modified);
  REQUIRE(l.store.applyCommand(expireCommand(2, SessionEpoch{}), 2100).status == Status::Ok);
  auto record = l.store.get(warden::locks::lockPath("x"));
  REQUIRE(record);
  CHECK(static_cast<std::uint64_t>(record->stat.modified) > first);
  CHECK(warden::locks::decodeDelay(record->data)->availableAtMs == 5100);
  Command end = lockCommand(CommandType::LockDelayEnd, 0, "x");
  end.token = first;  // the first delay's end, due first: the extension runs on
  REQUIRE(l.store.applyCommand(end, 3000).status == Status::Ok);
  REQUIRE(l.store.get(warden::locks::lockPath("x")));
  end.token = static_cast<std::uint64_t>(record->stat.modified);
  REQUIRE(l.store.applyCommand(end, 5200).status == Status::Ok);
  CHECK_FALSE(l.store.get(warden::locks::lockPath("x")));  // nobody holds or waits: gone
}

// The locks review's schedules, each a test.

TEST_CASE("a request path is never reused for another session's request, even after the lock's node went") {
  Locks l;
  auto [h, th] = l.acquire(1, "L");                 // granted
  auto [pa, ta] = l.acquire(2, "L");                // A waits
  REQUIRE(ta == 0);
  REQUIRE(l.store.applyCommand(sessionCommand(CommandType::SessionClose, 2)).status == Status::Ok);  // A's session ends
  REQUIRE(l.release(1, "L", th) == Status::Ok);     // empty: the lock's node goes
  auto [pc, tc] = l.acquire(3, "L");                // C: granted
  auto [pb, tb] = l.acquire(4, "L");                // B: waiting
  REQUIRE(l.release(3, "L", tc) == Status::Ok);     // B granted
  // A's HTTP wait (LocksApi::finish) reads the request at its path: never B's.
  auto record = l.store.get(pa);
  auto request = record ? warden::locks::decodeRequest(record->data) : std::nullopt;
  CHECK(pb != pa);                                 
  CHECK_FALSE((request && request->granted() && request->session != 2));
}

namespace {
Command quotaLock(CommandType type, std::uint64_t session, std::string name, bool shared, std::uint64_t token, std::uint64_t quota) {
  Command c = lockCommand(type, session, std::move(name), shared, token);
  c.quotaBytes = quota;
  return c;
}
}  // namespace

TEST_CASE("at the quota, a release that grants many shared waiters still goes through") {
  Locks l;
  for (std::uint64_t s = 6; s <= 40; ++s) REQUIRE(l.store.applyCommand(sessionCreate(s)).status == Status::Ok);
  const std::uint64_t now = 1764150000000;
  auto x = l.store.applyCommand(lockCommand(CommandType::LockAcquire, 1, "big"), now);
  const std::uint64_t tx = l.token(x.results[0].path);
  for (std::uint64_t s = 6; s <= 40; ++s) REQUIRE(l.store.applyCommand(lockCommand(CommandType::LockAcquire, s, "big", true), now).status == Status::Ok);
  const std::uint64_t full = l.store.usedBytes();  // the state is at its quota
  auto released = l.store.applyCommand(quotaLock(CommandType::LockRelease, 1, "big", false, tx, full), now);
  CHECK(released.status == Status::Ok);
}

TEST_CASE("at the quota, withdrawing an exclusive waiter in front of shared ones still goes through") {
  Locks l;
  for (std::uint64_t s = 6; s <= 40; ++s) REQUIRE(l.store.applyCommand(sessionCreate(s)).status == Status::Ok);
  const std::uint64_t now = 1764150000000;
  REQUIRE(l.store.applyCommand(lockCommand(CommandType::LockAcquire, 1, "big", true), now).status == Status::Ok);  // shared holder
  auto w = l.store.applyCommand(lockCommand(CommandType::LockAcquire, 2, "big"), now);  // exclusive waiter
  for (std::uint64_t s = 6; s <= 40; ++s) REQUIRE(l.store.applyCommand(lockCommand(CommandType::LockAcquire, s, "big", true), now).status == Status::Ok);
  const std::uint64_t full = l.store.usedBytes();
  auto withdrawn = l.store.applyCommand(quotaLock(CommandType::LockWithdraw, 2, "big", false, 0, full), now);
  CHECK(withdrawn.status == Status::Ok);
  CHECK_FALSE(l.store.get(w.results[0].path));
}
