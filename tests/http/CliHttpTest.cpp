// The client commands of the warden binary, run as a process against a real node, and against
// scripted fake nodes where a real one cannot be made to misbehave (503s, malformed replies,
// hang-ups, pagination).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "api/Base64.h"
#include "api/HttpClient.h"
#include "tests/http/BackgroundWarden.h"
#include "tests/http/FakeServer.h"
#include "tests/http/TestServer.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using namespace std::chrono_literals;

namespace {

std::string raw(TestServer& server, const std::string& path) {
  auto response = server.request("GET", "/v1/nodes" + path + "?raw");
  REQUIRE(response.status == 200);
  return response.body;
}

bool isHexKey(const std::string& key) {
  return key.size() == 32 && key.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

TEST_CASE("a boolean flag given =false is off: rm --recursive=false keeps the subtree") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"create", "/a/b", "-p"}).exitCode == 0);

  auto refused = cli(ep, {"rm", "/a", "--recursive=false"});
  CHECK(refused.exitCode == 1);
  CHECK_THAT(refused.err, Catch::Contains("not_empty"));
  CHECK(server.request("GET", "/v1/nodes/a/b").status == 200);
  CHECK(cli(ep, {"rm", "/a", "--recursive=0"}).exitCode == 1);

  auto bad = cli(ep, {"rm", "/a", "--recursive=maybe"});
  CHECK(bad.exitCode == 2);
  requireOneErrorLine(bad);
  CHECK(server.request("GET", "/v1/nodes/a/b").status == 200);

  CHECK(cli(ep, {"get", "/a", "--children=false"}).out == "");  // its (empty) data, not "b"
  CHECK(cli(ep, {"get", "/a", "--children=true"}).out == "b\n");
  CHECK(cli(ep, {"rm", "/a", "--recursive=1"}).exitCode == 0);
  CHECK(server.request("GET", "/v1/nodes/a").status == 404);

  // serve's booleans too: --dev=false is not --dev, so the cluster flags are required.
  CHECK(runWarden({"serve", "--dev=false"}).exitCode == 2);
}

TEST_CASE("values that are not UTF-8 text or hold NUL bytes are stored and printed byte for byte") {
  TestServer server;
  const std::string ep = server.endpoint();
  const std::string binary("\xff\xfe\x00" "bin", 6);
  REQUIRE(cli(ep, {"put", "/bin", "-", "--create"}, binary).exitCode == 0);
  CHECK(raw(server, "/bin") == binary);
  CHECK(cli(ep, {"get", "/bin"}).out == binary);  // raw bytes, no newline added
  auto asJson = json::parse(cli(ep, {"get", "/bin", "-o", "json"}).out);
  CHECK(asJson["data_b64"] == warden::api::base64Encode(binary));

  const std::string withNul("a\0b", 3);  // valid UTF-8, but a NUL byte
  REQUIRE(cli(ep, {"create", "/nul", "-"}, withNul).exitCode == 0);
  CHECK(raw(server, "/nul") == withNul);

  REQUIRE(cli(ep, {"put", "/arg", "\xc3\x28", "--create"}).exitCode == 0);  // a malformed 2-byte sequence
  CHECK(raw(server, "/arg") == "\xc3\x28");
  REQUIRE(cli(ep, {"put", "/text", "grüße", "--create"}).exitCode == 0);
  CHECK(server.request("GET", "/v1/nodes/text").json()["data"] == "grüße");
  CHECK(cli(ep, {"get", "/text"}).out == "grüße\n");

  CHECK(cli(ep, {"session", "create", "--name", "\xff"}).exitCode == 2);  // a name is text
}

