#include "api/ScaleBench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/Args.h"
#include "api/HttpClient.h"
#include "api/JsonCodec.h"
#include "api/Percentile.h"
#include "api/Url.h"
#include "coordinator/StateMachine.h"

namespace warden::api {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

namespace {

constexpr const char* kUsage =
    "usage: warden bench-scale load --endpoints URL --nodes N [--value-size 100] [--fanout 1000]\n"
    "                               [--txn-ops 1024] [--loaders 4] [--prefix /scale]\n"
    "       warden bench-scale ready --endpoints URL [--since-ns NS] [--key /] [--timeout 600]\n"
    "                                [--writer URL [--writer-rate 200] [--writer-path /scale/writer]]\n"
    "                                [--leader-before ID --ballot-before R.N]\n";

struct LoadConfig {
  std::string endpoint;
  std::uint64_t nodes = 0;
  std::size_t valueSize = 100, fanout = 1000, txnOps = coordinator::kMaxTxnOps, loaders = 4;
  std::string prefix = "/scale";
};

struct ReadyConfig {
  std::string endpoint, key = "/", writer, writerPath = "/scale/writer";
  std::int64_t sinceNs = 0;
  double timeoutSeconds = 600, writerRate = 200;
  std::string leaderBefore, ballotBefore;
};

std::int64_t wallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string describe(const HttpResponse& r) {
  std::string body = r.body.substr(0, 200);
  for (char& ch : body) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  return std::to_string(r.status) + " " + body;
}

// Thousands separated by commas, as the README prints figures.
std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Runs `batches` transactions over `loaders` connections, each body made by `build(batch, body)`;
// prints progress every 10 s. Returns the first failure, empty when every transaction was applied.
template <typename Build>
std::string runBatches(const LoadConfig& c, std::uint64_t batches, std::uint64_t itemsPerBatch, std::uint64_t items,
                       const char* what, Build build, std::uint64_t& bytesSent, std::uint64_t& retriedAfter503) {
  std::atomic<std::uint64_t> next{0}, done{0}, sent{0}, retried{0};
  std::atomic<bool> failed{false};
  const std::size_t loaders = static_cast<std::size_t>(std::min<std::uint64_t>(c.loaders, batches));
  std::atomic<std::size_t> running{loaders};
  std::mutex mutex;
  std::string firstError;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < loaders; ++t) {
    threads.emplace_back([&] {
      struct Done {
        std::atomic<std::size_t>& running;
        ~Done() { --running; }
      } exit{running};
      HttpClient client({c.endpoint}, std::chrono::seconds(120), RetryPolicy{false, 1, std::chrono::milliseconds(0)});
      std::string body;
      for (std::uint64_t b = next++; b < batches && !failed; b = next++) {
        body.clear();
        build(b, body);
        std::string error;
        try {
          HttpResponse r = client.request("POST", "/v1/txn", body);
          // 503: never applied (no quorum, a leader change): safe to send again.
          for (int retry = 0; r.status == 503 && retry < 50; ++retry, ++retried) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            r = client.request("POST", "/v1/txn", body);
          }
          if (r.status != 200) error = describe(r);
        } catch (const std::exception& e) {
          error = e.what();
        }
        if (!error.empty()) {
          std::lock_guard lock(mutex);
          if (!failed.exchange(true)) firstError = std::string(what) + " transaction " + std::to_string(b) + ": " + error;
          return;
        }
        sent += body.size();
        done += std::min(itemsPerBatch, items - b * itemsPerBatch);
      }
    });
  }
  const auto start = Clock::now();
  auto report = start + std::chrono::seconds(10);
  std::thread progress([&] {
    while (running > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (Clock::now() < report) continue;
      report += std::chrono::seconds(10);
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      std::printf("  ... %s: %s of %s in %.0f s (%.0f/s)\n", what, grouped(done).c_str(), grouped(items).c_str(), s,
                  static_cast<double>(done) / s);
      std::fflush(stdout);
    }
  });
  for (auto& t : threads) t.join();
  progress.join();
  bytesSent += sent;
  retriedAfter503 += retried;
  return firstError;
}

