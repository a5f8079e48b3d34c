#pragma once
// A command run under the supervision of `warden lock` and `warden elect` (api/CliLock.h): in a
// process group of its own, so that a stop reaches whatever the command started too (a shell's
// children), and with this process as the subreaper of its orphans, so that "the group is
// empty" can be told apart from "its last members are zombies nobody reaps".
//
// Threads: start() is async-signal-safe in the child between fork and exec (nothing that can
// allocate or take a lock), so it may be called while other threads run. Every other call
// belongs to the thread that called start() (PR_SET_PDEATHSIG is tied to that thread: when it
// ends, the child gets SIGKILL).

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace warden::api {

class ChildProcess {
 public:
  // Where `program` would be run from: itself when it holds a '/', else the first executable
  // regular file of that name in a directory of $PATH. nullopt when there is none.
  static std::optional<std::string> find(const std::string& program);

  // Forks and execs `path` with `argv` (argv[0] included) and `env` ("NAME=value" each) as its
  // whole environment, in a new process group, with the signal mask `mask`. Descriptors other
  // than 0, 1, 2 and those in `inherited` are closed in the child. Returns the child once its
  // exec succeeded, or the errno of the failed exec (that child already reaped).
  static std::variant<ChildProcess, int> start(const std::string& path, const std::vector<std::string>& argv,
                                               const std::vector<std::string>& env, const std::vector<int>& inherited,
                                               const sigset_t& mask);

  pid_t pid() const { return pid_; }

  // Sends the signal to every process of the child's group.
  void signalGroup(int signal) const;

  // Reaps every child of this process that has ended (orphans of the group come to it); the
  // child's wait status once it has ended.
  std::optional<int> reap();
  const std::optional<int>& status() const { return status_; }

  // Whether any process of the child's group (the child itself included, until reaped) is left.
  bool groupAlive();

  // SIGTERM (and SIGCONT, for a stopped process to act on it) to the group.
  void terminateGroup() const;
  // Waits `grace` for the group to end, then sends it SIGKILL and waits up to 5 s more;
  // returns whether SIGKILL was needed.
  bool killGroupAfter(std::chrono::milliseconds grace);
  // terminateGroup(), then killGroupAfter(grace).
  bool stopGroup(std::chrono::milliseconds grace);

  // Waits (at most `limit`) until the child is reaped and the group is empty.
  bool waitGroupGone(std::chrono::milliseconds limit);

  // 128 + N for a child ended by signal N, its exit code otherwise.
  static int exitCodeOf(int waitStatus);

  // The descriptors this process has open, from /proc/self/fd.
  static std::vector<int> openDescriptors();

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}

  pid_t pid_;
  std::optional<int> status_;
};

}  // namespace warden::api
