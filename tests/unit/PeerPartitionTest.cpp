// Peer links against partitions that drop packets (a firewall's DROP) and peers that stop
// reading: real kernel TCP between two network namespaces (TransportLimits' dial deadline and
// dead-connection check).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/http/TestServer.h"
#include "tests/unit/PeerTestSupport.h"

using namespace warden::tests::peers;

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

// Frames flow again within 3.5 s of the heal as shipped, and not with `planted` (within the
// 5 s the test waits). Skipped without root.
void checkRecoveryAfterDrop(std::chrono::milliseconds cut, const TransportLimits& planted, bool dialDuringCut) {
  const auto patience = std::chrono::milliseconds(5000);
  const long ms = recoveryAfterDrop(TransportLimits{}, cut, patience, dialDuringCut);
  if (ms == -1) {
    WARN("skipped: making a network namespace needs root (CI runs as root)");
    return;
  }
  INFO("frames again " << ms << " ms after the heal (-2: the namespaces could not be made, -3: never connected)");
  REQUIRE(ms >= 0);
  CHECK(ms < 3500);
  const long plantedMs = recoveryAfterDrop(planted, cut, patience, dialDuringCut);
  INFO("planted: frames again " << plantedMs << " ms after the heal");
  CHECK(plantedMs >= 3500);
}

}  // namespace

TEST_CASE("a link through a partition that drops packets carries frames within seconds of the heal") {
  // Found by the review of the back-off: without a dial deadline and a limit on unacknowledged
  // data, the kernel's own timers decide, and after a 7 s cut its next retransmission comes
  // 5.6 s after the heal (SYNs: up to two minutes).
  TransportLimits planted;  // the kernel's defaults: no dial deadline, no ack watch, no keepalive
  planted.connectTimeout = std::chrono::milliseconds(0);
  planted.deadAfter = std::chrono::milliseconds(0);
  checkRecoveryAfterDrop(std::chrono::milliseconds(7000), planted, false);
}

TEST_CASE("a link that began dialling during a partition that drops packets connects within seconds of the heal") {
  // On Linux >= 6.x (tcp_syn_linear_timeouts = 4) the first SYN retries are a second apart, so the
  // test above passes without the dial deadline (measured 0.26-0.34 s); with the SYN back-off of
  // older kernels a dial begun 8 s before the heal retries next 15 s after it began.
  TransportLimits planted;  // no dial deadline; everything else as shipped
  planted.connectTimeout = std::chrono::milliseconds(0);
  checkRecoveryAfterDrop(std::chrono::milliseconds(8000), planted, true);
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
  StopOnExit stopIoFirst{io};  // before the inbox and the acceptor's handler's state go
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