int load(const LoadConfig& c) {
  HttpClient admin({c.endpoint});
  HttpResponse r = admin.request("POST", "/v1/nodes" + percentEncodePath(c.prefix), json{{"make_parents", true}}.dump());
  if (r.status != 201) {
    std::cerr << "warden bench-scale: creating " << c.prefix << " failed: " << describe(r) << "\n";
    return 3;
  }
  const std::string value(c.valueSize, 'x');
  auto child = [&](std::uint64_t i) { return c.prefix + "/p" + std::to_string(i / c.fanout) + "/k" + std::to_string(i); };
  // The largest create op of the run (the last key has the longest path), and the body's frame.
  const std::size_t opBytes = json{{"op", "create"}, {"path", child(c.nodes - 1)}, {"data", value}}.dump().size() + 1;
  const std::size_t frame = std::string(R"({"ops":[]})").size();
  const std::uint64_t fit = (kMaxBodyBytes - frame) / opBytes;
  if (fit == 0) {
    std::cerr << "warden bench-scale: one create of --value-size " << c.valueSize << " exceeds a request body\n";
    return 2;
  }
  const std::uint64_t perTxn = std::min<std::uint64_t>(c.txnOps, fit);
  const std::uint64_t parents = (c.nodes + c.fanout - 1) / c.fanout;
  std::uint64_t bytes = 0, retried = 0;
  const auto start = Clock::now();

  // Parents first, so that the children's transactions may land in any order.
  std::string error = runBatches(
      c, (parents + perTxn - 1) / perTxn, perTxn, parents, "parents",
      [&](std::uint64_t b, std::string& body) {
        body = R"({"ops":[)";
        for (std::uint64_t p = b * perTxn; p < std::min(parents, (b + 1) * perTxn); ++p) {
          if (p > b * perTxn) body += ',';
          body += R"({"op":"create","path":")" + c.prefix + "/p" + std::to_string(p) + "\"}";
        }
        body += "]}";
      },
      bytes, retried);
  const std::uint64_t txns = (c.nodes + perTxn - 1) / perTxn;
  if (error.empty()) {
    error = runBatches(
        c, txns, perTxn, c.nodes, "nodes",
        [&](std::uint64_t b, std::string& body) {
          body.reserve(perTxn * opBytes + frame);
          body = R"({"ops":[)";
          for (std::uint64_t i = b * perTxn; i < std::min(c.nodes, (b + 1) * perTxn); ++i) {
            if (i > b * perTxn) body += ',';
            body += R"({"op":"create","path":")";
            body += child(i);
            body += R"(","data":")";
            body += value;
            body += "\"}";
          }
          body += "]}";
        },
        bytes, retried);
  }
  if (!error.empty()) {
    std::cerr << "warden bench-scale: load failed: " << error << "\n";
    return 3;
  }
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  const std::string again = retried ? " (" + grouped(retried) + " sent again after a 503)" : "";
  std::printf("  loaded %s nodes of %zu bytes (under %s, %s parents of up to %zu) in %.1f s: %.0f nodes/s, "
              "%s transactions of up to %llu creates over %llu connections%s, %.1f MiB/s of requests\n",
              grouped(c.nodes).c_str(), c.valueSize, c.prefix.c_str(), grouped(parents).c_str(), c.fanout, s,
              static_cast<double>(c.nodes) / s, grouped(txns).c_str(), static_cast<unsigned long long>(perTxn),
              static_cast<unsigned long long>(std::min<std::uint64_t>(c.loaders, txns)), again.c_str(),
              static_cast<double>(bytes) / 1048576.0 / s);
  r = admin.request("GET", "/v1/status");
  const json status = r.json();
  if (r.status == 200 && status.contains("storage")) {
    std::printf("  state: %.1f MiB counted against the quota (path + data + 100 bytes a node), revision %s, "
                "commit index %s\n",
                status["storage"].value("used_bytes", 0.0) / 1048576.0,
                grouped(status.value("revision", std::uint64_t{0})).c_str(),
                grouped(status.value("commit_index", std::uint64_t{0})).c_str());
  }
  return 0;
}

// A paced writer on its own thread: puts of 100 bytes to one node, latency from each send.
class Writer {
 public:
  explicit Writer(const ReadyConfig& c) : config_(c) {
    if (!c.writer.empty()) thread_ = std::thread([this] { run(); });
  }
  ~Writer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void print() {
    if (config_.writer.empty()) return;
    std::printf("  writer at %s meanwhile (paced %.0f/s): %zu puts, p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %zu%s%s\n",
                config_.writer.c_str(), config_.writerRate, micros_.size(), percentileMs(micros_, 0.5),
                percentileMs(micros_, 0.99), percentileMs(micros_, 1), errors_, errors_ ? ", first: " : "",
                firstError_.c_str());
  }
  std::size_t errors() const { return errors_; }

