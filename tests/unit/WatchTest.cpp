// Watches (issue 11): the events apply derives, the bounded history, matching (with children
// events), and the hub waking only the watchers an event matches.

#include <catch2/catch.hpp>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "coordinator/watch/WatchHub.h"
#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;
using watch::Event;
using watch::EventType;
using watch::Filter;

namespace {

// Applies one command and returns the events it made.
std::vector<Event> eventsOf(StoreFixture& store, Command command, std::uint64_t timestampMs = 1000) {
  auto txn = storage::Txn::write(store.env());
  Entry entry{store.stateMachine().appliedIndex(txn) + 1, timestampMs, {std::move(command)}};
  StateMachine::Notes notes;
  store.stateMachine().apply(txn, entry, &notes);
  txn.commit();
  return notes.events;
}

Event event(EventType type, std::string path, std::uint64_t revision, std::string data = {}) {
  Event e;
  e.type = type;
  e.path = std::move(path);
  e.revision = revision;
  e.data = std::move(data);
  return e;
}

watch::Applied applied(std::uint64_t revision, std::vector<Event> events) { return watch::Applied{revision, std::move(events), false}; }

std::vector<std::string> describe(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(std::to_string(e.revision) + " " + watch::typeName(e.type) + " " + e.path);
  return out;
}

}  // namespace

TEST_CASE("apply derives one event per node changed, a txn's sharing its revision") {
  StoreFixture store;
  Op make = createOp("/a/b", "x");
  make.makeParents = true;
  auto events = eventsOf(store, txnCommand({make, setOp("/a", "y")}));
  CHECK(describe(events) == std::vector<std::string>{"1 created /a", "1 created /a/b", "1 changed /a"});
  CHECK(events[1].data == "x");
  CHECK(events[2].stat.version == 1);
  // A recursive delete: the children first, each with its last stat; no data.
  events = eventsOf(store, txnCommand({[] {
                      Op op = deleteOp("/a");
                      op.recursive = true;
                      return op;
                    }()}));
  CHECK(describe(events) == std::vector<std::string>{"2 deleted /a/b", "2 deleted /a"});
  CHECK(events[0].stat.created == 1);
  CHECK(events[0].data.empty());
  // A failed txn, a check and a replay make none.
  CHECK(eventsOf(store, txnCommand({createOp("/c"), setOp("/missing", "v")})).empty());
  CHECK(eventsOf(store, txnCommand({checkOp("/")})).empty());
}

TEST_CASE("closing or expiring a session deletes each ephemeral with an event at that revision") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(7)).status == Status::Ok);
  REQUIRE(store.apply({createOp("/e")}).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/e/1", 7), ephemeralOp("/e/2", 7)}).status == Status::Ok);
  const auto events = eventsOf(store, sessionCommand(CommandType::SessionClose, 7));
  CHECK(describe(events) == std::vector<std::string>{"4 deleted /e/1", "4 deleted /e/2"});
  CHECK(events[0].stat.ephemeralOwner == 7);
}

TEST_CASE("a watch matches its node, or its subtree, and hears of a child set changing") {
  const std::vector<Event> batch{event(EventType::Created, "/a/b", 5), event(EventType::Changed, "/a", 5),
                                 event(EventType::Created, "/a/b/c", 5), event(EventType::Changed, "/ab", 5)};
  std::vector<Event> out;
  watch::History::match(Filter{"/a", false}, batch, out);
  CHECK(describe(out) == std::vector<std::string>{"5 changed /a", "5 children /a"});  // one per revision
  out.clear();
  watch::History::match(Filter{"/a", true}, batch, out);
  CHECK(describe(out) == std::vector<std::string>{"5 created /a/b", "5 changed /a", "5 created /a/b/c"});
  out.clear();
  watch::History::match(Filter{"/", true}, batch, out);
  CHECK(out.size() == 4);
  out.clear();
  watch::History::match(Filter{"/a/b", false}, {event(EventType::Changed, "/a/b/c", 6)}, out);
  CHECK(out.empty());  // a child's data change is not a child set change
}

