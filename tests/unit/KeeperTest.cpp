#include <catch2/catch.hpp>

#include "session/Keeper.h"

using warden::session::Keeper;

TEST_CASE("keeper grants every session a fresh ttl when it takes over") {
  Keeper keeper;
  CHECK_FALSE(keeper.keepalive(1, 0));  // not leading: knows nothing
  keeper.takeOver(10'000, {{1, 1000}, {2, 2500}});
  CHECK(keeper.due(10'999).empty());
  CHECK(keeper.due(11'000) == std::vector<std::uint64_t>{1});
  CHECK(keeper.due(12'499).empty());  // 1 is expiring already: reported once
  CHECK(keeper.due(12'500) == std::vector<std::uint64_t>{2});
}

TEST_CASE("a keepalive moves the deadline and an expiring session refuses it") {
  Keeper keeper;
  keeper.takeOver(0, {{1, 1000}});
  CHECK(keeper.keepalive(1, 900) == 1000u);
  CHECK(keeper.due(1899).empty());
  CHECK(keeper.due(1900) == std::vector<std::uint64_t>{1});
  CHECK_FALSE(keeper.keepalive(1, 1901));
  CHECK_FALSE(keeper.keepalive(99, 1901));
}

TEST_CASE("an expiry that was not applied is proposed again") {
  Keeper keeper;
  keeper.takeOver(0, {{1, 1000}});
  CHECK(keeper.due(1000).size() == 1);
  CHECK(keeper.due(1000 + Keeper::kRetryExpiryMs - 1).empty());
  CHECK(keeper.due(1000 + Keeper::kRetryExpiryMs).size() == 1);
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
