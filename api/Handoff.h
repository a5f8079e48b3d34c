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
    boost::asio::post(ioc_, [self = shared_from_this()] { self->run(); });
  }

 private:
  void run() {
    {
      std::lock_guard lock(mutex_);
      running_.swap(jobs_);
      scheduled_ = false;
    }
    // A job that hands over another (to this Handoff) schedules a batch of its own.
    for (auto& job : running_) job();
    running_.clear();  // keeps the capacity for the next batch
  }

  boost::asio::io_context& ioc_;
  std::mutex mutex_;
  std::vector<std::function<void()>> jobs_;  // under mutex_
  bool scheduled_ = false;                   // under mutex_: a run() is posted and has not swapped yet
  std::vector<std::function<void()>> running_;  // the io_context's thread alone
};

}  // namespace warden::api
