#pragma once
// What the lock and election commands (api/CliLock.cpp) share with their threads
// (api/CliLockWorkers.cpp) and with their readers (api/CliLockInfo.cpp: warden locks,
// lock-info, leader).

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "api/Args.h"
#include "api/HttpClient.h"

namespace warden::api::clilock {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr milliseconds kMaxWait{300'000};     // the longest wait_ms the server takes
inline constexpr milliseconds kWatchWait{30'000};    // each blocking read of a lock or an election
inline constexpr milliseconds kAnswerGrace{10'000};  // an attempt's timeout beyond the wait it carries
inline constexpr milliseconds kTick{50};             // how often the supervisor looks at its deadlines
inline constexpr milliseconds kFirstPause{250};      // after a failed request, doubling up to kMaxPause
inline constexpr milliseconds kMaxPause{5'000};
inline constexpr milliseconds kCleanupTimeout{2'000};  // each attempt of the release and the close
inline constexpr milliseconds kThreadExit{1'000};      // how long the end waits for a thread's request
inline constexpr std::size_t kMaxPages = 1'000'000;    // of `warden locks`: a bound on a server that never stops

// Held while a line goes to stdout or stderr: threads print whole lines.
extern std::mutex outputMutex;
void say(const std::string& line);
long long ms(milliseconds d);
// Set when a thread was left running in a request at the end: the process then ends with
// std::_Exit instead of a return through static destructors.
extern std::atomic<bool> threadLeftBehind;
sigset_t signalSet(std::initializer_list<int> signals);
const std::string& nameArgument(const std::string& name);
std::string queueTarget(bool election, const std::string& name, const std::string& action = {});
std::uint64_t unsignedField(const nlohmann::ordered_json& object, const char* key);

// warden locks, lock-info NAME, leader NAME [--watch].
int runReader(const std::string& command, HttpClient& client, const Args& args, bool json);

}  // namespace warden::api::clilock
