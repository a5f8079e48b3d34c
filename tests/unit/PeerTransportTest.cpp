#include <catch2/catch.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coordinator/transport/PeerTransport.h"
#include "tests/cluster/TcpProxy.h"
#include "tests/http/TestServer.h"

using namespace warden::coordinator::transport;
using warden::coordinator::kEncodingVersion;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct Inbox {
  std::mutex mutex;
  std::vector<std::pair<NodeId, std::string>> frames;
  std::map<NodeId, std::string> hellos;

  std::size_t size() {
    std::lock_guard lock(mutex);
    return frames.size();
  }
};

// An io_context run by a thread of its own for the length of a test.
struct IoThread {
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> guard = net::make_work_guard(ioc);
  std::thread thread{[this] { ioc.run(); }};
  ~IoThread() {
    guard.reset();
    ioc.stop();
    thread.join();
  }
};

tcp::endpoint loopback(int port) { return {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}; }

template <typename Done>
bool waitFor(Done done, int ms = 5000) {
  for (int i = 0; i < ms / 5; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

std::unique_ptr<PeerTransport> makeTransport(net::io_context& ioc, NodeId id, std::map<NodeId, tcp::endpoint> peers,
                                             Inbox& inbox, TransportLimits limits = {}, VersionCheck versions = {}) {
  return std::make_unique<PeerTransport>(
      ioc, id, peers.at(id), peers, "127.0.0.1:70" + std::to_string(id),
      [&inbox](NodeId from, std::string body) {
        std::lock_guard lock(inbox.mutex);
        inbox.frames.emplace_back(from, std::move(body));
      },
      [&inbox](NodeId from, const std::string& http) {
        std::lock_guard lock(inbox.mutex);
        inbox.hellos[from] = http;
      },
      limits, std::move(versions));
}

}  // namespace

TEST_CASE("two peers exchange frames in order and learn each other's HTTP address") {
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  Inbox in1, in2;
  auto t1 = makeTransport(ioc, 1, peers, in1);
  auto t2 = makeTransport(ioc, 2, peers, in2);
  t1->start();
  t2->start();
  for (int i = 0; i < 100; ++i) t1->send(2, "frame-" + std::to_string(i));
  t2->send(1, std::string(1 << 20, 'z'));  // a large frame
  REQUIRE(waitFor([&] { return in2.size() == 100 && in1.size() == 1; }));
  {
    std::lock_guard lock(in2.mutex);
    for (int i = 0; i < 100; ++i) CHECK(in2.frames[i] == std::make_pair(NodeId{1}, "frame-" + std::to_string(i)));
    CHECK(in2.hellos[1] == "127.0.0.1:701");
  }
  CHECK(in1.frames[0].second.size() == (1u << 20));
  CHECK(t1->connected(2));
  t1->stop();
  t2->stop();
}

TEST_CASE("a peer that restarts is reconnected and frames sent meanwhile arrive") {
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  Inbox in1, in2;
  auto t1 = makeTransport(ioc, 1, peers, in1);
  t1->start();
  t1->send(2, "while-down");  // peer 2 is not listening yet: queued, retried
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t2 = makeTransport(ioc, 2, peers, in2);
  t2->start();
  REQUIRE(waitFor([&] { return in2.size() == 1; }));
  t2->stop();
  t2.reset();
  Inbox again;
  auto t2b = makeTransport(ioc, 2, peers, again);
  t2b->start();
  // The old connection broke; sends go out again once it is re-dialled.
  REQUIRE(waitFor([&] {
    t1->send(2, "after-restart");
    return again.size() > 0;
  }));
  t1->stop();
  t2b->stop();
}

TEST_CASE("a connection with a bad hello or an oversized frame is closed without harm") {
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  Inbox in1;
  auto t1 = makeTransport(ioc, 1, peers, in1);
  t1->start();
  for (const std::string& junk : {std::string("\x00\x00\x00\x05hello", 9), std::string("\xff\xff\xff\xff", 4)}) {
    net::io_context client;
    tcp::socket socket(client);
    socket.connect(peers.at(1));
    net::write(socket, net::buffer(junk));
    char byte;
    boost::system::error_code ec;
    socket.read_some(net::buffer(&byte, 1), ec);  // the transport hangs up
    CHECK(ec);
  }
  CHECK(in1.size() == 0);
  CHECK(in1.hellos.empty());
  t1->stop();
}

TEST_CASE("peers of different encoding versions refuse each other, and a planted defect lets them talk") {
  // A member must not take entries it may decode differently (coordinator/EncodingVersion.h).
  const bool planted = GENERATE(false, true);
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  Inbox in1, in2;
  std::mutex mutex;
  std::vector<std::pair<NodeId, std::uint32_t>> refused1, refused2;
  auto check = [&](std::vector<std::pair<NodeId, std::uint32_t>>& refused, std::uint32_t own) {
    VersionCheck v;
    v.own = own;
    v.admitAny = planted;
    v.onRefused = [&mutex, &refused](NodeId from, std::uint32_t theirs) {
      std::lock_guard lock(mutex);
      refused.emplace_back(from, theirs);
    };
    return v;
  };
  auto t1 = makeTransport(ioc, 1, peers, in1, {}, check(refused1, kEncodingVersion));
  auto t2 = makeTransport(ioc, 2, peers, in2, {}, check(refused2, kEncodingVersion + 1));
  t1->start();
  t2->start();
  if (planted) {
    REQUIRE(waitFor([&] {
      t1->send(2, "to-2");
      t2->send(1, "to-1");
      return in1.size() > 0 && in2.size() > 0;
    }));
  } else {
    // Both ways refused, each side saying whom and which version; not one frame gets through.
    REQUIRE(waitFor([&] {
      t1->send(2, "to-2");
      t2->send(1, "to-1");
      std::lock_guard lock(mutex);
      return !refused1.empty() && !refused2.empty();
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(in1.size() == 0);
    CHECK(in2.size() == 0);
    CHECK(in1.hellos.empty());
    CHECK(in2.hellos.empty());
    std::lock_guard lock(mutex);
    CHECK(refused1.front() == std::make_pair(NodeId{2}, kEncodingVersion + 1));
    CHECK(refused2.front() == std::make_pair(NodeId{1}, kEncodingVersion));
  }
  t1->stop();
  t2->stop();
}

TEST_CASE("a peer refused for its encoding version is redialled with back-off, not every 20 ms") {
  // Found by the review of the encoding version: the link reset its back-off to 20 ms as soon
  // as TCP connected, before the receiver read the hello, and a refused connection always
  // connects, so against a peer of another version it redialled every 20-40 ms for the whole
  // of a rolling upgrade (a connection, an accept, a TIME_WAIT and the frames written into it
  // lost each time). Now only a connection that lasted resets the back-off.
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  Inbox in1, in2;
  std::mutex mutex;
  std::size_t refusals = 0;  // every refused connection, not only the first per version
  VersionCheck v1;
  v1.own = kEncodingVersion;
  VersionCheck v2;
  v2.own = kEncodingVersion + 1;
  v2.onRefused = [&](NodeId, std::uint32_t) {
    std::lock_guard lock(mutex);
    ++refusals;
  };
  auto t1 = makeTransport(ioc, 1, peers, in1, {}, v1);
  auto t2 = makeTransport(ioc, 2, peers, in2, {}, v2);
  t2->start();
  t1->start();
  // Node 1 sends as a member does (heartbeats every 50 ms, pings), for two seconds.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < end) {
    t1->send(2, "heartbeat");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::size_t seen = 0;
  {
    std::lock_guard lock(mutex);
    seen = refusals;
  }
  INFO("connections node 2 refused from node 1 in 2 s: " << seen);
  CHECK(in2.size() == 0);
  // With back-off doubling from 20 ms to its 250 ms cap for connections that were made:
  // 20+40+80+160 ms, then every 250 ms, about 11 dials in 2 s (it was 98).
  CHECK(seen <= 16);
  t1->stop();
  t2->stop();
}

TEST_CASE("a connection that ends at once after dials were refused is redialled within a quarter second") {
  // Found by the review of the back-off: refused dials (the peer down) grow the back-off to 1 s;
  // a connection made then, which ends at once (the peer refuses its hello, or dies again),
  // waited that whole second before the next dial instead of at most 250 ms.
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  Inbox in1, in2;
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::time_point> refusedAt;
  VersionCheck v2;
  v2.own = kEncodingVersion + 1;
  v2.onRefused = [&](NodeId, std::uint32_t) {
    std::lock_guard lock(mutex);
    refusedAt.push_back(std::chrono::steady_clock::now());
  };
  auto t1 = makeTransport(ioc, 1, peers, in1);
  t1->start();
  // Node 2 is not listening: node 1's dials are refused for 2.5 s, its back-off reaching 1 s.
  auto sendFor = [&](std::chrono::milliseconds span) {
    const auto end = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < end) {
      t1->send(2, "heartbeat");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  sendFor(std::chrono::milliseconds(2500));
  auto t2 = makeTransport(ioc, 2, peers, in2, {}, v2);
  t2->start();
  REQUIRE(waitFor([&] {
    t1->send(2, "heartbeat");
    std::lock_guard lock(mutex);
    return refusedAt.size() >= 2;
  }, 3000));
  std::lock_guard lock(mutex);
  const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(refusedAt[1] - refusedAt[0]).count();
  INFO("from the first refused connection to the next: " << gap << " ms");
  CHECK(gap < 600);
  t1->stop();
  t2->stop();
}

TEST_CASE("a hello carries its encoding version, and version 1's single byte reads as version 1") {
  NodeId from = 0;
  std::string http;
  std::uint32_t version = 0;
  REQUIRE(decodeHello(encodeHello(7, "10.0.0.7:7070"), from, http, version));
  CHECK(from == 7);
  CHECK(http == "10.0.0.7:7070");
  CHECK(version == kEncodingVersion);
  // As binaries of encoding version 1 wrote it: magic, one byte 1, id, address.
  REQUIRE(decodeHello(std::string("WRDN\x01\x03\x05" "a:1:2", 12), from, http, version));
  CHECK(version == 1);
  CHECK(from == 3);
  CHECK(http == "a:1:2");
  // What a binary of version 1 checks: the byte after the magic.
  CHECK(encodeHello(7, "x", 2).substr(0, 5) == std::string("WRDN\x02", 5));
}

TEST_CASE("a peer reached through a proxy is reconnected after it restarts") {
  IoThread io, proxyIo;
  net::io_context& ioc = io.ioc;
  net::io_context& proxyIoc = proxyIo.ioc;
  const int real2 = warden::tests::freePort();
  warden::tests::TcpProxy proxy(proxyIoc, warden::tests::freePort(), real2);
  std::map<NodeId, tcp::endpoint> peersOf1{{1, loopback(warden::tests::freePort())}, {2, loopback(proxy.port())}};
  std::map<NodeId, tcp::endpoint> peersOf2{{1, peersOf1[1]}, {2, loopback(real2)}};
  Inbox in1, in2;
  auto t1 = makeTransport(ioc, 1, peersOf1, in1);
  auto t2 = makeTransport(ioc, 2, peersOf2, in2);
  t1->start();
  t2->start();
  REQUIRE(waitFor([&] {
    t1->send(2, "first");
    return in2.size() > 0;
  }));
  t2->stop();
  t2.reset();
  for (int i = 0; i < 50; ++i) {  // keep sending while the peer is down
    t1->send(2, "while-down");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Inbox again;
  auto t2b = makeTransport(ioc, 2, peersOf2, again);
  t2b->start();
  CHECK(waitFor(
      [&] {
        t1->send(2, "after-restart");
        return again.size() > 0;
      },
      8000));
  t1->stop();
  t2b->stop();
}

TEST_CASE("frames for a connected peer that stopped reading are bounded in bytes, and oversized ones dropped") {
  // Like a SIGSTOPped follower: the connection is up, but nothing is read, so a write never ends.
  IoThread io;
  tcp::acceptor silent(io.ioc, loopback(0));
  tcp::socket held(io.ioc);
  silent.async_accept(held, [](boost::system::error_code) {});
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, silent.local_endpoint()}};
  Inbox inbox;
  TransportLimits limits;
  limits.maxFrameBytes = 2u << 20;
  limits.maxQueuedBytes = 8u << 20;
  auto t1 = makeTransport(io.ioc, 1, peers, inbox, limits);
  t1->start();
  REQUIRE(waitFor([&] { return t1->connected(2); }));
  const std::string frame(1u << 20, 'x');
  for (int i = 0; i < 200; ++i) t1->send(2, frame);  // 200 MiB offered
  t1->send(2, std::string(3u << 20, 'y'));           // over the frame limit: never queued
  REQUIRE(waitFor([&] { return t1->queuedBytes(2) > 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(t1->queuedBytes(2) <= limits.maxQueuedBytes + frame.size());
  t1->stop();
}

namespace {

// Two network namespaces joined by a veth pair, made in a child process: node 1's address in
// the child's own, node 2's in the other, where io2's thread lives (its sockets are made there).
// cut() drops what each receives from the other (a routing rule on the way in): packets are lost
// on the wire, as behind a firewall's DROP, while every send succeeds locally; neither a refusing
// port, the proxy, nor a rule on the sender's own way out (whose failed sends the kernel retries
// at once) reproduces that.
struct DropNet {
  net::io_context& io2;
  std::function<bool(const std::string&)> run;  // a shell command in node 1's namespace
  std::string inB;                              // prefix: ... in node 2's
  std::function<void(long)> answer;             // ends the child with this answer
  tcp::endpoint node1{net::ip::make_address("10.77.0.1"), 7001};
  tcp::endpoint node2{net::ip::make_address("10.77.0.2"), 7002};

  bool cut() { return run("ip rule add pref 10 iif va blackhole") && run(inB + "ip rule add pref 10 iif vb blackhole"); }
  void heal() {
    run("ip rule del pref 10");
    run(inB + "ip rule del pref 10");
  }
};

// Runs `scenario` (which ends with dropNet.answer) in a DropNet; returns its answer, -1 when this
// process may not make network namespaces (not root), -2 when they could not be set up.
long inDropNet(const std::function<void(DropNet&)>& scenario) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    auto answer = [&](long ms) {
      (void)!::write(fds[1], &ms, sizeof ms);
      ::_exit(0);  // the threads go with the process
    };
    if (::unshare(CLONE_NEWNET) != 0) answer(-1);
    auto run = [](const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; };
    // The local table's rule goes after the partition's (pref 10): it routes every packet for
    // this host's own addresses, and would take them first.
    const std::string localLast = "ip rule add pref 100 lookup local && ip rule del pref 0";
    if (!run("ip link set lo up") || !run(localLast) ||
        !run("ip link add va address 02:00:00:00:00:01 type veth peer name vb address 02:00:00:00:00:02") ||
        !run("ip addr add 10.77.0.1/24 dev va") || !run("ip link set va up")) {
      answer(-2);
    }
    net::io_context io2;
    auto work2 = net::make_work_guard(io2);
    std::atomic<pid_t> tid2{0};
    std::thread thread2([&] {
      if (::unshare(CLONE_NEWNET) != 0) return;
      tid2 = ::gettid();
      io2.run();
    });
    if (!waitFor([&] { return tid2 != 0; }, 2000)) answer(-2);
    const std::string inB = "nsenter --net=/proc/" + std::to_string(::getpid()) + "/task/" + std::to_string(tid2) + "/ns/net ";
    if (!run("ip link set vb netns " + std::to_string(tid2)) || !run(inB + "ip link set lo up") ||
        !run(inB + "sh -c '" + localLast + "'") || !run(inB + "ip addr add 10.77.0.2/24 dev vb") ||
        !run(inB + "ip link set vb up") ||
        // ARP would go through the blackhole too (a firewall's DROP leaves it be): fixed neighbours.
        !run("ip neigh replace 10.77.0.2 lladdr 02:00:00:00:00:02 dev va nud permanent") ||
        !run(inB + "ip neigh replace 10.77.0.1 lladdr 02:00:00:00:00:01 dev vb nud permanent")) {
      answer(-2);
    }
    DropNet dropNet{io2, run, inB, answer};
    scenario(dropNet);
    answer(-5);  // the scenario did not answer
  }
  ::close(fds[1]);
  long ms = -4;
  // Bounded: a child stuck (an `ip` command that hangs) is killed, not waited for forever.
  pollfd ready{fds[0], POLLIN, 0};
  const bool answered =
      ::poll(&ready, 1, 90'000) == 1 && ::read(fds[0], &ms, sizeof ms) == static_cast<ssize_t>(sizeof ms);
  ::close(fds[0]);
  if (!answered) ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(answered);
  return ms;
}

// How long after a partition that drops packets heals a link carries frames again, in ms
// (`patience` if not within it), or what inDropNet answers for itself.
// dialDuringCut: the partition is there before node 1 first dials (its link is dialling when it heals).
long recoveryAfterDrop(TransportLimits limits, std::chrono::milliseconds cut, std::chrono::milliseconds patience,
                       bool dialDuringCut = false) {
  return inDropNet([&](DropNet& dropNet) {
    IoThread io1;
    std::map<NodeId, tcp::endpoint> peers{{1, dropNet.node1}, {2, dropNet.node2}};
    Inbox in1, in2;
    auto t1 = makeTransport(io1.ioc, 1, peers, in1, limits);
    auto t2 = makeTransport(dropNet.io2, 2, peers, in2, limits);
    if (dialDuringCut) {
      // The kernel's SYN back-off as before Linux 6.x's linear first retries (absent there: ignored).
      dropNet.run("sysctl -w net.ipv4.tcp_syn_linear_timeouts=0");
      if (!dropNet.cut()) dropNet.answer(-2);
    }
    net::post(dropNet.io2, [&] { t2->start(); });
    t1->start();
    std::atomic<bool> sending{true};
    std::thread sender([&] {
      while (sending) {
        t1->send(2, "frame");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    auto finish = [&](long ms) {
      sending = false;
      sender.join();
      t1->stop();
      dropNet.answer(ms);
    };
    if (!dialDuringCut) {
      if (!waitFor([&] { return in2.size() > 5; })) finish(-3);
      if (!dropNet.cut()) finish(-2);
    }
    std::this_thread::sleep_for(cut);
    dropNet.heal();
    const auto healed = std::chrono::steady_clock::now();
    const std::size_t before = in2.size();
    const bool back = waitFor([&] { return in2.size() > before; }, static_cast<int>(patience.count()));
    finish(back ? std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - healed).count()
                : patience.count());
  });
}

}  // namespace

TEST_CASE("a link through a partition that drops packets carries frames within seconds of the heal") {
  // Found by the review of the back-off: without a dial deadline and a limit on unacknowledged
  // data, the kernel's own timers decide, and after a 7 s cut its next retransmission comes
  // 5.6 s after the heal (SYNs: up to two minutes).
  const auto cut = std::chrono::milliseconds(7000);
  const auto patience = std::chrono::milliseconds(5000);
  const long ms = recoveryAfterDrop(TransportLimits{}, cut, patience);
  if (ms == -1) {
    WARN("skipped: making a network namespace needs root (CI runs as root)");
    return;
  }
  INFO("frames again " << ms << " ms after the heal (-2: the namespaces could not be made, -3: never connected)");
  REQUIRE(ms >= 0);
  CHECK(ms < 3500);
  // Planted: the kernel's defaults (no dial deadline, no user timeout, no keepalive).
  TransportLimits planted;
  planted.connectTimeout = std::chrono::milliseconds(0);
  planted.deadAfter = std::chrono::milliseconds(0);
  const long plantedMs = recoveryAfterDrop(planted, cut, patience);
  INFO("planted: frames again " << plantedMs << " ms after the heal");
  CHECK(plantedMs >= 3500);
}

TEST_CASE("a link that began dialling during a partition that drops packets connects within seconds of the heal") {
  // On Linux >= 6.x (tcp_syn_linear_timeouts = 4) the first SYN retries are a second apart, so the
  // test above passes without the dial deadline (measured 0.26-0.34 s); with the SYN back-off of
  // older kernels a dial begun 8 s before the heal retries next 15 s after it began.
  const auto cut = std::chrono::milliseconds(8000);
  const auto patience = std::chrono::milliseconds(5000);
  const long ms = recoveryAfterDrop(TransportLimits{}, cut, patience, true);
  if (ms == -1) {
    WARN("skipped: making a network namespace needs root (CI runs as root)");
    return;
  }
  INFO("frames again " << ms << " ms after the heal");
  REQUIRE(ms >= 0);
  CHECK(ms < 3500);
  TransportLimits planted;  // no dial deadline; everything else as shipped
  planted.connectTimeout = std::chrono::milliseconds(0);
  const long plantedMs = recoveryAfterDrop(planted, cut, patience, true);
  INFO("planted: frames again " << plantedMs << " ms after the heal");
  CHECK(plantedMs >= 3500);
}

TEST_CASE("a connected peer that stops reading for a few seconds (SIGSTOP) keeps its connection") {
  // A SIGSTOPped peer's kernel still answers zero-window probes. Since Linux 5.11 TCP_USER_TIMEOUT
  // also bounds how long the window may stay shut, so deadAfter ends a connection to a live peer.
  IoThread io;
  tcp::acceptor silent(io.ioc, loopback(0));
  std::vector<std::shared_ptr<tcp::socket>> held;
  std::mutex heldMutex;
  std::function<void()> acceptNext = [&] {
    auto socket = std::make_shared<tcp::socket>(io.ioc);
    silent.async_accept(*socket, [&, socket](boost::system::error_code ec) {
      if (ec) return;
      {
        std::lock_guard lock(heldMutex);
        held.push_back(socket);
      }
      acceptNext();
    });
  };
  acceptNext();
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, silent.local_endpoint()}};
  Inbox inbox;
  auto t1 = makeTransport(io.ioc, 1, peers, inbox);
  t1->start();
  REQUIRE(waitFor([&] { return t1->connected(2); }));
  const std::string frame(1u << 20, 'x');
  for (int i = 0; i < 16; ++i) t1->send(2, frame);  // more than both socket buffers hold
  long droppedAt = -1;
  for (int i = 0; i < 120; ++i) {  // a 6 s pause
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (droppedAt < 0 && !t1->connected(2)) droppedAt = 50 * (i + 1);
  }
  std::size_t connections = 0;
  {
    std::lock_guard lock(heldMutex);
    connections = held.size();
  }
  INFO("link down after " << droppedAt << " ms of the pause; connections accepted: " << connections);
  CHECK(connections == 1);
  t1->stop();
  net::post(io.ioc, [&] { silent.close(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

namespace {

// How long after a partition that drops packets begins the link to a peer that had stopped
// reading (its window shut, everything sent acknowledged: tcpi_unacked == 0) is ended, in ms
// (`patience` if it never is within it), or what inDropNet answers for itself; node 2 is a
// silent acceptor.
long endAfterDropWithWindowShut(std::chrono::milliseconds patience) {
  return inDropNet([&](DropNet& dropNet) {
    IoThread io1;
    std::unique_ptr<tcp::acceptor> silent;
    std::vector<std::shared_ptr<tcp::socket>> held;
    std::function<void()> acceptNext = [&] {
      auto socket = std::make_shared<tcp::socket>(dropNet.io2);
      silent->async_accept(*socket, [&, socket](boost::system::error_code ec) {
        if (ec) return;
        held.push_back(socket);  // never read
        acceptNext();
      });
    };
    std::atomic<bool> listening{false};
    net::post(dropNet.io2, [&] {
      silent = std::make_unique<tcp::acceptor>(dropNet.io2, dropNet.node2);
      acceptNext();
      listening = true;
    });
    if (!waitFor([&] { return listening.load(); }, 2000)) dropNet.answer(-2);
    std::map<NodeId, tcp::endpoint> peers{{1, dropNet.node1}, {2, dropNet.node2}};
    Inbox in1;
    auto t1 = makeTransport(io1.ioc, 1, peers, in1);
    t1->start();
    if (!waitFor([&] { return t1->connected(2); })) dropNet.answer(-3);
    const std::string frame(1u << 20, 'x');
    for (int i = 0; i < 32; ++i) t1->send(2, frame);  // more than both socket buffers hold
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // the window shuts, all acked
    if (!t1->connected(2)) dropNet.answer(-6);  // a live peer that stopped reading keeps its connection
    if (!dropNet.cut()) dropNet.answer(-2);
    const auto cut = std::chrono::steady_clock::now();
    const bool ended = waitFor([&] { return !t1->connected(2); }, static_cast<int>(patience.count()));
    dropNet.answer(ended ? std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - cut).count()
                         : patience.count());
  });
}

}  // namespace

TEST_CASE("a link whose peer stopped reading is ended when a partition that drops packets cuts it off") {
  // Window shut and everything sent acknowledged: tcpi_unacked is 0, so the ack watch never
  // fires, and keepalive does not probe a socket with data waiting; only the zero-window probes
  // (backing off towards two minutes, given up after tcp_retries2) would end it.
  // (With tcpi_probes in the watch: 3.5-9.4 s, as the probes' back-off falls; without: minutes.)
  const auto patience = std::chrono::milliseconds(20000);
  const long ms = endAfterDropWithWindowShut(patience);
  if (ms == -1) {
    WARN("skipped: making a network namespace needs root (CI runs as root)");
    return;
  }
  INFO("link ended " << ms << " ms after the cut (-2: namespaces, -3: never connected, -6: ended while live)");
  REQUIRE(ms >= 0);
  CHECK(ms < 15000);
}
