#pragma once
// A fault-injecting TCP proxy for cluster tests: it forwards one listening port to one target
// and can be cut (existing connections closed, new ones refused) and restored at will, and can
// hold back what it forwards (each read, in order) by a delay.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace warden::tests {

class TcpProxy {
 public:
  TcpProxy(boost::asio::io_context& ioc, int listenPort, int targetPort);
  void cut();
  void restore();
  void delay(std::chrono::milliseconds d) { delayMs_->store(static_cast<int>(d.count())); }
  int port() const { return listenPort_; }

 private:
  struct Pipe;
  void accept();

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int listenPort_, targetPort_;
  std::atomic<bool> cut_{false};
  std::shared_ptr<std::atomic<int>> delayMs_ = std::make_shared<std::atomic<int>>(0);
  std::mutex mutex_;
  std::set<std::shared_ptr<Pipe>> pipes_;
};

}  // namespace warden::tests
