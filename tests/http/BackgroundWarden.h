#pragma once
// Running the warden CLI in tests: a command against given endpoints, and a command in the
// background (watch, lock, elect) with its stdout and stderr each in a file, killed at the end
// if it still runs, so that a command that does not stop cannot hang a test. Every wait has a
// deadline.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/TempDir.h"
#include "tests/WardenBinary.h"
#include "tests/http/TestServer.h"

namespace warden::tests {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The warden binary against these endpoints (given first: what follows a "--" is a command's).
inline CommandOutput cli(const std::string& endpoints, std::vector<std::string> args, const std::string& input = {}) {
  args.insert(args.begin(), {"--endpoints", endpoints});
  return runWarden(args, input);
}

// An error is exactly one line on stderr, starting "warden: ".
inline void requireOneErrorLine(const CommandOutput& result) {
  INFO("stderr: " << result.err);
  REQUIRE(std::count(result.err.begin(), result.err.end(), '\n') == 1);
  REQUIRE(result.err.starts_with("warden: "));
  REQUIRE(result.err.back() == '\n');
}

// An endpoint nothing listens on (the port was free a moment ago and stays reserved for us).
inline std::string deadEndpoint() { return "http://127.0.0.1:" + std::to_string(freePort()); }

inline std::size_t lineCount(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

class BackgroundWarden {
 public:
  explicit BackgroundWarden(std::vector<std::string> args) : out_(dir_.path() + "/out"), err_(dir_.path() + "/err") {
    args.insert(args.begin(), wardenBinary());
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(::open("/dev/null", O_RDONLY), 0);
      ::dup2(::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
      ::dup2(::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
      ::close_range(3, ~0U, 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~BackgroundWarden() {
    if (pid_ > 0) stopProcess(pid_, SIGKILL);
  }
  BackgroundWarden(const BackgroundWarden&) = delete;
  BackgroundWarden& operator=(const BackgroundWarden&) = delete;

  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

  // Its status from waitpid once it ended by itself within `limit`; nullopt if it still runs.
  std::optional<int> waitStatus(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    return status;
  }

  // Sends the signal and reaps it: the status from waitpid.
  int stopStatus(int signal) {
    const int status = stopProcess(pid_, signal);
    pid_ = -1;
    return status;
  }

  // Waits (up to 15 s) until stdout holds at least `lines` lines.
  bool waitForLines(std::size_t lines) const {
    for (int i = 0; i < 1500; ++i) {
      if (lineCount(out()) >= lines) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

 protected:
  pid_t pid() const { return pid_; }

 private:
  TempDir dir_;
  std::string out_, err_;
  pid_t pid_ = -1;
};

}  // namespace warden::tests
