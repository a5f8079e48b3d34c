#include "api/SessionBench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "api/Args.h"
#include "api/HttpClient.h"
#include "api/Percentile.h"
#include "api/ProcStats.h"

namespace warden::api {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

namespace {

struct Config {
  std::vector<std::string> endpoints;
  std::size_t sessions = 100'000;
  std::uint64_t ttlMs = 30'000;
  double seconds = 60;
  std::size_t connections = 64;
  long leaderPid = 0;
};

struct Tally {
  std::mutex mutex;
  std::vector<std::uint32_t> micros;
  std::size_t errors = 0, lost = 0;
  std::string firstError;
  double maxLateMs = 0;

  void merge(std::vector<std::uint32_t>& local, std::size_t errors_, std::size_t lost_, const std::string& error,
             double lateMs) {
    std::lock_guard lock(mutex);
    micros.insert(micros.end(), local.begin(), local.end());
    errors += errors_;
    lost += lost_;
    if (firstError.empty()) firstError = error;
    maxLateMs = std::max(maxLateMs, lateMs);
  }
};

std::vector<std::string> createSessions(const Config& c) {
  std::vector<std::string> ids(c.sessions);
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> failures{0};
  std::vector<std::thread> threads;
  const std::string body = json{{"ttl_ms", c.ttlMs}, {"name", "bench"}}.dump();
  for (std::size_t t = 0; t < c.connections; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client({c.endpoints[t % c.endpoints.size()]});
      for (std::size_t i = next++; i < c.sessions; i = next++) {
        auto r = client.request("POST", "/v1/sessions", body);
        if (r.status != 201) {
          if (failures++ == 0) std::fprintf(stderr, "warden bench-sessions: create failed: %s\n", r.body.c_str());
          continue;
        }
        ids[i] = r.json()["id"].get<std::string>();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " session creates failed");
  return ids;
}

// Keepalive k is due at k / rate seconds: every session once per ttl/3, evenly spread.
void keepAlive(const Config& c, const std::vector<std::string>& ids, Tally& tally, double& elapsed) {
  const double rate = static_cast<double>(c.sessions) / (static_cast<double>(c.ttlMs) / 3000.0);
  const auto start = Clock::now();
  const auto end = start + std::chrono::milliseconds(static_cast<long>(c.seconds * 1000));
  std::atomic<std::uint64_t> next{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < c.connections; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client({c.endpoints[t % c.endpoints.size()]});
      std::vector<std::uint32_t> micros;
      std::size_t errors = 0, lost = 0;
      std::string firstError;
      double maxLate = 0;
      for (;;) {
        const std::uint64_t k = next++;
        const auto due = start + std::chrono::microseconds(static_cast<long>(static_cast<double>(k) * 1e6 / rate));
        if (due >= end) break;
        std::this_thread::sleep_until(due);
        const auto sent = Clock::now();
        maxLate = std::max(maxLate, std::chrono::duration<double, std::milli>(sent - due).count());
        try {
          auto r = client.request("POST", "/v1/sessions/" + ids[k % ids.size()] + "/keepalive");
          micros.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count()));
          if (r.status == 404) ++lost;  // expired although kept alive: the figure that must stay 0
          if (r.status != 200 && errors++ == 0) firstError = std::to_string(r.status) + " " + r.body;
        } catch (const HttpClientError& e) {
          if (errors++ == 0) firstError = e.what();
        }
      }
      tally.merge(micros, errors, lost, firstError, maxLate);
    });
  }
  for (auto& t : threads) t.join();
  elapsed = std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr const char* kUsage =
    "usage: warden bench-sessions [--endpoints URL[,URL...]] [--sessions 100000] [--ttl 30000]\n"
    "                             [--duration 60] [--connections 64] [--leader-pid PID]\n";

}  // namespace

int runSessionBench(const std::vector<std::string>& argv) {
  if (asksForHelp(argv)) {
    std::cout << kUsage;
    return 0;
  }
  Config c;
  try {
    Args args(argv, {});
    args.allow({"endpoints", "sessions", "ttl", "duration", "connections", "leader-pid"});
    c.endpoints = HttpClient::parseEndpoints(args.get("endpoints", "http://127.0.0.1:7070"));
    c.sessions = static_cast<std::size_t>(args.number("sessions", 100'000, 1, 10'000'000));
    c.ttlMs = static_cast<std::uint64_t>(args.number("ttl", 30'000, 1000, 600'000));
    c.seconds = static_cast<double>(args.number("duration", 60, 1, 3600));
    c.connections = static_cast<std::size_t>(args.number("connections", 64, 1, 1000));
    c.leaderPid = static_cast<long>(args.number("leader-pid", 0, 0, 1 << 30));
  } catch (const std::exception& e) {
    std::cerr << "warden bench-sessions: " << e.what() << "\n" << kUsage;
    return 2;
  }
  try {
    const double rssBefore = c.leaderPid ? rssBytes(c.leaderPid) : 0;
    const auto createStart = Clock::now();
    std::vector<std::string> ids = createSessions(c);
    const double createSeconds = std::chrono::duration<double>(Clock::now() - createStart).count();
    const double rssAfter = c.leaderPid ? rssBytes(c.leaderPid) : 0;
    std::printf("warden bench-sessions: %zu sessions (ttl %llu ms) over %zu endpoints, %zu connections\n", c.sessions,
                static_cast<unsigned long long>(c.ttlMs), c.endpoints.size(), c.connections);
    std::printf("  created in %.1f s (%.0f creates/s)\n", createSeconds, static_cast<double>(c.sessions) / createSeconds);

    Tally tally;
    double elapsed = 0;
    const double cpuBefore = c.leaderPid ? cpuSeconds(c.leaderPid) : 0;
    keepAlive(c, ids, tally, elapsed);
    const double cpuAfter = c.leaderPid ? cpuSeconds(c.leaderPid) : 0;
    const double target = static_cast<double>(c.sessions) * 3000.0 / static_cast<double>(c.ttlMs);
    std::printf("  keepalives: %zu in %.1f s = %.0f/s (schedule %.0f/s)   p50 %.2f ms   p99 %.2f ms   "
                "latest start %.0f ms behind schedule\n",
                tally.micros.size(), elapsed, static_cast<double>(tally.micros.size()) / elapsed, target,
                percentileMs(tally.micros, 0.5), percentileMs(tally.micros, 0.99), tally.maxLateMs);
    std::printf("  sessions lost while kept alive: %zu   errors: %zu%s%s\n", tally.lost, tally.errors,
                tally.errors ? ", first: " : "", tally.firstError.substr(0, 200).c_str());
    if (c.leaderPid) {
      std::printf("  leader (pid %ld): %.1f%% of one core during the keepalives; resident memory +%.0f bytes per session"
                  " (%.1f MiB for %zu, LMDB pages it touched included)\n",
                  c.leaderPid, 100.0 * (cpuAfter - cpuBefore) / elapsed,
                  (rssAfter - rssBefore) / static_cast<double>(c.sessions), (rssAfter - rssBefore) / 1048576.0,
                  c.sessions);
    }
    return tally.lost == 0 && tally.errors == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "warden bench-sessions: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace warden::api
