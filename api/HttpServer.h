#pragma once
// The Beast HTTP/1.1 server: an acceptor on the node's HTTP address feeding HttpConnections.
// The acceptor runs on the io_context given first; connections are spread round-robin over the
// io_contexts given, each of which must be run by one thread only: a connection then never
// changes threads, a request costs no hand-off between threads that share one epoll, and a
// connection needs no strand.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "api/Router.h"

namespace warden::api {

struct HttpLimits {
  std::size_t maxConnections = 10'000;  // more get 429 and are closed
  unsigned readTimeoutSeconds = 60;     // a request (or an idle keep-alive) must arrive within this
  unsigned writeTimeoutSeconds = 30;
};

// Shared by the server and its connections: the open-connection count outlives neither.
struct ConnectionCounter {
  std::atomic<std::size_t> open{0};
};

class HttpServer {
 public:
  // Binds at once (throws boost::system::system_error when the address is taken).
  HttpServer(boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint, Router& router,
             HttpLimits limits, std::vector<boost::asio::io_context*> connectionContexts = {});

  void start();
  void stop();  // closes the acceptor; open connections end with their current exchange
  boost::asio::ip::tcp::endpoint localEndpoint() const { return acceptor_.local_endpoint(); }
  std::size_t openConnections() const { return counter_->open.load(); }

 private:
  void doAccept();

  std::vector<boost::asio::io_context*> contexts_;  // for connections, in turn
  std::size_t nextContext_ = 0;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;  // pauses accepting after an error such as EMFILE
  Router& router_;
  HttpLimits limits_;
  std::shared_ptr<ConnectionCounter> counter_ = std::make_shared<ConnectionCounter>();
};

}  // namespace warden::api
