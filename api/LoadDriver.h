#pragma once
// The load of the benches (`warden bench`, `warden bench-compare`): keep-alive HTTP/1.1
// connections to one endpoint, each sending its next request when the last one's answer came
// (closed loop) or when the next slot of a shared schedule is due (paced). The requests come from
// a RequestMaker, so the same generator drives any HTTP service: Warden and etcd alike.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <boost/beast/http.hpp>

namespace warden::api::load {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Sets one request's method, target and body (the driver adds the version, Host, keep-alive,
// Content-Type for a body, Content-Length) and returns its kind: an index below
// LoadConfig::kinds under which its latency is kept. Runs on the io threads, for different
// connections at once: it must be safe to call concurrently; `rng` is the connection's own.
using RequestMaker = std::function<std::size_t(std::mt19937_64& rng, Request& request)>;

// Sees each answer to a request sent within the measured window: the request's kind, the
// answer, when the request was sent and when its answer was complete. Runs on the io threads,
// concurrently for different connections.
using AnswerHook =
    std::function<void(std::size_t kind, const Response& answer, Clock::time_point sent, Clock::time_point answered)>;

struct LoadConfig {
  std::string endpoint;  // http://host:port
  std::size_t connections = 64;
  unsigned threads = 2;        // io threads of the generator
  double warmupSeconds = 0;    // load before the measured window, on the same connections; not kept
  double seconds = 10;         // the measured window
  double rate = 0;             // > 0: paced, request k of all connections due at k / rate s; 0: closed loop
  std::size_t kinds = 1;
  RequestMaker make;
  AnswerHook onAnswer;         // optional
  std::vector<long> serverPids;  // their CPU (user + system, summed) is read over the measured window
};

struct LoadResult {
  // Per kind, the latency of each request sent within the measured window, in microseconds.
  std::vector<std::vector<std::uint32_t>> micros;
  // Failed exchanges (the connection then stops) and answers of 300 or above (their latencies
  // are kept), warm-up included.
  std::size_t errors = 0;
  std::string firstError;
  double seconds = 0;     // from the window's start until the last connection finished
  double serverCpu = -1;  // seconds, summed over serverPids, over the window; < 0 without pids

  std::size_t requests() const;  // measured, all kinds
};

// Runs the load to its end on config.threads threads of its own, the calling thread reading the
// servers' CPU at the window's start and end. Throws std::runtime_error when the endpoint is not
// http://host:port or does not resolve.
LoadResult runLoad(const LoadConfig& config);

// The sum of cpuSeconds over `pids` (api/ProcStats.h).
double cpuSecondsOf(const std::vector<long>& pids);

}  // namespace warden::api::load
