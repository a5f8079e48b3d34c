#pragma once
// A scripted HTTP/1.1 server on a loopback port, for client tests: it records every request and
// answers each with the bytes a script returns, then closes the connection (one request per
// connection, one connection at a time: a client's idle keep-alive connection cannot hold it
// up). Stands in for a node that answers 503, sends malformed replies, paginates, or hangs up
// mid-exchange.

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace warden::tests {

class FakeServer {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    std::string header(const std::string& lowerName) const;  // "" when absent
  };
  // The whole response, status line to body; "" hangs up without an answer.
  using Script = std::function<std::string(const Request&)>;

  explicit FakeServer(Script script);
  ~FakeServer();  // stops serving within 100 ms
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() const;

  // A response with a JSON body, "Connection: close" and an X-Warden-Revision header (unless
  // `revision` is empty).
  static std::string reply(unsigned status, const std::string& body, const std::string& revision = "1");
  // A 503 no_quorum ("no leader"), as a node without a leader answers.
  static std::string noLeader() { return reply(503, R"({"error":"no_quorum","message":"no leader"})"); }

 private:
  void serve();
  void serveConnection(int fd);

  Script script_;
  int listenFd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  std::thread thread_;
};

}  // namespace warden::tests
