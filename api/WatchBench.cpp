#include "api/WatchBench.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "api/Args.h"
#include "api/HttpClient.h"
#include "api/Percentile.h"
#include "api/ProcStats.h"
#include "api/WatchBenchFleet.h"
#include "api/SubtreeDelete.h"
#include "api/Url.h"

namespace warden::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

namespace {

using watchbench::Fleet;
using watchbench::Sample;
using watchbench::Watcher;

struct Config {
  std::string endpoint = "http://127.0.0.1:7070";
  std::size_t watchers = 10'000;
  std::size_t keys = 100;
  double rate = 200;           // paced writes per second
  double seconds = 15;         // of each paced phase
  double burstSeconds = 5;     // of each closed-loop phase; 0 skips them
  std::size_t writers = 8;     // connections of the paced writer
  std::size_t burstConnections = 16;
  std::size_t valueSize = 100;
  unsigned threads = 1;        // for the watchers' io_context
  std::size_t parallelOpens = 256;  // watch requests awaiting their answer at once
  long serverPid = 0;
  std::string prefix = "/watchbench";
  std::string root;  // prefix-<16 random hex digits>
};

// CPU used by the server and by this process over a stretch of the run.
class CpuMeter {
 public:
  explicit CpuMeter(long pid) : pid_(pid), start_(Clock::now()), server_(pid ? cpuSeconds(pid) : 0), own_(ownCpuSeconds()) {}
  std::string report() const {
    const double wall = std::chrono::duration<double>(Clock::now() - start_).count();
    char text[160];
    if (pid_) {
      std::snprintf(text, sizeof text, "CPU: server %.0f%% of one core, bench %.0f%%",
                    100.0 * (cpuSeconds(pid_) - server_) / wall, 100.0 * (ownCpuSeconds() - own_) / wall);
    } else {
      std::snprintf(text, sizeof text, "CPU: bench %.0f%% of one core", 100.0 * (ownCpuSeconds() - own_) / wall);
    }
    return text;
  }

 private:
  long pid_;
  Clock::time_point start_;
  double server_, own_;
};

std::uint32_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return static_cast<std::uint32_t>(std::clamp<long long>(us, 0, 0xffffffffLL));
}

std::string keyPath(const Config& c, std::size_t key) { return c.root + "/k" + std::to_string(key); }

// ---- the writer ----

// One acknowledged write.
struct Ack {
  std::uint64_t revision = 0;  // X-Warden-Revision of the 200
  std::size_t key = 0;
  Clock::time_point due, sent, acked;
};

struct WriteResult {
  std::vector<Ack> acks;
  std::size_t errors = 0;
  std::string firstError;
  double seconds = 0;
  double maxLateMs = 0;  // paced: how far behind its schedule the latest write started
};

// What a phase's writer connections share; they all run on the phase's one thread.
struct WriteSchedule {
  bool paced = true;  // else closed loop: each connection sends its next write on the last's ack
  double rate = 0;
  Clock::time_point start, end;
  std::uint64_t next = 0;  // the next write to take; write k goes to key k % keys
  std::size_t keys = 0;
  const Config* config = nullptr;
  std::string body;
  WriteResult result;
};

// One keep-alive connection putting the schedule's writes until its end.
class Writer : public std::enable_shared_from_this<Writer> {
 public:
  Writer(net::io_context& ioc, WriteSchedule& schedule, tcp::resolver::results_type addresses)
      : stream_(ioc), timer_(ioc), schedule_(schedule), addresses_(std::move(addresses)) {}

