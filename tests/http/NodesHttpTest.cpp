// The namespace API over real HTTP against the real binary (API.md "Nodes").

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "api/Base64.h"
#include "tests/http/Expect.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using warden::api::HttpResponse;

TEST_CASE("a node is created and read and set and deleted over HTTP with a revision in every reply") {
  TestServer server;
  auto created = server.request("POST", "/v1/nodes/app", R"({"data": "hello"})");
  REQUIRE(created.status == 201);
  CHECK(created.revision == 1u);
  json c = created.json();
  CHECK(c["path"] == "/app");
  for (const char* field : {"version", "cversion", "created", "modified", "ctime", "mtime", "ephemeral_owner",
                            "num_children", "data_length"}) {
    CHECK(c["stat"].contains(field));
  }
  CHECK(c["stat"]["data_length"] == 5);
  CHECK(c["stat"]["ephemeral_owner"].is_null());

  auto got = server.request("GET", "/v1/nodes/app");
  REQUIRE(got.status == 200);
  CHECK(got.revision == 1u);
  CHECK(got.json()["data"] == "hello");
  CHECK(got.json()["stat"] == c["stat"]);

  auto set = server.request("PUT", "/v1/nodes/app", R"({"data": "v2", "version": 0})");
  REQUIRE(set.status == 200);
  CHECK(set.revision == 2u);
  CHECK(set.json()["stat"]["version"] == 1);
  CHECK(set.json()["stat"]["modified"] == 2);

  auto deleted = server.request("DELETE", "/v1/nodes/app?version=1");
  CHECK(deleted.status == 204);
  CHECK(deleted.body.empty());
  CHECK(deleted.revision == 3u);
  requireError(server.request("GET", "/v1/nodes/app"), 404, "not_found");
}

TEST_CASE("conflicts and missing nodes answer with their error codes and change nothing") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/a", R"({"data": "x"})").status == 201);
  REQUIRE(server.request("POST", "/v1/nodes/a/child").status == 201);
  const auto rev = revisionOf(server);

  requireError(server.request("POST", "/v1/nodes/a"), 409, "exists");
  requireError(server.request("POST", "/v1/nodes/missing/child"), 404, "no_parent");
  requireError(server.request("PUT", "/v1/nodes/a", R"({"data": "y", "version": 7})"), 409, "bad_version");
  requireError(server.request("PUT", "/v1/nodes/nope", R"({"data": "y"})"), 404, "not_found");
  requireError(server.request("DELETE", "/v1/nodes/a"), 409, "not_empty");
  requireError(server.request("DELETE", "/v1/nodes/a?version=3"), 409, "bad_version");
  requireError(server.request("DELETE", "/v1/nodes/nope"), 404, "not_found");
  requireError(server.request("DELETE", "/v1/nodes/"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/nodes/e", R"({"ephemeral": true, "session": "abc"})"), 404,
               "session_not_found");

  CHECK(revisionOf(server) == rev);
  CHECK(server.request("GET", "/v1/nodes/a").json()["data"] == "x");
}

TEST_CASE("malformed input gets a clear 4xx and changes nothing") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/a").status == 201);
  const auto rev = revisionOf(server);

  for (const char* target : {"/v1/nodes/a//b", "/v1/nodes/a/", "/v1/nodes/a/./b", "/v1/nodes/a/..",
                             "/v1/nodes/a%00b", "/v1/nodes/a%zz", "/v1/nodes/bad%0Aname", "/v1/nodes/%FF"}) {
    INFO(target);
    requireError(server.request("POST", target), 400, "invalid_path");
    requireError(server.request("GET", target), 400, "invalid_path");
  }
  requireError(server.request("POST", "/v1/nodes/b", "{not json"), 400, "bad_json");
  requireError(server.request("POST", "/v1/nodes/b", "[1, 2]"), 400, "bad_json");
  requireError(server.request("POST", "/v1/nodes/b", R"({"data": "x", "colour": "red"})"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/nodes/b", R"({"data": 42})"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/nodes/b", R"({"data_b64": "***"})"), 400, "invalid_argument");
  requireError(server.request("PUT", "/v1/nodes/a", R"({"data": "x", "version": -1})"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/nodes/a?childs"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/nodes/a?children=maybe"), 400, "invalid_argument");
  requireError(server.request("DELETE", "/v1/nodes/a?version=x"), 400, "invalid_argument");
  requireError(server.request("DELETE", "/v1/nodes/a", R"({"version": 0})"), 400, "invalid_argument");

  requireError(server.request("POST", "/v1/nodes/" + std::string(1100, 'p')), 413, "too_large");
  requireError(server.request("POST", "/v1/nodes/big", json{{"data", std::string((1 << 20) + 1, 'x')}}.dump()), 413,
               "too_large");
  // A body over 1.5 MiB is refused while it is read.
  auto huge = rawExchange(server.port(), "POST /v1/nodes/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" +
                                             std::string(2000000, 'x'));
  CHECK_THAT(huge, Catch::StartsWith("HTTP/1.1 413"));
  CHECK_THAT(huge, Catch::Contains("too_large"));

  requireError(server.request("PATCH", "/v1/nodes/a"), 405, "method_not_allowed");
  CHECK_FALSE(server.request("PATCH", "/v1/nodes/a").allow.empty());
  requireError(server.request("POST", "/v1/status"), 405, "method_not_allowed");
  requireError(server.request("GET", "/v2/whatever"), 404, "not_found");

  CHECK(revisionOf(server) == rev);
  CHECK(server.request("HEAD", "/v1/nodes/b").status == 404);
}

