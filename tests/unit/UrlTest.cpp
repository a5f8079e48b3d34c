#include <catch2/catch.hpp>

#include "api/Url.h"

using namespace warden::api;

TEST_CASE("percent-decoding") {
  CHECK(percentDecode("/a%2Fb%20c") == "/a/b c");
  CHECK(percentDecode("plus+stays") == "plus+stays");
  CHECK_FALSE(percentDecode("%").has_value());
  CHECK_FALSE(percentDecode("%4").has_value());
  CHECK_FALSE(percentDecode("%zz").has_value());
  CHECK(percentEncodePath("/a b/ü") == "/a%20b/%C3%BC");
  CHECK(percentDecode(percentEncodePath("/x?y#z%")) == "/x?y#z%");
}

TEST_CASE("targets split into a path and a query") {
  std::string problem;
  auto t = parseTarget("/v1/nodes/a?children&version=3&x=%41", problem);
  REQUIRE(t.has_value());
  CHECK(t->path == "/v1/nodes/a");
  CHECK(t->query.at("children").empty());
  CHECK(t->query.at("version") == "3");
  CHECK(t->query.at("x") == "A");

  CHECK_FALSE(parseTarget("/a?x=1&x=2", problem).has_value());
  CHECK_THAT(problem, Catch::Contains("twice"));
  CHECK_FALSE(parseTarget("/a?x=%g0", problem).has_value());
}
