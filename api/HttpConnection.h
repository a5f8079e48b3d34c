#pragma once
// One client connection: read a request, hand it to the Router, write the reply, repeat while
// keep-alive. Everything runs on the connection's io_context (one thread: HttpServer.h); a reply
// produced on another thread (a write finishing on the log's thread) is posted back to it. One
// request at a time, so the reply queue is bounded at one.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "api/Hangup.h"
#include "api/HttpServer.h"
#include "api/Router.h"

namespace warden::api {

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(boost::asio::ip::tcp::socket&& socket, Router& router, HttpLimits limits,
                 std::shared_ptr<ConnectionCounter> counter);
  ~HttpConnection();

  void start();

 private:
  void doRead();
  void onHeader(boost::beast::error_code ec);
  void readBody();
  void onRead(boost::beast::error_code ec);
  void send(Reply reply, bool keepAlive, bool head);
  void sendStream(Reply reply);
  void writeNextPiece();
  void onWrite(boost::beast::error_code ec, bool close);
  void close();
  void watchForHangup();
  // The read or write under way must end within `seconds`, or the connection closes (its
  // handler then sees operation_aborted). One timer per connection, re-armed only when it
  // fires: moving the deadline costs no timer operation (Beast's tcp_stream armed and
  // cancelled one per read and per write).
  void deadline(unsigned seconds);
  void noDeadline() { deadline_ = Clock::time_point::max(); }
  void armTimer();

  using Clock = std::chrono::steady_clock;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool timerArmed_ = false;
  std::uint64_t timerGeneration_ = 0;  // of the wait armed last; older ones' handlers do nothing
  boost::beast::flat_buffer buffer_;
  Router& router_;
  HttpLimits limits_;
  std::shared_ptr<ConnectionCounter> counter_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::string head_, body_;                   // the reply being written: status line and headers, body
  std::shared_ptr<ReplyStream> streamBody_;  // while a streamed reply is being written
  std::string piece_;                         // the piece being written
  std::shared_ptr<Hangup> hangup_;            // the request being handled, until its reply
  bool watching_ = false;                     // a wait for the socket to turn readable is pending
};

}  // namespace warden::api
