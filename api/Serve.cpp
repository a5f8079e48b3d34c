#include "api/Serve.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "api/Args.h"
#include "api/HttpServer.h"
#include "api/Router.h"
#include "coordinator/EncodingVersion.h"
#include "coordinator/Node.h"
#include "coordinator/ThreadName.h"

namespace warden::api {

namespace net = boost::asio;

namespace {

struct ServeConfig {
  std::uint64_t id = 1;
  std::string http = "127.0.0.1:7070";
  std::string dataDir = "warden-data";
  std::map<std::uint64_t, std::string> cluster;  // id -> peer address
  bool fsync = true;
  bool flushBehind = true;
  HttpLimits limits;
  std::uint64_t retainedSlots = 10'000;
  std::uint64_t retainedBytes = 64u << 20;
  std::uint64_t applyCommitDelayUs = 50'000;
  std::size_t maxSessions = 1'000'000;
  std::uint64_t maxTxnNodes = 10'000;
  std::uint64_t quotaBytes = std::uint64_t{2} << 30;
  std::size_t maxWatchers = 100'000;
  coordinator::watch::Limits watchHistory;
  std::uint64_t watchProgressMs = 15'000;
  coordinator::node::ClusterOptions::Bugs bugs;
  std::uint32_t encodingVersion = coordinator::kEncodingVersion;  // --test-encoding-version
};

net::ip::tcp::endpoint parseAddress(const std::string& text, const std::string& flag) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) throw UsageError(flag + " must be HOST:PORT, got '" + text + "'");
  std::string host = text.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto address = net::ip::make_address(host, ec);
  unsigned long port = 0;
  try {
    port = std::stoul(text.substr(colon + 1));
  } catch (const std::exception&) {
    ec = net::error::invalid_argument;
  }
  if (ec || port > 65535) throw UsageError(flag + " must be IP:PORT, got '" + text + "'");
  return {address, static_cast<unsigned short>(port)};
}

std::map<std::uint64_t, std::string> parseCluster(const std::string& text) {
  std::map<std::uint64_t, std::string> members;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--cluster entries are ID=HOST:PORT, got '" + item + "'");
    std::uint64_t id = 0;
    try {
      id = std::stoull(item.substr(0, eq));
    } catch (const std::exception&) {
      throw UsageError("--cluster: '" + item.substr(0, eq) + "' is not a member id");
    }
    if (id == 0) throw UsageError("--cluster: member ids start at 1");
    parseAddress(item.substr(eq + 1), "--cluster");
    if (!members.emplace(id, item.substr(eq + 1)).second) throw UsageError("--cluster names member " + std::to_string(id) + " twice");
    start = comma + 1;
  }
  return members;
}

// A flag that is "on" (its default) or "off".
bool onOff(const Args& args, const std::string& name) {
  const std::string value = args.get(name, "on");
  if (value != "on" && value != "off") throw UsageError("--" + name + " is on or off");
  return value == "on";
}

