#include "api/Hangup.h"

namespace warden::api {

void Hangup::onHangup(std::function<void()> then) {
  std::function<void()> look;
  bool gone = false;
  {
    std::lock_guard lock(mutex_);
    gone = gone_;
    if (!gone) {
      then_.push_back(std::move(then));
      if (!looking_ && look_) {
        looking_ = true;
        look = look_;
      }
    }
  }
  if (look) look();
  if (gone) then();
}

void Hangup::happened() {
  std::vector<std::function<void()>> then;
  {
    std::lock_guard lock(mutex_);
    if (gone_) return;
    gone_ = true;
    then.swap(then_);
  }
  for (auto& f : then) f();
}

}  // namespace warden::api
