#include "api/HttpConnection.h"

#include <array>
#include <cerrno>
#include <cstdio>

#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "api/JsonCodec.h"

namespace warden::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
}

HttpConnection::HttpConnection(net::ip::tcp::socket&& socket, Router& router, HttpLimits limits,
                               std::shared_ptr<ConnectionCounter> counter)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      router_(router),
      limits_(limits),
      counter_(std::move(counter)) {
  counter_->open.fetch_add(1);
}

HttpConnection::~HttpConnection() { counter_->open.fetch_sub(1); }

void HttpConnection::start() {
  // Runs the first read on the io_context the socket was accepted onto.
  net::dispatch(socket_.get_executor(), [self = shared_from_this()] {
    if (self->counter_->open.load() > self->limits_.maxConnections) {
      self->send(errorReply(429, "too_many_requests", "the node has too many open connections", self->router_.revision()),
                 false, false);
      return;
    }
    self->doRead();
  });
}

void HttpConnection::doRead() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(kMaxBodyBytes);
  deadline(limits_.readTimeoutSeconds);
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onHeader(ec); });
}

void HttpConnection::onHeader(beast::error_code ec) {
  if (ec || parser_->is_done()) {
    onRead(ec);
    return;
  }
  // A client that asked "Expect: 100-continue" waits for this before sending its body.
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue), [self = shared_from_this()](beast::error_code e, std::size_t) {
      if (e) return self->close();
      self->readBody();
    });
    return;
  }
  readBody();
}

void HttpConnection::readBody() {
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
}

void HttpConnection::onRead(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::connection_reset ||
      ec == net::error::operation_aborted) {
    close();
    return;
  }
  if (ec == http::error::body_limit) {
    send(errorReply(413, "too_large", "the request body is larger than 1.5 MiB", router_.revision()), false, false);
    return;
  }
  if (ec == http::error::header_limit) {
    send(errorReply(413, "too_large", "the request line and headers are larger than 64 KiB", router_.revision()), false,
         false);
    return;
  }
  if (ec) {
    // Malformed HTTP: answer once, then hang up, since the stream cannot be trusted any more.
    if (ec != net::error::eof && ec != net::error::broken_pipe) {
      send(errorReply(400, "invalid_argument", "malformed HTTP request: " + ec.message(), router_.revision()), false,
           false);
    } else {
      close();
    }
    return;
  }

  auto& req = parser_->get();
  const bool keepAlive = req.keep_alive();
  const bool head = req.method() == http::verb::head;
  Request request{std::string(req.method_string()), std::string(req.target()), std::move(req.body()), std::nullopt, std::nullopt, nullptr};
  if (auto key = req.find("Idempotency-Key"); key != req.end()) request.idempotencyKey = std::string(key->value());
  if (auto id = req.find("Last-Event-ID"); id != req.end()) request.lastEventId = std::string(id->value());
  // The handler may take a while (a write waiting for its commit): no read timeout meanwhile.
  noDeadline();
  hangup_ = std::make_shared<Hangup>([weak = weak_from_this()] {
    if (auto self = weak.lock()) net::post(self->socket_.get_executor(), [self] { self->watchForHangup(); });
  });
  request.hangup = hangup_;
  router_.handle(request, [self = shared_from_this(), keepAlive, head](Reply reply) {
    net::post(self->socket_.get_executor(), [self, reply = std::move(reply), keepAlive, head]() mutable {
      self->send(std::move(reply), keepAlive, head);
    });
  });
}

void HttpConnection::send(Reply reply, bool keepAlive, bool head) {
  hangup_.reset();  // answered: a hangup from now on ends nothing
  if (reply.later) reply = settleReply(std::move(reply), router_.revision());
  if (reply.stream && !head) return sendStream(std::move(reply));
  if (reply.stream) reply.stream->cancel();
  // The status line and headers by hand into one string (Beast's fields allocate per header,
  // and its serializer is a good part of a small reply's cost): the same bytes Beast wrote.
  const unsigned status = reply.status;
  head_.clear();
  head_ += "HTTP/1.1 ";
  head_ += std::to_string(status);
  head_ += ' ';
  const auto reason = http::obsolete_reason(http::int_to_status(status));
  head_.append(reason.data(), reason.size());
  head_ += "\r\nServer: warden\r\n";
  auto header = [this](std::string_view name, std::string_view value) {
    head_.append(name);
    head_ += ": ";
    for (char c : value) head_ += (c == '\r' || c == '\n') ? ' ' : c;  // one line, whatever the value
    head_ += "\r\n";
  };
  if (status != 204) header("Content-Type", reply.contentType);
  if (reply.revision) header("X-Warden-Revision", std::to_string(*reply.revision));
  for (const auto& [name, value] : reply.headers) header(name, value);
  body_ = head ? std::string() : std::move(reply.body);
  if (status == 204 || status == 304 || status < 200) body_.clear();  // such replies have no body
  // No Content-Length on 1xx, 204 and 304 (RFC 9110 8.6); a HEAD reply says 0, as before.
  if (status != 204 && status != 304 && status >= 200) header("Content-Length", std::to_string(body_.size()));
  if (!keepAlive) head_ += "Connection: close\r\n";
  head_ += "\r\n";
  deadline(limits_.writeTimeoutSeconds);
  const std::array<net::const_buffer, 2> buffers{net::buffer(head_), net::buffer(body_)};
  net::async_write(socket_, buffers, [self = shared_from_this(), close = !keepAlive](beast::error_code ec, std::size_t) {
    self->onWrite(ec, close);
  });
}