TEST_CASE("global flags go before or after the command and -- ends the flags") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(runWarden({"--endpoints", ep, "put", "/x", "1", "--create"}).exitCode == 0);
  CHECK(runWarden({"--endpoints", ep, "get", "/x"}).out == "1\n");
  CHECK(runWarden({"--endpoints=" + ep, "get", "/x"}).out == "1\n");
  CHECK(runWarden({"get", "/x", "--endpoints", ep}).out == "1\n");
  CHECK(json::parse(runWarden({"-o", "json", "--endpoints", ep, "get", "/x"}).out)["data"] == "1");
  CHECK(json::parse(runWarden({"--output=json", "get", "--endpoints", ep, "/x"}).out)["data"] == "1");

  REQUIRE(runWarden({"--endpoints", ep, "put", "/x", "--", "--literal-value"}).exitCode == 0);
  CHECK(raw(server, "/x") == "--literal-value");
  REQUIRE(runWarden({"put", "--endpoints", ep, "/x", "--", "-o"}).exitCode == 0);
  CHECK(raw(server, "/x") == "-o");

  auto unknown = runWarden({"--frobnicate", "get", "/x"});
  CHECK(unknown.exitCode == 2);
  requireOneErrorLine(unknown);
  auto twice = runWarden({"--endpoints", ep, "get", "/x", "--endpoints", ep});
  CHECK(twice.exitCode == 2);
  requireOneErrorLine(twice);
}

TEST_CASE("every error is one line on stderr with its documented exit code") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"put", "/n", "v", "--create"}).exitCode == 0);

  auto usage = cli(ep, {"put", "/n"});
  CHECK(usage.exitCode == 2);
  requireOneErrorLine(usage);
  CHECK_THAT(usage.err, Catch::Contains("missing VALUE") && Catch::Contains("warden put PATH"));

  auto refused = cli(ep, {"put", "/n", "w", "--version", "7"});
  CHECK(refused.exitCode == 1);
  requireOneErrorLine(refused);
  CHECK_THAT(refused.err, Catch::StartsWith("warden: bad_version: "));

  auto missing = cli(ep, {"get", "/nope"});
  CHECK(missing.exitCode == 4);
  requireOneErrorLine(missing);
  CHECK_THAT(missing.err, Catch::StartsWith("warden: not_found: "));
  CHECK(cli(ep, {"create", "/no/parent"}).exitCode == 4);

  const std::string a = deadEndpoint(), b = deadEndpoint(), c = deadEndpoint();
  auto unreachable = runWarden({"get", "/", "--endpoints", a + "," + b + "," + c});
  CHECK(unreachable.exitCode == 3);
  requireOneErrorLine(unreachable);
  CHECK_THAT(unreachable.err, Catch::StartsWith("warden: no answer from ") && Catch::Contains(a + " (") &&
                                  Catch::Contains(b + " (") && Catch::Contains(c + " ("));

  FakeServer broken([](const FakeServer::Request&) {
    return FakeServer::reply(500, R"({"error":"internal","message":"a bug\nin two lines"})");
  });
  auto internal = cli(broken.endpoint(), {"get", "/n"});
  CHECK(internal.exitCode == 3);
  requireOneErrorLine(internal);
  CHECK_THAT(internal.err, Catch::Contains("internal: a bug in two lines"));

  CHECK(cli(ep, {"get", "/n", "--endpoints", ep}).exitCode == 2);  // given twice
  CHECK(runWarden({"frobnicate"}).exitCode == 2);
}

TEST_CASE("a malformed reply ends in one error line and exit 3, never a crash") {
  struct Case {
    std::vector<std::string> args;
    std::string reply;
  };
  const std::vector<Case> cases = {
      {{"get", "/n"}, FakeServer::reply(200, R"({"data":"x"})", "not-a-number")},
      {{"get", "/n"}, FakeServer::reply(200, R"({"data":"x"})", "99999999999999999999999")},
      {{"get", "/n"}, FakeServer::reply(200, "not json")},
      {{"get", "/n"}, FakeServer::reply(200, R"({"data":5})")},
      {{"get", "/n"}, FakeServer::reply(200, R"({"data_b64":"!!"})")},
      {{"get", "/n"}, FakeServer::reply(200, R"([1,2])")},
      {{"put", "/n", "v"}, FakeServer::reply(200, R"({"path":5})")},
      {{"put", "/n", "v"}, FakeServer::reply(200, R"({"path":"/n","stat":[]})")},
      {{"create", "/n"}, FakeServer::reply(201, R"({})")},
      {{"ls", "/"}, FakeServer::reply(200, R"({"children":[1]})")},
      {{"ls", "/"}, FakeServer::reply(200, R"({"children":"a"})")},
      {{"ls", "/"}, FakeServer::reply(200, R"({"children":[],"next":7})")},
      {{"txn"}, FakeServer::reply(200, R"({"revision":1,"results":[{"op":"set"}]})")},
      {{"status"}, FakeServer::reply(200, R"({"id":1,"leader":1,"revision":1,"applied_index":1,"members":[{}]})")},
      {{"session", "create"}, FakeServer::reply(201, R"({"id":null})")},
      {{"session", "ls"}, FakeServer::reply(200, R"({"sessions":[{"id":"1","name":"n","ttl_ms":1}]})")},
      {{"session", "keepalive", "1"}, FakeServer::reply(200, R"({"ttl_ms":1})")},
  };
  for (const auto& c : cases) {
    FakeServer fake([&](const FakeServer::Request&) { return c.reply; });
    auto result = cli(fake.endpoint(), c.args, c.args[0] == "txn" ? R"({"ops":[]})" : "");
    INFO(c.args[0] << " answered " << c.reply);
    CHECK(result.exitCode == 3);
    requireOneErrorLine(result);
    CHECK_THAT(result.err, Catch::Contains("malformed reply from " + fake.endpoint()));
  }
}

