#pragma once
// The replicated log's shell: binds the node core (coordinator/node/NodeCore, where every
// decision is made) to threads, the Asio peer transport, the LMDB acceptor store and the system
// clocks. It takes the same submit() calls as LocalLog, so the HTTP edge does not change, and
// adds linearizable read barriers and keepalives.
//
// One driver thread owns the core: each turn it hands it every queued input (peer frames,
// hellos, local writes, reads, keepalives), then calls endTurn(). Other threads only queue
// inputs (bounded), except the keepalive fast path at a leader serving sessions under its lease.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "coordinator/ClusterView.h"
#include "coordinator/LmdbLogStore.h"
#include "coordinator/StateMachine.h"
#include "coordinator/Status.h"
#include "coordinator/node/ClusterOptions.h"
#include "coordinator/node/NodeCore.h"
#include "coordinator/transport/PeerTransport.h"

namespace warden::coordinator {

using node::ClusterOptions;

class ReplicatedLog {
 public:
  using Done = std::function<void(CommandResult)>;
  using ReadDone = std::function<void(Status)>;
  using AppliedHook = watch::AppliedHook;

  ReplicatedLog(storage::Env& env, const StateMachine& stateMachine, ClusterOptions options, AppliedHook onApplied);
  ~ReplicatedLog();
  ReplicatedLog(const ReplicatedLog&) = delete;
  ReplicatedLog& operator=(const ReplicatedLog&) = delete;

  // Thread-safe. done runs once, on the driver thread: with the result once this node has
  // applied the command (and, with AnswerWhen::Visible, committed it: a read in done sees it),
  // or with NoQuorum / Unavailable / Overloaded.
  void submit(Command command, Done done, AnswerWhen when = AnswerWhen::Visible);
  // Thread-safe. done(Ok) once this node has applied every write acknowledged anywhere before
  // the call (lease or read index at the leader), else done(NoQuorum) at the deadline. A leader
  // under its lease that has applied all it knows chosen calls done(Ok) at once, on this thread.
  void readBarrier(ReadDone done);
  // Thread-safe. done runs once, with the leader's answer or NoQuorum.
  void keepalive(std::uint64_t session, KeepaliveDone done);
  // Wakes the driver for a turn (someone may now want the open apply committed: appliesWanted).
  // Any thread; nudges before the driver's next turn are one.
  void nudge();
  std::size_t liveSessions() const { return core_->liveSessions(); }
  std::uint64_t appliedRevision() const { return core_->appliedRevision(); }
  ClusterView view() const { return core_->view(); }
  void stop();

 private:
  struct PeerFrame {
    std::uint64_t from;
    std::string body;
  };
  struct Hello {
    std::uint64_t from;
    std::string http;
  };
  struct Submit {
    Command command;
    Done done;
    AnswerWhen when;
  };
  struct Read {
    ReadDone done;
  };
  struct Keepalive {
    std::uint64_t session;
    KeepaliveDone done;
  };
  struct Resume {
    node::Worker::Continuation continuation;
  };
  struct Nudge {};
  struct Flushed {};  // the store's flusher made more records durable (ClusterOptions::flushBehind)
  using Input = std::variant<PeerFrame, Hello, Submit, Read, Keepalive, Resume, Nudge, Flushed>;

  class SystemClock : public node::Clock {
   public:
    std::uint64_t nowUs() const override;
    std::uint64_t wallMs() const override;
  };
  // One thread for the core's long jobs (cutting snapshot chunks); what each job returns goes
  // back to the driver as an input.
  class WorkerThread : public node::Worker {
   public:
    explicit WorkerThread(std::function<void(Continuation)> deliver);
    ~WorkerThread() override { stop(); }
    void run(Job job) override;
    void stop();  // jobs not begun are dropped

   private:
    void loop();
    std::function<void(Continuation)> deliver_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    bool stopping_ = false;
    std::thread thread_;
  };
  class TransportOutbox : public node::Outbox {
   public:
    void send(std::uint64_t to, std::string frame) override { pending[to].push_back(std::move(frame)); }
    // Each peer's frames of a round in one hand-off to the transport's thread, and one write.
    void flush() override {
      for (auto& [to, frames] : pending) {
        if (!frames.empty()) transport->send(to, std::exchange(frames, {}));
      }
    }
    bool connected(std::uint64_t peer) const override { return transport->connected(peer); }
    transport::PeerTransport* transport = nullptr;
    std::map<std::uint64_t, std::vector<std::string>> pending;  // since the last flush, by peer
  };

  // Queues an input unless stopping or the queue is full (`bounded`); false then.
  bool push(Input& input, bool bounded = true);
  static std::size_t weight(const Input& input);
  void run();
  void handle(Input& input);

  LmdbLogStore store_;
  SystemClock clock_;
  std::unique_ptr<paxos::Random> random_;
  TransportOutbox outbox_;
  std::unique_ptr<WorkerThread> worker_;
  std::unique_ptr<node::NodeCore> core_;

  boost::asio::io_context ioc_;
  std::unique_ptr<transport::PeerTransport> transport_;
  std::thread ioThread_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Input> inputs_;
  std::size_t inputBytes_ = 0;  // their weight(), bounded by kMaxQueuedBytes
  bool stopping_ = false;
  std::atomic<bool> nudged_{false};  // a Nudge is queued
  std::thread driver_;
};

}  // namespace warden::coordinator
