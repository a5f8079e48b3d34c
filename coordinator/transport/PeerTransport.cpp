#include "coordinator/transport/PeerTransport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <vector>

#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "coordinator/Bytes.h"

namespace warden::coordinator::transport {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {
constexpr std::string_view kMagic = "WRDN";

// See TransportLimits::deadAfter: keepalive probes for a connection with nothing to send (an
// inbound one never sends). Best effort: a socket that refuses an option keeps the default.
// Not TCP_USER_TIMEOUT: since Linux 5.11 it also ends a connection whose peer's window stayed
// shut that long, which a live member paused for a few seconds (SIGSTOP) answers with.
void probeWhenIdle(tcp::socket& socket, std::chrono::milliseconds deadAfter) {
  if (deadAfter.count() <= 0) return;
  const int fd = socket.native_handle();
  // From a third of it on, a second apart, three unanswered: dead about deadAfter + 1 s on.
  const int idle = std::max(1, static_cast<int>(deadAfter.count() / 3000));
  const int interval = 1;
  const int probes = 3;
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

// Whether the kernel holds data sent on this socket that nothing has acknowledged for `within`:
// behind a partition that drops packets, no ACK comes at all, while a live peer's kernel answers
// even when its process is paused and its window shut (its answers to the window probes).
bool unacknowledgedFor(tcp::socket& socket, std::chrono::milliseconds within) {
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return false;
  // Or, with the window shut (nothing unacknowledged, data waiting), when the window probes go
  // unanswered: a live peer's kernel answers each, which resets tcpi_probes to 0. (Keepalive
  // does not probe a socket with data waiting; the window probes alone back off to minutes.)
  return (info.tcpi_unacked > 0 || info.tcpi_probes >= 2) &&
         info.tcpi_last_ack_recv >= static_cast<std::uint32_t>(within.count());
}

std::array<unsigned char, 4> lengthPrefix(std::size_t n) {
  return {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 8),
          static_cast<unsigned char>(n)};
}
}  // namespace

std::string encodeHello(NodeId self, const std::string& http, std::uint32_t version) {
  Encoder out;
  for (char c : kMagic) out.u8(static_cast<std::uint8_t>(c));
  // A varint: one byte up to 127, as the single version byte binaries of version 1 check.
  out.varint(version);
  out.varint(self);
  out.bytes(http);
  return out.take();
}

bool decodeHello(const std::string& body, NodeId& from, std::string& http, std::uint32_t& version) {
  try {
    Decoder in(body);
    for (char c : kMagic) {
      if (in.u8() != static_cast<std::uint8_t>(c)) return false;
    }
    const std::uint64_t v = in.varint();
    if (v > UINT32_MAX) return false;
    version = static_cast<std::uint32_t>(v);
    from = in.varint();
    http = std::string(in.bytes());
    return in.done();
  } catch (const DecodeError&) {
    return false;
  }
}

// What inbound connections need, kept alive by them: they may outlive the transport's stop().
struct PeerTransport::Shared {
  OnFrame onFrame;
  OnHello onHello;
  TransportLimits limits;
  VersionCheck versions;
  std::atomic<bool> stopped{false};
  std::mutex mutex;
  std::vector<std::weak_ptr<Inbound>> inbound;
};

// What this node sends to one peer: a queue drained onto one connection, re-dialled on failure.
class PeerTransport::Link : public std::enable_shared_from_this<Link> {
 public:
  Link(net::io_context& ioc, tcp::endpoint remote, std::string hello, TransportLimits limits)
      : strand_(net::make_strand(ioc)), socket_(strand_), timer_(strand_), acks_(strand_), remote_(remote),
        hello_(std::move(hello)), limits_(limits) {}

  void start() {
    net::dispatch(strand_, [self = shared_from_this()] { self->connect(); });
  }

  void stop() {
    net::dispatch(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      error_code ignored;
      self->timer_.cancel();
      self->acks_.cancel();
      self->socket_.close(ignored);
    });
  }

