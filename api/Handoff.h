#pragma once
// Work handed to one io_context's thread by other threads, run there in batches. The log's
// driver answers a turn's writes together, a dozen or more at once under load: posted one by
// one, each answer was an operation for Asio to allocate and queue, and often a wake-up of the
// connection's thread (an epoll_ctl to interrupt its epoll_wait). Here a turn's answers for one
// thread cost one post, and the thread one wake-up. Jobs run in the order they were handed over.

#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace warden::api {

class Handoff : public std::enable_shared_from_this<Handoff> {
 public:
  explicit Handoff(boost::asio::io_context& ioc) : ioc_(ioc) {}

  // From any thread. Never runs the job at once, even on the io_context's own thread.
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
      if (scheduled_) return;  // the batch already posted takes this one too
      scheduled_ = true;
    }
    boost::asio::post(ioc_, Runner(shared_from_this()));
  }

 private:
  // The posted handler. Destroyed without having run (its io_context destroyed first, as at
  // shutdown), it drops the queued jobs: they hold their connections, which hold this Handoff,
  // and that cycle would keep every one of them (and its socket) alive.
  class Runner {
   public:
    explicit Runner(std::shared_ptr<Handoff> handoff) : handoff_(std::move(handoff)) {}
    Runner(Runner&& other) noexcept : handoff_(std::move(other.handoff_)) {}
    Runner& operator=(Runner&&) = delete;
    ~Runner() {
      if (handoff_) handoff_->drop();
    }
    void operator()() { std::exchange(handoff_, nullptr)->run(); }

   private:
    std::shared_ptr<Handoff> handoff_;  // null once run or moved from
  };

  void run() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(jobs_);
      scheduled_ = false;
    }
    // A job that hands over another (to this Handoff) schedules a batch of its own. One that
    // throws ends the batch there (the rest are dropped, never run twice).
    for (auto& job : batch) job();
  }

  void drop() {
    std::vector<std::function<void()>> dropped;
    {
      std::lock_guard lock(mutex_);
      dropped.swap(jobs_);
      scheduled_ = false;
    }
  }  // the jobs (and what they hold) go here, outside the lock

  boost::asio::io_context& ioc_;
  std::mutex mutex_;
  std::vector<std::function<void()>> jobs_;  // under mutex_
  bool scheduled_ = false;                   // under mutex_: a Runner is posted and has not taken them yet
};

}  // namespace warden::api
