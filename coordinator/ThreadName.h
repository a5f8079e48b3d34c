#pragma once
// Names the calling thread (at most 15 characters; what `top -H`, `ps -L`, perf and
// /proc/PID/task/TID/comm show), so that an operator can tell the driver from the HTTP threads.

#include <pthread.h>

#include <string>

namespace warden::coordinator {

inline void nameThisThread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

}  // namespace warden::coordinator