  void send(std::vector<std::string> bodies) {
    net::dispatch(strand_, [self = shared_from_this(), bodies = std::move(bodies)]() mutable {
      for (auto& body : bodies) {
        // A frame the receiver would refuse would be resent forever at the head of the queue,
        // wedging the link: drop it here (callers keep frames far below the limit).
        if (body.size() > self->limits_.maxFrameBytes) continue;
        self->queuedBytes_ += body.size();
        self->queue_.push_back(std::move(body));
      }
      // Keep the newest: what is old matters least to a protocol that retransmits anyway. The
      // bound holds while connected too (a SIGSTOPped peer accepts no bytes, so a write may
      // never finish); the frames in the write under way are not in the queue, and stay. Nor
      // does a hello the connection has not sent yet go.
      const std::size_t keep = self->helloQueued_ && self->inFlight_.empty() ? 1 : 0;
      while (self->queuedBytes_ - self->inFlightBytes_ > self->limits_.maxQueuedBytes &&
             self->queue_.size() > keep + 1) {
        auto victim = self->queue_.begin() + static_cast<std::ptrdiff_t>(keep);
        self->queuedBytes_ -= victim->size();
        self->queue_.erase(victim);
      }
      self->queuedFlag_ = self->queuedBytes_;
      if (self->up_) self->writeNext();
    });
  }

  bool up() const { return upFlag_.load(); }
  std::size_t queued() const { return queuedFlag_.load(); }

 private:
  void connect() {
    if (stopped_) return;
    const std::uint64_t attempt = ++attempt_;
    if (limits_.connectTimeout.count() > 0) {
      // The back-off's timer, free while dialling (retry() re-arms it, cancelling this wait).
      timer_.expires_after(limits_.connectTimeout);
      timer_.async_wait([self = shared_from_this(), attempt](error_code ec) {
        // Still this dial, unanswered: give it up; its handler sees the abort and retries. A
        // peer that does not answer at all (a partition that drops packets) is dialled again
        // within a quarter second: when the network comes back, the next SYN is not far off.
        if (ec || self->attempt_ != attempt || self->up_ || self->stopped_) return;
        self->backoff_ = std::min(self->backoff_, kMaxBackoffAfterConnect);
        error_code ignored;
        self->socket_.close(ignored);
      });
    }
    socket_.async_connect(remote_, [self = shared_from_this(), attempt](error_code ec) {
      self->timer_.cancel();  // the dial's deadline
      if (ec) return self->retry();
      error_code ignored;
      self->socket_.set_option(tcp::no_delay(true), ignored);
      probeWhenIdle(self->socket_, self->limits_.deadAfter);
      self->watchAcks(attempt);
      self->connectedAt_ = std::chrono::steady_clock::now();
      // Reachable again: should this connection end at once, the next dial waits no longer than
      // one that ended at once waits, whatever refused dials before had grown the back-off to.
      self->backoff_ = std::min(self->backoff_, kMaxBackoffAfterConnect);
      self->up_ = true;
      self->upFlag_ = true;
      self->queue_.push_front(self->hello_);
      self->queuedBytes_ += self->hello_.size();
      self->helloQueued_ = true;
      self->writeNext();
    });
  }

  // Once a second while connected: a connection whose data nobody acknowledged for deadAfter
  // is closed (the write under way, if any, then fails and retries; else retry() here).
  void watchAcks(std::uint64_t attempt) {
    if (limits_.deadAfter.count() <= 0) return;
    acks_.expires_after(std::chrono::seconds(1));
    acks_.async_wait([self = shared_from_this(), attempt](error_code ec) {
      if (ec || self->stopped_ || !self->up_ || self->attempt_ != attempt) return;
      if (!unacknowledgedFor(self->socket_, self->limits_.deadAfter)) return self->watchAcks(attempt);
      if (!self->inFlight_.empty()) {
        error_code ignored;
        self->socket_.close(ignored);
        return;
      }
      self->retry();
    });
  }

