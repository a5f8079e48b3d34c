#pragma once
// A client hanging up before its reply. The connection does not read while a handler works, so
// it learns of a hangup only when asked to look (the first onHangup): then it waits for the
// socket to turn readable and peeks, an end of stream or an error meaning the client is gone.
// A handler that holds something for its client while it waits (a lock acquire's place in the
// queue) lets go of it then instead of at the end of its wait.

#include <functional>
#include <mutex>
#include <vector>

namespace warden::api {

class Hangup {
 public:
  // `look` asks the connection to start watching its socket (called once, from any thread).
  explicit Hangup(std::function<void()> look = nullptr) : look_(std::move(look)) {}

  // Runs `then` once if the client hangs up before its reply; at once when it already has.
  // From any thread; `then` runs on the connection's thread (or the caller's).
  void onHangup(std::function<void()> then);

  // The connection: the client is gone. Runs what was registered, once.
  void happened();
  bool gone() {
    std::lock_guard lock(mutex_);
    return gone_;
  }

 private:
  std::mutex mutex_;
  std::function<void()> look_;
  bool looking_ = false;
  bool gone_ = false;
  std::vector<std::function<void()>> then_;
};

}  // namespace warden::api
