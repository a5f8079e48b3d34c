#include "api/LockBench.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>

#include <sys/resource.h>

#include "api/Args.h"
#include "api/HttpClient.h"
#include "api/LockBenchClient.h"
#include "api/LockBenchCycles.h"
#include "api/LockBenchWaiters.h"

namespace warden::api {

using lockbench::LockService;
using lockbench::WaitersConfig;
namespace net = lockbench::net;

namespace {

struct Config {
  std::string warden = "http://127.0.0.1:7070";
  std::string etcd;  // empty: Warden alone
  std::vector<std::size_t> clients = {1, 16, 64};
  double seconds = 5;  // per row of the cycles; 0 skips them
  std::size_t waiters = 1000;  // 0 skips the waiters
  std::uint64_t ttlMs = 120'000;
  std::uint64_t waitMs = 120'000;
  long wardenPid = 0, etcdPid = 0;
  std::string prefix = "lockbench";
  std::string run;  // prefix-<16 random hex digits>: every lock name of this run starts with it
};

void printHeader() {
  std::printf("  %-7s %7s %9s %10s %8s %8s %8s %12s %12s %20s %6s\n", "system", "clients", "cycles", "cycles/s",
              "p50 ms", "p99 ms", "max ms", "acquire p50", "release p50", "server CPU", "errors");
}

void printRow(const char* system, std::size_t clients, lockbench::CycleRow& row) {
  char cpu[64] = "-";
  if (row.serverCpu >= 0 && row.cycles > 0) {
    std::snprintf(cpu, sizeof cpu, "%.0f%%, %.0f us/cycle", 100 * row.serverCpu / row.seconds,
                  1e6 * row.serverCpu / static_cast<double>(row.cycles));
  }
  std::printf("  %-7s %7zu %9zu %10.0f %8.2f %8.2f %8.2f %12.2f %12.2f %20s %6zu%s%s\n", system, clients, row.cycles,
              static_cast<double>(row.cycles) / row.seconds, row.cycle.ms(0.5), row.cycle.ms(0.99), row.cycle.ms(1.0),
              row.acquire.ms(0.5), row.release.ms(0.5), cpu, row.errors, row.errors ? "  first: " : "",
              row.firstError.c_str());
  std::fflush(stdout);
}

Config parseConfig(const std::vector<std::string>& argv) {
  Args args(argv, {});
  args.allow({"endpoints", "etcd", "clients", "duration", "waiters", "ttl", "wait-ms", "server-pid", "etcd-pid", "prefix"});
  if (!args.positionals().empty()) throw UsageError("unexpected argument '" + args.positionals().front() + "'");
  Config c;
  if (auto e = args.get("endpoints")) c.warden = HttpClient::parseEndpoints(*e).at(0);
  if (auto e = args.get("etcd")) c.etcd = HttpClient::parseEndpoints(*e).at(0);
  c.clients = parseCounts(args, "clients", c.clients, 10'000);
  c.seconds = static_cast<double>(args.number("duration", 5, 0, 3600));
  // GET /v1/locks/{name} lists 10,000 waiters at most: the bench could not see a longer queue.
  c.waiters = static_cast<std::size_t>(args.number("waiters", 1000, 0, 10'000));
  c.ttlMs = static_cast<std::uint64_t>(args.number("ttl", 120'000, 10'000, 600'000));
  c.waitMs = static_cast<std::uint64_t>(args.number("wait-ms", 120'000, 1000, 300'000));
  c.wardenPid = static_cast<long>(args.number("server-pid", 0, 0, 1 << 30));
  c.etcdPid = static_cast<long>(args.number("etcd-pid", 0, 0, 1 << 30));
  c.prefix = args.get("prefix", c.prefix);
  if (c.prefix.empty() || c.prefix.size() > 64 || c.prefix.find_first_of("/ ") != std::string::npos) {
    throw UsageError("--prefix is a word such as lockbench (no '/')");
  }
  if (c.seconds * 1000 + 10'000 > static_cast<double>(c.ttlMs)) {
    throw UsageError("--ttl must exceed --duration by 10 s at least: no keepalives are sent");
  }
  return c;
}

// Every waiter holds a connection: the soft limit on open files goes up to the hard one.
void raiseFileLimit(std::size_t waiters) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t needed = waiters + 200;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    throw UsageError(std::to_string(waiters) + " waiters need about " + std::to_string(needed) +
                     " open files; this process may open " + std::to_string(limit.rlim_cur) + " (ulimit -Hn)");
  }
}

void reportError(const std::string& what) {
  std::fflush(stdout);
  std::cerr << "warden: bench-locks: " << what << std::endl;
}

constexpr const char* kUsage =
    "warden bench-locks [--endpoints URL] [--etcd URL] [--clients 1,16,64] [--duration 5] [--waiters 1000] "
    "[--ttl 120000] [--wait-ms 120000] [--server-pid PID] [--etcd-pid PID] [--prefix lockbench]";

}  // namespace

int runLockBench(const std::vector<std::string>& argv) {
  if (asksForHelp(argv)) {
    std::cout << "usage: " << kUsage << "\n";
    return 0;
  }
  Config c;
  try {
    c = parseConfig(argv);
    raiseFileLimit(c.waiters);
  } catch (const std::exception& e) {
    reportError(std::string(e.what()) + " (usage: " + kUsage + ")");
    return 2;
  }
  c.run = c.prefix + "-" + HttpClient::newIdempotencyKey().substr(0, 16);
  struct System {
    std::unique_ptr<LockService> service;
    std::string url;
    long pid;
  };
  std::vector<System> systems;
  systems.push_back({lockbench::wardenLocks(), c.warden, c.wardenPid});
  if (!c.etcd.empty()) systems.push_back({lockbench::etcdLocks(), c.etcd, c.etcdPid});
  bool ok = true;
  try {
    std::printf("warden bench-locks: warden at %s%s; lock names start with %s\n", c.warden.c_str(),
                c.etcd.empty() ? "" : (", etcd at " + c.etcd).c_str(), c.run.c_str());
    if (c.seconds > 0) {
      std::printf("uncontended: each client its own session (etcd: lease) and lock, acquire then release back to"
                  " back for %.0f s; latencies of the whole cycle\n", c.seconds);
      printHeader();
      for (std::size_t clients : c.clients) {
        for (const System& s : systems) {
          lockbench::CycleConfig cycles;
          cycles.clients = clients;
          cycles.seconds = c.seconds;
          cycles.ttlMs = c.ttlMs;
          cycles.lockPrefix = c.run;
          if (s.pid) cycles.serverPids = {s.pid};
          lockbench::CycleRow row = lockbench::runCycles(s.url, *s.service, cycles);
          printRow(s.service->name(), clients, row);
          ok = ok && row.errors == 0;
        }
      }
    }
    if (c.waiters > 0) {
      for (const System& s : systems) {
        std::printf("%zu waiters on one lock, %s: each its own %s and connection, one blocking acquire each;"
                    " each grantee releases at once\n", c.waiters, s.service->name(),
                    s.service->ownerKind());
        std::fflush(stdout);
        net::io_context ioc;
        WaitersConfig w;
        w.endpoint = lockbench::resolveEndpoint(ioc, s.url);
        w.service = s.service.get();
        w.lock = c.run + "-waiters";
        w.waiters = c.waiters;
        w.ttlMs = c.ttlMs;
        w.waitMs = c.waitMs;
        w.serverPid = s.pid;
        ok = lockbench::runWaiters(w) && ok;
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    reportError(e.what());
    return 3;
  }
  return ok ? 0 : 1;
}

}  // namespace warden::api
