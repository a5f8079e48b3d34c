// Issue 11 on a real 3-node cluster: a watcher that moves from node to node (on a schedule, and
// whenever its node fails it) sees every committed write to its subtree exactly once and in
// order, through a kill -9 of the leader and a partition of a node it watches through. One
// watcher long-polls with since=R; the other reads SSE streams and resumes by Last-Event-ID.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tests/cluster/TestCluster.h"
#include "tests/http/SseClient.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

struct Seen {
  std::uint64_t revision;
  std::string type;
  std::string path;
  std::string data;
};

// The events a watcher received, and where it stands.
struct WatchLog {
  std::mutex mutex;
  std::vector<Seen> events;
  std::uint64_t since = 0;
  int moves = 0;
  std::atomic<std::uint64_t> node{0};  // the node it watches through now
  void take(const json& e) {
    events.push_back(Seen{e["revision"], e["type"], e["path"], e.contains("data") ? e["data"].get<std::string>() : ""});
  }
};

void longPoller(TestCluster& cluster, WatchLog& log, const std::atomic<bool>& stop) {
  std::uint64_t node = 1;
  auto switchedAt = Clock::now();
  while (!stop) {
    log.node = node;
    std::uint64_t since;
    {
      std::lock_guard lock(log.mutex);
      since = log.since;
    }
    auto r = cluster.request(node, "GET", "/v1/watch/w?recursive&wait_ms=300&since=" + std::to_string(since), {}, 3000);
    bool move = Clock::now() - switchedAt > std::chrono::milliseconds(1200);
    if (r.status == 200) {
      const json body = r.json();
      std::lock_guard lock(log.mutex);
      for (const auto& e : body["events"]) log.take(e);
      log.since = body["revision"];
    } else {
      move = true;  // dead, paused, 410 after a restart, 503: another node
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (move) {
      node = node % cluster.size() + 1;
      switchedAt = Clock::now();
      std::lock_guard lock(log.mutex);
      log.moves++;
    }
  }
}

void streamer(TestCluster& cluster, WatchLog& log, const std::atomic<bool>& stop) {
  std::uint64_t node = 2;
  std::string lastId;
  {
    std::lock_guard lock(log.mutex);
    lastId = std::to_string(log.since);
  }
  while (!stop) {
    log.node = node;
    bool answered = false;
    if (cluster.running(node)) {
      // The URL a browser keeps; the header says where it stopped.
      SseClient stream(cluster.httpPort(node), "/v1/watch/w?recursive&stream&since=0", lastId);
      answered = stream.status() == 200;
      const auto until = Clock::now() + std::chrono::milliseconds(1500);
      while (stream.status() == 200 && !stop && Clock::now() < until) {
        auto m = stream.next(200);
        if (!m) {
          if (stream.ended()) break;
          continue;
        }
        if (m->event == "message") {
          const json data = json::parse(m->data);
          std::lock_guard lock(log.mutex);
          for (const auto& e : data["events"]) log.take(e);
        }
        lastId = stream.lastEventId();
      }
    }
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    node = node % cluster.size() + 1;
    std::lock_guard lock(log.mutex);
    log.moves++;
    log.since = std::stoull(lastId);
  }
}

}  // namespace

