// The warden process as a whole: durability across kill -9, clean shutdown, many connections,
// hostile bytes, status endpoints, the CLI and the serve flags.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "tests/http/TestServer.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;

TEST_CASE("acknowledged writes and the revision survive kill -9 and restart") {
  TestServer server;
  for (int i = 0; i < 20; ++i) {
    REQUIRE(server.request("POST", "/v1/nodes/n" + std::to_string(i), json{{"data", std::to_string(i)}}.dump()).status == 201);
  }
  REQUIRE(server.request("PUT", "/v1/nodes/n0", R"({"data": "changed"})").status == 200);
  server.kill9();
  server.start();
  // (A linearizable read first: on a cluster, the restarted member may apply the last write again
  // only once it hears it chosen, and its own revision reports what it applied.)
  CHECK(server.request("GET", "/v1/nodes/n0").json()["data"] == "changed");
  auto status = server.request("GET", "/v1/status").json();
  CHECK(status["revision"] == 21);
  CHECK(server.request("GET", "/v1/nodes/n19").json()["data"] == "19");
  CHECK(server.request("GET", "/v1/nodes/?children").json()["children"].size() == 20);
  auto next = server.request("POST", "/v1/nodes/after");
  CHECK(next.revision == 22u);
}

TEST_CASE("SIGTERM and SIGINT stop the node cleanly with exit status 0") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/x").status == 201);
  int status = server.stop(SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  server.start();
  CHECK(server.request("HEAD", "/v1/nodes/x").status == 200);
  status = server.stop(SIGINT);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a node names its threads for top -H and perf") {
  TestServer server;
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(server.pid()) + "/task")) {
    std::string name;
    std::getline(std::ifstream(task.path() / "comm"), name);
    names.insert(name);
  }
  INFO(names.size() << " names");
  for (const char* expected : {"warden", "warden-driver", "warden-http1", "warden-watches", "warden-wtimers",
                               "warden-waiters"}) {
    CHECK(names.count(expected) == 1);
  }
}

TEST_CASE("concurrent writers over many connections all succeed with distinct revisions") {
  TestServer server;
  constexpr int kThreads = 16, kWrites = 40;
  std::mutex mutex;
  std::set<std::uint64_t> revisions;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      warden::api::HttpClient client({server.endpoint()});
      for (int i = 0; i < kWrites; ++i) {
        auto r = client.request("POST", "/v1/nodes/w" + std::to_string(t) + "_" + std::to_string(i));
        if (r.status != 201 || !r.revision) {
          failures.fetch_add(1);
          continue;
        }
        std::lock_guard lock(mutex);
        revisions.insert(*r.revision);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
  CHECK(revisions.size() == kThreads * kWrites);
  CHECK(*revisions.rbegin() == kThreads * kWrites);
}

TEST_CASE("two thousand connections open at once are all served") {
  // This process holds the client ends: make sure it may (the server raises its own limit).
  rlimit limit{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  REQUIRE(limit.rlim_cur >= 2100);
  TestServer server;
  constexpr int kConnections = 2000;
  std::vector<int> fds;
  for (int i = 0; i < kConnections; ++i) {
    int fd = connectLoopback(server.port());
    REQUIRE(fd >= 0);
    fds.push_back(fd);
  }
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int fd : fds) REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  int ok = 0;
  for (int fd : fds) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 12 && std::string(buf, 12) == "HTTP/1.1 200") ++ok;
    ::close(fd);
  }
  CHECK(ok == kConnections);
  auto metrics = server.request("GET", "/metrics");
  CHECK_THAT(metrics.body, Catch::Contains("warden_http_replies_total{code=\"2xx\"}"));
}

