#include <catch2/catch.hpp>

#include "session/Keeper.h"

using warden::session::Keeper;

namespace {
constexpr std::uint64_t B = Keeper::kBucketMs;  // how late due() may report
}

TEST_CASE("keeper grants every session a fresh ttl when it takes over") {
  Keeper keeper;
  CHECK_FALSE(keeper.keepalive(1, 0));  // not leading: knows nothing
  keeper.takeOver(10'000, {{1, 1000}, {2, 2500}});
  CHECK(keeper.due(10'999).empty());
  CHECK(keeper.due(11'000 + B) == std::vector<std::uint64_t>{1});
  CHECK(keeper.due(12'499).empty());  // 1 is expiring already: reported once
  CHECK(keeper.due(12'500 + B) == std::vector<std::uint64_t>{2});
}

TEST_CASE("a keepalive moves the deadline and an expiring session refuses it") {
  Keeper keeper;
  keeper.takeOver(0, {{1, 1000}});
  CHECK(keeper.keepalive(1, 900) == 1000u);
  CHECK(keeper.due(1899).empty());
  CHECK(keeper.due(1900 + B) == std::vector<std::uint64_t>{1});
  CHECK_FALSE(keeper.keepalive(1, 1901 + B));
  CHECK_FALSE(keeper.keepalive(99, 1901 + B));
}

TEST_CASE("an expiry that was not applied is proposed again") {
  Keeper keeper;
  keeper.takeOver(0, {{1, 1000}});
  CHECK(keeper.due(1000 + B).size() == 1);
  CHECK(keeper.due(1000 + B + Keeper::kRetryExpiryMs - 1).empty());
  CHECK(keeper.due(1000 + 2 * B + Keeper::kRetryExpiryMs).size() == 1);
  keeper.ended(1);
  CHECK(keeper.due(100'000).empty());
  CHECK(keeper.size() == 0);
}

TEST_CASE("created sessions are tracked only while leading") {
  Keeper keeper;
  keeper.created(1, 1000, 0);
  CHECK(keeper.size() == 0);
  keeper.takeOver(0, {});
  keeper.created(2, 2000, 100);
  CHECK(keeper.keepalive(2, 200) == 2000u);
  keeper.stepDown();
  CHECK_FALSE(keeper.leading());
  CHECK(keeper.size() == 0);
  CHECK(keeper.due(1'000'000).empty());
}

TEST_CASE("a deadline moved by keepalives is never reported early or twice") {
  Keeper keeper;
  keeper.takeOver(0, {{1, 100}, {2, 100}});
  for (std::uint64_t t = 10; t <= 1000; t += 10) {
    CHECK(keeper.keepalive(1, t) == 100u);
    CHECK(keeper.due(t).size() == (t == 100 + B + 4 ? 1u : 0u));  // only 2 lapses, once
  }
  CHECK(keeper.due(1099).empty());
  CHECK(keeper.due(1100 + B) == std::vector<std::uint64_t>{1});
}