void HttpConnection::onWrite(beast::error_code ec, bool close) {
  body_.clear();
  if (ec || close) {
    this->close();
    return;
  }
  doRead();
}

void HttpConnection::sendStream(Reply reply) {
  // The headers, then each piece as a chunk of a chunked body, until the stream ends or the
  // client goes (a write that fails or times out). The connection closes afterwards.
  streamBody_ = std::move(reply.stream);
  std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " OK\r\nServer: warden\r\nContent-Type: " +
                     reply.contentType + "\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n";
  if (reply.revision) head += "X-Warden-Revision: " + std::to_string(*reply.revision) + "\r\n";
  for (const auto& [name, value] : reply.headers) head += name + ": " + value + "\r\n";
  piece_ = head + "Connection: close\r\n\r\n";
  deadline(limits_.writeTimeoutSeconds);
  net::async_write(socket_, net::buffer(piece_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) {
      self->streamBody_->cancel();
      return self->close();
    }
    self->writeNextPiece();
  });
}

void HttpConnection::writeNextPiece() {
  noDeadline();  // an idle stream waits for its next piece as long as it takes
  streamBody_->next([self = shared_from_this()](std::optional<std::string> piece) {
    net::post(self->socket_.get_executor(), [self, piece = std::move(piece)]() mutable {
      char size[32];
      if (!piece) {
        self->piece_ = "0\r\n\r\n";
      } else {
        std::snprintf(size, sizeof size, "%zx\r\n", piece->size());
        self->piece_ = size + *piece + "\r\n";
      }
      const bool last = !piece;
      self->deadline(self->limits_.writeTimeoutSeconds);
      net::async_write(self->socket_, net::buffer(self->piece_), [self, last](beast::error_code ec, std::size_t) {
        if (ec || last) {
          self->streamBody_->cancel();
          return self->close();
        }
        self->writeNextPiece();
      });
    });
  });
}

void HttpConnection::watchForHangup() {
  // One wait at a time; it serves whichever request is being handled when it ends (a wait armed
  // for an earlier request ends when the next one's bytes arrive, and is then armed again).
  if (!hangup_ || watching_) return;
  watching_ = true;
  socket_.async_wait(net::ip::tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    self->watching_ = false;
    if (ec || !self->hangup_) return;
    char byte;
    const ssize_t n = ::recv(self->socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      // The end of the stream (or a reset): nobody is left to answer.
      auto hangup = std::move(self->hangup_);
      hangup->happened();
      return;
    }
    // Bytes of a next (pipelined) request: left for the next read; nothing more to learn here.
    if (n < 0) self->watchForHangup();
  });
}

void HttpConnection::close() {
  beast::error_code ignored;
  socket_.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
  timer_.cancel();
  deadline_ = Clock::time_point::max();
}

void HttpConnection::deadline(unsigned seconds) {
  deadline_ = Clock::now() + std::chrono::seconds(seconds);
  // Armed for later than this (a read's deadline, now a shorter write's): armed again.
  if (socket_.is_open() && (!timerArmed_ || deadline_ < timer_.expiry())) armTimer();
}

void HttpConnection::armTimer() {
  timerArmed_ = true;
  const std::uint64_t generation = ++timerGeneration_;
  timer_.expires_at(deadline_);  // cancels a wait armed before: its handler finds itself stale
  // Weak: a closed connection goes at once, not when its timer would have fired.
  timer_.async_wait([weak = weak_from_this(), generation](beast::error_code ec) {
    auto self = weak.lock();
    if (!self || generation != self->timerGeneration_) return;
    self->timerArmed_ = false;
    if (ec || self->deadline_ == Clock::time_point::max()) return;  // cancelled, or nothing to time now
    if (Clock::now() >= self->deadline_) return self->close();       // the read or write took too long
    self->armTimer();                                                 // the deadline moved on meanwhile
  });
}

}  // namespace warden::api
