// warden watch (api/CliWatch.cpp) as a process against real and scripted nodes: each event
// printed once, in revision order, through failovers, restarts and compaction.

#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "api/HttpClient.h"
#include "tests/http/BackgroundWarden.h"
#include "tests/http/FakeServer.h"
#include "tests/http/TestServer.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using namespace std::chrono_literals;

namespace {

// `warden watch ...` in the background.
class Background : public BackgroundWarden {
 public:
  using BackgroundWarden::BackgroundWarden;

  // Its exit code once it has ended by itself; fails the test after `limit`.
  int exitCode(std::chrono::milliseconds limit = 20s) {
    auto status = waitStatus(limit);
    if (!status) FAIL("still running after " << limit.count() << " ms: " << out());
    REQUIRE(WIFEXITED(*status));
    return WEXITSTATUS(*status);
  }

  // Sends the signal and reaps it: the status from waitpid.
  int stop(int signal) { return stopStatus(signal); }
};

// The server's current revision, as text for --since.
std::string revisionNow(TestServer& server) {
  auto status = server.request("GET", "/v1/status");
  REQUIRE(status.status == 200);
  return std::to_string(status.json()["revision"].get<std::uint64_t>());
}

// Puts, creates and deletes under /cfg, starting at revision R (the revision after --since R):
//   R+1 set /cfg; R+2 create /cfg/x; R+3 one txn: set /cfg/x, create /cfg/y (binary data);
//   R+4 delete /cfg/x; R+5 create /other (outside /cfg); R+6 set /cfg.
void writeCfg(TestServer& server) {
  REQUIRE(server.request("PUT", "/v1/nodes/cfg", R"({"data":"v1"})").status == 200);
  REQUIRE(server.request("POST", "/v1/nodes/cfg/x", R"({"data":"a"})").status == 201);
  REQUIRE(server.request("POST", "/v1/txn", R"({"ops":[{"op":"set","path":"/cfg/x","data":"b\nc"},)"
                                            R"({"op":"create","path":"/cfg/y","data_b64":"/w=="}]})")
              .status == 200);
  REQUIRE(server.request("DELETE", "/v1/nodes/cfg/x").status == 204);
  REQUIRE(server.request("POST", "/v1/nodes/other").status == 201);
  REQUIRE(server.request("PUT", "/v1/nodes/cfg", R"({"data":"v2"})").status == 200);
}

// What `warden watch /cfg -r` prints for writeCfg() after revision `since`.
std::string cfgTreeEvents(std::uint64_t since) {
  auto r = [since](int i) { return std::to_string(since + i); };
  return r(1) + " changed /cfg data=\"v1\"\n" + r(2) + " created /cfg/x data=\"a\"\n" + r(3) +
         " changed /cfg/x data=\"b\\nc\"\n" + r(3) + " created /cfg/y data_b64=/w==\n" + r(4) + " deleted /cfg/x\n" +
         r(6) + " changed /cfg data=\"v2\"\n";
}

}  // namespace

TEST_CASE("warden watch prints each event once, in revision order, for a node or its whole subtree") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"create", "/cfg", "v0"}).exitCode == 0);
  const std::string since = revisionNow(server);
  const std::uint64_t r = std::stoull(since);

  Background tree({"watch", "/cfg", "-r", "--since", since, "--count", "6", "--endpoints", ep});
  Background node({"watch", "/cfg", "--since", since, "--count", "5", "--endpoints", ep});
  Background asJson(
      {"watch", "/cfg", "--recursive", "--since", since, "--count", "6", "-o", "json", "--endpoints", ep});
  std::this_thread::sleep_for(300ms);  // the writes come while they wait, not only from the history
  writeCfg(server);

  CHECK(tree.exitCode() == 0);
  CHECK(tree.out() == cfgTreeEvents(r));
  CHECK(tree.err() == "");

  // Without --recursive: the node's own changes, and "children" when its child set changes.
  CHECK(node.exitCode() == 0);
  auto rev = [r](int i) { return std::to_string(r + i); };
  CHECK(node.out() == rev(1) + " changed /cfg data=\"v1\"\n" + rev(2) + " children /cfg\n" + rev(3) +
                          " children /cfg\n" + rev(4) + " children /cfg\n" + rev(6) + " changed /cfg data=\"v2\"\n");

  // -o json: the server's event objects as its long-poll gives them, one per line.
  CHECK(asJson.exitCode() == 0);
  auto poll = server.request("GET", "/v1/watch/cfg?recursive&since=" + since);
  REQUIRE(poll.status == 200);
  std::string expected;
  const json answer = poll.json();  // a range-for must not range over a temporary's member
  for (const auto& event : answer["events"]) expected += event.dump() + "\n";
  CHECK(std::count(expected.begin(), expected.end(), '\n') == 6);
  CHECK(asJson.out() == expected);

  // Started after the writes, from the same revision: the same events, out of the history.
  auto late = cli(ep, {"watch", "/cfg", "-r", "--since", since, "--count", "6"});
  CHECK(late.exitCode == 0);
  CHECK(late.out == cfgTreeEvents(r));
  // --count stops in the middle of a transaction's events too.
  CHECK(cli(ep, {"watch", "/cfg", "-r", "--since", since, "--count", "3"}).out ==
        rev(1) + " changed /cfg data=\"v1\"\n" + rev(2) + " created /cfg/x data=\"a\"\n" + rev(3) +
            " changed /cfg/x data=\"b\\nc\"\n");
}