TEST_CASE("the CLI moves on from 503 and unreachable nodes and repeats a write under one Idempotency-Key") {
  TestServer server;
  FakeServer unavailable([](const FakeServer::Request&) { return FakeServer::noLeader(); });
  const std::string dead = deadEndpoint();

  auto put = cli(unavailable.endpoint() + "," + dead + "," + server.endpoint(), {"put", "/k", "v", "--create"});
  CHECK(put.exitCode == 0);
  CHECK(raw(server, "/k") == "v");
  auto seen = unavailable.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "PUT");
  CHECK(isHexKey(seen[0].header("idempotency-key")));

  // Nowhere to go: every attempt (each endpoint twice) carries the same key; the error names
  // every endpoint tried.
  FakeServer other([](const FakeServer::Request&) { return FakeServer::noLeader(); });
  auto failed = cli(unavailable.endpoint() + "," + other.endpoint() + "," + dead, {"create", "/j-", "--sequential"});
  CHECK(failed.exitCode == 3);
  requireOneErrorLine(failed);
  CHECK_THAT(failed.err, Catch::StartsWith("warden: no_quorum: no leader (tried ") &&
                             Catch::Contains(unavailable.endpoint() + " (503 no_quorum)") &&
                             Catch::Contains(other.endpoint() + " (503 no_quorum)") && Catch::Contains(dead + " ("));
  std::set<std::string> keys;
  auto first = unavailable.requests(), second = other.requests();
  CHECK(first.size() == 3);  // the put above, then two tries of the create
  CHECK(second.size() == 2);
  for (std::size_t i = 1; i < first.size(); ++i) keys.insert(first[i].header("idempotency-key"));
  for (const auto& r : second) keys.insert(r.header("idempotency-key"));
  REQUIRE(keys.size() == 1);
  CHECK(isHexKey(*keys.begin()));
  CHECK(*keys.begin() != seen[0].header("idempotency-key"));  // a new write, a new key

  // Reads carry no key and move on as well.
  CHECK(cli(unavailable.endpoint() + "," + server.endpoint(), {"get", "/k"}).out == "v\n");
  CHECK(unavailable.requests().back().header("idempotency-key").empty());
}