TEST_CASE("the reserved /_warden prefix is read-only") {
  TestServer server;
  requireError(server.request("POST", "/v1/nodes/_warden"), 403, "forbidden");
  requireError(server.request("POST", "/v1/nodes/_warden/x", R"({"make_parents": true})"), 403, "forbidden");
  requireError(server.request("PUT", "/v1/nodes/_warden/x", R"({"create": true})"), 403, "forbidden");
  requireError(server.request("DELETE", "/v1/nodes/_warden"), 403, "forbidden");
  requireError(server.request("POST", "/v1/txn", R"({"ops": [{"op": "create", "path": "/_warden"}]})"), 403,
               "forbidden");
  CHECK(revisionOf(server) == 0);
}

TEST_CASE("reads with children or recursive or raw and HEAD") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/cfg/db/url", R"({"data": "pg://", "make_parents": true})").status == 201);
  REQUIRE(server.request("POST", "/v1/nodes/cfg/db/pool", R"({"data": "8"})").status == 201);
  REQUIRE(server.request("POST", "/v1/nodes/cfg/api").status == 201);

  auto listed = server.request("GET", "/v1/nodes/cfg?children");
  CHECK(listed.json()["children"] == json::array({"api", "db"}));
  CHECK(server.request("GET", "/v1/nodes/?children").json()["children"] == json::array({"cfg"}));
  CHECK(server.request("GET", "/v1/nodes").json()["path"] == "/");

  json tree = server.request("GET", "/v1/nodes/cfg?recursive").json();
  CHECK(tree["path"] == "/cfg");
  REQUIRE(tree["children"].size() == 2);
  CHECK(tree["children"][1]["path"] == "/cfg/db");
  CHECK(tree["children"][1]["children"][0]["path"] == "/cfg/db/pool");
  CHECK(tree["children"][1]["children"][1]["data"] == "pg://");

  auto raw = server.request("GET", "/v1/nodes/cfg/db/url?raw");
  CHECK(raw.status == 200);
  CHECK(raw.body == "pg://");
  CHECK(raw.contentType == "application/octet-stream");
  requireError(server.request("GET", "/v1/nodes/cfg?raw&children"), 400, "invalid_argument");

  auto head = server.request("HEAD", "/v1/nodes/cfg/db");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.revision == 3u);
  CHECK(server.request("HEAD", "/v1/nodes/cfg/nope").status == 404);
}

TEST_CASE("binary data goes in and out as base64 while text stays text") {
  TestServer server;
  const std::string bytes("\x00\xff\x10 binary", 10);
  REQUIRE(server.request("POST", "/v1/nodes/bin", json{{"data_b64", warden::api::base64Encode(bytes)}}.dump()).status ==
          201);
  json got = server.request("GET", "/v1/nodes/bin").json();
  CHECK_FALSE(got.contains("data"));
  CHECK(warden::api::base64Decode(got["data_b64"].get<std::string>()) == bytes);
  CHECK(server.request("GET", "/v1/nodes/bin?raw").body == bytes);

  REQUIRE(server.request("PUT", "/v1/nodes/bin", R"({"data": "naïve ☃"})").status == 200);
  CHECK(server.request("GET", "/v1/nodes/bin").json()["data"] == "naïve ☃");
}

TEST_CASE("percent-encoded path components are decoded") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/with%20space").status == 201);
  REQUIRE(server.request("POST", "/v1/nodes/with%20space/inner").status == 201);
  CHECK(server.request("GET", "/v1/nodes/with%20space?children").json()["children"] == json::array({"inner"}));
  CHECK(server.request("GET", "/v1/nodes/with space/inner").status == 400);  // not valid HTTP: refused
}

