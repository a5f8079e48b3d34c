#include "api/CompareBench.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>

#include "api/Args.h"
#include "api/CompareBenchTargets.h"
#include "api/CompareBenchWatch.h"
#include "api/HttpClient.h"
#include "api/LoadDriver.h"
#include "api/LockBenchCycles.h"
#include "api/Percentile.h"

namespace warden::api {

using comparebench::Target;

namespace {

struct Config {
  std::string wardenUrl, etcdUrl;
  std::vector<long> wardenPids, etcdPids;
  double seconds = 5;
  double warmupSeconds = 1;
  unsigned rounds = 2;
  unsigned threads = 2;
  std::vector<std::size_t> putConnections = {1, 16, 64, 256};
  std::size_t getConnections = 64;
  std::vector<std::size_t> lockClients = {1, 64};
  double watchRate = 200;
  comparebench::Workload workload;
  std::string prefix = "compare";
};

// One service as the comparison drives it.
struct Side {
  std::unique_ptr<Target> target;
  std::string leader;
  std::vector<long> pids;
  std::unique_ptr<lockbench::LockService> locks;
};

// One run of one figure on one service.
struct Run {
  double rate = 0;          // operations (watch: acknowledged writes) per second
  double p50 = 0, p99 = 0;  // ms: of each operation; watch: write ack -> event received
  double cpuUs = -1;        // the servers' CPU per operation, microseconds; < 0 unknown
  std::size_t ops = 0, errors = 0;
  std::string firstError;
  // The watch's: write sent -> event received (ms), events that came before their write's ack
  // (counted as delay 0), events that never came.
  double sentP50 = 0, sentP99 = 0;
  std::size_t early = 0, received = 0, missing = 0;
};

struct Figure {
  std::string one, many;  // "put", "puts"
  std::string setting;    // "64 connections"
  bool watch = false;     // the best run has the lowest p99, not the highest rate
  std::function<Run(Side&, unsigned round)> run;
  std::function<void(Side&)> warmup;  // optional, once per service before the rounds
  std::vector<Run> runs[2];           // Warden's, etcd's
};

Run fromLoad(load::LoadResult& r) {
  Run run;
  run.ops = r.requests();
  run.rate = r.seconds > 0 ? static_cast<double>(run.ops) / r.seconds : 0;
  run.p50 = percentileMs(r.micros.at(0), 0.5);
  run.p99 = percentileMs(r.micros.at(0), 0.99);
  if (r.serverCpu >= 0 && run.ops > 0) run.cpuUs = 1e6 * r.serverCpu / static_cast<double>(run.ops);
  run.errors = r.errors;
  run.firstError = r.firstError;
  return run;
}

Run throughput(const Config& c, const Side& s, load::RequestMaker make, std::size_t connections) {
  load::LoadConfig l;
  l.endpoint = s.leader;
  l.connections = connections;
  l.threads = c.threads;
  l.warmupSeconds = c.warmupSeconds;
  l.seconds = c.seconds;
  l.make = std::move(make);
  l.serverPids = s.pids;
  load::LoadResult r = load::runLoad(l);
  return fromLoad(r);
}

lockbench::CycleRow lockCycles(const Config& c, const Side& s, std::size_t clients, double seconds, const std::string& tag) {
  lockbench::CycleConfig cycles;
  cycles.clients = clients;
  cycles.seconds = seconds;
  cycles.ttlMs = static_cast<std::uint64_t>(std::max(60.0, seconds + 30) * 1000);
  cycles.lockPrefix = c.workload.run + "-lock-" + tag;
  cycles.serverPids = s.pids;
  return lockbench::runCycles(s.leader, *s.locks, cycles);
}

std::vector<Figure> figures(const Config& c) {
  std::vector<Figure> all;
  auto plural = [](std::size_t n, const char* unit) { return std::to_string(n) + " " + unit + (n == 1 ? "" : "s"); };
  for (std::size_t n : c.putConnections) {
    all.push_back({"put", "puts", plural(n, "connection"), false,
                   [&c, n](Side& s, unsigned) { return throughput(c, s, s.target->puts(), n); }, {}, {}});
  }
  for (bool stale : {false, true}) {
    const std::string kind = stale ? "stale get" : "linearizable get";
    all.push_back({kind, kind + "s", plural(c.getConnections, "connection"), false,
                   [&c, stale](Side& s, unsigned) { return throughput(c, s, s.target->gets(stale), c.getConnections); },
                   {}, {}});
  }
  for (std::size_t n : c.lockClients) {
    all.push_back({"lock cycle", "lock cycles", plural(n, "client"), false,
                   [&c, n](Side& s, unsigned round) {
                     lockbench::CycleRow row = lockCycles(c, s, n, c.seconds, "r" + std::to_string(round));
                     Run run;
                     run.ops = row.cycles;
                     run.rate = static_cast<double>(row.cycles) / row.seconds;
                     run.p50 = row.cycle.ms(0.5);
                     run.p99 = row.cycle.ms(0.99);
                     if (row.serverCpu >= 0 && row.cycles > 0) run.cpuUs = 1e6 * row.serverCpu / static_cast<double>(row.cycles);
                     run.errors = row.errors;
                     run.firstError = row.firstError;
                     return run;
                   },
                   [&c, n](Side& s) {
                     if (c.warmupSeconds > 0) lockCycles(c, s, n, c.warmupSeconds, "warmup");
                   },
                   {}});
  }
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.0f writes/s", c.watchRate);
  all.push_back({"watched write", "watched writes", rate, true,
                 [&c](Side& s, unsigned) {
                   comparebench::WatchConfig w;
                   w.rate = c.watchRate;
                   w.threads = c.threads;
                   w.warmupSeconds = c.warmupSeconds;
                   w.seconds = c.seconds;
                   w.serverPids = s.pids;
                   comparebench::WatchRun watch = comparebench::runWatch(*s.target, s.leader, w);
                   Run run = fromLoad(watch.writes);
                   run.p50 = percentileMs(watch.delayMicros, 0.5);
                   run.p99 = percentileMs(watch.delayMicros, 0.99);
                   run.sentP50 = percentileMs(watch.fromSendMicros, 0.5);
                   run.sentP99 = percentileMs(watch.fromSendMicros, 0.99);
                   run.early = watch.early;
                   run.received = watch.received;
                   run.missing = watch.acked - watch.received;
                   if (!watch.error.empty() && run.errors++ == 0) run.firstError = "watch: " + watch.error;
                   return run;
                 },
                 {}, {}});
  return all;
}

// ---- output ----

std::string grouped(double value) {  // 10351.4 -> "10,351"
  std::string digits = std::to_string(static_cast<long long>(std::llround(value)));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0 && digits[i - 1] != '-'; i -= 3) digits.insert(i, ",");
  return digits;
}

std::string ms(double value) {
  char text[32];
  std::snprintf(text, sizeof text, value < 10 ? "%.2f ms" : value < 100 ? "%.1f ms" : "%.0f ms", value);
  return text;
}

std::string us(double value) { return value < 0 ? "-" : grouped(value) + " us"; }

void printRun(const Figure& f, const char* system, unsigned round, const Run& r) {
  std::printf("  %-36s %-6s run %u: %9s/s   p50 %9s   p99 %9s   CPU %9s/op", (f.many + ", " + f.setting).c_str(), system,
              round, grouped(r.rate).c_str(), ms(r.p50).c_str(), ms(r.p99).c_str(), us(r.cpuUs).c_str());
  if (f.watch) {
    std::printf("   (write ack -> event; write sent -> event p50 %s, p99 %s; %zu of %zu events before the ack; %zu"
                " missing)", ms(r.sentP50).c_str(), ms(r.sentP99).c_str(), r.early, r.received, r.missing);
  }
  if (r.errors > 0) std::printf("   errors %zu, first: %s", r.errors, r.firstError.substr(0, 200).c_str());
  std::printf("\n");
  std::fflush(stdout);
}

// The run shown in the table: the most operations/s; for the watch, the lowest p99 delay of
// the runs that wrote something.
const Run& best(const Figure& f, int side) {
  auto better = [&f](const Run& x, const Run& y) {
    if (!f.watch) return x.rate > y.rate;
    if ((x.ops > 0) != (y.ops > 0)) return x.ops > 0;
    return x.p99 < y.p99;
  };
  const auto& runs = f.runs[side];
  return *std::max_element(runs.begin(), runs.end(), [&better](const Run& a, const Run& b) { return better(b, a); });
}

void printRow(const std::string& name, const std::string& etcd, const std::string& warden, double e, double w, bool times) {
  std::string ratio = "-";
  if (e > 0 && w >= 0) {
    char text[32];
    std::snprintf(text, sizeof text, times ? "%.2fx" : "%.2f", w / e);
    ratio = text;
  }
  std::printf("  %-50s %12s %12s   %s\n", name.c_str(), etcd.c_str(), warden.c_str(), ratio.c_str());
}

void printTable(const Config& c, const std::vector<Figure>& all) {
  if (c.rounds > 1) {
    std::printf("\nbest of %u runs each (throughput: the run with the most operations/s; watch: the run with the lowest"
                " p99 from write ack to event); the latencies and CPU shown are that same run's\n", c.rounds);
  } else {
    std::printf("\none run each\n");
  }
  std::printf("  %-50s %12s %12s   %s\n", "figure", "etcd", "warden", "ratio (warden/etcd)");
  for (const Figure& f : all) {
    const Run& w = best(f, 0);
    const Run& e = best(f, 1);
    if (f.watch) {
      printRow("watch p50, write ack -> event, " + f.setting, ms(e.p50), ms(w.p50), e.p50, w.p50, false);
      printRow("watch p99, write ack -> event, " + f.setting, ms(e.p99), ms(w.p99), e.p99, w.p99, false);
      printRow("watch p50, write sent -> event, " + f.setting, ms(e.sentP50), ms(w.sentP50), e.sentP50, w.sentP50, false);
      printRow("watch p99, write sent -> event, " + f.setting, ms(e.sentP99), ms(w.sentP99), e.sentP99, w.sentP99, false);
      auto share = [](const Run& r) {
        return r.received ? grouped(100.0 * static_cast<double>(r.early) / static_cast<double>(r.received)) + "%" : "-";
      };
      printRow("watch events before their write's ack", share(e), share(w), -1, -1, false);
      printRow("watch events missing", grouped(static_cast<double>(e.missing)), grouped(static_cast<double>(w.missing)),
               -1, -1, false);
    } else {
      printRow(f.many + "/s, " + f.setting, grouped(e.rate), grouped(w.rate), e.rate, w.rate, true);
      printRow(f.one + " p50, " + f.setting, ms(e.p50), ms(w.p50), e.p50, w.p50, false);
      printRow(f.one + " p99, " + f.setting, ms(e.p99), ms(w.p99), e.p99, w.p99, false);
    }
    printRow("server CPU per " + f.one + ", " + f.setting, us(e.cpuUs), us(w.cpuUs), e.cpuUs, w.cpuUs, false);
  }
  std::fflush(stdout);
}

// ---- setup ----

Config parseConfig(const std::vector<std::string>& argv) {
  Args args(argv, {});
  args.allow({"warden", "warden-pids", "etcd", "etcd-pids", "duration", "warmup", "rounds", "threads", "connections",
              "get-connections", "lock-clients", "watch-rate", "keys", "value-size", "prefix"});
  if (!args.positionals().empty()) throw UsageError("unexpected argument '" + args.positionals().front() + "'");
  Config c;
  const auto warden = args.get("warden"), etcd = args.get("etcd");
  if (!warden || !etcd) throw UsageError("--warden URL and --etcd URL are both required");
  c.wardenUrl = HttpClient::parseEndpoints(*warden).at(0);
  c.etcdUrl = HttpClient::parseEndpoints(*etcd).at(0);
  c.wardenPids = parsePids(args, "warden-pids");
  c.etcdPids = parsePids(args, "etcd-pids");
  c.seconds = static_cast<double>(args.number("duration", 5, 1, 300));
  c.warmupSeconds = static_cast<double>(args.number("warmup", 1, 0, 60));
  c.rounds = static_cast<unsigned>(args.number("rounds", 2, 1, 20));
  c.threads = static_cast<unsigned>(args.number("threads", 2, 1, 64));
  c.putConnections = parseCounts(args, "connections", c.putConnections, 10'000);
  c.getConnections = static_cast<std::size_t>(args.number("get-connections", 64, 1, 10'000));
  c.lockClients = parseCounts(args, "lock-clients", c.lockClients, 1000);
  c.watchRate = static_cast<double>(args.number("watch-rate", 200, 1, 10'000));
  c.workload.keys = static_cast<std::size_t>(args.number("keys", 1000, 1, 100'000));
  c.workload.valueSize = static_cast<std::size_t>(args.number("value-size", 100, 0, 64 * 1024));
  c.prefix = args.get("prefix", c.prefix);
  if (c.prefix.empty() || c.prefix.size() > 64 || c.prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") !=
                                                        std::string::npos) {
    throw UsageError("--prefix is a word of lowercase letters, digits, '-' and '_', such as compare");
  }
  return c;
}

std::string machine() {
  utsname u{};
  uname(&u);
  return std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores (nproc), " + u.sysname + " " + u.release + " " + u.machine;
}

void reportError(const std::string& what) {
  std::string line = what;
  for (char& ch : line) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  std::fflush(stdout);
  std::cerr << "warden: bench-compare: " << line << std::endl;
}

constexpr const char* kUsage =
    "warden bench-compare --warden URL --etcd URL [--warden-pids P1,P2,P3] [--etcd-pids P1,P2,P3] [--duration 5] "
    "[--warmup 1] [--rounds 2] [--threads 2] [--connections 1,16,64,256] [--get-connections 64] [--lock-clients 1,64] "
    "[--watch-rate 200] [--keys 1000] [--value-size 100] [--prefix compare]";

}  // namespace

int runCompareBench(const std::vector<std::string>& argv) {
  if (asksForHelp(argv)) {
    std::cout << "usage: " << kUsage << "\n";
    return 0;
  }
  Config c;
  try {
    c = parseConfig(argv);
  } catch (const std::exception& e) {
    reportError(std::string(e.what()) + " (usage: " + kUsage + ")");
    return 2;
  }
  c.workload.run = c.prefix + "-" + HttpClient::newIdempotencyKey().substr(0, 16);
  Side sides[2];
  sides[0].target = comparebench::wardenTarget(c.workload);
  sides[0].pids = c.wardenPids;
  sides[1].target = comparebench::etcdTarget(c.workload);
  sides[1].pids = c.etcdPids;
  bool prepared[2] = {false, false};
  int code = 0;
  try {
    std::string versions[2];
    for (int i = 0; i < 2; ++i) {
      Side& s = sides[i];
      s.leader = s.target->findLeader(i == 0 ? c.wardenUrl : c.etcdUrl);
      versions[i] = s.target->version(s.leader);
      s.locks = s.target->locks();
    }
    std::printf("machine: %s; %s; %s\n", machine().c_str(), versions[1].c_str(), versions[0].c_str());
    for (int i = 0; i < 2; ++i) {
      std::printf("%s: leader %s, CPU of %zu server process(es) counted\n", sides[i].target->name(),
                  sides[i].leader.c_str(), sides[i].pids.size());
    }
    std::printf("each figure: %u round(s) of alternating runs (warden, etcd, ...), each run %.0f s of warm-up then %.0f s"
                " measured, the same load generator for both (%u threads, keep-alive HTTP/1.1 at the leader), %zu keys"
                " of %zu-byte values under %s\n",
                c.rounds, c.warmupSeconds, c.seconds, c.threads, c.workload.keys, c.workload.valueSize,
                c.workload.run.c_str());
    std::fflush(stdout);
    for (int i = 0; i < 2; ++i) {
      sides[i].target->prepare(sides[i].leader);
      prepared[i] = true;
    }
  } catch (const std::exception& e) {
    reportError(e.what());
    code = 3;
  }
  if (code == 0) {
    std::vector<Figure> all = figures(c);
    for (Figure& f : all) {
      if (f.warmup) {
        for (Side& s : sides) {
          try {
            f.warmup(s);
          } catch (const std::exception&) {  // the measured runs will say
          }
        }
      }
      for (unsigned round = 1; round <= c.rounds; ++round) {
        for (int i = 0; i < 2; ++i) {
          Run run;
          try {
            run = f.run(sides[i], round);
          } catch (const std::exception& e) {
            run.errors = 1;
            run.firstError = e.what();
          }
          printRun(f, sides[i].target->name(), round, run);
          if (run.errors > 0 || run.missing > 0) code = 1;
          f.runs[i].push_back(std::move(run));
        }
      }
    }
    printTable(c, all);
  }
  for (int i = 0; i < 2; ++i) {
    if (!prepared[i]) continue;
    try {
      sides[i].target->cleanup(sides[i].leader);
    } catch (const std::exception& e) {
      reportError(std::string("cleaning up ") + sides[i].target->name() + ": " + e.what());
      if (code == 0) code = 3;
    }
  }
  return code;
}

}  // namespace warden::api
