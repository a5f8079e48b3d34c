#include <catch2/catch.hpp>

#include "coordinator/Path.h"

using namespace warden::coordinator;

TEST_CASE("well-formed paths pass validation") {
  for (const char* path : {"/", "/a", "/a/b/c", "/app/db.url", "/x-y_z/~1", "/.hidden", "/a..b", "/ü/日本",
                           "/with space", "/percent%20stays"}) {
    INFO(path);
    CHECK_FALSE(checkPath(path).has_value());
  }
  CHECK_FALSE(checkPath("/" + std::string(1023, 'a')).has_value());
}

TEST_CASE("malformed paths are refused with a reason") {
  struct Case {
    std::string path;
    std::string reasonContains;
  };
  const Case cases[] = {
      {"", "start with '/'"},
      {"a/b", "start with '/'"},
      {"/a/", "end with '/'"},
      {"//", "end with '/'"},
      {"/a//b", "empty component"},
      {"/.", "'.' or '..'"},
      {"/a/..", "'.' or '..'"},
      {"/a/./b", "'.' or '..'"},
      {std::string("/a\0b", 4), "NUL"},
      {"/a\nb", "control"},
      {"/a\x7f", "control"},
      {"/\xff\xfe", "UTF-8"},
      {"/\xc0\xaf", "UTF-8"},       // overlong '/'
      {"/\xed\xa0\x80", "UTF-8"},   // surrogate
  };
  for (const auto& c : cases) {
    INFO(c.path);
    auto problem = checkPath(c.path);
    REQUIRE(problem.has_value());
    CHECK_FALSE(problem->tooLong);
    CHECK_THAT(problem->message, Catch::Contains(c.reasonContains));
  }
}

TEST_CASE("a path over 1024 bytes is too long rather than malformed") {
  auto problem = checkPath("/" + std::string(1024, 'a'));
  REQUIRE(problem.has_value());
  CHECK(problem->tooLong);
}

TEST_CASE("parent and name and child of a path") {
  CHECK(parentOf("/a") == "/");
  CHECK(parentOf("/a/b/c") == "/a/b");
  CHECK(nameOf("/a/b/c") == "c");
  CHECK(nameOf("/") == "");
  CHECK(childOf("/", "a") == "/a");
  CHECK(childOf("/a", "b") == "/a/b");
}

TEST_CASE("only /_warden and below are reserved") {
  CHECK(isReserved("/_warden"));
  CHECK(isReserved("/_warden/locks/x"));
  CHECK_FALSE(isReserved("/_wardens"));
  CHECK_FALSE(isReserved("/app/_warden"));
  CHECK_FALSE(isReserved("/"));
}
