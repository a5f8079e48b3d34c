// locks::DelayTimers: when each lock-delay may end on this node's clock, and what the leader is
// offered to end.

#include <catch2/catch.hpp>

#include "locks/DelayTimers.h"
#include "locks/LockQueue.h"

using warden::locks::DelayTimers;
using Due = std::vector<std::pair<std::string, std::uint64_t>>;

TEST_CASE("a lock-delay is due its length (stretched for clock rates) after this node learned of it, and offered again only after a while") {
  DelayTimers t;
  t.started("/_warden/locks/a", 7, 1000, 5000);
  CHECK(t.due(6000).empty());
  CHECK(t.due(6020).empty());  // 2% more: a clock running slow still waits the whole second
  CHECK(t.due(6021) == Due{{"/_warden/locks/a", 7}});
  CHECK(t.due(6022).empty());  // offered: not again at once
  CHECK(t.due(6021 + DelayTimers::kRetryMs) == Due{{"/_warden/locks/a", 7}});
  t.ended("/_warden/locks/a");
  CHECK(t.due(100000).empty());
  CHECK(t.size() == 0);
}

TEST_CASE("a lock-delay extended by a newer revision is due at the later end, under the newer revision") {
  DelayTimers t;
  t.started("/_warden/locks/a", 7, 5000, 1000);   // due about 6100
  t.started("/_warden/locks/a", 9, 1000, 2000);   // due about 3020: the first still runs
  CHECK(t.due(5000).empty());
  CHECK(t.due(7000) == Due{{"/_warden/locks/a", 9}});
}

TEST_CASE("what apply did to a lock node starts or ends its timer, and requests and elections leave it alone") {
  using warden::coordinator::watch::Event;
  using warden::coordinator::watch::EventType;
  DelayTimers t;
  Event set;
  set.type = EventType::Changed;
  set.path = "/_warden/locks/a";
  set.stat.modified = 12;
  set.data = warden::locks::encodeDelay({5000, 300});
  t.noteChange(set, 100);
  Event request = set;
  request.path = "/_warden/locks/a/r-00000000000000000012";
  t.noteChange(request, 100);
  Event election = set;
  election.path = "/_warden/elections/a";
  t.noteChange(election, 100);
  CHECK(t.size() == 1);
  CHECK(t.due(500) == Due{{"/_warden/locks/a", 12}});
  Event cleared = set;
  cleared.data.clear();
  t.noteChange(cleared, 600);
  CHECK(t.size() == 0);
  t.noteChange(set, 700);
  Event gone = set;
  gone.type = EventType::Deleted;
  t.noteChange(gone, 800);
  CHECK(t.size() == 0);
  CHECK(DelayTimers::endCommand("/_warden/locks/a", 12).name == "a");
}