  void retry() {
    // A connection that lasted was to a working peer that went away: redial soon. One that
    // ended at once was not (a peer that refused its hello, or a proxy whose target is not up
    // yet): the back-off keeps growing, but only to kMaxBackoffAfterConnect, so that a peer
    // coming up behind a proxy is reached within a quarter second.
    const bool wasUp = up_;
    if (wasUp && std::chrono::steady_clock::now() - connectedAt_ >= kStableAfter) backoff_ = kFirstBackoff;
    up_ = false;
    upFlag_ = false;
    error_code ignored;
    socket_.close(ignored);
    // What was being written goes again, first, on the next connection (a receiver drops a
    // frame cut short with its connection).
    while (!inFlight_.empty()) {
      queue_.push_front(std::move(inFlight_.back()));
      inFlight_.pop_back();
    }
    inFlightBytes_ = 0;
    if (stopped_) return;
    // The next connection opens with a fresh hello; drop one this connection never finished.
    if (helloQueued_) {
      queuedBytes_ -= queue_.front().size();
      queue_.pop_front();
      helloQueued_ = false;
      queuedFlag_ = queuedBytes_;
    }
    timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, wasUp ? kMaxBackoffAfterConnect : kMaxBackoff);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->connect();
    });
  }

  // What is queued, in one write (up to kGatherBytes, or one frame): its frames move out of the
  // queue until it completes, so that the queue's bound stays what it was.
  void writeNext() {
    if (!inFlight_.empty() || queue_.empty() || !up_) return;
    inFlightBytes_ = 0;
    while (!queue_.empty() && (inFlight_.empty() || inFlightBytes_ + queue_.front().size() <= kGatherBytes)) {
      inFlightBytes_ += queue_.front().size();
      inFlight_.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    headers_.clear();
    for (const auto& frame : inFlight_) headers_.push_back(lengthPrefix(frame.size()));
    buffers_.clear();
    for (std::size_t i = 0; i < inFlight_.size(); ++i) {
      buffers_.push_back(net::buffer(headers_[i]));
      buffers_.push_back(net::buffer(inFlight_[i]));
    }
    net::async_write(socket_, buffers_, [self = shared_from_this()](error_code ec, std::size_t) {
      // Closed by the ack watch after the write had gone out: the link is down all the same.
      if (ec || !self->socket_.is_open()) return self->retry();
      self->queuedBytes_ -= self->inFlightBytes_;
      self->inFlightBytes_ = 0;
      self->inFlight_.clear();
      self->queuedFlag_ = self->queuedBytes_;
      self->helloQueued_ = false;
      self->writeNext();
    });
  }

  net::strand<net::io_context::executor_type> strand_;
  tcp::socket socket_;
  net::steady_timer timer_;  // the back-off, and a dial's deadline
  net::steady_timer acks_;   // watchAcks()
  tcp::endpoint remote_;
  std::string hello_;
  TransportLimits limits_;
  std::deque<std::string> queue_;
  std::size_t queuedBytes_ = 0;  // in queue_ and inFlight_
  std::vector<std::string> inFlight_;  // the frames of the write under way
  std::size_t inFlightBytes_ = 0;
  std::vector<std::array<unsigned char, 4>> headers_;  // their length prefixes
  std::vector<net::const_buffer> buffers_;
  static constexpr std::chrono::milliseconds kFirstBackoff{20}, kMaxBackoff{1000}, kMaxBackoffAfterConnect{250},
      kStableAfter{1000};
  static constexpr std::size_t kGatherBytes = 256u << 10;
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  std::chrono::steady_clock::time_point connectedAt_;
  std::uint64_t attempt_ = 0;  // dials begun, so that a dial's deadline ends that dial only
  bool up_ = false, stopped_ = false;
  bool helloQueued_ = false;  // the queue's front is this connection's unsent hello
  std::atomic<bool> upFlag_{false};
  std::atomic<std::size_t> queuedFlag_{0};  // queuedBytes_, for other threads
};

// What one peer sends us: a hello, then frames, until the connection ends or misbehaves.
class PeerTransport::Inbound : public std::enable_shared_from_this<Inbound> {
 public:
  Inbound(tcp::socket socket, std::shared_ptr<Shared> shared) : socket_(std::move(socket)), shared_(std::move(shared)) {}

  void start() { readHeader(); }

