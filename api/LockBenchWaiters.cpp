#include "api/LockBenchWaiters.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "api/ProcStats.h"

namespace warden::api::lockbench {

namespace {

constexpr std::chrono::milliseconds kRequestTimeout{30'000};
constexpr std::size_t kPoolConnections = 64;       // open and close the owners over these
constexpr auto kStall = std::chrono::seconds(10);  // no answer for this long ends the chain
constexpr auto kGrace = std::chrono::milliseconds(200);  // for stray answers after the last release
constexpr auto kIdle = std::chrono::seconds(1);  // the waiters wait, nothing else happens

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One run, on one io_context driven by the calling thread. The handlers capture `this`: the
// run outlives them (stop() cancels what is left and runs the cancellations to completion).
class WaitersRun {
 public:
  explicit WaitersRun(const WaitersConfig& c) : c_(c), service_(*c.service) {}
  ~WaitersRun() { stop(); }

  bool run();

 private:
  struct Waiter {
    std::shared_ptr<Connection> connection;
    std::string owner;
    std::optional<Grant> grant;
  };
  // Release k is sent by the holder (k = 0) or by the waiter release k-1 granted.
  struct Release {
    Clock::time_point sent, acked, granted;
    bool isAcked = false;
    std::optional<std::size_t> grantee;  // the waiter it granted
    std::optional<std::uint64_t> revision;
    std::size_t answers = 0;  // waiters answered while it was the latest release
  };

  // Runs the io_context until `done()` or the deadline, or until nothing is left to run.
  template <typename Done>
  void runUntil(Done done, Clock::time_point deadline) {
    while (!done() && Clock::now() < deadline) {
      if (ioc_.stopped()) ioc_.restart();
      if (ioc_.run_one_for(std::chrono::milliseconds(50)) == 0 && ioc_.stopped()) return;
    }
  }
  void sleep(Clock::duration d) {
    bool fired = false;
    net::steady_timer timer(ioc_, d);
    timer.async_wait([&fired](beast::error_code) { fired = true; });
    runUntil([&fired] { return fired; }, Clock::time_point::max());
  }
  // One request on `connection`, waiting for its answer; the response is a copy.
  std::pair<beast::error_code, Response> exchange(Connection& connection, const Call& call) {
    std::optional<std::pair<beast::error_code, Response>> result;
    connection.send(call, kRequestTimeout, [&result](beast::error_code ec, Response& r) { result.emplace(ec, r); });
    runUntil([&result] { return result.has_value(); }, Clock::time_point::max());
    return std::move(*result);
  }
  // Sends call(i) for every i in [0, n) over the pool, one at a time per connection; then
  // answered(i, ec, response) runs. Returns when every answer came.
  template <typename MakeCall, typename Answered>
  void overPool(std::size_t n, MakeCall call, Answered answered);

  void openAll();
  void queueAll();
  void onAnswer(std::size_t i, beast::error_code ec, Response& r);
  void sendRelease(Connection& connection, const std::string& owner, const Grant& grant);
  void onReleased(std::size_t k, beast::error_code ec, Response& r);
  void advance();
  struct Cpu {
    double queue = 0, idle = 0, chain = 0, total = 0;  // server CPU seconds
  };
  bool report(double queueSeconds, double chainSeconds, const Cpu& cpu);
  void closeAll();
  void stop();
  void fail(const std::string& what) {
    if (errors_++ == 0) firstError_ = what;
  }
  double serverCpu() const { return c_.serverPid ? cpuSeconds(c_.serverPid) : 0; }

  const WaitersConfig& c_;
  const LockService& service_;
  net::io_context ioc_;
  std::vector<std::shared_ptr<Connection>> pool_;
  std::shared_ptr<Connection> holderConnection_;
  std::string holder_;
  Grant holderGrant_;
  std::vector<Waiter> waiters_;
  std::vector<std::string> queue_;  // the owners in line, as the service showed them
  std::vector<Release> releases_;
  Clock::time_point lastProgress_;
  bool stopping_ = false;
  bool chainOver_ = false;  // the last release was answered, or the chain broke
  std::size_t answeredEarly_ = 0, extraGrants_ = 0, outOfOrder_ = 0, tokensChecked_ = 0, tokenMismatches_ = 0;
  std::size_t errors_ = 0;
  std::string firstError_;
};

template <typename MakeCall, typename Answered>
void WaitersRun::overPool(std::size_t n, MakeCall call, Answered answered) {
  std::size_t next = 0, done = 0;
  // Each connection takes the next index when its last answer came.
  std::function<void(Connection*)> take = [&](Connection* connection) {
    if (next >= n) return;
    const std::size_t i = next++;
    connection->send(call(i), kRequestTimeout, [&, i, connection](beast::error_code ec, Response& r) {
      answered(i, ec, r);
      ++done;
      take(connection);
    });
  };
  for (auto& connection : pool_) take(connection.get());
  runUntil([&] { return done == n; }, Clock::time_point::max());
}

void WaitersRun::openAll() {
  holderConnection_ = std::make_shared<Connection>(ioc_, c_.endpoint);
  for (std::size_t i = 0; i < kPoolConnections; ++i) pool_.push_back(std::make_shared<Connection>(ioc_, c_.endpoint));
  auto [ec, r] = exchange(*holderConnection_, service_.open(c_.ttlMs));
  if (!service_.opened(r) || ec) throw std::runtime_error("opening the holder failed: " + describe(ec, r));
  holder_ = *service_.opened(r);
  waiters_.resize(c_.waiters);
  std::string firstFailure;
  overPool(
      c_.waiters, [this](std::size_t) { return service_.open(c_.ttlMs); },
      [&](std::size_t i, beast::error_code e, Response& res) {
        if (auto id = e ? std::nullopt : service_.opened(res)) {
          waiters_[i].owner = *id;
        } else if (firstFailure.empty()) {
          firstFailure = describe(e, res);
        }
      });
  if (!firstFailure.empty()) throw std::runtime_error("opening the waiters failed: " + firstFailure);
}

// Takes the lock with the holder, sends every waiter's acquire, and waits until the queue shows
// them all.
void WaitersRun::queueAll() {
  auto [ec, r] = exchange(*holderConnection_, service_.acquire(c_.lock, holder_, 0));
  const auto grant = ec ? std::nullopt : service_.granted(r);
  if (!grant) throw std::runtime_error("the holder's acquire failed: " + describe(ec, r));
  holderGrant_ = *grant;
  for (std::size_t i = 0; i < waiters_.size(); ++i) {
    waiters_[i].connection = std::make_shared<Connection>(ioc_, c_.endpoint);
    waiters_[i].connection->send(service_.acquire(c_.lock, waiters_[i].owner, c_.waitMs),
                                 std::chrono::milliseconds(c_.waitMs) + kRequestTimeout,
                                 [this, i](beast::error_code e, Response& res) { onAnswer(i, e, res); });
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && answeredEarly_ == 0) {
    auto [e, res] = exchange(*holderConnection_, service_.queue(c_.lock));
    const auto waiting = e ? std::nullopt : service_.waiting(res);
    if (!waiting) throw std::runtime_error("reading the lock's queue failed: " + describe(e, res));
    if (waiting->size() >= waiters_.size()) {
      queue_ = *waiting;
      return;
    }
    sleep(std::chrono::milliseconds(20));
  }
  throw std::runtime_error(answeredEarly_ ? "a waiter was answered before any release: " + firstError_
                                          : "the waiters did not all show in the lock's queue within 60 s");
}

// A waiter's acquire was answered: that is its wake-up, counted against the latest release.
void WaitersRun::onAnswer(std::size_t i, beast::error_code ec, Response& r) {
  if (stopping_) return;
  const auto now = Clock::now();
  lastProgress_ = now;
  Waiter& w = waiters_[i];
  w.grant = ec ? std::nullopt : service_.granted(r);
  if (releases_.empty()) {
    ++answeredEarly_;
    fail("waiter " + std::to_string(i) + " answered before any release: " + describe(ec, r));
    return;
  }
  Release& latest = releases_.back();
  ++latest.answers;
  const std::size_t k = releases_.size() - 1;
  if (!w.grant) return fail("waiter " + std::to_string(i) + " after release " + std::to_string(k) + ": " + describe(ec, r));
  if (latest.grantee) {  // two holders of an exclusive lock
    ++extraGrants_;
    return fail("release " + std::to_string(k) + " granted waiter " + std::to_string(*latest.grantee) + " and " +
                std::to_string(i));
  }
  latest.grantee = i;
  latest.granted = now;
  if (k >= queue_.size() || queue_[k] != w.owner) ++outOfOrder_;
  advance();
}

void WaitersRun::sendRelease(Connection& connection, const std::string& owner, const Grant& grant) {
  const std::size_t k = releases_.size();
  releases_.push_back(Release{});
  releases_.back().sent = Clock::now();
  connection.send(service_.release(c_.lock, owner, grant), kRequestTimeout,
                  [this, k](beast::error_code ec, Response& r) { onReleased(k, ec, r); });
}

void WaitersRun::onReleased(std::size_t k, beast::error_code ec, Response& r) {
  if (stopping_) return;
  lastProgress_ = Clock::now();
  Release& release = releases_[k];
  release.acked = lastProgress_;
  release.isAcked = true;
  if (ec || !service_.released(r)) {
    chainOver_ = true;
    return fail("release " + std::to_string(k) + ": " + describe(ec, r));
  }
  release.revision = service_.releaseRevision(r);
  if (k == waiters_.size()) {  // the last holder's: nobody is left waiting
    chainOver_ = true;
    return;
  }
  advance();
}

// Once the latest release is answered and has granted, its grantee releases.
void WaitersRun::advance() {
  const Release& latest = releases_.back();
  if (!latest.isAcked || !latest.grantee) return;
  Waiter& next = waiters_[*latest.grantee];
  if (next.grant->token && latest.revision) {
    ++tokensChecked_;
    if (*next.grant->token != *latest.revision) ++tokenMismatches_;
  }
  sendRelease(*next.connection, next.owner, *next.grant);
}

bool WaitersRun::report(double queueSeconds, double chainSeconds, const Cpu& cpu) {
  const std::size_t n = waiters_.size();
  std::size_t minWoken = SIZE_MAX, maxWoken = 0, woken = 0, notOne = 0, granted = 0;
  Latencies toGrant, toAnswer;
  for (std::size_t k = 0; k < std::min(n, releases_.size()); ++k) {
    const Release& release = releases_[k];
    minWoken = std::min(minWoken, release.answers);
    maxWoken = std::max(maxWoken, release.answers);
    woken += release.answers;
    if (release.answers != 1) ++notOne;
    if (release.grantee) {
      ++granted;
      toGrant.add(release.granted - release.sent);
    }
    if (release.isAcked) toAnswer.add(release.acked - release.sent);
  }
  const std::size_t sent = std::min(n, releases_.size());
  const bool lastDone = releases_.size() == n + 1 && releases_.back().isAcked;
  const std::size_t afterLast = lastDone ? releases_.back().answers : 0;
  std::printf("  %zu waiters queued on one lock in %.2f s", n, queueSeconds);
  if (c_.serverPid) {
    std::printf("; server CPU meanwhile %.2f s, then %.0f%% of one core while they waited %.0f s with nothing else"
                " to do", cpu.queue, 100 * cpu.idle / seconds(kIdle), seconds(kIdle));
  }
  std::printf("\n");
  std::printf("  releases with waiters: %zu of %zu in %.2f s = %.0f/s, %zu granted the next waiter\n", sent, n,
              chainSeconds, chainSeconds > 0 ? static_cast<double>(sent) / chainSeconds : 0, granted);
  std::printf("  waiters woken per release: min %zu  avg %.3f  max %zu   (releases waking other than exactly one:"
              " %zu; woken in all %zu)\n", sent ? minWoken : 0, sent ? static_cast<double>(woken) / static_cast<double>(sent) : 0,
              maxWoken, notOne, woken);
  std::printf("  release sent -> next grant received: p50 %.2f ms  p99 %.2f ms  max %.2f ms   (release answered:"
              " p50 %.2f ms  p99 %.2f ms)\n", toGrant.ms(0.5), toGrant.ms(0.99), toGrant.ms(1.0), toAnswer.ms(0.5),
              toAnswer.ms(0.99));
  std::printf("  grants out of queue order %zu, second grants for one release %zu", outOfOrder_, extraGrants_);
  if (tokensChecked_) {
    std::printf(", tokens other than their release's revision %zu of %zu", tokenMismatches_, tokensChecked_);
  }
  std::printf("; the last release (nobody waiting) %s, %zu woken\n", lastDone ? "answered" : "not reached", afterLast);
  if (c_.serverPid) {
    std::printf("  server CPU over the releases %.2f s = %.0f us per release (%.0f%% of one core); over the whole run"
                " (owners opened, queued, idle, released) %.2f s\n", cpu.chain,
                sent ? 1e6 * cpu.chain / static_cast<double>(sent) : 0, chainSeconds > 0 ? 100 * cpu.chain / chainSeconds : 0,
                cpu.total);
  }
  std::printf("  errors %zu%s%s\n", errors_, errors_ ? ", first: " : "", firstError_.c_str());
  return sent == n && notOne == 0 && granted == n && outOfOrder_ == 0 && extraGrants_ == 0 && tokenMismatches_ == 0 &&
         lastDone && afterLast == 0 && errors_ == 0;
}

void WaitersRun::closeAll() {
  stopping_ = true;  // what the waiters' connections still answer is no longer counted
  for (auto& w : waiters_) {
    if (w.connection) w.connection->close();  // a waiter still waiting leaves the queue
  }
  std::size_t failed = 0;
  std::string firstFailure;
  overPool(
      waiters_.size() + 1, [this](std::size_t i) { return service_.close(i < waiters_.size() ? waiters_[i].owner : holder_); },
      [&](std::size_t, beast::error_code ec, Response& r) {
        if (!ec && service_.closed(r)) return;
        if (failed++ == 0) firstFailure = describe(ec, r);
      });
  if (failed) std::printf("  closing the owners: %zu failed, first: %s\n", failed, firstFailure.c_str());
}

void WaitersRun::stop() {
  stopping_ = true;
  for (auto& w : waiters_) {
    if (w.connection) w.connection->close();
  }
  for (auto& connection : pool_) connection->close();
  if (holderConnection_) holderConnection_->close();
  ioc_.restart();
  ioc_.run_for(std::chrono::seconds(1));  // the cancelled operations' handlers
}

bool WaitersRun::run() {
  Cpu cpu;
  const double cpuStart = serverCpu();
  openAll();
  const auto queueStart = Clock::now();
  const double cpuQueue = serverCpu();
  queueAll();
  const double queueSeconds = seconds(Clock::now() - queueStart);
  const double cpuIdle = serverCpu();
  cpu.queue = cpuIdle - cpuQueue;
  sleep(kIdle);
  const double cpuChain = serverCpu();
  cpu.idle = cpuChain - cpuIdle;
  const auto chainStart = Clock::now();
  lastProgress_ = chainStart;
  sendRelease(*holderConnection_, holder_, holderGrant_);
  runUntil([this] { return chainOver_ || Clock::now() - lastProgress_ > kStall; }, Clock::time_point::max());
  const double chainSeconds = seconds(Clock::now() - chainStart);
  const double cpuEnd = serverCpu();
  cpu.chain = cpuEnd - cpuChain;
  cpu.total = cpuEnd - cpuStart;
  if (!chainOver_) {
    fail("no answer for " + std::to_string(kStall.count()) + " s after release " + std::to_string(releases_.size() - 1) +
         (releases_.back().isAcked ? " (answered; no waiter was granted)" : " (not answered)"));
  }
  sleep(kGrace);  // a stray wake-up of the last release shows by now
  const bool ok = report(queueSeconds, chainSeconds, cpu);
  closeAll();
  return ok;
}

}  // namespace

bool runWaiters(const WaitersConfig& config) {
  WaitersRun run(config);
  return run.run();
}

}  // namespace warden::api::lockbench
