#include "tests/cluster/TcpProxy.h"

#include <array>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace warden::tests {

namespace net = boost::asio;
using tcp = net::ip::tcp;

struct TcpProxy::Pipe : std::enable_shared_from_this<Pipe> {
  tcp::socket client, server;
  std::array<char, 65536> up{}, down{};
  net::steady_timer upTimer, downTimer;
  std::shared_ptr<std::atomic<int>> delayMs;
  Pipe(net::io_context& ioc, std::shared_ptr<std::atomic<int>> delay)
      : client(ioc), server(ioc), upTimer(ioc), downTimer(ioc), delayMs(std::move(delay)) {}

  // One direction: read, wait out the delay (if any), write, repeat: order is kept.
  void pump(tcp::socket& from, tcp::socket& to, std::array<char, 65536>& buffer, net::steady_timer& timer) {
    from.async_read_some(net::buffer(buffer), [self = shared_from_this(), &from, &to, &buffer, &timer](auto ec, std::size_t n) {
      if (ec) return self->close();
      auto forward = [self, &from, &to, &buffer, &timer, n] {
        net::async_write(to, net::buffer(buffer.data(), n), [self, &from, &to, &buffer, &timer](auto ec2, std::size_t) {
          if (ec2) return self->close();
          self->pump(from, to, buffer, timer);
        });
      };
      const int delay = self->delayMs->load();
      if (delay <= 0) return forward();
      timer.expires_after(std::chrono::milliseconds(delay));
      timer.async_wait([self, forward](auto ec3) {
        if (ec3) return self->close();
        forward();
      });
    });
  }

  void close() {
    boost::system::error_code ignored;
    client.close(ignored);
    server.close(ignored);
  }
};

TcpProxy::TcpProxy(net::io_context& ioc, int listenPort, int targetPort)
    : ioc_(ioc),
      acceptor_(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(listenPort))),
      listenPort_(listenPort),
      targetPort_(targetPort) {
  accept();
}

void TcpProxy::accept() {
  auto pipe = std::make_shared<Pipe>(ioc_, delayMs_);
  acceptor_.async_accept(pipe->client, [this, pipe](boost::system::error_code ec) {
    if (ec == net::error::operation_aborted) return;
    if (ec) {
      accept();  // e.g. the client gave up while queued: keep serving the others
      return;
    }
    if (cut_) {
      pipe->close();
    } else {
      boost::system::error_code connectEc;
      pipe->server.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(targetPort_)),
                           connectEc);
      if (connectEc) {
        pipe->close();
      } else {
        {
          std::lock_guard lock(mutex_);
          pipes_.insert(pipe);
        }
        pipe->pump(pipe->client, pipe->server, pipe->up, pipe->upTimer);
        pipe->pump(pipe->server, pipe->client, pipe->down, pipe->downTimer);
      }
    }
    accept();
  });
}

void TcpProxy::cut() {
  cut_ = true;
  net::post(ioc_, [this] {
    std::lock_guard lock(mutex_);
    for (auto& pipe : pipes_) pipe->close();
    pipes_.clear();
  });
}

void TcpProxy::restore() { cut_ = false; }

}  // namespace warden::tests