 private:
  void run() {
    HttpClient client({config_.writer}, std::chrono::seconds(10), RetryPolicy{false, 1, std::chrono::milliseconds(0)});
    const std::string body = json{{"data", std::string(100, 'w')}, {"create", true}}.dump();
    const std::string target = "/v1/nodes" + percentEncodePath(config_.writerPath);
    const auto start = Clock::now();
    for (std::uint64_t k = 0; !stop_; ++k) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<long>(k * 1e6 / config_.writerRate)));
      const auto sent = Clock::now();
      std::string error;
      try {
        const HttpResponse r = client.request("PUT", target, body);
        if (r.status != 200) error = describe(r);
      } catch (const std::exception& e) {
        error = e.what();
      }
      micros_.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count()));
      if (!error.empty() && errors_++ == 0) firstError_ = error;
    }
  }

  const ReadyConfig& config_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::uint32_t> micros_;
  std::size_t errors_ = 0;
  std::string firstError_;
};

std::string leaderAndBallot(HttpClient& client, std::string* leader) {
  try {
    const json s = client.request("GET", "/v1/status").json();
    if (!s.is_object()) return "no status";
    *leader = s.contains("leader") && s["leader"].is_number() ? std::to_string(s["leader"].get<unsigned>()) : "none";
    return "node " + *leader + ", ballot " + s.value("ballot", std::string("?"));
  } catch (const std::exception& e) {
    return std::string("no status (") + e.what() + ")";
  }
}

int ready(const ReadyConfig& c) {
  const std::int64_t since = c.sinceNs ? c.sinceNs : wallNs();
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(c.timeoutSeconds * 1000));
  auto ms = [since] { return static_cast<double>(wallNs() - since) / 1e6; };
  Writer writer(c);
  HttpClient client({c.endpoint}, std::chrono::seconds(2), RetryPolicy{false, 1, std::chrono::milliseconds(0)});
  double healthMs = -1, readyMs = -1, readMs = -1;
  std::string state, timeline, lastAnswer = "no answer", firstFailure;
  std::size_t readFailures = 0;  // reads tried once /readyz said 200 that did not answer 200
  while (readMs < 0 && Clock::now() < deadline) {
    try {
      if (healthMs < 0) {
        const HttpResponse r = client.request("GET", "/healthz");
        if (r.status == 200) healthMs = ms();
        lastAnswer = "/healthz " + describe(r);
      }
      if (healthMs >= 0) {  // every answer of /readyz until the read succeeds: it may go back to 503
        const HttpResponse r = client.request("GET", "/readyz");
        const json body = r.json();
        const std::string now = r.status == 200 ? "200"
                                : "503 \"" + (body.is_object() ? body.value("reason", std::string()) : r.body) + "\"";
        if (r.status == 200 && readyMs < 0) readyMs = ms();
        if (now != state) {
          state = now;
          char at[32];
          std::snprintf(at, sizeof at, " at %.0f ms", ms());
          timeline += (timeline.empty() ? "" : ", ") + state + at;
        }
        lastAnswer = "/readyz " + describe(r);
      }
      if (readyMs >= 0) {
        const HttpResponse r = client.request("GET", "/v1/nodes" + percentEncodePath(c.key));
        if (r.status == 200) readMs = ms();
        lastAnswer = "read " + describe(r);
        if (r.status != 200 && readFailures++ == 0) firstFailure = describe(r);
      }
    } catch (const std::exception& e) {
      lastAnswer = e.what();
      if (readyMs >= 0 && readFailures++ == 0) firstFailure = e.what();
    }
    if (readMs < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  writer.stop();
  if (readMs < 0) {
    std::printf("  NOT ready within %.0f s (/healthz 200 at %.0f ms; /readyz %s); last answer: %s\n", c.timeoutSeconds,
                healthMs, timeline.c_str(), lastAnswer.c_str());
  } else {
    std::printf("  from its process start: /healthz 200 at %.0f ms; /readyz %s; a linearizable read%s%s through it "
                "at %.0f ms%s%s%s\n",
                healthMs, timeline.c_str(), c.key == "/" ? "" : " of ", c.key == "/" ? "" : c.key.c_str(), readMs,
                readFailures ? (" (after " + std::to_string(readFailures) + " that failed, the first: ").c_str() : "",
                firstFailure.c_str(), readFailures ? ")" : "");
  }
  writer.print();
  if (!c.leaderBefore.empty()) {
    HttpClient at({c.writer.empty() ? c.endpoint : c.writer}, std::chrono::seconds(2));
    std::string leader;
    const std::string after = leaderAndBallot(at, &leader);
    const bool same = leader == c.leaderBefore && after.ends_with("ballot " + c.ballotBefore);
    std::printf("  leader before: node %s, ballot %s; after: %s (%s)\n", c.leaderBefore.c_str(), c.ballotBefore.c_str(),
                after.c_str(), same ? "unchanged" : "CHANGED");
  }
  return readMs >= 0 && writer.errors() == 0 ? 0 : 1;
}

std::string endpointOf(const Args& args) {
  const auto e = args.get("endpoints");
  if (!e) throw UsageError("--endpoints URL is required");
  const auto list = HttpClient::parseEndpoints(*e);
  if (list.size() != 1) throw UsageError("--endpoints takes one node's URL");
  return list.front();
}

std::string nodePath(const Args& args, const char* name, const std::string& fallback) {
  std::string p = args.get(name, fallback);
  if (!p.starts_with("/") || p.size() < 2 || p.back() == '/') throw UsageError(std::string("--") + name + " is a node path");
  return p;
}

}  // namespace

