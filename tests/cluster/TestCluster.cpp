#include "tests/cluster/TestCluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/asio/executor_work_guard.hpp>

#include "tests/WardenBinary.h"
#include "tests/http/TestServer.h"

namespace warden::tests {

namespace {
using Clock = std::chrono::steady_clock;
}

TestCluster::TestCluster(std::size_t size, std::vector<std::string> extraArgs)
    : size_(size), extraArgs_(std::move(extraArgs)) {
  for (std::uint64_t id = 1; id <= size_; ++id) {
    httpPort_[id] = freePort();
    peerPort_[id] = freePort();
    pids_[id] = -1;
  }
  for (std::uint64_t from = 1; from <= size_; ++from) {
    for (std::uint64_t to = 1; to <= size_; ++to) {
      if (from != to) proxies_[{from, to}] = std::make_unique<TcpProxy>(ioc_, freePort(), peerPort_[to]);
    }
  }
  ioThread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(ioc_);
    ioc_.run();
  });
  try {
    for (std::uint64_t id = 1; id <= size_; ++id) start(id);
  } catch (...) {
    stopAll();  // no destructor runs for an object whose constructor threw
    throw;
  }
}

TestCluster::~TestCluster() { stopAll(); }

void TestCluster::stopAll() {
  if (!ioThread_.joinable()) return;
  for (auto& [id, pid] : pids_) {
    if (pid > 0) {
      ::kill(pid, SIGCONT);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  ioc_.stop();
  ioThread_.join();
}

void TestCluster::start(std::uint64_t id) {
  REQUIRE(pids_[id] <= 0);
  // This node reaches each peer through the proxy for that direction.
  std::string cluster;
  for (std::uint64_t other = 1; other <= size_; ++other) {
    const int port = other == id ? peerPort_[id] : proxies_[{id, other}]->port();
    cluster += (cluster.empty() ? "" : ",") + std::to_string(other) + "=127.0.0.1:" + std::to_string(port);
  }
  std::vector<std::string> args = {wardenBinary(), "serve", "--id", std::to_string(id), "--http",
                                   "127.0.0.1:" + std::to_string(httpPort_[id]), "--data-dir",
                                   dir_.path() + "/node" + std::to_string(id), "--cluster", cluster};
  args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
  if (auto own = nodeArgs_.find(id); own != nodeArgs_.end()) args.insert(args.end(), own->second.begin(), own->second.end());
  const std::string logPath = dir_.path() + "/node" + std::to_string(id) + ".log";
  // A restart on the same ports may find one still held by a socket of the previous process
  // the kernel has not let go of yet: wait and try again (bounded).
  for (int attempt = 0; attempt < 30; ++attempt) {
    const std::size_t logged = log(id).size();
    pids_[id] = spawnLogged(args, logPath);
    auto deadline = Clock::now() + std::chrono::seconds(15);
    while (Clock::now() < deadline) {
      if (request(id, "GET", "/healthz", {}, 500).status == 200) return;
      int status = 0;
      if (::waitpid(pids_[id], &status, WNOHANG) == pids_[id]) break;  // it exited
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (log(id).find("Address already in use", logged) == std::string::npos) break;
    ::kill(pids_[id], SIGKILL);
    ::waitpid(pids_[id], nullptr, 0);
    pids_[id] = -1;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  FAIL("node " << id << " did not answer /healthz:\n" << log(id));
}

void TestCluster::kill9(std::uint64_t id) {
  pid_t pid = pids_.at(id);
  REQUIRE(pid > 0);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pids_[id] = -1;
}

int TestCluster::stop(std::uint64_t id) {
  pid_t pid = pids_.at(id);
  REQUIRE(pid > 0);
  const int status = stopProcess(pid, SIGTERM);
  pids_[id] = -1;
  return status;
}

void TestCluster::pause(std::uint64_t id) { ::kill(pids_.at(id), SIGSTOP); }
void TestCluster::resume(std::uint64_t id) { ::kill(pids_.at(id), SIGCONT); }

void TestCluster::wipe(std::uint64_t id) {
  REQUIRE(pids_.at(id) <= 0);
  std::filesystem::remove_all(dir_.path() + "/node" + std::to_string(id));
}

void TestCluster::partition(const std::set<std::uint64_t>& side) {
  for (auto& [pair, proxy] : proxies_) {
    if (side.count(pair.first) != side.count(pair.second)) proxy->cut();
  }
}

void TestCluster::cutLinks(const std::function<bool(std::uint64_t, std::uint64_t)>& cut) {
  for (auto& [pair, proxy] : proxies_) {
    if (cut(pair.first, pair.second)) proxy->cut();
  }
}

void TestCluster::heal() {
  for (auto& [pair, proxy] : proxies_) proxy->restore();
}

void TestCluster::delayLinks(std::chrono::milliseconds delay) {
  for (auto& [pair, proxy] : proxies_) proxy->delay(delay);
}

void TestCluster::saveLogs(const std::string& dir) const {
  std::filesystem::create_directories(dir);
  for (std::uint64_t id = 1; id <= size_; ++id) {
    std::ofstream(dir + "/node" + std::to_string(id) + ".log") << log(id);
  }
}

api::HttpResponse TestCluster::request(std::uint64_t id, const std::string& method, const std::string& target,
                                       const std::string& body, int timeoutMs) {
  try {
    api::HttpClient client({"http://127.0.0.1:" + std::to_string(httpPort_.at(id))},
                           std::chrono::milliseconds(timeoutMs));
    return client.request(method, target, body);
  } catch (const api::HttpClientError&) {
    return {};
  }
}

std::optional<std::uint64_t> TestCluster::waitForLeader(int timeoutMs, std::set<std::uint64_t> among) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  while (Clock::now() < deadline) {
    std::optional<std::uint64_t> agreed;
    bool agree = true;
    for (std::uint64_t id = 1; id <= size_ && agree; ++id) {
      if (!running(id) || (!among.empty() && !among.count(id))) continue;
      auto status = request(id, "GET", "/v1/status", {}, 1000).json();
      if (!status.is_object() || status["leader"].is_null()) {
        agree = false;
        break;
      }
      std::uint64_t leader = status["leader"];
      if (agreed && *agreed != leader) agree = false;
      agreed = leader;
    }
    if (agree && agreed && running(*agreed) && (among.empty() || among.count(*agreed))) return agreed;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

std::string TestCluster::state(std::uint64_t id) {
  // Linearizable: a write answered before its apply committed (AnswerWhen::Applied) is in it.
  // A state of tens of MiB takes seconds to read on a slow machine under ASan: the timeout is
  // generous, and waitConverged's own deadline still bounds the wait.
  return request(id, "GET", "/v1/nodes/?recursive", {}, 10000).body;
}

bool TestCluster::waitConverged(int timeoutMs) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  while (Clock::now() < deadline) {
    std::set<std::string> states;
    for (std::uint64_t id = 1; id <= size_; ++id) {
      if (running(id)) states.insert(state(id));
    }
    if (states.size() == 1 && !states.begin()->empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (std::uint64_t id = 1; id <= size_; ++id) {
    if (!running(id)) continue;
    UNSCOPED_INFO("node " << id << " status " << request(id, "GET", "/v1/status", {}, 1000).body << "\nlog:\n" << log(id));
  }
  return false;
}

std::string TestCluster::log(std::uint64_t id) const {
  std::ifstream in(dir_.path() + "/node" + std::to_string(id) + ".log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool TestCluster::waitVoting(std::uint64_t id, int timeoutMs) {
  for (int waited = 0; waited <= timeoutMs; waited += 50) {
    auto status = request(id, "GET", "/v1/status").json();
    if (status.is_object() && status.contains("id") && !status.contains("rebuilding")) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace warden::tests
