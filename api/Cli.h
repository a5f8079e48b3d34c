#pragma once
// The client commands of the `warden` binary (get, ls, put, create, rm, txn, status, session,
// watch: api/CliWatch.h; lock, elect, locks, lock-info, leader: api/CliLock.h).
// Each prints its result on stdout and any error as one line on stderr starting "warden: ".

#include <string>
#include <vector>

namespace warden::api {

// What a client command's exit status means (documented in kCliUsage and the README).
enum class ExitCode : int {
  Ok = 0,
  Refused = 1,      // the server answered 4xx other than 404: it refused the request
  Usage = 2,        // the command line is wrong
  Unavailable = 3,  // no usable answer: no endpoint answered, 5xx after retries, a malformed reply
  NotFound = 4,     // the server answered 404 (not_found, no_parent, session_not_found)
  NotAcquired = 5,  // lock, elect: not granted within --wait (CMD did not run)
  Lost = 6,         // lock, elect: the session was lost or unconfirmed while CMD ran; CMD was stopped
};

// A command that ends with this exit code and one line on stderr ("warden: " + message).
struct CliFailure {
  ExitCode exitCode;
  std::string message;
};

// The exit code for a server's answer with this HTTP status.
ExitCode exitCodeForStatus(unsigned status);

// `args` are the words after the command; the global flags (--endpoints, -o) may be among them.
int runCli(const std::string& command, const std::vector<std::string>& args);
bool isCliCommand(const std::string& command);
extern const char* kCliUsage;

}  // namespace warden::api