TEST_CASE("the history answers after a revision, never splitting one, and refuses what it dropped") {
  watch::History history({.events = 5, .bytes = 1 << 20}, 10);
  CHECK(history.floor() == 10);
  for (std::uint64_t r = 11; r <= 14; ++r) {
    auto a = applied(r, {event(EventType::Changed, "/k", r), event(EventType::Changed, "/other", r)});
    history.add(a);
  }
  // 8 events held against a bound of 5: the oldest revisions went; the floor moved past them.
  CHECK(history.floor() == 12);
  auto page = history.read(Filter{"/k", false}, 12, 100, 1 << 20);
  CHECK(describe(page.events) == std::vector<std::string>{"13 changed /k", "14 changed /k"});
  CHECK(page.upTo == 14);
  // A page stops at a revision boundary once it has enough: complete up to its upTo.
  page = history.read(Filter{"/", true}, 12, 1, 1 << 20);
  CHECK(describe(page.events) == std::vector<std::string>{"13 changed /k", "13 changed /other"});
  CHECK(page.upTo == 13);
  // A revision with no events (a session created) still moves the revision on.
  auto quiet = applied(15, {});
  history.add(quiet);
  page = history.read(Filter{"/k", false}, 14, 100, 1 << 20);
  CHECK(page.events.empty());
  CHECK(page.upTo == 15);
  // A snapshot starts it over.
  watch::Applied replaced{40, {}, true};
  history.add(replaced);
  CHECK(history.floor() == 40);
  CHECK(history.read(Filter{"/", true}, 40, 100, 1 << 20).events.empty());
}

TEST_CASE("the history is bounded in bytes too, keeping at least the newest revision") {
  watch::History history({.events = 1000, .bytes = 4000}, 0);
  for (std::uint64_t r = 1; r <= 10; ++r) {
    auto a = applied(r, {event(EventType::Changed, "/k", r, std::string(1000, 'x'))});
    history.add(a);
  }
  CHECK(history.floor() >= 6);
  auto big = applied(11, {event(EventType::Changed, "/k", 11, std::string(10'000, 'y'))});
  history.add(big);
  CHECK(history.floor() == 10);
  CHECK(history.read(Filter{"/k", false}, 10, 100, 1 << 20).events.size() == 1);
}

namespace {
// Counts a watcher's wakes (they come on the hub's thread).
struct Counter {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, int> counts;
  watch::WatchHub::Wake wake(std::string name) {
    return [this, name] {
      std::lock_guard lock(mutex);
      counts[name]++;
      changed.notify_all();
    };
  }
  // Waits (bounded) for these counts, then a moment more for any wake that should not come.
  std::map<std::string, int> settle(const std::map<std::string, int>& expected) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, std::chrono::seconds(5), [&] {
      for (const auto& [name, n] : expected) {
        if (counts[name] < n) return false;
      }
      return true;
    });
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    lock.lock();
    return counts;
  }
};
}  // namespace

TEST_CASE("the hub wakes only the watchers an event matches, and refuses beyond its limit") {
  watch::WatchHub hub({}, 3, 0);
  Counter c;
  auto w1 = hub.watch(Filter{"/a/b", false}, 0, c.wake("own"));
  auto w2 = hub.watch(Filter{"/a", false}, 0, c.wake("parent"));
  auto w3 = hub.watch(Filter{"/a", true}, 0, c.wake("subtree"));
  REQUIRE(w1);
  REQUIRE(w2);
  REQUIRE(w3);
  CHECK_FALSE(hub.watch(Filter{"/z", false}, 0, c.wake("elsewhere")));  // the fourth: over the limit
  auto changed = applied(1, {event(EventType::Changed, "/a/b", 1)});
  hub.applied(changed);
  // A data change is not a child set change: the parent's watcher sleeps on.
  CHECK(c.settle({{"own", 1}, {"subtree", 1}}) == std::map<std::string, int>{{"own", 1}, {"subtree", 1}});
  auto created = applied(2, {event(EventType::Created, "/a/b/c", 2), event(EventType::Created, "/a/b/d", 2)});
  hub.applied(created);
  // Its child set changed; a grandchild is not the parent's child; once per apply, however many
  // events match.
  CHECK(c.settle({{"own", 2}, {"subtree", 2}}) == std::map<std::string, int>{{"own", 2}, {"subtree", 2}});
  w1.reset();
  CHECK(hub.watchers() == 2);
  auto elsewhereEvent = applied(3, {event(EventType::Created, "/x", 3)});
  hub.applied(elsewhereEvent);
  CHECK(c.settle({}) == std::map<std::string, int>{{"own", 2}, {"subtree", 2}});
  CHECK(hub.revision() == 3);
}

TEST_CASE("the hub's timers fire in order") {
  watch::WatchHub hub({}, 10, 0);
  std::mutex m;
  std::condition_variable cv;
  std::vector<int> fired;
  const auto now = watch::WatchHub::Clock::now();
  hub.at(now + std::chrono::milliseconds(30), [&] {
    std::lock_guard lock(m);
    fired.push_back(2);
    cv.notify_all();
  });
  hub.at(now + std::chrono::milliseconds(5), [&] {
    std::lock_guard lock(m);
    fired.push_back(1);
    cv.notify_all();
  });
  std::unique_lock lock(m);
  REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return fired.size() == 2; }));
  CHECK(fired == std::vector<int>{1, 2});
}