TEST_CASE("warden watch goes on at the next endpoint with the same since: nothing skipped, nothing twice") {
  TestServer server;
  const std::string ep = server.endpoint();
  REQUIRE(cli(ep, {"create", "/cfg", "v0"}).exitCode == 0);
  const std::string since = revisionNow(server);
  const std::uint64_t r = std::stoull(since);

  // The first endpoint is dead, or answers 503: the long-polls go to the live one.
  FakeServer unavailable([](const FakeServer::Request&) { return FakeServer::noLeader(); });
  Background pastDead(
      {"watch", "/cfg", "-r", "--since", since, "--count", "6", "--endpoints", deadEndpoint() + "," + ep});
  Background past503({"watch", "/cfg", "-r", "--since", since, "--count", "6", "--endpoints",
                      unavailable.endpoint() + "," + ep});
  std::this_thread::sleep_for(300ms);
  writeCfg(server);
  CHECK(pastDead.exitCode() == 0);
  CHECK(pastDead.out() == cfgTreeEvents(r));
  CHECK(past503.exitCode() == 0);
  CHECK(past503.out() == cfgTreeEvents(r));
  REQUIRE(unavailable.requests().size() == 1);
  CHECK(unavailable.requests()[0].target == "/v1/watch/cfg?since=" + since + "&wait_ms=30000&recursive");

  // The node goes away in the middle of a long-poll and comes back: the watch waits it out
  // (saying so on stderr) and asks again from where it was. Its history starts at its applied
  // revision after the restart, which is where the watch stopped.
  const std::string before = revisionNow(server);
  Background outage({"watch", "/cfg", "--since", before, "--count", "3", "--endpoints", deadEndpoint() + "," + ep});
  REQUIRE(server.request("PUT", "/v1/nodes/cfg", R"({"data":"before"})").status == 200);
  REQUIRE(outage.waitForLines(1));
  std::this_thread::sleep_for(200ms);  // the next long-poll is waiting
  server.kill9();
  std::this_thread::sleep_for(1500ms);
  server.start();
  REQUIRE(server.request("PUT", "/v1/nodes/cfg", R"({"data":"after"})").status == 200);
  REQUIRE(server.request("PUT", "/v1/nodes/cfg", R"({"data":"again"})").status == 200);
  CHECK(outage.exitCode() == 0);
  const std::uint64_t b = std::stoull(before);
  CHECK(outage.out() == std::to_string(b + 1) + " changed /cfg data=\"before\"\n" + std::to_string(b + 2) +
                            " changed /cfg data=\"after\"\n" + std::to_string(b + 3) +
                            " changed /cfg data=\"again\"\n");
  const std::string err = outage.err();
  INFO(err);
  CHECK_THAT(err, Catch::StartsWith("warden: watch of /cfg paused, trying again in 250 ms from revision " +
                                    std::to_string(b + 1) + ": no answer from ") &&
                      Catch::Contains(ep));
}

TEST_CASE("warden watch without --since starts at the revision of its first answer and never goes back") {
  // A scripted node: "now" is 7; then an event at 8; then an answer from a node that lags
  // (revision 5, and an event it should not have sent again); then 10.
  const std::string changed = R"({"type":"changed","path":"/a","revision":8,"stat":{},"data":"x"})";
  FakeServer node([&](const FakeServer::Request& r) {
    if (r.target == "/v1/watch/a?wait_ms=0") return FakeServer::reply(200, R"({"events":[],"revision":7})");
    if (r.target == "/v1/watch/a?since=7&wait_ms=30000") {
      return FakeServer::reply(200, R"({"events":[)" + changed + R"(],"revision":9})");
    }
    if (r.target == "/v1/watch/a?since=9&wait_ms=30000" && node.requests().size() == 3) {
      return FakeServer::reply(200, R"({"events":[)" + changed + R"(],"revision":8})");
    }
    if (r.target == "/v1/watch/a?since=9&wait_ms=30000") {
      const std::string deleted = R"({"type":"deleted","path":"/a","revision":10,"stat":{}})";
      return FakeServer::reply(200, R"({"events":[)" + deleted + R"(],"revision":10})");
    }
    return FakeServer::reply(400, R"({"error":"invalid_argument","message":"unexpected"})");
  });
  auto watched = cli(node.endpoint(), {"watch", "/a", "--count", "2"});
  INFO(watched.err);
  CHECK(watched.exitCode == 0);
  CHECK(watched.out == "8 changed /a data=\"x\"\n10 deleted /a\n");
  CHECK(node.requests().size() == 4);

  // An answer that breaks the contract ends the watch: exit 3, one line.
  FakeServer broken([](const FakeServer::Request&) {
    return FakeServer::reply(200, R"({"events":[{"type":"changed","path":"/a","revision":12}],"revision":11})");
  });
  auto malformed = cli(broken.endpoint(), {"watch", "/a", "--since", "3"});
  CHECK(malformed.exitCode == 3);
  requireOneErrorLine(malformed);
  CHECK_THAT(malformed.err, Catch::Contains("malformed reply from " + broken.endpoint()));
}