  void start() {
    stream_.async_connect(addresses_, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return self->fail("connect: " + ec.message());
      self->take();
    });
  }

 private:
  void take() {
    WriteSchedule& s = schedule_;
    const std::uint64_t k = s.next++;
    key_ = static_cast<std::size_t>(k % s.keys);
    due_ = s.paced ? s.start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(k) / s.rate))
                   : std::max(s.start, Clock::now());
    if (due_ >= s.end) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    timer_.expires_at(due_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->send();
    });
  }

  void send() {
    sent_ = Clock::now();
    schedule_.result.maxLateMs =
        std::max(schedule_.result.maxLateMs, std::chrono::duration<double, std::milli>(sent_ - due_).count());
    req_ = {};
    req_.version(11);
    req_.method(http::verb::put);
    req_.target("/v1/nodes" + percentEncodePath(keyPath(*schedule_.config, key_)));
    req_.keep_alive(true);
    req_.set(http::field::host, "warden");
    req_.set(http::field::content_type, "application/json");
    req_.body() = schedule_.body;
    req_.prepare_payload();
    stream_.expires_after(std::chrono::seconds(30));
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail("write: " + ec.message());
      self->res_ = {};
      http::async_read(self->stream_, self->buffer_, self->res_,
                       [self](beast::error_code ec2, std::size_t) { self->onAnswer(ec2); });
    });
  }

  void onAnswer(beast::error_code ec) {
    const auto acked = Clock::now();
    if (ec) return fail("read: " + ec.message());
    WriteResult& r = schedule_.result;
    const auto revision = res_.find("X-Warden-Revision");
    std::uint64_t value = 0;
    const bool parsed = revision != res_.end() &&
                        std::from_chars(revision->value().data(), revision->value().data() + revision->value().size(),
                                        value).ec == std::errc{};
    if (res_.result_int() != 200 || !parsed) {
      if (r.errors++ == 0) r.firstError = std::to_string(res_.result_int()) + " " + res_.body().substr(0, 200);
    } else {
      r.acks.push_back(Ack{value, key_, due_, sent_, acked});
    }
    take();
  }

  void fail(const std::string& what) {
    if (schedule_.result.errors++ == 0) schedule_.result.firstError = what;
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  WriteSchedule& schedule_;
  tcp::resolver::results_type addresses_;
  std::size_t key_ = 0;
  Clock::time_point due_, sent_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

// Runs one writer phase to its end on the calling thread.
WriteResult runWrites(const Config& c, const tcp::resolver::results_type& addresses, bool paced, double seconds,
                      std::size_t connections) {
  net::io_context ioc;
  WriteSchedule s;
  s.paced = paced;
  s.rate = c.rate;
  s.keys = c.keys;
  s.config = &c;
  s.body = json{{"data", std::string(c.valueSize, 'w')}}.dump();
  s.start = Clock::now() + std::chrono::milliseconds(50);  // the connections are open by then
  s.end = s.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (std::size_t i = 0; i < connections; ++i) std::make_shared<Writer>(ioc, s, addresses)->start();
  ioc.run();
  s.result.seconds = std::chrono::duration<double>(Clock::now() - s.start).count();
  return std::move(s.result);
}

// ---- the figures ----

struct Delays {
  std::vector<std::uint32_t> fromAck, fromSend;  // microseconds
  std::size_t early = 0;                         // received before the writer had the ack
  std::size_t received = 0, expected = 0;
};

void printDelays(const char* indent, Delays& d) {
  if (d.fromAck.empty()) {
    std::printf("%sno events received\n", indent);
    return;
  }
  const std::size_t n = d.fromAck.size();
  const double earlyPercent = 100.0 * static_cast<double>(d.early) / static_cast<double>(n);
  const double p50 = percentileMs(d.fromAck, 0.5), p99 = percentileMs(d.fromAck, 0.99),
               p999 = percentileMs(d.fromAck, 0.999), max = percentileMs(d.fromAck, 1.0);
  std::printf("%sdelay, write ack -> event received: %zu events   p50 %.2f ms   p99 %.2f ms   p999 %.2f ms   max %.2f ms"
              "   (%zu = %.1f%% arrived before the ack, counted as 0)\n",
              indent, n, p50, p99, p999, max, d.early, earlyPercent);
  std::printf("%sdelay, write sent -> event received:   p50 %.2f ms   p99 %.2f ms   max %.2f ms\n", indent,
              percentileMs(d.fromSend, 0.5), percentileMs(d.fromSend, 0.99), percentileMs(d.fromSend, 1.0));
  std::printf("%sevents expected %zu, received %zu, missing %zu\n", indent, d.expected, d.received,
              d.expected > d.received ? d.expected - d.received : 0);
}

void printWrites(const char* what, WriteResult& r, bool paced, double rate, std::size_t connections) {
  std::vector<std::uint32_t> latency;
  latency.reserve(r.acks.size());
  for (const Ack& a : r.acks) latency.push_back(micros(a.acked - a.sent));
  const double perSecond = static_cast<double>(r.acks.size()) / r.seconds;
  if (paced) {
    std::printf("  %s, paced at %.0f writes/s over %zu connections for %.1f s: %zu acked = %.0f/s   ack latency p50 %.2f ms"
                "   p99 %.2f ms   max %.2f ms   latest start %.0f ms behind schedule   errors %zu%s%s\n",
                what, rate, connections, r.seconds, r.acks.size(), perSecond, percentileMs(latency, 0.5),
                percentileMs(latency, 0.99), percentileMs(latency, 1.0), r.maxLateMs, r.errors,
                r.errors ? ", first: " : "", r.firstError.c_str());
  } else {
    std::printf("  %s, closed loop over %zu connections for %.1f s: %zu acked = %.0f writes/s   ack latency p50 %.2f ms"
                "   p99 %.2f ms   errors %zu%s%s\n",
                what, connections, r.seconds, r.acks.size(), perSecond, percentileMs(latency, 0.5),
                percentileMs(latency, 0.99), r.errors, r.errors ? ", first: " : "", r.firstError.c_str());
  }
}

// ---- setup ----

Config parseConfig(const std::vector<std::string>& argv) {
  Args args(argv, {});
  args.allow({"endpoints", "watchers", "keys", "rate", "duration", "burst", "writers", "burst-connections", "value-size",
              "threads", "parallel-opens", "server-pid", "prefix"});
  if (!args.positionals().empty()) throw UsageError("unexpected argument '" + args.positionals().front() + "'");
  Config c;
  if (auto e = args.get("endpoints")) c.endpoint = HttpClient::parseEndpoints(*e).at(0);
  c.watchers = static_cast<std::size_t>(args.number("watchers", 10'000, 0, 1'000'000));
  c.keys = static_cast<std::size_t>(args.number("keys", 100, 1, 100'000));
  c.rate = static_cast<double>(args.number("rate", 200, 1, 100'000));
  c.seconds = static_cast<double>(args.number("duration", 15, 1, 3600));
  c.burstSeconds = static_cast<double>(args.number("burst", 5, 0, 3600));
  c.writers = static_cast<std::size_t>(args.number("writers", 8, 1, 1000));
  c.burstConnections = static_cast<std::size_t>(args.number("burst-connections", 16, 1, 1000));
  c.valueSize = static_cast<std::size_t>(args.number("value-size", 100, 0, 1 << 20));
  c.threads = static_cast<unsigned>(args.number("threads", 1, 1, 64));
  c.parallelOpens = static_cast<std::size_t>(args.number("parallel-opens", 256, 1, 100'000));
  c.serverPid = static_cast<long>(args.number("server-pid", 0, 0, 1 << 30));
  c.prefix = args.get("prefix", c.prefix);
  if (!c.prefix.starts_with("/") || c.prefix.size() < 2 || c.prefix.back() == '/') {
    throw UsageError("--prefix is a node path such as /watchbench");
  }
  return c;
}

// Every watcher holds a socket: the soft limit goes up to the hard one, which must suffice.
void raiseFileLimit(const Config& c) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t needed = c.watchers + std::max(c.writers, c.burstConnections) + 64;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    throw UsageError(std::to_string(c.watchers) + " watchers need about " + std::to_string(needed) +
                     " open files; this process may open " + std::to_string(limit.rlim_cur) + " (ulimit -Hn)");
  }
}

// The run's root (then `created` is set) and its keys, one transaction per 1024 keys.
void prepare(HttpClient& client, const Config& c, bool& created) {
  auto r = client.request("POST", "/v1/nodes" + percentEncodePath(c.root), json{{"make_parents", true}}.dump());
  if (r.status != 201) throw std::runtime_error("creating " + c.root + " failed: " + std::to_string(r.status) + " " + r.body);
  created = true;
  for (std::size_t first = 0; first < c.keys; first += 1024) {
    json ops = json::array();
    for (std::size_t k = first; k < std::min(c.keys, first + 1024); ++k) {
      ops.push_back({{"op", "set"}, {"path", keyPath(c, k)}, {"data", ""}, {"create", true}});
    }
    auto t = client.request("POST", "/v1/txn", json{{"ops", ops}}.dump());
    if (t.status != 200) throw std::runtime_error("creating the keys failed: " + std::to_string(t.status) + " " + t.body);
  }
}

void reportError(const std::string& what) {
  std::string line = what;
  for (char& ch : line) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  std::fflush(stdout);
  std::cerr << "warden: bench-watch: " << line << std::endl;
}

constexpr const char* kUsage =
    "warden bench-watch [--endpoints URL] [--watchers 10000] [--keys 100] [--rate 200] [--duration 15] [--burst 5] "
    "[--writers 8] [--burst-connections 16] [--value-size 100] [--threads 1] [--parallel-opens 256] [--server-pid PID] "
    "[--prefix /watchbench]";

// The run itself, once the root and keys exist; true when nothing failed or went missing.
bool run(const Config& c) {
  net::io_context resolverContext;
  const std::string hostPort = c.endpoint.substr(c.endpoint.find("://") + 3);
  const std::size_t colon = hostPort.rfind(':');
  const auto addresses = tcp::resolver(resolverContext).resolve(hostPort.substr(0, colon), hostPort.substr(colon + 1));
  const std::size_t perKeyMax = (c.watchers + c.keys - 1) / c.keys;
  std::printf("  %zu SSE watchers, watcher i on GET /v1/watch%s/k<i %% %zu>?stream: %zu to %zu per key, so each write"
              " fans out to about %zu streams; %u thread(s) read them, the writer has its own\n",
              c.watchers, c.root.c_str(), c.keys, c.watchers / c.keys, perKeyMax, perKeyMax, c.threads);
  std::fflush(stdout);

  // 1. The writer alone.
  {
    CpuMeter cpu(c.serverPid);
    WriteResult alone = runWrites(c, addresses, true, c.seconds, c.writers);
    printWrites("writer alone", alone, true, c.rate, c.writers);
    std::printf("    %s\n", cpu.report().c_str());
  }
  if (c.burstSeconds > 0) {
    CpuMeter cpu(c.serverPid);
    WriteResult alone = runWrites(c, addresses, false, c.burstSeconds, c.burstConnections);
    printWrites("writer alone", alone, false, c.rate, c.burstConnections);
    std::printf("    %s\n", cpu.report().c_str());
  }
  std::fflush(stdout);

  // 2. The watchers open, a bounded number of requests at a time.
  net::io_context ioc;
  Fleet fleet;
  for (std::size_t i = 0; i < c.watchers; ++i) {
    std::string request = "GET /v1/watch" + percentEncodePath(keyPath(c, i % c.keys)) +
                          "?stream HTTP/1.1\r\nHost: warden\r\nAccept: text/event-stream\r\n\r\n";
    fleet.watchers.push_back(std::make_shared<Watcher>(ioc, addresses.begin()->endpoint(), std::move(request), fleet));
  }
  const double rssBefore = c.serverPid ? rssBytes(c.serverPid) : 0;
  const double ownRssBefore = rssBytes(getpid());
  const auto openStart = Clock::now();
  net::post(ioc, [&fleet, &c] {
    for (std::size_t i = 0; i < std::min(c.parallelOpens, c.watchers); ++i) fleet.openNext();
  });
  auto work = net::make_work_guard(ioc);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < c.threads; ++t) threads.emplace_back([&ioc] { ioc.run(); });
  const auto openDeadline = openStart + std::chrono::seconds(120);
  while (fleet.opened + fleet.refused < c.watchers && Clock::now() < openDeadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double openSeconds = std::chrono::duration<double>(Clock::now() - openStart).count();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let the server settle
  const double rssOpen = c.serverPid ? rssBytes(c.serverPid) : 0;
  const double ownRssOpen = rssBytes(getpid());
  std::vector<std::size_t> openPerKey(c.keys, 0);
  for (std::size_t i = 0; i < c.watchers; ++i) {
    if (fleet.watchers[i]->open) openPerKey[i % c.keys]++;
  }
  const std::size_t opened = fleet.opened;
  std::printf("  watchers open: %zu of %zu in %.1f s, %zu refused or failed to open%s\n", opened, c.watchers,
              openSeconds, fleet.refused.load(),
              opened < c.watchers ? " (the server needs --max-connections and --max-watchers above --watchers)" : "");
  if (c.serverPid && opened > 0) {
    std::printf("  server resident memory %.1f MiB before, %.1f MiB with the watchers open: %.1f KiB per watcher"
                " (user space only; the kernel's socket buffers are not in it)\n",
                rssBefore / 1048576.0, rssOpen / 1048576.0, (rssOpen - rssBefore) / 1024.0 / static_cast<double>(opened));
  }
  std::printf("  bench resident memory +%.1f MiB for the watchers\n", (ownRssOpen - ownRssBefore) / 1048576.0);
  std::fflush(stdout);

  // 3. The writer with the watchers.
  WriteResult watched, burst;
  std::string watchedCpu, burstCpu;
  {
    CpuMeter cpu(c.serverPid);
    watched = runWrites(c, addresses, true, c.seconds, c.writers);
    watchedCpu = cpu.report();
  }
  const double rssPaced = c.serverPid ? rssBytes(c.serverPid) : 0;
  if (c.burstSeconds > 0) {
    CpuMeter cpu(c.serverPid);
    burst = runWrites(c, addresses, false, c.burstSeconds, c.burstConnections);
    burstCpu = cpu.report();
  }
  std::uint64_t expected = 0;
  for (const WriteResult* r : {&watched, &burst}) {
    for (const Ack& a : r->acks) expected += openPerKey[a.key];
  }
  // Let the streams catch up with the last writes (a burst may leave them behind).
  const auto drainStart = Clock::now();
  while (fleet.messages < expected && Clock::now() < drainStart + std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double drainSeconds = std::chrono::duration<double>(Clock::now() - drainStart).count();
  const double rssAfter = c.serverPid ? rssBytes(c.serverPid) : 0;
  fleet.stopping = true;
  work.reset();
  ioc.stop();
  for (auto& t : threads) t.join();

  // 4. The figures: each watcher's receipt of a revision against that revision's ack.
  struct Written {
    const Ack* ack;
    int phase;  // 0 paced, 1 burst
  };
  std::unordered_map<std::uint64_t, Written> byRevision;
  Delays delays[2];
  for (int phase = 0; phase < 2; ++phase) {
    for (const Ack& a : (phase == 0 ? watched : burst).acks) {
      byRevision.emplace(a.revision, Written{&a, phase});
      delays[phase].expected += openPerKey[a.key];
    }
  }
  std::size_t unmatched = 0, progress = 0, compacted = 0, malformed = 0, outOfOrder = 0, withErrors = 0;
  std::string firstError;
  for (const auto& w : fleet.watchers) {
    for (const Sample& s : w->samples) {
      auto it = byRevision.find(s.revision);
      if (it == byRevision.end()) {
        unmatched++;
        continue;
      }
      Delays& d = delays[it->second.phase];
      d.received++;
      if (s.at < it->second.ack->acked) d.early++;
      d.fromAck.push_back(micros(s.at - it->second.ack->acked));
      d.fromSend.push_back(micros(s.at - it->second.ack->sent));
    }
    progress += w->progress;
    compacted += w->compacted;
    malformed += w->malformed;
    outOfOrder += w->outOfOrder;
    if (!w->error.empty() && withErrors++ == 0) firstError = w->error;
  }

  printWrites("writer with the watchers", watched, true, c.rate, c.writers);
  std::printf("    %s\n", watchedCpu.c_str());
  printDelays("    ", delays[0]);
  if (c.burstSeconds > 0) {
    printWrites("writer with the watchers", burst, false, c.rate, c.burstConnections);
    std::printf("    %s\n", burstCpu.c_str());
    printDelays("    ", delays[1]);
  }
  std::printf("  streams caught up %.1f s after the last write\n", drainSeconds);
  if (c.serverPid) {
    std::printf("  server resident memory: %.1f MiB with the watchers open, %.1f MiB after the paced writes, %.1f MiB at the"
                " end\n", rssOpen / 1048576.0, rssPaced / 1048576.0, rssAfter / 1048576.0);
  }
  std::printf("  streams lost %zu, progress messages %zu, compacted %zu, malformed %zu, out of order %zu, events of"
              " unacknowledged writes %zu; watchers with an error %zu%s%s\n",
              fleet.lost.load(), progress, compacted, malformed, outOfOrder, unmatched, withErrors,
              withErrors ? ", first: " : "", firstError.substr(0, 200).c_str());
  const std::size_t missing = (delays[0].expected - std::min(delays[0].expected, delays[0].received)) +
                              (delays[1].expected - std::min(delays[1].expected, delays[1].received));
  return opened == c.watchers && missing == 0 && fleet.lost == 0 && compacted == 0 && malformed == 0 &&
         outOfOrder == 0 && watched.errors == 0 && burst.errors == 0;
}

}  // namespace

int runWatchBench(const std::vector<std::string>& argv) {
  if (asksForHelp(argv)) {
    std::cout << "usage: " << kUsage << "\n";
    return 0;
  }
  Config config;
  try {
    config = parseConfig(argv);
    raiseFileLimit(config);
  } catch (const std::exception& e) {
    reportError(std::string(e.what()) + " (usage: " + kUsage + ")");
    return 2;
  }
  config.root = config.prefix + "-" + HttpClient::newIdempotencyKey().substr(0, 16);
  int code = 0;
  bool created = false;
  try {
    HttpClient admin({config.endpoint});
    prepare(admin, config, created);
    std::printf("warden bench-watch: %s, nodes under %s (deleted at the end)\n", config.endpoint.c_str(),
                config.root.c_str());
    code = run(config) ? 0 : 1;
  } catch (const std::exception& e) {
    reportError(e.what());
    code = 3;
  }
  if (!created) return code;
  try {
    HttpClient admin({config.endpoint});
    deleteSubtree(admin, config.root);
  } catch (const std::exception& e) {
    reportError("could not delete " + config.root + ": " + e.what());
    if (code == 0) code = 3;
  }
  return code;
}

}  // namespace warden::api