TEST_CASE("a write whose connection broke mid-exchange is repeated elsewhere only under an Idempotency-Key") {
  TestServer server;
  FakeServer hangUp([](const FakeServer::Request&) { return std::string(); });  // reads, then closes
  const std::vector<std::string> endpoints = {hangUp.endpoint(), server.endpoint()};

  warden::api::HttpClient plain(endpoints, 5s, warden::api::RetryPolicy{.failoverOnUnavailable = true});
  CHECK_THROWS_AS(plain.request("POST", "/v1/nodes/once"), warden::api::HttpClientError);
  CHECK(server.request("GET", "/v1/nodes/once").status == 404);  // not sent twice

  warden::api::HttpClient keyed(endpoints, 5s, warden::api::RetryPolicy{.failoverOnUnavailable = true});
  auto response = keyed.send({"POST", "/v1/nodes/once", "", "application/json", "0123456789abcdef0123456789abcdef"});
  CHECK(response.status == 201);
  CHECK(response.endpoint == server.endpoint());
  CHECK_THAT(response.tried, Catch::StartsWith(hangUp.endpoint() + " (") && Catch::EndsWith(server.endpoint() + " (201)"));
  CHECK(hangUp.requests().size() == 2);
  CHECK(hangUp.requests().back().header("idempotency-key") == "0123456789abcdef0123456789abcdef");

  // Without failoverOnUnavailable a 503 is the answer (the tests' own clients see it as it is).
  FakeServer unavailable([](const FakeServer::Request&) { return FakeServer::noLeader(); });
  warden::api::HttpClient strict({unavailable.endpoint(), server.endpoint()});
  CHECK(strict.request("GET", "/v1/nodes/once").status == 503);

  // With it, a GET goes on to the node that answers; with nowhere to go, the last 503 comes back
  // naming every endpoint tried.
  warden::api::HttpClient failover({unavailable.endpoint(), server.endpoint()}, 5s,
                                   warden::api::RetryPolicy{.failoverOnUnavailable = true});
  CHECK(failover.request("GET", "/v1/nodes/once").status == 200);
  FakeServer other([](const FakeServer::Request&) { return FakeServer::noLeader(); });
  warden::api::HttpClient stuck({unavailable.endpoint(), other.endpoint()}, 5s,
                                warden::api::RetryPolicy{.failoverOnUnavailable = true});
  auto last = stuck.request("GET", "/v1/nodes/once");
  CHECK(last.status == 503);
  CHECK(last.tried == unavailable.endpoint() + " (503 no_quorum), " + other.endpoint() + " (503 no_quorum)");
}

TEST_CASE("session keepalive --every keeps going through 503s and a restart until the session is gone") {
  TestServer server;
  FakeServer unavailable([](const FakeServer::Request&) { return FakeServer::noLeader(); });
  auto created = cli(server.endpoint(), {"session", "create", "--ttl", "6000"});
  REQUIRE(created.exitCode == 0);
  const std::string id = created.out.substr(0, 16);

  auto keeper = std::async(std::launch::async, [&] {
    return cli(unavailable.endpoint() + "," + server.endpoint(), {"session", "keepalive", id, "--every", "200"});
  });
  std::this_thread::sleep_for(800ms);
  server.kill9();
  std::this_thread::sleep_for(1000ms);  // every endpoint fails: the loop reports and goes on
  server.start();
  // The restarted node grants the session a fresh ttl of 6 s: alive after 7.5 s only if the
  // keepalives came back. (6 s, a keepalive every 200 ms: a stall of seconds cannot expire it
  // while they come; this sleep can only be too long, never too short, for a working keeper.)
  std::this_thread::sleep_for(7500ms);
  REQUIRE(server.request("GET", "/v1/sessions/" + id).status == 200);
  REQUIRE(keeper.wait_for(0s) == std::future_status::timeout);  // still running
  REQUIRE(server.request("DELETE", "/v1/sessions/" + id).status == 204);
  REQUIRE(keeper.wait_for(15s) == std::future_status::ready);
  auto result = keeper.get();

  CHECK(result.exitCode == 4);
  const std::string alive = id + " alive, ttl 6000 ms\n";
  std::size_t count = 0;
  for (std::size_t at = result.out.find(alive); at != std::string::npos; at = result.out.find(alive, at + 1)) ++count;
  CHECK(count >= 6);  // about 4 before the outage and 35 after
  INFO(result.err);
  CHECK_THAT(result.err, Catch::Contains("not acknowledged") && Catch::Contains(server.endpoint()));
  const std::string lastLine = result.err.substr(result.err.rfind('\n', result.err.size() - 2) + 1);
  CHECK_THAT(lastLine, Catch::StartsWith("warden: session " + id + " is gone: session_not_found"));
}