TEST_CASE("warden watch passes over a node whose history does not reach back far enough") {
  // The first node's history starts late (as after a restart); the second still has it all.
  TestServer late({"--watch-history-events", "1"});
  TestServer full;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(cli(late.endpoint(), {"put", "/n", std::to_string(i), "--create"}).exitCode == 0);
    REQUIRE(cli(full.endpoint(), {"put", "/n", "f" + std::to_string(i), "--create"}).exitCode == 0);
  }
  REQUIRE(late.request("GET", "/v1/watch/n?since=0&wait_ms=0").status == 410);
  auto watched = cli(late.endpoint() + "," + full.endpoint(), {"watch", "/n", "--since", "0", "--count", "3"});
  CHECK(watched.exitCode == 0);
  CHECK(watched.out == "1 created /n data=\"f0\"\n2 changed /n data=\"f1\"\n3 changed /n data=\"f2\"\n");
}

TEST_CASE("warden watch from a revision older than the history exits 1 with one line naming compact_revision") {
  TestServer server({"--watch-history-events", "2"});
  const std::string ep = server.endpoint();
  for (int i = 0; i < 5; ++i) REQUIRE(cli(ep, {"put", "/n", std::to_string(i), "--create"}).exitCode == 0);
  auto direct = server.request("GET", "/v1/watch/n?since=0&wait_ms=0");
  REQUIRE(direct.status == 410);
  const std::string floor = direct.json()["compact_revision"].dump();

  auto old = cli(ep, {"watch", "/n", "--since", "0"});
  CHECK(old.exitCode == 1);
  requireOneErrorLine(old);
  CHECK_THAT(old.err, Catch::StartsWith("warden: compacted: ") && Catch::Contains("compact_revision " + floor));
  CHECK(old.out == "");
  auto asJson = cli(ep, {"watch", "/n", "--since", "0", "-o", "json"});
  CHECK(asJson.exitCode == 1);
  CHECK(json::parse(asJson.out)["compact_revision"].dump() == floor);

  // From compact_revision itself, it works.
  auto fromFloor = cli(ep, {"watch", "/n", "--since", floor, "--count", "2"});
  CHECK(fromFloor.exitCode == 0);
  CHECK(fromFloor.out == std::to_string(std::stoull(floor) + 1) + " changed /n data=\"3\"\n" +
                             std::to_string(std::stoull(floor) + 2) + " changed /n data=\"4\"\n");

  for (const std::vector<std::string>& usage : std::vector<std::vector<std::string>>{
           {"watch"}, {"watch", "n"}, {"watch", "/n", "/m"}, {"watch", "/n", "--since", "x"},
           {"watch", "/n", "--count", "0"}, {"watch", "/n", "--version", "1"}}) {
    auto result = cli(ep, usage);
    INFO(usage.size() << " words");
    CHECK(result.exitCode == 2);
    requireOneErrorLine(result);
    CHECK_THAT(result.err, Catch::Contains("usage: warden watch PATH"));
  }
}

TEST_CASE("warden watch runs until SIGINT or SIGTERM, which end it with exit 0") {
  TestServer server;
  const std::string ep = server.endpoint();
  for (int signal : {SIGINT, SIGTERM}) {
    Background watch({"watch", "/s", "--endpoints", ep});
    // It starts from "now" once it has its first answer: write until it reports.
    int writes = 0;
    for (; writes < 100 && watch.out().empty(); ++writes) {
      REQUIRE(cli(ep, {"put", "/s", std::to_string(writes), "--create"}).exitCode == 0);
      std::this_thread::sleep_for(50ms);
    }
    REQUIRE(watch.waitForLines(1));
    std::this_thread::sleep_for(100ms);
    const std::string first = watch.out();
    const auto lines = static_cast<std::size_t>(std::count(first.begin(), first.end(), '\n'));
    REQUIRE(cli(ep, {"put", "/s", "last"}).exitCode == 0);
    REQUIRE(watch.waitForLines(lines + 1));
    const int status = watch.stop(signal);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    const std::string out = watch.out();
    INFO(out);
    CHECK(std::count(out.begin(), out.end(), '\n') == static_cast<std::ptrdiff_t>(lines + 1));
    CHECK_THAT(out, Catch::EndsWith(" changed /s data=\"last\"\n"));
    // Consecutive revisions (each put is one): nothing after its first event was skipped.
    std::istringstream in(out);
    std::uint64_t previous = 0;
    for (std::string line; std::getline(in, line);) {
      if (previous != 0) CHECK(std::stoull(line) == previous + 1);
      previous = std::stoull(line);
    }
    CHECK(watch.err() == "");
  }
}
