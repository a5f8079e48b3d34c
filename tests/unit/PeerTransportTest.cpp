#include <catch2/catch.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "coordinator/transport/PeerTransport.h"
#include "tests/cluster/TcpProxy.h"
#include "tests/http/TestServer.h"
#include "tests/unit/PeerTestSupport.h"

using namespace warden::coordinator::transport;
using namespace warden::tests::peers;
using warden::coordinator::kEncodingVersion;

TEST_CASE("two peers exchange frames in order and learn each other's HTTP address") {
  Inbox in1, in2;  // before the io thread: see Inbox
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
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
  Inbox in1, in2, again;  // before the io thread: see Inbox
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
  auto t1 = makeTransport(ioc, 1, peers, in1);
  t1->start();
  t1->send(2, "while-down");  // peer 2 is not listening yet: queued, retried
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t2 = makeTransport(ioc, 2, peers, in2);
  t2->start();
  REQUIRE(waitFor([&] { return in2.size() == 1; }));
  t2->stop();
  t2.reset();
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
  Inbox in1;  // before the io thread: see Inbox
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
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
  Inbox in1, in2;  // before the io thread: see Inbox
  std::mutex mutex;
  std::vector<std::pair<NodeId, std::uint32_t>> refused1, refused2;
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
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
  Inbox in1, in2;  // before the io thread: see Inbox
  std::mutex mutex;
  std::size_t refusals = 0;  // every refused connection, not only the first per version
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
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
  Inbox in1, in2;  // before the io thread: see Inbox
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::time_point> refusedAt;
  IoThread io;
  net::io_context& ioc = io.ioc;
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, loopback(warden::tests::freePort())}};
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
  Inbox in1, in2, again;  // before the io thread: see Inbox
  IoThread io, proxyIo;
  net::io_context& ioc = io.ioc;
  net::io_context& proxyIoc = proxyIo.ioc;
  const int real2 = warden::tests::freePort();
  warden::tests::TcpProxy proxy(proxyIoc, warden::tests::freePort(), real2);
  StopOnExit stopProxyIoFirst{proxyIo};  // the proxy's accept handler uses it
  std::map<NodeId, tcp::endpoint> peersOf1{{1, loopback(warden::tests::freePort())}, {2, loopback(proxy.port())}};
  std::map<NodeId, tcp::endpoint> peersOf2{{1, peersOf1[1]}, {2, loopback(real2)}};
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
  Inbox inbox;  // before the io thread: see Inbox
  IoThread io;
  tcp::acceptor silent(io.ioc, loopback(0));
  tcp::socket held(io.ioc);
  silent.async_accept(held, [](boost::system::error_code) {});
  std::map<NodeId, tcp::endpoint> peers{{1, loopback(warden::tests::freePort())}, {2, silent.local_endpoint()}};
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
