#include "api/HttpServer.h"

#include <boost/asio/strand.hpp>

#include "api/HttpConnection.h"

namespace warden::api {

namespace net = boost::asio;

HttpServer::HttpServer(net::io_context& ioc, const net::ip::tcp::endpoint& endpoint, Router& router,
                       HttpLimits limits, std::vector<net::io_context*> connectionContexts)
    : contexts_(std::move(connectionContexts)),
      acceptor_(ioc),
      retry_(ioc),
      router_(router),
      limits_(limits) {
  if (contexts_.empty()) contexts_.push_back(&ioc);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(net::socket_base::max_listen_connections);
  router_.openConnections = [counter = counter_] { return counter->open.load(); };
}

void HttpServer::start() { doAccept(); }

void HttpServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_.cancel();
}

void HttpServer::doAccept() {
  // One thread per context (HttpServer.h): a connection's handlers never run concurrently.
  net::io_context& context = *contexts_[nextContext_++ % contexts_.size()];
  acceptor_.async_accept(context, [this](boost::system::error_code ec, net::ip::tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;  // stopped
    if (ec) {
      // Errors such as EMFILE pass once connections close: retry shortly instead of spinning.
      retry_.expires_after(std::chrono::milliseconds(50));
      retry_.async_wait([this](boost::system::error_code waitEc) {
        if (!waitEc && acceptor_.is_open()) doAccept();
      });
      return;
    }
    boost::system::error_code ignored;
    socket.set_option(net::ip::tcp::no_delay(true), ignored);
    std::make_shared<HttpConnection>(std::move(socket), router_, limits_, counter_)->start();
    doAccept();
  });
}

}  // namespace warden::api
