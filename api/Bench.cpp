#include "api/Bench.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <optional>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "api/Args.h"
#include "api/HttpClient.h"
#include "api/JsonCodec.h"
#include "api/LoadDriver.h"
#include "api/Percentile.h"
#include "api/SubtreeDelete.h"
#include "api/Url.h"

namespace warden::api {

using json = nlohmann::ordered_json;

namespace {

enum class BenchOp { Put = 0, Get = 1, Create = 2 };
constexpr const char* kOpNames[] = {"put", "get", "create"};

struct BenchConfig {
  std::string endpoint = "http://127.0.0.1:7070";
  std::size_t connections = 64;
  double seconds = 10;
  unsigned weights[3] = {50, 50, 0};
  std::size_t valueSize = 100;
  std::size_t keys = 1000;
  std::string prefix = "/bench";
  std::string root;  // where this run's nodes go: prefix-<16 random hex digits>
  bool keep = false;  // leave the root and its subtree in place at the end
  unsigned threads = 2;
  std::string consistency;  // empty: linearizable
  std::vector<long> serverPids;  // --server-pids: their CPU per request, by thread
};

BenchConfig parseConfig(const std::vector<std::string>& argv) {
  Args args(argv, {"keep"});
  args.allow({"endpoints", "connections", "duration", "mix", "value-size", "keys", "prefix", "threads", "consistency",
              "keep", "server-pids"});
  if (!args.positionals().empty()) throw UsageError("unexpected argument '" + args.positionals().front() + "'");
  BenchConfig c;
  if (auto e = args.get("endpoints")) c.endpoint = HttpClient::parseEndpoints(*e).at(0);
  c.connections = static_cast<std::size_t>(args.number("connections", 64, 1, 20'000));
  c.seconds = static_cast<double>(args.number("duration", 10, 1, 3600));
  c.valueSize = static_cast<std::size_t>(args.number("value-size", 100, 0, 1 << 20));
  c.keys = static_cast<std::size_t>(args.number("keys", 1000, 1, 10'000'000));
  c.threads = static_cast<unsigned>(args.number("threads", 2, 1, 64));
  c.prefix = args.get("prefix", c.prefix);
  if (!c.prefix.starts_with("/") || c.prefix.size() < 2 || c.prefix.back() == '/') {
    throw UsageError("--prefix is a node path such as /bench");
  }
  c.keep = args.has("keep");
  c.serverPids = parsePids(args, "server-pids");
  c.consistency = args.get("consistency", "");
  if (auto mix = args.get("mix")) {
    // "put=50,get=50,create=0"
    std::fill(std::begin(c.weights), std::end(c.weights), 0u);
    std::size_t start = 0;
    while (start < mix->size()) {
      std::size_t comma = mix->find(',', start);
      if (comma == std::string::npos) comma = mix->size();
      std::string item = mix->substr(start, comma - start);
      std::size_t eq = item.find('=');
      auto name = item.substr(0, eq);
      auto it = std::find(std::begin(kOpNames), std::end(kOpNames), name);
      if (eq == std::string::npos || it == std::end(kOpNames)) throw UsageError("--mix is like put=50,get=50,create=0");
      const std::string weight = item.substr(eq + 1);
      if (weight.empty() || weight.size() > 6 || weight.find_first_not_of("0123456789") != std::string::npos) {
        throw UsageError("--mix weights are whole numbers, as in put=50,get=50,create=0");
      }
      c.weights[it - std::begin(kOpNames)] = static_cast<unsigned>(std::stoul(weight));
      start = comma + 1;
    }
    if (c.weights[0] + c.weights[1] + c.weights[2] == 0) throw UsageError("--mix needs a non-zero weight");
  }
  return c;
}

std::string nodeTarget(const std::string& path) { return "/v1/nodes" + percentEncodePath(path); }

std::string failure(const char* what, const std::string& path, const HttpResponse& r) {
  return std::string(what) + " " + path + " failed: " + std::to_string(r.status) + " " + r.body.substr(0, 200);
}

// Creates the run's root, which must not exist yet: what the bench deletes is its own.
void createRoot(HttpClient& client, const BenchConfig& c) {
  auto r = client.request("POST", nodeTarget(c.root), json{{"make_parents", true}}.dump());
  if (r.status != 201) throw std::runtime_error(failure("creating", c.root, r));
}

// Creates the key space so that gets find their keys: one transaction per 1024 keys, or fewer
// when their values would not fit in half a request body (5,000-byte values: about 150 a transaction).
void prepare(HttpClient& client, const BenchConfig& c) {
  auto r = client.request("POST", nodeTarget(c.root + "/c"));
  if (r.status != 201) throw std::runtime_error(failure("creating", c.root + "/c", r));
  std::string value(c.valueSize, 'x');
  const std::size_t opBytes = c.valueSize + c.root.size() + 64;  // the value, its path, the op's JSON
  const std::size_t perTxn = std::clamp<std::size_t>(kMaxBodyBytes / 2 / opBytes, 1, 1024);
  for (std::size_t first = 0; first < c.keys; first += perTxn) {
    json ops = json::array();
    for (std::size_t k = first; k < std::min(c.keys, first + perTxn); ++k) {
      ops.push_back({{"op", "set"}, {"path", c.root + "/k" + std::to_string(k)}, {"data", value}, {"create", true}});
    }
    auto r = client.request("POST", "/v1/txn", json{{"ops", ops}}.dump());
    if (r.status != 200) throw std::runtime_error("preparing keys failed: " + r.body);
  }
}

void printLine(const char* name, std::vector<std::uint32_t>& v, double seconds) {
  if (v.empty()) return;
  std::printf("  %-6s %9zu ops %10.0f ops/s   p50 %7.2f ms   p99 %7.2f ms   p999 %7.2f ms\n", name, v.size(),
              static_cast<double>(v.size()) / seconds, percentileMs(v, 0.50), percentileMs(v, 0.99), percentileMs(v, 0.999));
}

// The endpoint's commit index (a cluster member's /v1/status), if it reports one.
std::optional<std::uint64_t> commitIndex(HttpClient& client) {
  try {
    auto r = client.request("GET", "/v1/status");
    const json status = json::parse(r.body, nullptr, false);
    if (r.status == 200 && status.is_object() && status.contains("commit_index") && status["commit_index"].is_number_unsigned()) {
      return status["commit_index"].get<std::uint64_t>();
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// The servers' CPU per request over the measured window, in all and by process and thread name,
// with how often those threads slept (each a wake-up to pay for).
void printServerCost(const load::LoadResult& result, std::size_t requests) {
  const double n = static_cast<double>(requests);
  unsigned long long wakeups = 0;
  std::set<long> pids;
  for (const auto& t : result.serverThreads) {
    wakeups += t.wakeups;
    pids.insert(t.pid);
  }
  std::printf("  server CPU %.1f us a request (%zu processes), %.2f wake-ups a request\n", result.serverCpu * 1e6 / n,
              pids.size(), static_cast<double>(wakeups) / n);
  for (const auto& t : result.serverThreads) {
    if (t.cpuSeconds <= 0 && t.wakeups == 0) continue;
    std::printf("    pid %-7ld %-16s %7.1f us  %5.3f wake-ups a request  (%zu thread%s)\n", t.pid, t.name.c_str(),
                t.cpuSeconds * 1e6 / n, static_cast<double>(t.wakeups) / n, t.threads, t.threads == 1 ? "" : "s");
  }
}

// Runs the load until the deadline (api/LoadDriver.h, each request a put, get or create by the
// mix's weights, on a key drawn at random) and prints the figures; true when no request failed.
bool runLoad(const BenchConfig& config) {
  const std::string value = json{{"data", std::string(config.valueSize, 'x')}}.dump();
  const std::string createBody = json{{"data", std::string(config.valueSize, 'x')}, {"sequential", true}}.dump();
  load::LoadConfig load;
  load.endpoint = config.endpoint;
  load.connections = config.connections;
  load.threads = config.threads;
  load.seconds = config.seconds;
  load.kinds = 3;
  // The targets are written into the connection's scratch string: no allocation per request.
  const std::string keyTarget = "/v1/nodes" + config.root + "/k";
  const std::string createTarget = "/v1/nodes" + config.root + "/c/n";
  const std::string getQuery = config.consistency.empty() ? "" : "?consistency=" + config.consistency;
  load.make = [&](std::mt19937_64& rng, load::RequestWriter& req) -> std::size_t {
    const unsigned total = config.weights[0] + config.weights[1] + config.weights[2];
    const unsigned pick = std::uniform_int_distribution<unsigned>(0, total - 1)(rng);
    const BenchOp op = pick < config.weights[0]                       ? BenchOp::Put
                       : pick < config.weights[0] + config.weights[1] ? BenchOp::Get
                                                                      : BenchOp::Create;
    const std::size_t key = std::uniform_int_distribution<std::size_t>(0, config.keys - 1)(rng);
    std::string& target = req.scratch();
    target.assign(keyTarget);
    char digits[24];
    target.append(digits, std::to_chars(digits, digits + sizeof digits, key).ptr);
    switch (op) {
      case BenchOp::Put:
        req.set("PUT", target, value);
        break;
      case BenchOp::Get:
        req.set("GET", target, getQuery, {});
        break;
      case BenchOp::Create:
        req.set("POST", createTarget, createBody);
        break;
    }
    return static_cast<std::size_t>(op);
  };
  load.serverPids = config.serverPids;
  HttpClient status({config.endpoint});
  const auto commitBefore = commitIndex(status);
  load::LoadResult result = load::runLoad(load);
  const auto commitAfter = commitIndex(status);

  std::vector<std::uint32_t> total;
  for (auto& v : result.micros) total.insert(total.end(), v.begin(), v.end());
  std::printf("warden bench: %s, %zu connections, %.1f s, mix put=%u get=%u create=%u, value %zu B, %zu keys%s\n",
              config.endpoint.c_str(), config.connections, result.seconds, config.weights[0], config.weights[1],
              config.weights[2], config.valueSize, config.keys,
              config.consistency.empty() ? "" : (", consistency=" + config.consistency).c_str());
  for (int op = 0; op < 3; ++op) printLine(kOpNames[op], result.micros[op], result.seconds);
  printLine("total", total, result.seconds);
  std::printf("  errors %zu%s%s\n", result.errors, result.errors ? ", first: " : "", result.firstError.substr(0, 200).c_str());
  const std::size_t writes = result.micros[0].size() + result.micros[2].size();
  if (commitBefore && commitAfter && *commitAfter > *commitBefore && writes > 0) {
    // Each slot costs its members a flush and a round of messages, whatever it holds.
    std::printf("  log slots %llu for %zu writes: %.1f writes a slot\n",
                static_cast<unsigned long long>(*commitAfter - *commitBefore), writes,
                static_cast<double>(writes) / static_cast<double>(*commitAfter - *commitBefore));
  }
  if (!config.serverPids.empty() && !total.empty()) printServerCost(result, total.size());
  return result.errors == 0;
}

// One line on stderr, as every error of the warden binary.
void reportError(const std::string& what) {
  std::string line = what;
  for (char& ch : line) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  std::fflush(stdout);
  std::cerr << "warden: bench: " << line << std::endl;
}

constexpr const char* kBenchUsage =
    "warden bench [--endpoints URL] [--connections 64] [--duration 10] [--mix put=50,get=50,create=0] "
    "[--value-size 100] [--keys 1000] [--prefix /bench] [--keep] [--threads 2] [--consistency stale] "
    "[--server-pids P1,P2,P3]";

}  // namespace

int runBench(const std::vector<std::string>& argv) {
  if (asksForHelp(argv)) {
    std::cout << "usage: " << kBenchUsage << "\n";
    return 0;
  }
  BenchConfig config;
  try {
    config = parseConfig(argv);
  } catch (const std::exception& e) {
    reportError(std::string(e.what()) + " (usage: " + kBenchUsage + ")");
    return 2;
  }
  config.root = config.prefix + "-" + HttpClient::newIdempotencyKey().substr(0, 16);
  int code = 0;
  bool created = false;
  try {
    HttpClient admin({config.endpoint});
    createRoot(admin, config);
    created = true;
    std::printf("warden bench: nodes under %s, %s\n", config.root.c_str(),
                config.keep ? "kept at the end (--keep)" : "deleted at the end (--keep keeps them)");
    std::fflush(stdout);
    prepare(admin, config);
    code = runLoad(config) ? 0 : 1;
  } catch (const std::exception& e) {
    reportError(e.what());
    code = 3;
  }
  if (!created) return code;
  if (config.keep) {
    std::printf("  kept %s\n", config.root.c_str());
    return code;
  }
  try {
    HttpClient admin({config.endpoint});
    const SubtreeDeleted deleted = deleteSubtree(admin, config.root);
    if (deleted.batches > 1) {
      std::printf("  deleted %s in %llu writes (more than the server's --max-txn-nodes)\n", config.root.c_str(),
                  static_cast<unsigned long long>(deleted.batches));
    } else {
      std::printf("  deleted %s\n", config.root.c_str());
    }
  } catch (const SubtreeDeleteError& e) {
    if (e.response().status == 404 && e.batches() == 0) {
      std::printf("  %s was already deleted\n", config.root.c_str());
    } else {
      reportError("could not delete " + config.root + ": " + e.what());
      if (code == 0) code = 3;
    }
  } catch (const std::exception& e) {
    reportError("could not delete " + config.root + ": " + e.what());
    if (code == 0) code = 3;
  }
  return code;
}

}  // namespace warden::api