  // From any thread: the socket is closed on its own strand.
  void closeSoon() {
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

 private:
  void readHeader() {
    net::async_read(socket_, net::buffer(header_), [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return;
      const std::size_t n = (std::size_t{self->header_[0]} << 24) | (std::size_t{self->header_[1]} << 16) |
                            (std::size_t{self->header_[2]} << 8) | self->header_[3];
      if (self->shared_->stopped || n > self->shared_->limits.maxFrameBytes) return self->close();
      self->body_.resize(n);
      self->readBody();
    });
  }

  void readBody() {
    net::async_read(socket_, net::buffer(body_), [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return;
      if (self->shared_->stopped) return self->close();
      if (!self->greeted_) {
        std::string http;
        std::uint32_t version = 0;
        if (!decodeHello(self->body_, self->from_, http, version) || self->from_ == 0) return self->close();
        const VersionCheck& versions = self->shared_->versions;
        if (version != versions.own && !versions.admitAny) {
          if (versions.onRefused) versions.onRefused(self->from_, version);
          return self->close();
        }
        self->greeted_ = true;
        if (self->shared_->onHello) self->shared_->onHello(self->from_, http);
      } else {
        self->shared_->onFrame(self->from_, std::move(self->body_));
      }
      self->body_.clear();
      self->readHeader();
    });
  }

  void close() {
    error_code ignored;
    socket_.close(ignored);
  }

  tcp::socket socket_;
  std::shared_ptr<Shared> shared_;  // outlives the transport if it must
  std::array<unsigned char, 4> header_{};
  std::string body_;
  bool greeted_ = false;
  NodeId from_ = 0;
};

PeerTransport::PeerTransport(net::io_context& ioc, NodeId self, const tcp::endpoint& listen,
                             std::map<NodeId, tcp::endpoint> peers, std::string http, OnFrame onFrame,
                             OnHello onHello, TransportLimits limits, VersionCheck versions)
    : ioc_(ioc),
      self_(self),
      acceptor_(ioc),
      listen_(listen),
      hello_(encodeHello(self, http, versions.own)),
      limits_(limits),
      shared_(std::make_shared<Shared>()) {
  shared_->onFrame = std::move(onFrame);
  shared_->onHello = std::move(onHello);
  shared_->limits = limits;
  shared_->versions = std::move(versions);
  for (const auto& [id, endpoint] : peers) {
    if (id != self_) links_[id] = std::make_shared<Link>(ioc_, endpoint, hello_, limits_);
  }
}

PeerTransport::~PeerTransport() { stop(); }

void PeerTransport::start() {
  acceptor_.open(listen_.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(listen_);
  acceptor_.listen();
  doAccept();
  for (auto& [id, link] : links_) link->start();
}

void PeerTransport::stop() {
  shared_->stopped = true;
  error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, link] : links_) link->stop();
  std::lock_guard lock(shared_->mutex);
  for (auto& weak : shared_->inbound) {
    if (auto inbound = weak.lock()) inbound->closeSoon();
  }
  shared_->inbound.clear();
}

void PeerTransport::send(NodeId to, std::string body) {
  std::vector<std::string> bodies;
  bodies.push_back(std::move(body));
  send(to, std::move(bodies));
}

void PeerTransport::send(NodeId to, std::vector<std::string> bodies) {
  auto it = links_.find(to);
  if (it != links_.end()) it->second->send(std::move(bodies));
}

bool PeerTransport::connected(NodeId to) const {
  auto it = links_.find(to);
  return it != links_.end() && it->second->up();
}

std::size_t PeerTransport::queuedBytes(NodeId to) const {
  auto it = links_.find(to);
  return it == links_.end() ? 0 : it->second->queued();
}

void PeerTransport::doAccept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      probeWhenIdle(socket, limits_.deadAfter);
      auto inbound = std::make_shared<Inbound>(std::move(socket), shared_);
      {
        std::lock_guard lock(shared_->mutex);
        std::erase_if(shared_->inbound, [](const std::weak_ptr<Inbound>& w) { return w.expired(); });
        shared_->inbound.push_back(inbound);
      }
      inbound->start();
    }
    doAccept();
  });
}

}  // namespace warden::coordinator::transport
