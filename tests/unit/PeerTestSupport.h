#pragma once
// What the peer transport's tests share: an inbox for the frames a transport hands up, an
// io_context on a thread of its own, and a transport wired to them.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "coordinator/transport/PeerTransport.h"

namespace warden::tests::peers {

using coordinator::transport::NodeId;
using coordinator::transport::PeerTransport;
using coordinator::transport::TransportLimits;
using coordinator::transport::VersionCheck;
namespace net = boost::asio;
using tcp = net::ip::tcp;


// Declare every Inbox before the IoThread whose transports fill it: a frame being delivered as a
// transport stops still reaches its inbox, so the inbox must outlive the thread (joined first).
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
  void stop() {
    guard.reset();
    ioc.stop();
    if (thread.joinable()) thread.join();
  }
  ~IoThread() { stop(); }
};

// Stops an IoThread when it goes, for objects its handlers use that are declared after it.
struct StopOnExit {
  IoThread& io;
  ~StopOnExit() { io.stop(); }
};

inline tcp::endpoint loopback(int port) { return {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}; }

template <typename Done>
bool waitFor(Done done, int ms = 5000) {
  for (int i = 0; i < ms / 5; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

inline std::unique_ptr<PeerTransport> makeTransport(net::io_context& ioc, NodeId id, std::map<NodeId, tcp::endpoint> peers,
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


}  // namespace warden::tests::peers