TEST_CASE("with -o json every command prints the server's replies as they are") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"create", "/j/k", "-p", "v"}).exitCode == 0);
  CHECK(cli(ep, {"get", "/j/k", "-o", "json"}).out == server.request("GET", "/v1/nodes/j/k").body + "\n");
  CHECK(cli(ep, {"ls", "/j", "-o", "json"}).out == server.request("GET", "/v1/nodes/j?children").body + "\n");
  CHECK(cli(ep, {"get", "/j", "--children", "-o", "json"}).out ==
        server.request("GET", "/v1/nodes/j?children").body + "\n");
  CHECK(json::parse(cli(ep, {"put", "/j/k", "w", "-o", "json"}).out)["stat"]["version"] == 1);
  CHECK(json::parse(cli(ep, {"status", "-o", "json"}).out)["members"].size() ==
        server.request("GET", "/v1/status").json()["members"].size());
  const std::string id = json::parse(cli(ep, {"session", "create", "-o", "json"}).out)["id"];
  CHECK(cli(ep, {"session", "ls", id, "-o", "json"}).out == server.request("GET", "/v1/sessions/" + id).body + "\n");
  CHECK(cli(ep, {"session", "close", id, "-o", "json"}).out == "");  // 204: no body
  CHECK(cli(ep, {"rm", "/j/k", "-o", "json"}).out == "");

  auto missing = cli(ep, {"get", "/j/k", "-o", "json"});
  CHECK(missing.exitCode == 4);
  CHECK(json::parse(missing.out)["error"] == "not_found");

  // As they are: not parsed and printed again.
  const std::string odd = R"({ "path" : "/x",  "data": "1", "stat": {}, "extra": [1, 2] })";
  FakeServer fake([&](const FakeServer::Request&) { return FakeServer::reply(200, odd); });
  CHECK(cli(fake.endpoint(), {"get", "/x", "-o", "json"}).out == odd + "\n");
  CHECK(cli(fake.endpoint(), {"put", "/x", "1", "-o", "json"}).out == odd + "\n");
}

TEST_CASE("warden version and warden --version print the version") {
  CHECK(runWarden({"--version"}).out == std::string("warden ") + WARDEN_VERSION + "\n");
  CHECK(runWarden({"version"}).out == std::string("warden ") + WARDEN_VERSION + "\n");
  CHECK(runWarden({"version"}).exitCode == 0);
  CHECK(runWarden({"version", "extra"}).exitCode == 2);
}

// (Named "bench ..." so that the sanitizer passes, whose warden has no load generators, skip it.)
TEST_CASE("bench commands print their usage for --help or -h and exit 0") {
  for (const char* command : {"bench", "bench-sessions", "bench-watch", "bench-locks", "bench-compare", "bench-scale"}) {
    for (const char* flag : {"--help", "-h"}) {
      INFO(command << " " << flag);
      const auto run = runWarden({command, flag});
      CHECK(run.exitCode == 0);
      CHECK(run.out.starts_with(std::string("usage: warden ") + command + " "));
    }
  }
  CHECK(runWarden({"bench", "--connections"}).exitCode == 2);  // a valued flag without its value is still an error
}

TEST_CASE("get --children prints only the children's names and ls follows the server's pages") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"create", "/p", "data of p"}).exitCode == 0);
  REQUIRE(cli(ep, {"create", "/p/a"}).exitCode == 0);
  REQUIRE(cli(ep, {"create", "/p/b c"}).exitCode == 0);
  CHECK(cli(ep, {"get", "/p"}).out == "data of p\n");
  CHECK(cli(ep, {"get", "/p", "--children"}).out == "a\nb c\n");
  CHECK(cli(ep, {"ls", "/p"}).out == "a\nb c\n");
  CHECK(cli(ep, {"ls"}).out == "p\n");

  // A server that paginates: each reply but the last carries "next", asked for with after=.
  FakeServer paging([](const FakeServer::Request& r) {
    if (r.target == "/v1/nodes/p?children") return FakeServer::reply(200, R"({"children":["a","b&c"],"next":"b&c"})");
    if (r.target == "/v1/nodes/p?children&after=b%26c") return FakeServer::reply(200, R"({"children":["d"]})");
    return FakeServer::reply(400, R"({"error":"invalid_argument","message":"unexpected"})");
  });
  auto listed = cli(paging.endpoint(), {"ls", "/p"});
  CHECK(listed.exitCode == 0);
  CHECK(listed.out == "a\nb&c\nd\n");
  CHECK(paging.requests().size() == 2);
  auto pages = cli(paging.endpoint(), {"ls", "/p", "-o", "json"});
  CHECK(pages.out == R"({"children":["a","b&c"],"next":"b&c"})" "\n" R"({"children":["d"]})" "\n");

  // A cursor that does not move on ends the loop.
  FakeServer stuck([](const FakeServer::Request&) { return FakeServer::reply(200, R"({"children":["a"],"next":"a"})"); });
  auto looping = cli(stuck.endpoint(), {"ls", "/p"});
  CHECK(looping.exitCode == 3);
  requireOneErrorLine(looping);
  CHECK(stuck.requests().size() == 2);
}

