#pragma once
// The load of the benches (`warden bench`, `warden bench-compare`): keep-alive HTTP/1.1
// connections to one endpoint, each sending its next request when the last one's answer came
// (closed loop) or when the next slot of a shared schedule is due (paced). The requests come from
// a RequestMaker, so the same generator drives any HTTP service: Warden and etcd alike.
//
// The generator shares the machine with the servers it measures, so it is kept lean: each io
// thread runs its own io_context with its own share of the connections; a request is written
// into a buffer the connection keeps (its body not copied) and sent with one non-blocking send;
// an answer is read into a reused buffer and framed by hand when it carries a Content-Length
// (by Boost.Beast otherwise: chunked or to the end of the connection); no heap allocation per
// request once the buffers have grown.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace warden::api::load {

using Clock = std::chrono::steady_clock;

// One connection's next request as a RequestMaker sets it. The driver writes the request line
// and the headers: Host, Content-Length with a body or for PUT and POST, Content-Type:
// application/json with a body; HTTP/1.1, so keep-alive without a Connection header.
class RequestWriter {
 public:
  explicit RequestWriter(std::string_view host);

  // The request to send, replacing the last one. The target is `target` followed by
  // `targetSuffix` (a query, say). The body is not copied: it must stay valid until the
  // connection's next request is made (a string the maker owns, or scratch()).
  void set(std::string_view method, std::string_view target, std::string_view targetSuffix, std::string_view body);
  void set(std::string_view method, std::string_view target, std::string_view body = {}) {
    set(method, target, {}, body);
  }

  // A string of the connection's own, for a maker to build a target or a body in; its capacity
  // is kept from one request to the next.
  std::string& scratch() { return scratch_; }

  std::string_view head() const { return head_; }  // the request line and headers, up to the blank line
  std::string_view body() const { return body_; }

 private:
  std::string hostLine_;  // " HTTP/1.1\r\nHost: <host>\r\n"
  std::string head_, scratch_;
  std::string_view body_;
};

// Sets one request (RequestWriter::set) and returns its kind: an index below
// LoadConfig::kinds under which its latency is kept. Runs on the io threads, for different
// connections at once: it must be safe to call concurrently; `rng` and `request` are the
// connection's own.
using RequestMaker = std::function<std::size_t(std::mt19937_64& rng, RequestWriter& request)>;

// An answer as the driver read it; its views are valid during the AnswerHook's call only.
struct Answer {
  unsigned status = 0;
  std::string_view head;  // the status line and the header lines, each ending in "\r\n"
  std::string_view body;  // without any transfer coding
  // The value of the first header field called `name` (case-insensitive), without the
  // whitespace around it; nothing when there is none.
  std::optional<std::string_view> header(std::string_view name) const;
};

// Sees each answer to a request sent within the measured window: the request's kind, the
// answer, when the request was sent and when its answer was complete. Runs on the io threads,
// concurrently for different connections.
using AnswerHook =
    std::function<void(std::size_t kind, const Answer& answer, Clock::time_point sent, Clock::time_point answered)>;

struct LoadConfig {
  std::string endpoint;  // http://host:port
  std::size_t connections = 64;
  unsigned threads = 2;        // io threads of the generator, each with its share of the connections
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
  // Failed exchanges (the connection then stops; an answer not complete 30 s after its request
  // was sent is one) and answers of 300 or above (their latencies are kept), warm-up included.
  std::size_t errors = 0;
  std::string firstError;
  double seconds = 0;     // from the window's start until the last connection finished
  double serverCpu = -1;  // seconds, summed over serverPids, over the window; < 0 without pids
  // The same window per server process and thread name (threads of one name summed): where
  // the servers' CPU went, and how often those threads slept and were woken.
  struct ThreadCost {
    long pid = 0;
    std::string name;
    std::size_t threads = 0;
    double cpuSeconds = 0;
    unsigned long long wakeups = 0;  // voluntary context switches
  };
  std::vector<ThreadCost> serverThreads;

  std::size_t requests() const;  // measured, all kinds
};

// Runs the load to its end on config.threads threads of its own, the calling thread reading the
// servers' CPU at the window's start and end. Throws std::runtime_error when the endpoint is not
// http://host:port or does not resolve.
LoadResult runLoad(const LoadConfig& config);

// The sum of cpuSeconds over `pids` (api/ProcStats.h).
double cpuSecondsOf(const std::vector<long>& pids);

}  // namespace warden::api::load