ServeConfig parseConfig(const std::vector<std::string>& argv) {
  Args args(argv, {"dev", "help"});
  args.allow({"dev", "help", "id", "http", "data-dir", "cluster", "fsync", "flush-behind", "max-connections",
              "read-timeout",
              "retained-slots", "retained-bytes", "apply-commit-delay-us", "max-sessions", "max-txn-nodes", "quota-bytes", "max-watchers",
              "watch-history-events", "watch-history-bytes", "watch-progress-ms", "test-bug", "test-encoding-version"});
  if (!args.positionals().empty()) throw UsageError("unexpected argument '" + args.positionals().front() + "'");
  ServeConfig config;
  const bool dev = args.has("dev");
  if (!dev) {
    for (const char* required : {"id", "http", "data-dir", "cluster"}) {
      if (!args.has(required)) throw UsageError(std::string("--") + required + " is required (or use --dev)");
    }
  }
  config.id = static_cast<std::uint64_t>(args.number("id", 1, 1, 1'000'000));
  config.http = args.get("http", config.http);
  parseAddress(config.http, "--http");
  config.dataDir = args.get("data-dir", config.dataDir);
  config.cluster = parseCluster(args.get("cluster", std::to_string(config.id) + "=127.0.0.1:7170"));
  config.fsync = onOff(args, "fsync");
  config.flushBehind = onOff(args, "flush-behind");
  config.limits.maxConnections = static_cast<std::size_t>(args.number("max-connections", 10'000, 1, 1'000'000));
  config.limits.readTimeoutSeconds = static_cast<unsigned>(args.number("read-timeout", 60, 1, 3600));
  config.retainedSlots = static_cast<std::uint64_t>(args.number("retained-slots", 10'000, 1, 100'000'000));
  config.retainedBytes = static_cast<std::uint64_t>(args.number("retained-bytes", 64LL << 20, 1LL << 20, 1LL << 40));
  config.applyCommitDelayUs = static_cast<std::uint64_t>(args.number("apply-commit-delay-us", 50'000, 0, 1'000'000));
  config.maxSessions = static_cast<std::size_t>(args.number("max-sessions", 1'000'000, 1, 100'000'000));
  config.maxTxnNodes = static_cast<std::uint64_t>(args.number("max-txn-nodes", 10'000, 1, 1'000'000));
  config.quotaBytes = static_cast<std::uint64_t>(args.number("quota-bytes", 2LL << 30, 1 << 20, 1LL << 40));
  config.maxWatchers = static_cast<std::size_t>(args.number("max-watchers", 100'000, 1, 10'000'000));
  config.watchHistory.events = static_cast<std::size_t>(args.number("watch-history-events", 100'000, 1, 100'000'000));
  config.watchHistory.bytes = static_cast<std::size_t>(args.number("watch-history-bytes", 64LL << 20, 1 << 20, 1LL << 40));
  config.watchProgressMs = static_cast<std::uint64_t>(args.number("watch-progress-ms", 15'000, 10, 15'000));
  if (!config.cluster.count(config.id)) {
    throw UsageError("--cluster must list this node's own id " + std::to_string(config.id));
  }
  // Test-only (tests/jepsen shows its checks catch each): never on a server anyone relies on.
  if (args.has("test-bug")) {
    const std::string bug = args.get("test-bug", "");
    if (bug == "local-reads") config.bugs.localReads = true;
    else if (bug == "never-expire") config.bugs.neverExpire = true;
    else if (bug == "forget-idempotency") config.bugs.forgetIdempotencyKeys = true;
    else if (bug == "torn-reads") config.bugs.tornReads = true;
    else if (bug == "watch-from-floor") config.bugs.watchFromFloor = true;
    else if (bug == "any-encoding-version") config.bugs.admitAnyEncodingVersion = true;
    else throw UsageError("--test-bug is local-reads, never-expire, forget-idempotency, torn-reads, watch-from-floor or any-encoding-version (test-only defects)");
  }
  // Test-only: a member of another encoding version, without building another binary. From
  // 1000 up, a version no release speaks, so that such a member can never join real ones.
  if (args.has("test-encoding-version")) {
    config.encodingVersion = static_cast<std::uint32_t>(args.number("test-encoding-version", 1000, 1000, 1'000'000));
  }
  return config;
}

// Port 0 asks for any free port; it is chosen here, before the node starts, because the node
// advertises its HTTP address to its peers. (Another process could take it in between.)
unsigned short pickFreePort(net::io_context& ioc, const net::ip::tcp::endpoint& endpoint) {
  net::ip::tcp::acceptor probe(ioc, net::ip::tcp::endpoint(endpoint.address(), 0));
  return probe.local_endpoint().port();
}

// Binding a listener failed in a way the user can fix (the port is taken, a privileged port, an
// address this machine does not have): one line naming the address and which listener.
bool isListenFailure(const boost::system::error_code& ec) {
  namespace errc = boost::system::errc;
  return ec == errc::address_in_use || ec == errc::permission_denied || ec == errc::address_not_available;
}

std::runtime_error listenFailure(const std::string& address, const char* listener, const boost::system::error_code& ec) {
  std::string reason = ec.message();
  if (!reason.empty()) reason[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(reason[0])));
  return std::runtime_error("cannot listen on " + address + " (" + listener + "): " + reason);
}

// Allows thousands of client connections where the soft limit is the usual 1024.
void raiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// One process per data directory: a second one would apply the same log twice.
int lockDataDir(const std::string& dir) {
  std::filesystem::create_directories(dir);
  int fd = ::open((dir + "/LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    throw std::runtime_error("data directory " + dir + " is in use by another warden process");
  }
  return fd;
}

const char* kServeUsage = R"(usage: warden serve --dev [flags]
       warden serve --id N --http IP:PORT --data-dir DIR --cluster ID=IP:PORT[,...] [flags]

  --dev                 one node: id 1, HTTP on 127.0.0.1:7070, data in ./warden-data
  --id N                this node's member id
  --http IP:PORT        where clients reach this node (port 0 picks a free one)
  --data-dir DIR        where the node keeps its LMDB files
  --cluster LIST        every member's peer address, ID=IP:PORT separated by commas
  --fsync on|off        off trades durability on machine crash for speed (default on)
  --flush-behind on|off on: the votes are flushed by a thread of their own while the node goes on,
                        their answers held until then; off: each turn of the node waits for its
                        flush (default on)
  --max-connections N   client connections beyond this get 429 (default 10000)
  --read-timeout S      a request, or an idle keep-alive connection, is cut off after S seconds
                        without completing (default 60)
  --max-sessions N      creating a session beyond this many live ones gets 429 (default 1000000)
  --retained-slots N    applied log slots kept for followers that lag; one further behind gets
                        a snapshot of the whole state instead, and the sender keeps up to 50
                        times as many while that snapshot is sent and installed (default 10000)
  --retained-bytes N    ...and, past twice N bytes of them (they are held in memory), only the
                        newest N bytes' worth, 16 slots at least: slots of large transactions
                        are let go sooner. A snapshot's hold above keeps up to 8 times N
                        (default 67108864, at least 1048576)
  --apply-commit-delay-us N
                        how long what apply did may wait uncommitted, so that one disk flush
                        covers many writes (stale reads may lag as long; reads with
                        min_revision, and watches a write concerns, have it commit at once;
                        default 50000, at most 1000000)
  --max-txn-nodes N     one write creates or deletes at most N nodes (parents made and subtrees
                        deleted included); beyond, 413 too_large and nothing changes (default 10000)
  --quota-bytes N       once the nodes (path + data + 100 bytes each) hold N bytes, writes that
                        would grow them get 507 no_space; reads and deletes keep working
                        (default 2147483648; the LMDB map is sized to 4 times this at least)
  --max-watchers N      watches (long-polls, streams, blocking reads) beyond this get 429
                        (default 100000)
  --watch-history-events N, --watch-history-bytes N
                        the watch history keeps the latest events within both bounds (default
                        100000 events, 67108864 bytes); an older `since` gets 410 compacted
  --watch-progress-ms N an idle watch stream says how far it is complete this often (10 to
                        15000, default 15000)
  --test-bug NAME       plants a defect for the outside-in checks to catch (tests/jepsen):
                        local-reads, never-expire, forget-idempotency, torn-reads,
                        watch-from-floor, any-encoding-version (let in peers of another
                        encoding version). Never on a server anyone relies on
  --test-encoding-version N
                        test-only: the peer hellos claim encoding version N, 1000 or more
                        (a version no release speaks), for the tests of the refusal
)";

}  // namespace

int runServe(const std::vector<std::string>& argv) {
  ServeConfig config;
  try {
    if (std::find(argv.begin(), argv.end(), "--help") != argv.end()) {
      std::cout << kServeUsage;
      return 0;
    }
    config = parseConfig(argv);
  } catch (const UsageError& e) {
    std::cerr << "warden serve: " << e.what() << "\n\n" << kServeUsage;
    return 2;
  }

  try {
    ::signal(SIGPIPE, SIG_IGN);
    raiseFileLimit();
    int lockFd = lockDataDir(config.dataDir);

    // The node outlives the io_contexts: destroying them destroys the connections still pending
    // (a watch stream, say), and those let go of their watchers in the node's watch hub.
    std::unique_ptr<coordinator::Node> nodeOwner;
    // The connections' io_contexts must outlive the acceptor's: a pending accept holds a socket
    // of one of them, and is destroyed with the acceptor's io_context.
    std::vector<std::unique_ptr<net::io_context>> workers;
    net::io_context ioc;
    auto endpoint = parseAddress(config.http, "--http");
    if (endpoint.port() == 0) endpoint.port(pickFreePort(ioc, endpoint));

    coordinator::NodeOptions options;
    options.id = config.id;
    options.dataDir = config.dataDir;
    options.fsync = config.fsync;
    options.flushBehind = config.flushBehind;
    options.cluster = config.cluster;
    options.retainedSlots = config.retainedSlots;
    options.retainedBytes = config.retainedBytes;
    options.applyCommitDelayUs = config.applyCommitDelayUs;
    options.maxTxnNodes = config.maxTxnNodes;
    options.quotaBytes = config.quotaBytes;
    options.watchHistory = config.watchHistory;
    options.maxWatchers = config.maxWatchers;
    options.bugs = config.bugs;
    options.encodingVersion = config.encodingVersion;
    // Far above the quota: LMDB's pages, free lists and the retained log come on top of what
    // the quota counts, and apply must never meet a full map.
    options.mapSize = std::max<std::size_t>(options.mapSize, 4 * config.quotaBytes);
    options.http = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    // The node binds its peer listener (its own --cluster entry) as it starts; nothing else in
    // starting it binds a socket, so a bind error here is that listener's.
    try {
      nodeOwner = std::make_unique<coordinator::Node>(options);
    } catch (const boost::system::system_error& e) {
      if (!isListenFailure(e.code())) throw;
      throw listenFailure(config.cluster.at(config.id), "peer", e.code());
    }
    coordinator::Node& node = *nodeOwner;

    // One io_context per thread; the first also runs the acceptor and the signal handler.
    const unsigned threads = std::max(2u, std::thread::hardware_concurrency());
    std::vector<net::io_context*> contexts{&ioc};
    for (unsigned i = 1; i < threads; ++i) {
      workers.push_back(std::make_unique<net::io_context>());
      contexts.push_back(workers.back().get());
    }
    Router router(node, config.maxSessions, std::chrono::milliseconds(config.watchProgressMs));
    std::unique_ptr<HttpServer> serverOwner;
    try {
      serverOwner = std::make_unique<HttpServer>(ioc, endpoint, router, config.limits, contexts);
    } catch (const boost::system::system_error& e) {
      if (!isListenFailure(e.code())) throw;
      throw listenFailure(config.http, "HTTP", e.code());
    }
    HttpServer& server = *serverOwner;
    auto bound = server.localEndpoint();
    server.start();

    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
      std::cout << "warden: stopping" << std::endl;
      server.stop();
      ioc.stop();
      for (auto& worker : workers) worker->stop();
    });

    std::cout << "warden: node " << config.id << " serving http://" << bound.address().to_string() << ":"
              << bound.port() << " (data " << std::filesystem::absolute(config.dataDir).string() << ", fsync "
              << (config.fsync ? "on" : "off") << ", revision " << node.revision() << ")" << std::endl;

    std::vector<std::thread> pool;
    for (auto& worker : workers) {
      pool.emplace_back([&worker, n = pool.size()] {
        coordinator::nameThisThread("warden-http" + std::to_string(n + 1));
        auto guard = net::make_work_guard(*worker);
        worker->run();
      });
    }
    ioc.run();
    for (auto& t : pool) t.join();
    node.stop();
    ::close(lockFd);
    std::cout << "warden: stopped at revision " << node.revision() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "warden serve: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace warden::api
