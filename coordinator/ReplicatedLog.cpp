#include "coordinator/ReplicatedLog.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <set>

#include <boost/asio/ip/address.hpp>

#include "coordinator/ThreadName.h"

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

namespace {
transport::VersionCheck versionCheck(const ClusterOptions& options) {
  transport::VersionCheck check;
  check.own = options.encodingVersion;
  check.admitAny = options.bugs.admitAnyEncodingVersion;
  // Said once per peer and version: the peer keeps redialling (with back-off, about four times a second).
  check.onRefused = [own = check.own, said = std::make_shared<std::set<std::pair<std::uint64_t, std::uint32_t>>>()](
                        std::uint64_t from, std::uint32_t theirs) {
    if (!said->emplace(from, theirs).second) return;
    std::fprintf(stderr,
                 "warden: refused node %llu: it speaks encoding version %u and this node %u; members of different "
                 "versions never share a log (upgrade one member at a time; README: Upgrades)\n",
                 static_cast<unsigned long long>(from), theirs, own);
  };
  return check;
}
}  // namespace

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
      },
      transport::TransportLimits{}, versionCheck(options));
  outbox_.transport = transport_.get();
  worker_ = std::make_unique<WorkerThread>([this](node::Worker::Continuation continuation) {
    // Never refused for the queue's bound: a job's result is at most a chunk, a window per peer.
    Input input = Resume{std::move(continuation)};
    push(input, false);
  });
  if (options.flushBehind) {
    store_.startFlusher([this] {
      Input input = Flushed{};
      push(input, false);
    });
  }
  core_ = std::make_unique<node::NodeCore>(env, stateMachine, std::move(options),
                                           node::NodeCore::Ports{outbox_, clock_, *random_, store_,
                                                                 [](const std::string& line) {
                                                                   std::fprintf(stderr, "warden: %s\n", line.c_str());
                                                                 },
                                                                 worker_.get()},
                                           std::move(onApplied));
  transport_->start();
  ioThread_ = std::thread([this] {
    nameThisThread("warden-peers");
    auto guard = net::make_work_guard(ioc_);
    ioc_.run();
  });
  driver_ = std::thread([this] {
    nameThisThread("warden-driver");
    run();
  });
}

ReplicatedLog::~ReplicatedLog() { stop(); }

void ReplicatedLog::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (driver_.joinable()) driver_.join();
  store_.stopFlusher();  // its flush done, it pushes to a queue nobody takes from any more
  worker_->stop();  // before the core goes: its jobs use it
  transport_->stop();
  ioc_.stop();
  if (ioThread_.joinable()) ioThread_.join();
}

ReplicatedLog::WorkerThread::WorkerThread(std::function<void(Continuation)> deliver)
    : deliver_(std::move(deliver)), thread_([this] {
        nameThisThread("warden-worker");
        loop();
      }) {}

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
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (bounded && (inputs_.size() > kMaxQueuedInputs || inputBytes_ + bytes > kMaxQueuedBytes)) return false;
    inputBytes_ += bytes;
    inputs_.push_back(std::move(input));
  }
  wake_.notify_one();
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

void ReplicatedLog::run() {
  std::deque<Input> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      const std::uint64_t wakeAt = core_->wakeAtUs();
      const std::uint64_t now = clock_.nowUs();
      wake_.wait_for(lock, std::chrono::microseconds(wakeAt > now ? wakeAt - now : 0),
                     [this] { return stopping_ || !inputs_.empty(); });
      if (stopping_) break;
      batch.swap(inputs_);
      inputBytes_ = 0;
    }
    for (auto& input : batch) handle(input);
    batch.clear();
    core_->endTurn();
  }
  // Everyone still waiting hears that the node is going away.
  core_->shutdown();
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
  } else if (std::holds_alternative<Flushed>(input)) {
    // Nothing to hand over: the turn this ends releases what the flush covered.
  } else if (std::holds_alternative<Nudge>(input)) {
    nudged_ = false;  // the turn this ends looks at the open apply (NodeCore::endTurn)
  }
}

}  // namespace warden::coordinator