TEST_CASE("bench works under a fresh prefix node that it deletes at the end unless --keep") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"create", "/bench/mine", "-p"}).exitCode == 0);  // someone else's /bench
  auto run = runWarden({"bench", "--endpoints", ep, "--duration", "1", "--connections", "2", "--keys", "10",
                        "--mix", "put=1,get=1,create=1"});
  INFO(run.out << run.err);
  CHECK(run.exitCode == 0);
  CHECK_THAT(run.out, Catch::Contains("nodes under /bench-") && Catch::Contains("deleted /bench-"));
  CHECK(cli(ep, {"ls"}).out == "bench\n");
  CHECK(cli(ep, {"ls", "/bench"}).out == "mine\n");

  auto kept = runWarden({"bench", "--endpoints", ep, "--duration", "1", "--connections", "1", "--keys", "10",
                         "--prefix", "/runs/b", "--keep"});
  CHECK(kept.exitCode == 0);
  CHECK_THAT(kept.out, Catch::Contains("kept /runs/b-"));
  auto runs = cli(ep, {"ls", "/runs"}).out;
  REQUIRE(runs.starts_with("b-"));
  CHECK(runs.size() == 2 + 16 + 1);
  const std::string keys = cli(ep, {"ls", "/runs/" + runs.substr(0, runs.size() - 1)}).out;
  CHECK(std::count(keys.begin(), keys.end(), '\n') == 11);  // k0 to k9, and c

  auto usage = runWarden({"bench", "--keep=maybe"});
  CHECK(usage.exitCode == 2);
  requireOneErrorLine(usage);
}

TEST_CASE("bench --server-pids prints the server's CPU and wake-ups a request by thread") {
  TestServer server;
  const std::string pid = std::to_string(server.pid());
  auto run = runWarden({"bench", "--endpoints", server.endpoint(), "--duration", "1", "--connections", "4", "--keys",
                        "10", "--mix", "put=1", "--server-pids", pid});
  INFO(run.out << run.err);
  CHECK(run.exitCode == 0);
  CHECK_THAT(run.out, Catch::Contains("server CPU ") && Catch::Contains(" us a request (1 processes), ") &&
                          Catch::Contains("wake-ups a request"));
  // The node's named threads, each on a line of its own with the server's pid.
  for (const char* thread : {"warden-driver", "warden-http1"}) {
    CHECK_THAT(run.out, Catch::Matches("[\\s\\S]*\\n    pid " + pid + " +" + thread + " [\\s\\S]*"));
  }
  // The node's log entries over the run (a single node's log too has a commit index).
  CHECK_THAT(run.out, Catch::Matches("[\\s\\S]*\\n  log slots [0-9]+ for [0-9]+ writes: [0-9.]+ writes a slot\\n[\\s\\S]*"));
  for (const std::string bad : {"0", "12,x", "-4", ""}) {
    auto refused = runWarden({"bench", "--server-pids", bad});
    CHECK(refused.exitCode == 2);
    requireOneErrorLine(refused);
  }
}

TEST_CASE("bench prepares large values in transactions that fit a request body") {
  // 1,000 keys of 5,000 bytes: one transaction of them all would be 5 MB, over the 1.5 MiB body limit.
  TestServer server;
  auto run = runWarden({"bench", "--endpoints", server.endpoint(), "--duration", "1", "--connections", "1", "--keys",
                        "1000", "--value-size", "5000", "--mix", "get=1", "--keep", "--prefix", "/big/b"});
  INFO(run.out << run.err);
  REQUIRE(run.exitCode == 0);
  auto runs = runWarden({"ls", "/big", "--endpoints", server.endpoint()}).out;
  REQUIRE(runs.size() > 1);
  const auto stat = server.request("GET", "/v1/nodes/big/" + runs.substr(0, runs.size() - 1) + "?children").json()["stat"];
  CHECK(stat["num_children"] == 1001);  // k0 to k999, and c
}

