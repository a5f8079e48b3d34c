#pragma once
// The peer link between replicas: Asio TCP, one outbound connection per peer for what this node
// sends and one inbound connection per peer for what it receives. Every frame is a 4-byte
// big-endian length and a body; a connection opens with a hello naming the sender and the HTTP
// address it serves. Sends never block: each peer has a bounded queue, and when it is full the
// oldest frames are dropped (the replication protocol tolerates loss). Connections are retried
// with exponential back-off. A malformed hello or an oversized frame closes that connection;
// nothing a peer sends can crash the node. A hello of another encoding version closes it too:
// that peer's commands may not decode here alike (coordinator/EncodingVersion.h).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "coordinator/EncodingVersion.h"

namespace warden::coordinator::transport {

using NodeId = std::uint64_t;

struct TransportLimits {
  std::size_t maxFrameBytes = 64u << 20;
  std::size_t maxQueuedBytes = 128u << 20;  // per peer
  // A partition that drops packets (rather than refusing them) must not leave a link waiting on
  // the kernel's timers after it heals: they retry a SYN for about two minutes, and retransmit
  // unacknowledged data at doubling intervals (the next try can come many seconds after the
  // heal). So a dial not connected within connectTimeout is abandoned and redialled (within a
  // quarter second), and a connection whose data, or window probes, went unacknowledged for
  // deadAfter is ended and redialled (TCP_INFO, looked at once a second), as is an idle one whose
  // keepalive probes go unanswered. A live peer's kernel acknowledges even while its process is
  // paused. 0 leaves the kernel's defaults: a defect tests plant.
  std::chrono::milliseconds connectTimeout{1000};
  std::chrono::milliseconds deadAfter{3000};
};

// Which peers this node lets in by their hello's encoding version.
struct VersionCheck {
  std::uint32_t own = kEncodingVersion;  // what this node's hellos claim
  // A peer of another version was refused (on the transport's thread; may be empty).
  std::function<void(NodeId from, std::uint32_t theirs)> onRefused;
  bool admitAny = false;  // a defect tests plant: let in a peer of any version
};

class PeerTransport {
 public:
  // Called on the transport's io_context thread.
  using OnFrame = std::function<void(NodeId from, std::string body)>;
  using OnHello = std::function<void(NodeId from, const std::string& http)>;

  PeerTransport(boost::asio::io_context& ioc, NodeId self, const boost::asio::ip::tcp::endpoint& listen,
                std::map<NodeId, boost::asio::ip::tcp::endpoint> peers, std::string http, OnFrame onFrame,
                OnHello onHello, TransportLimits limits = {}, VersionCheck versions = {});
  ~PeerTransport();

  void start();  // binds (throws when the address is taken) and starts connecting
  // Stops accepting, dialling and reading. A handler already past its check may still call onFrame
  // or onHello once afterwards: what those touch must outlive the io_context's run, not stop().
  void stop();
  // Thread-safe; never blocks. Frames to an unknown peer or to a full queue are dropped. Frames
  // queued together leave in one write, at once when called on the io_context's own thread and
  // nothing is being written to that peer.
  void send(NodeId to, std::string body);
  void send(NodeId to, std::vector<std::string> bodies);
  // Whether the outbound connection to this peer is up right now.
  bool connected(NodeId to) const;
  // Bytes waiting to be written to this peer, or being written (at most maxQueuedBytes plus
  // those in the write under way).
  std::size_t queuedBytes(NodeId to) const;

 private:
  class Link;
  class Inbound;
  struct Shared;
  void doAccept();

  boost::asio::io_context& ioc_;
  NodeId self_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint listen_;
  std::string hello_;
  TransportLimits limits_;
  std::shared_ptr<Shared> shared_;
  std::map<NodeId, std::shared_ptr<Link>> links_;
};

// The hello that opens every connection: magic, encoding version, sender id, sender's HTTP
// address. decodeHello is false for a body that is no hello; `version` is the sender's, for the
// caller to check.
std::string encodeHello(NodeId self, const std::string& http, std::uint32_t version = kEncodingVersion);
bool decodeHello(const std::string& body, NodeId& from, std::string& http, std::uint32_t& version);

}  // namespace warden::coordinator::transport