TEST_CASE("sequential creates get increasing 10-digit suffixes") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/queue").status == 201);
  for (int i = 0; i < 3; ++i) {
    auto r = server.request("POST", "/v1/nodes/queue/job-", R"({"sequential": true, "data": "work"})");
    REQUIRE(r.status == 201);
    CHECK(r.json()["path"] == "/queue/job-000000000" + std::to_string(i));
  }
}

TEST_CASE("set with create makes the node and a txn applies all or nothing at one revision") {
  TestServer server;
  REQUIRE(server.request("PUT", "/v1/nodes/flag", R"({"data": "on", "create": true})").status == 200);
  CHECK(server.request("GET", "/v1/nodes/flag").json()["data"] == "on");

  auto ok = server.request("POST", "/v1/txn", R"({"ops": [
      {"op": "check", "path": "/flag", "version": 0},
      {"op": "create", "path": "/svc", "data": "1"},
      {"op": "set", "path": "/flag", "data": "off"},
      {"op": "create", "path": "/svc/n-", "sequential": true}]})");
  REQUIRE(ok.status == 200);
  json body = ok.json();
  CHECK(body["revision"] == 2);
  CHECK(ok.revision == 2u);
  REQUIRE(body["results"].size() == 4);
  CHECK(body["results"][1]["op"] == "create");
  CHECK(body["results"][3]["path"] == "/svc/n-0000000000");
  CHECK(server.request("GET", "/v1/nodes/svc").json()["stat"]["created"] == 2);

  auto failed = server.request("POST", "/v1/txn", R"({"ops": [
      {"op": "delete", "path": "/svc", "recursive": true},
      {"op": "set", "path": "/flag", "data": "x", "version": 0}]})");
  requireError(failed, 409, "bad_version");
  CHECK(failed.json()["failed_op"] == 1);
  CHECK(server.request("HEAD", "/v1/nodes/svc").status == 200);
  CHECK(revisionOf(server) == 2);

  auto missing = server.request("POST", "/v1/txn", R"({"ops": [{"op": "check", "path": "/nope"}]})");
  requireError(missing, 409, "not_found");
  CHECK(missing.json()["failed_op"] == 0);

  auto invalid = server.request("POST", "/v1/txn", R"({"ops": [{"op": "check", "path": "/a"}, {"op": "jump", "path": "/a"}]})");
  requireError(invalid, 400, "invalid_argument");
  CHECK(invalid.json()["failed_op"] == 1);
  requireError(server.request("POST", "/v1/txn", R"({"ops": []})"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/txn", R"({"ops": [], "extra": 1})"), 400, "invalid_argument");
  json tooMany = json::array();
  for (int i = 0; i < 1025; ++i) tooMany.push_back({{"op", "check"}, {"path", "/"}});
  requireError(server.request("POST", "/v1/txn", json{{"ops", tooMany}}.dump()), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/txn"), 405, "method_not_allowed");
}

TEST_CASE("min_revision waits until the node has applied that revision") {
  TestServer server;
  auto created = server.request("POST", "/v1/nodes/ryw", R"({"data": "1"})");
  REQUIRE(created.revision);
  const auto rev = *created.revision;
  auto now = server.request("GET", "/v1/nodes/ryw?min_revision=" + std::to_string(rev));
  CHECK(now.status == 200);
  CHECK(now.revision >= rev);

  auto start = std::chrono::steady_clock::now();
  auto tooNew = server.request("GET", "/v1/nodes/ryw?min_revision=" + std::to_string(rev + 1) + "&wait_ms=300");
  requireError(tooNew, 503, "unavailable");
  // It waited out its wait_ms before refusing: a lower bound that no delay can break (300 ms
  // asked; 250 leaves room for the clocks' granularity).
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));

  // A write arriving while the read waits releases it.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    warden::api::HttpClient client({server.endpoint()});
    client.request("PUT", "/v1/nodes/ryw", R"({"data": "2"})");
  });
  // 25 s: the write comes after a 100 ms sleep, but a slow machine may stall the thread for long.
  auto waited = server.request("GET", "/v1/nodes/ryw?min_revision=" + std::to_string(rev + 1) + "&wait_ms=25000");
  writer.join();
  CHECK(waited.status == 200);
  CHECK(waited.json()["data"] == "2");
  requireError(server.request("GET", "/v1/nodes/ryw?min_revision=x"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/nodes/ryw?wait_ms=10"), 400, "invalid_argument");
}