// Review schedule: writes elsewhere push events out of the history while a watcher sits idle.
// It is compacted only if one of the dropped events was its own, unread.
TEST_CASE("a watcher is compacted only when an event it matches leaves the history unread") {
  watch::WatchHub hub({.events = 2, .bytes = 1 << 20}, 100, 0);
  auto quiet = hub.watch(Filter{"/quiet", false}, 0, [] {});
  auto busy = hub.watch(Filter{"/busy", true}, 0, [] {});
  for (std::uint64_t r = 1; r <= 5; ++r) {
    auto a = applied(r, {event(EventType::Changed, "/busy/x", r)});
    hub.applied(a);
  }
  CHECK(hub.floor() == 3);
  // Nothing of /quiet was dropped: it reads on from the floor, complete.
  auto page = hub.read(*quiet, 100, 1 << 20);
  REQUIRE(page);
  CHECK(page->events.empty());
  CHECK(page->upTo == 5);
  // /busy's events 1 to 3 went unread: it cannot be complete any more.
  CHECK_FALSE(hub.read(*busy, 100, 1 << 20));
  // A watcher that reads as it goes is not lost when its events leave afterwards.
  auto reader = hub.watch(Filter{"/busy", true}, 5, [] {});
  auto more = applied(6, {event(EventType::Changed, "/busy/x", 6)});
  hub.applied(more);
  REQUIRE(hub.read(*reader, 100, 1 << 20)->events.size() == 1);
  for (std::uint64_t r = 7; r <= 9; ++r) {
    auto a = applied(r, {event(EventType::Changed, "/other", r)});
    hub.applied(a);
  }
  CHECK(hub.read(*reader, 100, 1 << 20));
  // A watch from before the floor is lost from the start.
  CHECK_FALSE(hub.read(*hub.watch(Filter{"/quiet", false}, 1, [] {}), 100, 1 << 20));
}

TEST_CASE("the hub tells whether pending events concern a watcher, looking again after a registration") {
  watch::WatchHub hub({}, 100, 0);
  int registered = 0;
  hub.onWatch([&registered] { registered++; });
  std::vector<Event> pending{event(EventType::Changed, "/bench/1", 1), event(EventType::Created, "/bench/2", 2)};
  watch::PendingScan scan;
  CHECK_FALSE(hub.concerns(pending, scan));  // nobody watches
  CHECK(scan.events == 2);

  auto elsewhere = hub.watch(Filter{"/config", true}, 0, [] {});
  CHECK(registered == 1);
  CHECK_FALSE(hub.concerns(pending, scan));
  pending.push_back(event(EventType::Changed, "/config/db", 3));
  CHECK(hub.concerns(pending, scan));  // the new event, found without looking again at the first two

  // A watcher registered after the events were looked at: all of them are looked at again.
  pending.pop_back();
  scan = {};
  CHECK_FALSE(hub.concerns(pending, scan));
  auto own = hub.watch(Filter{"/bench/1", false}, 0, [] {});
  CHECK(hub.concerns(pending, scan));
  own.reset();
  scan = {};
  // A non-recursive watch on the parent hears of a child created, not of one changed.
  auto parent = hub.watch(Filter{"/bench", false}, 0, [] {});
  CHECK(hub.concerns(pending, scan));
  pending.pop_back();
  scan = {};
  CHECK_FALSE(hub.concerns(pending, scan));
  CHECK(registered == 3);
}
