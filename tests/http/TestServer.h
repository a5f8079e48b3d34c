#pragma once
// Runs the real `warden serve` binary on a free loopback port with its own data directory, for
// tests that talk to it over HTTP. Every wait is bounded; the process is always reaped.

#include <sys/types.h>

#include <cstdint>

#include <memory>
#include <string>
#include <vector>

#include "api/HttpClient.h"
#include "tests/TempDir.h"

namespace warden::tests {

// With WARDEN_TEST_CLUSTER=3 in the environment (CTest's "http3:" run of the HTTP suite) the
// server is one node, a follower when it starts, of a 3-node cluster started beside it with the
// same flags, so every request takes the replicated path (forwarded writes, read-index reads,
// relayed keepalives); stop/start/kill9 act on it alone while the others run on. Tests that need
// a single node's behaviour are tagged [single] and left out of that run.
class TestServer {
 public:
  explicit TestServer(std::vector<std::string> extraArgs = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  void start();           // returns once /healthz answers (fails the test after 15 s)
  int stop(int signal);   // sends the signal, waits up to 15 s; the exit status as from waitpid
  void kill9() { stop(9); }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dataDir() const { return dataDir_; }
  std::string log() const;  // what the server printed

  // A keep-alive client bound to this server.
  api::HttpResponse request(const std::string& method, const std::string& target, const std::string& body = {});
  // POST /v1/sessions with `ttlMs`; the new session's id (fails the test unless 201).
  std::string newSession(int ttlMs = 60000);

 private:
  void stopAll();  // every process this server started: its own and its cluster members'
  // The cluster's other members (cluster mode only).
  struct Member {
    std::uint64_t id;
    int httpPort;
    int peerPort;
    pid_t pid = -1;
  };
  std::vector<std::string> serveArgs(std::uint64_t id, int httpPort, const std::string& dataDir) const;
  void startMembers();
  void waitForLeader();

  TempDir dir_;
  std::string dataDir_;
  std::vector<std::string> extraArgs_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::unique_ptr<api::HttpClient> client_;
  std::uint64_t id_ = 1;   // this node's id in cluster mode
  int peerPort_ = 0;       // and its peer port
  std::vector<Member> members_;
};

// Starts a program (args[0] is its path) with stdout and stderr appended to logPath and no
// other descriptor of the test inherited.
pid_t spawnLogged(std::vector<std::string> args, const std::string& logPath);

// Sends the signal and reaps the process, killing it after 15 s; the status from waitpid.
int stopProcess(pid_t pid, int signal);

// A connected TCP socket to 127.0.0.1:port, or -1.
int connectLoopback(int port);

// A port on 127.0.0.1 that was free a moment ago.
int freePort();

// Sends raw bytes on a fresh connection and returns what came back until the server closed the
// connection or `timeoutMs` passed.
std::string rawExchange(int port, const std::string& bytes, int timeoutMs = 5000);

// Runs the warden binary with args (and optional stdin) until it exits, returning its exit code
// (-1 if a signal ended it), stdout and stderr.
struct CommandOutput {
  int exitCode;
  std::string out;
  std::string err;
};
CommandOutput runWarden(const std::vector<std::string>& args, const std::string& input = {});

}  // namespace warden::tests