TEST_CASE("watchers moving between nodes see every committed write to the subtree exactly once, in order, through a leader kill and a partition") {
  // Progress messages often, so that the stream's Last-Event-ID moves past others' writes too.
  TestCluster cluster(3, {"--watch-progress-ms", "200"});
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  REQUIRE(cluster.request(*leader, "POST", "/v1/nodes/w").status == 201);
  const std::uint64_t start = cluster.request(*leader, "GET", "/v1/status").json()["revision"];

  WatchLog polled, streamed;
  polled.since = streamed.since = start;
  std::atomic<bool> stopWatching{false};
  std::thread poller(longPoller, std::ref(cluster), std::ref(polled), std::cref(stopWatching));
  std::thread sse(streamer, std::ref(cluster), std::ref(streamed), std::cref(stopWatching));

  // The writer: through any node, each write with its own data; what it was told, by data.
  std::mutex writesMutex;
  std::map<std::string, std::uint64_t> acknowledged;  // data -> revision
  std::atomic<bool> stopWriting{false};
  std::thread writer([&] {
    warden::api::HttpClient client({"http://127.0.0.1:" + std::to_string(cluster.httpPort(1)),
                                    "http://127.0.0.1:" + std::to_string(cluster.httpPort(2)),
                                    "http://127.0.0.1:" + std::to_string(cluster.httpPort(3))});
    for (int i = 0; !stopWriting; ++i) {
      const std::string data = "v" + std::to_string(i);
      const std::string target = i % 4 == 3 ? "/v1/nodes/elsewhere" : "/v1/nodes/w/k" + std::to_string(i % 5);
      auto r = client.send(warden::api::HttpRequest{"PUT", target, json{{"data", data}, {"create", true}}.dump(),
                                                    "application/json", warden::api::HttpClient::newIdempotencyKey()});
      if (r.status == 200 && target != "/v1/nodes/elsewhere") {
        std::lock_guard lock(writesMutex);
        acknowledged[data] = *r.revision;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
    }
  });

  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  cluster.kill9(*leader);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  cluster.start(*leader);
  auto now = cluster.waitForLeader();
  REQUIRE(now);
  // The node the long-poller watches through right now (the writes go on without it, or after a
  // new election when it led).
  const std::uint64_t isolated = polled.node;
  INFO("partitioned node " << isolated << ", the leader was " << *now);
  cluster.partition({isolated});
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  cluster.heal();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stopWriting = true;
  writer.join();

  // Wait until both watchers are past the last write, then stop them.
  REQUIRE(cluster.waitConverged(15000));
  const std::uint64_t last = cluster.request(1, "GET", "/v1/status").json()["revision"];
  for (auto deadline = Clock::now() + std::chrono::seconds(20); Clock::now() < deadline;) {
    std::uint64_t a, b;
    {
      std::lock_guard lock(polled.mutex);
      a = polled.since;
    }
    {
      std::lock_guard lock(streamed.mutex);
      b = streamed.since;
    }
    if (a >= last && b >= last) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stopWatching = true;
  poller.join();
  sse.join();

  // What the subtree holds now, by path: each watcher's events replayed must end there.
  std::map<std::string, std::string> finalData;
  for (int k = 0; k < 5; ++k) {
    auto r = cluster.request(1, "GET", "/v1/nodes/w/k" + std::to_string(k));
    if (r.status == 200) finalData["/w/k" + std::to_string(k)] = r.json()["data"];
  }
  REQUIRE(acknowledged.size() > 30);
  for (WatchLog* log : {&polled, &streamed}) {
    INFO((log == &polled ? "long-poll" : "SSE") << " watcher, " << log->events.size() << " events, " << log->moves << " moves");
    CHECK(log->since >= last);
    CHECK(log->moves >= 5);
    std::set<std::string> dataSeen;
    std::map<std::string, std::string> replayed;
    std::uint64_t previous = start;
    bool ordered = true, unique = true;
    for (const auto& e : log->events) {
      ordered = ordered && e.revision >= previous;
      previous = e.revision;
      if (e.type == "created" || e.type == "changed") {
        unique = unique && dataSeen.insert(e.data).second;  // every write's data is its own
        replayed[e.path] = e.data;
      }
    }
    CHECK(ordered);
    CHECK(unique);
    CHECK(replayed == finalData);
    // Every acknowledged write, at its revision.
    std::size_t missing = 0;
    for (const auto& [data, revision] : acknowledged) {
      bool found = false;
      for (const auto& e : log->events) found = found || (e.data == data && e.revision == revision);
      missing += found ? 0 : 1;
    }
    CHECK(missing == 0);
  }
}
