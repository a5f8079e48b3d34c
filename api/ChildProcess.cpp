#include "api/ChildProcess.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <system_error>
#include <thread>

namespace warden::api {

namespace {

using Clock = std::chrono::steady_clock;

bool isExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::optional<std::string> ChildProcess::find(const std::string& program) {
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string::npos) {
    struct stat st {};
    // Whatever is there is exec's to judge (a directory or a file without x: 126, not 127).
    return ::stat(program.c_str(), &st) == 0 ? std::optional<std::string>(program) : std::nullopt;
  }
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";  // an empty entry of PATH is the working directory
    const std::string candidate = dir + "/" + program;
    if (isExecutableFile(candidate)) return candidate;
    if (colon == std::string::npos) return std::nullopt;
    start = colon + 1;
  }
}

std::variant<ChildProcess, int> ChildProcess::start(const std::string& path, const std::vector<std::string>& argv,
                                                    const std::vector<std::string>& env,
                                                    const std::vector<int>& inherited, const sigset_t& mask) {
  // Orphans of the command's group come to this process, which reaps them (reap()).
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // Everything the child needs is made here: between fork and exec it may not allocate.
  std::vector<char*> args, vars;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& v : env) vars.push_back(const_cast<char*>(v.c_str()));
  vars.push_back(nullptr);
  int report[2];  // the exec's errno, if it fails; closed by a successful exec (O_CLOEXEC)
  if (::pipe2(report, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  std::vector<int> keep;
  for (int fd : inherited) {
    if (fd > 2 && fd != report[0]) keep.push_back(fd);
  }
  keep.push_back(report[1]);
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(report[0]);
    ::close(report[1]);
    throw std::system_error(error, std::generic_category(), "fork");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::getppid() != parent) ::_exit(127);  // the parent ended before PDEATHSIG was set
    // This process's own descriptors (its HTTP connections) stay here; inherited ones go on.
    unsigned low = 3;
    for (int fd : keep) {
      if (static_cast<unsigned>(fd) > low) ::close_range(low, static_cast<unsigned>(fd) - 1, 0);
      low = static_cast<unsigned>(fd) + 1;
    }
    ::close_range(low, ~0U, 0);
    ::sigprocmask(SIG_SETMASK, &mask, nullptr);
    ::execve(path.c_str(), args.data(), vars.data());
    const int error = errno;
    (void)!::write(report[1], &error, sizeof error);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // as the child does: whichever runs first (EACCES once it has exec'd)
  ::close(report[1]);
  int error = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof error)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return error;
  }
  return ChildProcess(pid);
}

void ChildProcess::signalGroup(int signal) const { ::kill(-pid_, signal); }

std::optional<int> ChildProcess::reap() {
  for (;;) {
    int status = 0;
    const pid_t ended = ::waitpid(-1, &status, WNOHANG);
    if (ended <= 0) break;
    if (ended == pid_) status_ = status;
  }
  return status_;
}

bool ChildProcess::groupAlive() {
  if (!reap()) return true;
  return ::kill(-pid_, 0) == 0 || errno == EPERM;
}

bool ChildProcess::waitGroupGone(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (groupAlive()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void ChildProcess::terminateGroup() const {
  signalGroup(SIGTERM);
  signalGroup(SIGCONT);  // a stopped process acts on SIGTERM only once continued
}

bool ChildProcess::killGroupAfter(std::chrono::milliseconds grace) {
  if (waitGroupGone(grace)) return false;
  signalGroup(SIGKILL);
  waitGroupGone(std::chrono::seconds(5));
  return true;
}

bool ChildProcess::stopGroup(std::chrono::milliseconds grace) {
  terminateGroup();
  return killGroupAfter(grace);
}

int ChildProcess::exitCodeOf(int waitStatus) {
  if (WIFSIGNALED(waitStatus)) return 128 + WTERMSIG(waitStatus);
  return WIFEXITED(waitStatus) ? WEXITSTATUS(waitStatus) : 1;
}

std::vector<int> ChildProcess::openDescriptors() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0' && fd != own) fds.push_back(static_cast<int>(fd));
  }
  ::closedir(dir);
  return fds;
}

}  // namespace warden::api
