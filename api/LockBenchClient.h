#pragma once
// What `warden bench-locks` (api/LockBench.cpp, api/LockBenchWaiters.cpp) talks through: an
// asynchronous keep-alive HTTP connection, the two lock services it compares (Warden's lock API
// and etcd's v3 lock API through etcd's JSON gateway) as requests to build and answers to read,
// and latency order statistics.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace warden::api::lockbench {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using Response = http::response<http::string_body>;

// One request of a lock service's protocol.
struct Call {
  http::verb method = http::verb::post;
  std::string target;
  std::string body;  // JSON; empty for none
};

// One keep-alive HTTP/1.1 connection to one endpoint, carrying one request at a time: the next
// request is sent from the previous one's handler or after it ran. It connects on the first
// request, and again on the next after a failed exchange or an answer with `Connection: close`.
// Not thread-safe: its handlers run on the io_context's one thread.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // The answer, or an error code when none came within the timeout (the connection is closed
  // then). The response is the connection's own, valid until the next request.
  using Done = std::function<void(beast::error_code, Response&)>;

  Connection(net::io_context& ioc, tcp::endpoint endpoint) : stream_(ioc), endpoint_(endpoint) {}

  // Precondition: no request of this connection is awaiting its answer.
  void send(const Call& call, std::chrono::milliseconds timeout, Done done);
  void close();

 private:
  void write();
  void finish(beast::error_code ec);

  beast::tcp_stream stream_;
  tcp::endpoint endpoint_;
  bool connected_ = false;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  Response res_;
  Done done_;
};

// A lock granted: Warden's fencing token, or the key etcd made for the holder.
struct Grant {
  std::string handle;                  // what the release sends back: the token or the key
  std::optional<std::uint64_t> token;  // Warden only
};

// A lock service as the bench uses it. An owner is a Warden session or an etcd lease (its id);
// each owner asks for a lock at most once at a time. The read functions return nothing when the
// answer is not the success they expect.
class LockService {
 public:
  virtual ~LockService() = default;
  virtual const char* name() const = 0;
  virtual const char* ownerKind() const = 0;  // "session", "lease"
  virtual Call open(std::uint64_t ttlMs) const = 0;
  virtual std::optional<std::string> opened(const Response& r) const = 0;  // the owner's id
  // Waits up to waitMs for the lock where the service can be told so (Warden); etcd waits until
  // granted, so the connection's timeout bounds its wait.
  virtual Call acquire(const std::string& lock, const std::string& owner, std::uint64_t waitMs) const = 0;
  virtual std::optional<Grant> granted(const Response& r) const = 0;
  virtual Call release(const std::string& lock, const std::string& owner, const Grant& grant) const = 0;
  virtual bool released(const Response& r) const = 0;
  // The revision of a release, which is the next holder's token (Warden only).
  virtual std::optional<std::uint64_t> releaseRevision(const Response& r) const = 0;
  virtual Call close(const std::string& owner) const = 0;
  virtual bool closed(const Response& r) const = 0;
  // The owners waiting for a lock (its holder not among them), first in line first.
  virtual Call queue(const std::string& lock) const = 0;
  virtual std::optional<std::vector<std::string>> waiting(const Response& r) const = 0;
};

std::unique_ptr<LockService> wardenLocks();
std::unique_ptr<LockService> etcdLocks();

// "http://host:port" to an address to connect to; throws std::runtime_error when it resolves to none.
tcp::endpoint resolveEndpoint(net::io_context& ioc, const std::string& url);

// "404 {"error":...}" or "connect: Connection refused": one line for a failed request.
std::string describe(beast::error_code ec, const Response& r);

// Latencies and their order statistics.
class Latencies {
 public:
  void add(Clock::duration d);
  std::size_t count() const { return micros_.size(); }
  // The q-quantile in milliseconds (q = 1: the largest); 0 when empty.
  double ms(double q);

 private:
  std::vector<std::uint32_t> micros_;
};

}  // namespace warden::api::lockbench