TEST_CASE("bench deletes its nodes even when they are more than one write may delete") {
  TestServer server({"--max-txn-nodes", "5"});
  auto run = runWarden({"bench", "--endpoints", server.endpoint(), "--duration", "1", "--connections", "1", "--keys",
                        "3", "--mix", "create=1"});
  INFO(run.out << run.err);
  CHECK(run.exitCode == 0);
  CHECK_THAT(run.out, Catch::Contains("deleted /bench-"));
  CHECK(runWarden({"ls", "--endpoints", server.endpoint()}).out == "");
  REQUIRE(server.request("GET", "/v1/nodes/?children").json()["stat"]["num_children"] == 0);
}

namespace {

// Creates the nodes (parents listed before their children) in transactions of 40.
void createAll(TestServer& server, const std::vector<std::string>& paths) {
  for (std::size_t first = 0; first < paths.size(); first += 40) {
    json ops = json::array();
    for (std::size_t i = first; i < std::min(paths.size(), first + 40); ++i) {
      ops.push_back({{"op", "create"}, {"path", paths[i]}});
    }
    REQUIRE(server.request("POST", "/v1/txn", json{{"ops", ops}}.dump()).status == 200);
  }
}

}  // namespace

TEST_CASE("rm -r deletes a subtree larger than --max-txn-nodes in batches, deepest first") {
  TestServer server({"--max-txn-nodes", "50"});
  const std::string ep = server.endpoint();
  // /big holds 10 children of 20 children each, and /big/a0/b0 60 more: 271 nodes, and
  // /big/a0/b0 alone is more than one write may delete.
  std::vector<std::string> paths = {"/big"};
  for (int a = 0; a < 10; ++a) {
    paths.push_back("/big/a" + std::to_string(a));
    for (int b = 0; b < 20; ++b) paths.push_back("/big/a" + std::to_string(a) + "/b" + std::to_string(b));
  }
  for (int c = 0; c < 60; ++c) paths.push_back("/big/a0/b0/c" + std::to_string(c));
  createAll(server, paths);
  REQUIRE(cli(ep, {"create", "/keep/x", "-p"}).exitCode == 0);
  auto whole = server.request("DELETE", "/v1/nodes/big?recursive");
  REQUIRE(whole.status == 413);
  REQUIRE_THAT(whole.body, Catch::Contains("--max-txn-nodes"));

  auto rm = cli(ep, {"rm", "-r", "/big"});
  INFO(rm.out << rm.err);
  CHECK(rm.exitCode == 0);
  CHECK_THAT(rm.out, Catch::StartsWith("deleted /big at revision "));
  REQUIRE_THAT(rm.err, Catch::StartsWith("warden: deleted /big in ") &&
                           Catch::EndsWith(" batches: more than the server's --max-txn-nodes\n"));
  CHECK(std::count(rm.err.begin(), rm.err.end(), '\n') == 1);
  const int batches = std::stoi(rm.err.substr(std::string("warden: deleted /big in ").size()));
  CHECK(batches >= 6);   // 271 nodes, at most 50 a write
  CHECK(batches <= 40);  // in batches, not one node at a time
  CHECK(server.request("GET", "/v1/nodes/big").status == 404);
  CHECK(cli(ep, {"ls"}).out == "keep\n");
  CHECK(cli(ep, {"ls", "/keep"}).out == "x\n");

  // A subtree one write may delete still goes in one, with nothing on stderr.
  REQUIRE(cli(ep, {"create", "/small/a/b", "-p"}).exitCode == 0);
  auto small = cli(ep, {"rm", "/small", "--recursive"});
  CHECK(small.exitCode == 0);
  CHECK(small.err == "");
  CHECK(server.request("GET", "/v1/nodes/small").status == 404);

  // With --version it must go in one write (batches would not heed the version): refused whole.
  paths = {"/v"};
  for (int i = 0; i < 60; ++i) paths.push_back("/v/n" + std::to_string(i));
  createAll(server, paths);
  auto versioned = cli(ep, {"rm", "-r", "/v", "--version", "0"});
  CHECK(versioned.exitCode == 1);
  requireOneErrorLine(versioned);
  CHECK_THAT(versioned.err, Catch::Contains("too_large") && Catch::Contains("--version"));
  CHECK(server.request("GET", "/v1/nodes/v?children").json()["stat"]["num_children"] == 60);

  auto missing = cli(ep, {"rm", "-r", "/nope"});
  CHECK(missing.exitCode == 4);
  requireOneErrorLine(missing);
}
