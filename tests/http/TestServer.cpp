#include "tests/http/TestServer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/WardenBinary.h"

namespace warden::tests {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

int connectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

pid_t spawnLogged(std::vector<std::string> args, const std::string& logPath) {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    // Sockets of the test process (proxies, clients) must not live on in the child.
    ::close_range(3, ~0U, 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

namespace {

// A port handed out stays this process's until it exits: a node's ports are chosen before it binds
// them (and again after every restart), so a later freePort() here, or one in a test running beside
// this one, must not hand the same port to a proxy or another node in between. The flock is
// released by the kernel when the process ends, however it ends.
bool reserve(int port) {
  static std::mutex mutex;
  static std::set<int> ours;
  std::lock_guard lock(mutex);
  if (ours.count(port)) return false;
  const std::string dir = "/tmp/warden-test-ports";
  ::mkdir(dir.c_str(), 0777);
  const std::string path = dir + "/" + std::to_string(port);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return true;  // no shared directory: fall back on the bind probe alone
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  ours.insert(port);  // fd left open on purpose: it holds the lock
  return true;
}

}  // namespace

int freePort() {
  // Below the kernel's ephemeral range (32768 and up): a port handed out by bind(0) is one the
  // kernel may give the next outgoing connection as its source port before the node under test
  // binds it ("Address already in use"), and these tests open thousands of connections.
  static std::mt19937 rng(static_cast<unsigned>(::getpid()) * 2654435761u ^
                          static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 12000);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free && reserve(port)) return port;
  }
  FAIL("no free port between 20000 and 32000");
  return 0;
}

std::string rawExchange(int port, const std::string& bytes, int timeoutMs) {
  int fd = connectLoopback(port);
  REQUIRE(fd >= 0);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may hang up early, e.g. on an oversized body
    sent += static_cast<std::size_t>(n);
  }
  std::string out;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  char buf[65536];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

CommandOutput runWarden(const std::vector<std::string>& args, const std::string& input) {
  int in[2], out[2], err[2];
  // Tests run this on threads of their own, and Catch's assertions are not thread-safe: a
  // failure here throws, and reaches the test through the thread's future.
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close_range(3, ~0U, 0);
    std::vector<char*> argv;
    std::string binary = wardenBinary();
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!input.empty()) (void)!::write(in[1], input.data(), input.size());
  ::close(in[1]);
  // Both pipes are drained together: a child blocked writing one of them would never exit.
  CommandOutput result{-1, {}, {}};
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open = 2;
  char buf[4096];
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

namespace {

std::size_t clusterSize() {
  const char* size = std::getenv("WARDEN_TEST_CLUSTER");
  return size ? static_cast<std::size_t>(std::atoi(size)) : 0;
}

// Waits for /healthz on the port; false when the process exited (reaped: `exited`) or 15 s passed.
bool waitHealthy(int port, pid_t pid, bool& exited) {
  exited = false;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    int fd = connectLoopback(port);
    if (fd >= 0) {
      ::close(fd);
      try {
        api::HttpClient probe({"http://127.0.0.1:" + std::to_string(port)}, std::chrono::seconds(5));
        if (probe.request("GET", "/healthz").status == 200) return true;
      } catch (const api::HttpClientError&) {
      }
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TestServer::TestServer(std::vector<std::string> extraArgs)
    : dataDir_(dir_.path() + "/data"), extraArgs_(std::move(extraArgs)), port_(freePort()) {
  // A constructor that throws runs no destructor: whatever it started is stopped here.
  try {
    if (const std::size_t size = clusterSize(); size > 1) {
      peerPort_ = freePort();
      for (std::uint64_t id = 2; id <= size; ++id) members_.push_back(Member{id, freePort(), freePort()});
      startMembers();
    }
    start();
    if (!members_.empty()) {
      waitForLeader();
      // The node under test is a follower when the test begins: if it leads, the others take over.
      for (int attempt = 0; attempt < 5; ++attempt) {
        auto status = request("GET", "/v1/status").json();
        if (!status["leader"].is_number() || status["leader"].get<std::uint64_t>() != id_) break;
        stop(SIGKILL);
        start();
        waitForLeader();
      }
    }
  } catch (...) {
    stopAll();
    throw;
  }
}

TestServer::~TestServer() { stopAll(); }

void TestServer::stopAll() {
  if (pid_ > 0) stop(SIGKILL);
  for (auto& m : members_) {
    if (m.pid > 0) stopProcess(m.pid, SIGKILL);
    m.pid = 0;
  }
}

std::vector<std::string> TestServer::serveArgs(std::uint64_t id, int httpPort, const std::string& dataDir) const {
  std::vector<std::string> args = {wardenBinary(), "serve", "--http", "127.0.0.1:" + std::to_string(httpPort),
                                   "--data-dir", dataDir};
  if (members_.empty()) {
    args.insert(args.begin() + 2, "--dev");
  } else {
    std::string cluster = "1=127.0.0.1:" + std::to_string(peerPort_);
    for (const auto& m : members_) cluster += "," + std::to_string(m.id) + "=127.0.0.1:" + std::to_string(m.peerPort);
    args.insert(args.end(), {"--id", std::to_string(id), "--cluster", cluster});
  }
  args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
  return args;
}

void TestServer::startMembers() {
  for (auto& m : members_) {
    const std::string name = "node" + std::to_string(m.id);
    m.pid = spawnLogged(serveArgs(m.id, m.httpPort, dir_.path() + "/" + name), dir_.path() + "/" + name + ".log");
  }
  for (auto& m : members_) {
    bool exited = false;
    if (!waitHealthy(m.httpPort, m.pid, exited)) {
      if (exited) m.pid = -1;
      FAIL("cluster member " << m.id << " did not answer /healthz");
    }
  }
}

void TestServer::waitForLeader() {
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    auto status = request("GET", "/v1/status");
    if (status.status == 200 && status.json()["leader"].is_number()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("the cluster chose no leader within 30 s:\n" << log());
}

void TestServer::start() {
  REQUIRE(pid_ <= 0);
  const std::string logPath = dir_.path() + "/server.log";
  pid_ = spawnLogged(serveArgs(id_, port_, dataDir_), logPath);
  bool exited = false;
  if (waitHealthy(port_, pid_, exited)) {
    // The test's own keep-alive client, connected now: tests of --max-connections count it.
    client_ = std::make_unique<api::HttpClient>(std::vector<std::string>{endpoint()}, std::chrono::seconds(30));
    if (request("GET", "/healthz").status == 200) return;
  }
  if (exited) {
    pid_ = -1;
    FAIL("warden exited during start-up:\n" << log());
  }
  FAIL("warden did not answer /healthz within 15 s:\n" << log());
}

int stopProcess(pid_t pid, int signal) {
  ::kill(pid, SIGCONT);  // a paused process could not act on the signal
  ::kill(pid, signal);
  int status = 0;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status;
}

int TestServer::stop(int signal) {
  client_.reset();
  if (pid_ <= 0) return -1;
  const int status = stopProcess(pid_, signal);
  pid_ = -1;
  return status;
}

std::string TestServer::log() const {
  std::ifstream in(dir_.path() + "/server.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

api::HttpResponse TestServer::request(const std::string& method, const std::string& target, const std::string& body) {
  REQUIRE(client_);
  return client_->request(method, target, body);
}

std::string TestServer::newSession(int ttlMs) {
  auto r = request("POST", "/v1/sessions", nlohmann::json{{"ttl_ms", ttlMs}}.dump());
  REQUIRE(r.status == 201);
  return r.json()["id"];
}

}  // namespace warden::tests