int runScaleBench(const std::vector<std::string>& argv) {
  if (asksForHelp(argv)) {
    std::cout << kUsage;
    return 0;
  }
  std::string action;
  LoadConfig load_;
  ReadyConfig ready_;
  try {
    Args args(argv, {});
    if (args.positionals().size() != 1) throw UsageError("give one action, load or ready");
    action = args.positionals().front();
    if (action == "load") {
      args.allow({"endpoints", "nodes", "value-size", "fanout", "txn-ops", "loaders", "prefix"});
      if (!args.has("nodes")) throw UsageError("--nodes N is required");
      load_.endpoint = endpointOf(args);
      load_.nodes = static_cast<std::uint64_t>(args.number("nodes", 0, 1, LLONG_MAX));
      load_.valueSize = static_cast<std::size_t>(args.number("value-size", 100, 0, 1 << 20));
      load_.fanout = static_cast<std::size_t>(args.number("fanout", 1000, 1, 1'000'000'000));
      load_.txnOps = static_cast<std::size_t>(args.number("txn-ops", coordinator::kMaxTxnOps, 1, coordinator::kMaxTxnOps));
      load_.loaders = static_cast<std::size_t>(args.number("loaders", 4, 1, 256));
      load_.prefix = nodePath(args, "prefix", load_.prefix);
    } else if (action == "ready") {
      args.allow({"endpoints", "since-ns", "key", "timeout", "writer", "writer-rate", "writer-path", "leader-before",
                  "ballot-before"});
      ready_.endpoint = endpointOf(args);
      ready_.sinceNs = args.number("since-ns", 0, 0, LLONG_MAX);
      if (args.has("key")) ready_.key = nodePath(args, "key", "");  // default: the root, "/"
      ready_.timeoutSeconds = static_cast<double>(args.number("timeout", 600, 1, 86'400));
      if (auto w = args.get("writer")) ready_.writer = HttpClient::parseEndpoints(*w).at(0);
      ready_.writerRate = static_cast<double>(args.number("writer-rate", 200, 1, 100'000));
      ready_.writerPath = nodePath(args, "writer-path", ready_.writerPath);
      ready_.leaderBefore = args.get("leader-before", "");
      ready_.ballotBefore = args.get("ballot-before", "");
      if (ready_.leaderBefore.empty() != ready_.ballotBefore.empty()) {
        throw UsageError("--leader-before and --ballot-before go together");
      }
    } else {
      throw UsageError("unknown action '" + action + "' (load or ready)");
    }
  } catch (const std::exception& e) {
    std::cerr << "warden bench-scale: " << e.what() << "\n" << kUsage;
    return 2;
  }
  try {
    return action == "load" ? load(load_) : ready(ready_);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "warden bench-scale: " << e.what() << "\n";
    return 3;
  }
}

}  // namespace warden::api
