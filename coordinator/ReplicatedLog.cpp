#include "coordinator/ReplicatedLog.h"

#include <chrono>
#include <cstdio>
#include <future>
#include <random>

#include <boost/asio/ip/address.hpp>

namespace warden::coordinator {

namespace net = boost::asio;

namespace {

constexpr std::size_t kMaxQueuedInputs = 100'000;
// Peer frames and client writes waiting for the driver, in bytes: a flood beyond it is refused
// (writes answer Overloaded; peer frames are dropped, which the protocols above tolerate).
constexpr std::size_t kMaxQueuedBytes = std::size_t{256} << 20;

class SystemRandom : public paxos::Random {
 public:
  SystemRandom() : engine_(std::random_device{}()) {}
  std::uint64_t next() override { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

net::ip::tcp::endpoint parseEndpoint(const std::string& text) {
  const auto colon = text.rfind(':');
  std::string host = text.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  return {net::ip::make_address(host), static_cast<unsigned short>(std::stoul(text.substr(colon + 1)))};
}

}  // namespace

std::uint64_t ReplicatedLog::SystemClock::nowUs() const {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

std::uint64_t ReplicatedLog::SystemClock::wallMs() const {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

ReplicatedLog::ReplicatedLog(storage::Env& env, const StateMachine& stateMachine, ClusterOptions options,
                             AppliedHook onApplied)
    : store_(env), random_(std::make_unique<SystemRandom>()) {
  std::map<std::uint64_t, net::ip::tcp::endpoint> peers;
  for (const auto& [id, address] : options.members) peers[id] = parseEndpoint(address);
  transport_ = std::make_unique<transport::PeerTransport>(
      ioc_, options.id, peers.at(options.id), peers, options.http,
      [this](std::uint64_t from, std::string body) {
        Input input = PeerFrame{from, std::move(body)};
        push(input);
      },
      [this](std::uint64_t from, const std::string& http) {
        Input input = Hello{from, http};
        push(input);
      });
  outbox_.transport = transport_.get();
  worker_ = std::make_unique<WorkerThread>([this](node::Worker::Continuation continuation) {
    // Never refused for the queue's bound: a job's result is at most a chunk, a window per peer.
    Input input = Resume{std::move(continuation)};
    push(input, false);
  });
  core_ = std::make_unique<node::NodeCore>(env, stateMachine, std::move(options),
                                           node::NodeCore::Ports{outbox_, clock_, *random_, store_,
                                                                 [](const std::string& line) {
                                                                   std::fprintf(stderr, "warden: %s\n", line.c_str());
                                                                 },
                                                                 worker_.get()},
                                           std::move(onApplied));
  transport_->start();
  driver_ = std::thread([this] {
    auto guard = net::make_work_guard(ioc_);
    ioc_.run();
  });
  net::post(ioc_, [this] { turn(); });
}

ReplicatedLog::~ReplicatedLog() { stop(); }

void ReplicatedLog::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  // Everyone still waiting hears that the node is going away, from the driver thread, after
  // whatever turn is running (no turn begins once stopping_ is set).
  std::promise<void> shutDown;
  net::post(ioc_, [this, &shutDown] {
    timer_.cancel();
    core_->shutdown();
    shutDown.set_value();
  });
  shutDown.get_future().wait();
  worker_->stop();  // before the core goes: its jobs use it
  transport_->stop();
  ioc_.stop();
  if (driver_.joinable()) driver_.join();
}

ReplicatedLog::WorkerThread::WorkerThread(std::function<void(Continuation)> deliver)
    : deliver_(std::move(deliver)), thread_([this] { loop(); }) {}

void ReplicatedLog::WorkerThread::run(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void ReplicatedLog::WorkerThread::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ReplicatedLog::WorkerThread::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      deliver_(job());
    } catch (const std::exception& e) {
      // A storage error reading the snapshot: the stream stalls and is abandoned, then asked again.
      std::fprintf(stderr, "warden: a background job failed: %s\n", e.what());
    }
  }
}

std::size_t ReplicatedLog::weight(const Input& input) {
  std::size_t bytes = 64;
  if (const auto* f = std::get_if<PeerFrame>(&input)) bytes += f->body.size();
  if (const auto* s = std::get_if<Submit>(&input)) {
    for (const auto& op : s->command.ops) bytes += op.path.size() + op.data.size();
  }
  return bytes;
}

bool ReplicatedLog::push(Input& input, bool bounded) {
  const std::size_t bytes = weight(input);
  bool schedule = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (bounded && (inputs_.size() > kMaxQueuedInputs || inputBytes_ + bytes > kMaxQueuedBytes)) return false;
    inputBytes_ += bytes;
    inputs_.push_back(std::move(input));
    schedule = !turnPosted_;
    turnPosted_ = true;
  }
  // One turn for everything queued before it runs: frames that arrive together (the reactor
  // hands them out one handler each) and writes from many HTTP threads share its fsync.
  if (schedule) net::post(ioc_, [this] { turn(); });
  return true;
}

void ReplicatedLog::submit(Command command, Done done, AnswerWhen when) {
  Input input = Submit{std::move(command), std::move(done), when};
  if (push(input)) return;
  CommandResult refused;
  bool stopping;
  {
    std::lock_guard lock(mutex_);
    stopping = stopping_;
  }
  refused.status = stopping ? Status::Unavailable : Status::Overloaded;
  refused.message = stopping ? "the node is shutting down" : "too many requests are queued; try again";
  std::get<Submit>(input).done(std::move(refused));
}

void ReplicatedLog::readBarrier(ReadDone done) {
  // A leader under its lease with everything it knows chosen applied answers at once, on this
  // thread: no trip through the driver's queue (NodeCore::fastRead).
  if (core_->fastRead()) return done(Status::Ok);
  Input input = Read{std::move(done)};
  if (!push(input)) std::get<Read>(input).done(Status::Unavailable);
}

void ReplicatedLog::keepalive(std::uint64_t session, KeepaliveDone done) {
  if (auto ttl = core_->fastKeepalive(session)) return done(Status::Ok, *ttl);
  Input input = Keepalive{session, std::move(done)};
  if (!push(input)) std::get<Keepalive>(input).done(Status::Unavailable, 0);
}

void ReplicatedLog::nudge() {
  if (nudged_.exchange(true)) return;
  Input input = Nudge{};
  if (!push(input, false)) nudged_ = false;
}

void ReplicatedLog::turn() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    turnPosted_ = false;
    batch_.swap(inputs_);
    inputBytes_ = 0;
  }
  for (auto& input : batch_) handle(input);
  batch_.clear();
  core_->endTurn();
  // The core's next timed work: a tick, a relay, the open apply's commit, an install step.
  const std::uint64_t wakeAt = core_->wakeAtUs();
  const std::uint64_t now = clock_.nowUs();
  if (wakeAt <= now) {
    std::lock_guard lock(mutex_);
    if (!turnPosted_) {
      turnPosted_ = true;
      net::post(ioc_, [this] { turn(); });
    }
    return;
  }
  // Re-armed only when the core wants a turn sooner than the timer gives one (each arming is a
  // system call); a timer that fires early gives a turn that re-arms it.
  if (timerAtUs_ != 0 && timerAtUs_ <= wakeAt) return;
  timerAtUs_ = wakeAt;
  timer_.expires_after(std::chrono::microseconds(wakeAt - now));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // re-armed or cancelled
    timerAtUs_ = 0;
    turn();
  });
}

void ReplicatedLog::handle(Input& input) {
  if (auto* f = std::get_if<PeerFrame>(&input)) {
    core_->peerFrame(f->from, f->body);
  } else if (auto* h = std::get_if<Hello>(&input)) {
    core_->hello(h->from, h->http);
  } else if (auto* s = std::get_if<Submit>(&input)) {
    core_->submit(std::move(s->command), std::move(s->done), s->when);
  } else if (auto* r = std::get_if<Read>(&input)) {
    core_->readBarrier(std::move(r->done));
  } else if (auto* k = std::get_if<Keepalive>(&input)) {
    core_->keepalive(k->session, std::move(k->done));
  } else if (auto* r = std::get_if<Resume>(&input)) {
    core_->resume(r->continuation);
  } else if (std::holds_alternative<Nudge>(input)) {
    nudged_ = false;  // the turn this ends looks at the open apply (NodeCore::endTurn)
  }
}

}  // namespace warden::coordinator
