#include "api/LoadDriver.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>

#include "api/ProcStats.h"

namespace warden::api::load {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::size_t LoadResult::requests() const {
  std::size_t n = 0;
  for (const auto& kind : micros) n += kind.size();
  return n;
}

double cpuSecondsOf(const std::vector<long>& pids) {
  double sum = 0;
  for (long pid : pids) sum += cpuSeconds(pid);
  return sum;
}

namespace {

// What every connection of one run reads; `next` is the only part written, atomically.
struct Schedule {
  const LoadConfig& config;
  std::string host;  // the Host header
  Clock::time_point start, measureStart, end;
  std::atomic<std::uint64_t> next{0};  // paced: the next slot to take
};

// One keep-alive connection sending requests one at a time until the schedule's end; stops at
// its first failed exchange. Its handlers never run concurrently (one operation at a time), on
// whichever io thread; the caller reads its figures after the io_context stopped.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(net::io_context& ioc, Schedule& schedule, tcp::resolver::results_type addresses, unsigned seed)
      : micros(schedule.config.kinds), stream_(ioc), timer_(ioc), schedule_(schedule), addresses_(std::move(addresses)),
        rng_(seed) {}

  void start() {
    stream_.async_connect(addresses_, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return self->fail("connect: " + ec.message());
      self->take();
    });
  }

  std::vector<std::vector<std::uint32_t>> micros;
  std::size_t errors = 0;
  std::string firstError;

 private:
  void take() {
    const LoadConfig& c = schedule_.config;
    const auto now = Clock::now();
    auto due = now;
    if (c.rate > 0) {
      const std::uint64_t k = schedule_.next++;
      due = schedule_.start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(k) / c.rate));
    }
    if (due >= schedule_.end) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    if (due <= now) return send();
    timer_.expires_at(due);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->send();
    });
  }

  void send() {
    req_ = {};
    kind_ = schedule_.config.make(rng_, req_);
    req_.version(11);
    req_.keep_alive(true);
    req_.set(http::field::host, schedule_.host);
    if (!req_.body().empty()) req_.set(http::field::content_type, "application/json");
    req_.prepare_payload();
    sent_ = Clock::now();
    stream_.expires_after(std::chrono::seconds(30));
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail("write: " + ec.message());
      self->res_ = {};
      http::async_read(self->stream_, self->buffer_, self->res_,
                       [self](beast::error_code ec2, std::size_t) { self->onAnswer(ec2); });
    });
  }

  void onAnswer(beast::error_code ec) {
    const auto answered = Clock::now();
    if (ec) return fail("read: " + ec.message());
    if (sent_ >= schedule_.measureStart) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(answered - sent_).count();
      micros.at(kind_).push_back(static_cast<std::uint32_t>(std::min<long long>(us, 0xffffffffLL)));
      if (schedule_.config.onAnswer) schedule_.config.onAnswer(kind_, res_, sent_, answered);
    }
    if (res_.result_int() >= 300 && errors++ == 0) {
      firstError = std::to_string(res_.result_int()) + " " + res_.body().substr(0, 200);
    }
    take();
  }

  void fail(const std::string& what) {
    if (errors++ == 0) firstError = what;
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  Schedule& schedule_;
  tcp::resolver::results_type addresses_;
  std::mt19937_64 rng_;
  std::size_t kind_ = 0;
  Clock::time_point sent_;
  Request req_;
  Response res_;
};

}  // namespace

LoadResult runLoad(const LoadConfig& config) {
  const std::string& url = config.endpoint;
  std::string hostPort = url.starts_with("http://") ? url.substr(7) : url;
  while (!hostPort.empty() && hostPort.back() == '/') hostPort.pop_back();
  const std::size_t colon = hostPort.rfind(':');
  if (colon == std::string::npos || colon == 0) throw std::runtime_error("'" + url + "' is not http://host:port");
  net::io_context ioc;
  beast::error_code ec;
  const auto addresses = tcp::resolver(ioc).resolve(hostPort.substr(0, colon), hostPort.substr(colon + 1), ec);
  if (ec || addresses.empty()) throw std::runtime_error("cannot resolve " + url + ": " + ec.message());

  Schedule schedule{config, hostPort, {}, {}, {}};
  auto seconds = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  schedule.start = Clock::now();
  schedule.measureStart = schedule.start + seconds(config.warmupSeconds);
  schedule.end = schedule.measureStart + seconds(config.seconds);
  std::vector<std::shared_ptr<Connection>> connections;
  for (std::size_t i = 0; i < config.connections; ++i) {
    connections.push_back(std::make_shared<Connection>(ioc, schedule, addresses, static_cast<unsigned>(i + 1)));
    connections.back()->start();
  }
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(1u, config.threads); ++t) pool.emplace_back([&ioc] { ioc.run(); });
  std::this_thread::sleep_until(schedule.measureStart);
  const double cpuBefore = cpuSecondsOf(config.serverPids);
  for (auto& t : pool) t.join();

  LoadResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - schedule.measureStart).count();
  if (!config.serverPids.empty()) result.serverCpu = cpuSecondsOf(config.serverPids) - cpuBefore;
  result.micros.resize(config.kinds);
  for (const auto& c : connections) {
    for (std::size_t kind = 0; kind < config.kinds; ++kind) {
      result.micros[kind].insert(result.micros[kind].end(), c->micros[kind].begin(), c->micros[kind].end());
    }
    if (result.errors == 0 && c->errors > 0) result.firstError = c->firstError;
    result.errors += c->errors;
  }
  return result;
}

}  // namespace warden::api::load
