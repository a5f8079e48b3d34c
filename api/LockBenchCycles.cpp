#include "api/LockBenchCycles.h"

#include <memory>
#include <stdexcept>

#include "api/LoadDriver.h"

namespace warden::api::lockbench {

namespace {

constexpr std::chrono::milliseconds kRequestTimeout{30'000};
constexpr std::uint64_t kCycleWaitMs = 5000;  // what a client would ask; uncontended, it never waits

// One client: its own owner (session or lease), its own lock, its own connection, acquiring and
// releasing back to back until the end. Runs on the row's io_context, which outlives it.
class Cycler {
 public:
  Cycler(net::io_context& ioc, tcp::endpoint endpoint, const LockService& service, std::string lock, CycleRow& row)
      : connection_(std::make_shared<Connection>(ioc, endpoint)), service_(service), lock_(std::move(lock)), row_(row) {}

  void open(std::uint64_t ttlMs) {
    connection_->send(service_.open(ttlMs), kRequestTimeout, [this](beast::error_code ec, Response& r) {
      if (auto id = ec ? std::nullopt : service_.opened(r)) {
        owner_ = *id;
      } else {
        openError_ = lockbench::describe(ec, r);
      }
    });
  }
  const std::string& openError() const { return openError_; }

  void cycle(Clock::time_point end) {
    end_ = end;
    acquire();
  }

  void close() {
    if (owner_.empty()) return;
    connection_->send(service_.close(owner_), kRequestTimeout, [this](beast::error_code ec, Response& r) {
      if (ec || !service_.closed(r)) row_.fail("close: " + lockbench::describe(ec, r));
      connection_->close();
    });
  }

 private:
  void acquire() {
    if (Clock::now() >= end_) return;
    started_ = Clock::now();
    connection_->send(service_.acquire(lock_, owner_, kCycleWaitMs), kRequestTimeout,
                      [this](beast::error_code ec, Response& r) {
                        auto grant = ec ? std::nullopt : service_.granted(r);
                        if (!grant) return row_.fail("acquire: " + lockbench::describe(ec, r));  // this client stops
                        acquired_ = Clock::now();
                        row_.acquire.add(acquired_ - started_);
                        release(*grant);
                      });
  }

  void release(const Grant& grant) {
    connection_->send(service_.release(lock_, owner_, grant), kRequestTimeout, [this](beast::error_code ec, Response& r) {
      if (ec || !service_.released(r)) return row_.fail("release: " + lockbench::describe(ec, r));
      const auto now = Clock::now();
      row_.release.add(now - acquired_);
      row_.cycle.add(now - started_);
      ++row_.cycles;
      acquire();
    });
  }

  std::shared_ptr<Connection> connection_;
  const LockService& service_;
  std::string lock_, owner_, openError_;
  CycleRow& row_;
  Clock::time_point end_, started_, acquired_;
};

}  // namespace

CycleRow runCycles(const std::string& url, const LockService& service, const CycleConfig& c) {
  net::io_context ioc;
  const tcp::endpoint endpoint = resolveEndpoint(ioc, url);
  CycleRow row;
  std::vector<std::unique_ptr<Cycler>> cyclers;
  for (std::size_t i = 0; i < c.clients; ++i) {
    const std::string lock = c.lockPrefix + "-n" + std::to_string(c.clients) + "-c" + std::to_string(i);
    cyclers.push_back(std::make_unique<Cycler>(ioc, endpoint, service, lock, row));
    cyclers.back()->open(c.ttlMs);
  }
  ioc.run();
  for (const auto& cycler : cyclers) {
    if (!cycler->openError().empty()) {
      throw std::runtime_error(std::string("opening a ") + service.ownerKind() + " at " + url + " failed: " + cycler->openError());
    }
  }
  const double cpuBefore = load::cpuSecondsOf(c.serverPids);
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(c.seconds));
  for (auto& cycler : cyclers) cycler->cycle(end);
  ioc.restart();
  ioc.run();
  row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!c.serverPids.empty()) row.serverCpu = load::cpuSecondsOf(c.serverPids) - cpuBefore;
  for (auto& cycler : cyclers) cycler->close();
  ioc.restart();
  ioc.run();
  return row;
}

}  // namespace warden::api::lockbench