TEST_CASE("garbage on the wire gets a 400 or a hang-up and the node keeps serving") {
  TestServer server;
  CHECK_THAT(rawExchange(server.port(), "HELLO\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(rawExchange(server.port(), "GET / HTTP/1.1\r\nContent-Length: banana\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(rawExchange(server.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 413"));
  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    std::string junk(1 + rng() % 300, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    if (i % 2 == 0) junk = "POST /v1/nodes/x HTTP/1.1\r\n" + junk;
    rawExchange(server.port(), junk, 200);
  }
  CHECK(server.request("GET", "/healthz").status == 200);
  CHECK(server.request("POST", "/v1/nodes/still-writable").status == 201);
}

TEST_CASE("healthz and readyz and status describe a one-member cluster", "[single]") {
  TestServer server;
  CHECK(server.request("GET", "/healthz").status == 200);
  CHECK(server.request("GET", "/readyz").status == 200);
  REQUIRE(server.request("POST", "/v1/nodes/a").status == 201);
  json status = server.request("GET", "/v1/status").json();
  CHECK(status["id"] == 1);
  CHECK(status["leader"] == 1);
  CHECK(status["revision"] == 1);
  CHECK(status["applied_index"] == status["commit_index"]);
  REQUIRE(status["members"].size() == 1);
  CHECK(status["members"][0]["role"] == "leader");
  CHECK(status["members"][0]["healthy"] == true);
  CHECK(status["members"][0]["http"] == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(status["members"][0]["peer"] == "127.0.0.1:7170");
}

TEST_CASE("the CLI reads and writes nodes with text and JSON output") {
  TestServer server;
  const std::string ep = server.endpoint();
  auto w = [&](std::vector<std::string> args, const std::string& input = {}) {
    args.push_back("--endpoints");
    args.push_back(ep);
    return runWarden(args, input);
  };
  CHECK(w({"create", "/cfg"}).out == "/cfg\n");
  auto put = w({"put", "/cfg/url", "pg://db", "--create"});
  CHECK(put.exitCode == 0);
  CHECK_THAT(put.out, Catch::StartsWith("/cfg/url version 0 revision 2"));
  CHECK(w({"get", "/cfg/url"}).out == "pg://db\n");
  CHECK(w({"put", "/cfg/url", "-"}, "from stdin").exitCode == 0);
  CHECK(w({"get", "/cfg/url"}).out == "from stdin\n");
  CHECK(w({"create", "/cfg/jobs/j-", "-p", "--sequential"}).out == "/cfg/jobs/j-0000000000\n");
  CHECK(w({"ls", "/cfg"}).out == "jobs\nurl\n");
  json asJson = json::parse(w({"get", "/cfg/url", "-o", "json"}).out);
  CHECK(asJson["stat"]["version"] == 1);

  auto conflict = w({"put", "/cfg/url", "x", "--version", "0"});
  CHECK(conflict.exitCode == 1);
  auto txn = w({"txn"}, R"({"ops": [{"op": "delete", "path": "/cfg", "recursive": true}]})");
  CHECK(txn.exitCode == 0);
  CHECK_THAT(txn.out, Catch::StartsWith("committed at revision"));
  CHECK(w({"get", "/cfg"}).exitCode == 4);
  CHECK(w({"get", "cfg"}).exitCode == 2);
  CHECK_THAT(w({"status"}).out, Catch::Contains("leader"));
  CHECK(w({"rm", "/nope"}).exitCode == 4);
  CHECK(runWarden({"get", "/", "--endpoints", "http://127.0.0.1:1"}).exitCode == 3);
}

TEST_CASE("serve refuses bad flags and a second process on one data directory") {
  CHECK(runWarden({"serve"}).exitCode == 2);
  CHECK(runWarden({"serve", "--dev", "--fsync", "maybe"}).exitCode == 2);
  CHECK(runWarden({"serve", "--dev", "--http", "nonsense"}).exitCode == 2);
  CHECK(runWarden({"serve", "--id", "1", "--http", "127.0.0.1:0", "--data-dir", "/tmp/x", "--cluster",
                   "1=127.0.0.1:7101,1=127.0.0.1:7102"})
            .exitCode == 2);
  CHECK(runWarden({"serve", "--id", "1", "--http", "127.0.0.1:0", "--data-dir", "/tmp/x", "--cluster",
                   "1=127.0.0.1:7101,2=nowhere"})
            .exitCode == 2);
  CHECK(runWarden({"serve", "--dev", "--cluster", "2=127.0.0.1:7102"}).exitCode == 2);

  TestServer server;
  auto second = runWarden({"serve", "--dev", "--http", "127.0.0.1:" + std::to_string(freePort()), "--data-dir",
                           server.dataDir()});
  CHECK(second.exitCode == 1);
  CHECK(server.request("GET", "/healthz").status == 200);
}

namespace {

// A socket listening on 127.0.0.1:port for as long as it lives: the port is taken.
class PortHolder {
 public:
  explicit PortHolder(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(fd_ >= 0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 1) == 0);
  }
  ~PortHolder() { ::close(fd_); }
  PortHolder(const PortHolder&) = delete;
  PortHolder& operator=(const PortHolder&) = delete;

 private:
  int fd_;
};

}  // namespace

TEST_CASE("serve names a taken HTTP or peer port in one line and exits non-zero") {
  TempDir dir;
  const std::string http = "127.0.0.1:" + std::to_string(freePort());
  const std::string peer = "127.0.0.1:" + std::to_string(freePort());
  const std::string otherPeer = "127.0.0.1:" + std::to_string(freePort());
  {
    PortHolder taken(std::stoi(http.substr(http.rfind(':') + 1)));
    auto clash = runWarden({"serve", "--id", "1", "--http", http, "--data-dir", dir.path() + "/one", "--cluster",
                            "1=" + peer});
    CHECK(clash.exitCode == 1);
    CHECK(clash.err == "warden serve: cannot listen on " + http + " (HTTP): address already in use\n");
  }
  {
    // The peer listener exists only in a cluster of more than one member.
    PortHolder taken(std::stoi(peer.substr(peer.rfind(':') + 1)));
    auto clash = runWarden({"serve", "--id", "1", "--http", http, "--data-dir", dir.path() + "/two", "--cluster",
                            "1=" + peer + ",2=" + otherPeer});
    CHECK(clash.exitCode == 1);
    CHECK(clash.err == "warden serve: cannot listen on " + peer + " (peer): address already in use\n");
  }
}

TEST_CASE("with --fsync off the node still serves and keeps data across a clean restart") {
  TestServer server({"--fsync", "off"});
  REQUIRE(server.request("POST", "/v1/nodes/fast", R"({"data": "y"})").status == 201);
  server.stop(SIGTERM);
  server.start();
  CHECK(server.request("GET", "/v1/nodes/fast").json()["data"] == "y");
}

TEST_CASE("a client that stalls mid-request is cut off after the read timeout") {
  TestServer server({"--read-timeout", "1"});
  auto start = std::chrono::steady_clock::now();
  // Half a request, then silence: the server must hang up rather than wait forever. The client
  // listens for a minute; a hang-up within half of that (30 times the 1 s read timeout) counts,
  // so only a server that never cuts the connection off fails. How soon is printed.
  std::string reply = rawExchange(server.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n", 60000);
  auto waited = std::chrono::steady_clock::now() - start;
  WARN("cut off after " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms (--read-timeout 1)");
  CHECK(reply.empty());
  CHECK(waited < std::chrono::seconds(30));
  CHECK(server.request("GET", "/healthz").status == 200);
}

TEST_CASE("connections beyond --max-connections get 429 and are closed") {
  TestServer server({"--max-connections", "4"});
  // How many connections the server holds open, asked through the test's own connection.
  auto open = [&] {
    const std::string metrics = server.request("GET", "/metrics").body;
    const std::string name = "\nwarden_http_connections ";
    const auto at = metrics.find(name);
    return at == std::string::npos ? -1 : std::stoi(metrics.substr(at + name.size()));
  };
  // Connections of the start-up probes may still be closing: wait for the test's own alone.
  auto waitOpen = [&](int n) {
    for (int i = 0; i < 300 && open() != n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return open() == n;
  };
  REQUIRE(waitOpen(1));
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {  // the test's own client holds the fourth
    int fd = connectLoopback(server.port());
    REQUIRE(fd >= 0);
    held.push_back(fd);
  }
  REQUIRE(waitOpen(4));  // accepted (on a loaded machine they may wait in the kernel's queue)
  std::string refused = rawExchange(server.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(refused, Catch::StartsWith("HTTP/1.1 429"));
  CHECK_THAT(refused, Catch::Contains("too_many_requests"));
  for (int fd : held) ::close(fd);
  bool servedAgain = false;
  for (int i = 0; i < 100 && !servedAgain; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    servedAgain = rawExchange(server.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                      .starts_with("HTTP/1.1 200");
  }
  CHECK(servedAgain);
}

TEST_CASE("a client sending Expect 100-continue is told to continue before it sends its body") {
  TestServer server;
  const std::string body = R"({"data": "after continue"})";
  std::string reply = rawExchange(server.port(),
                                  "POST /v1/nodes/expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                  "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  CHECK_THAT(reply, Catch::StartsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201"));
  CHECK(server.request("GET", "/v1/nodes/expect").json()["data"] == "after continue");
}
