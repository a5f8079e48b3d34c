#pragma once
// The lock and election commands of the `warden` binary (API.md "Locks", "Leader election"):
//
//   warden lock NAME [--shared] [--ttl MS] [--wait MS] [--grace MS] [--owner TEXT] -- CMD [ARG...]
//   warden elect NAME VALUE [--ttl MS] [--wait MS] [--grace MS] -- CMD [ARG...]
//   warden locks | lock-info NAME | leader NAME [--watch]
//
// lock and elect hold a session of their own and the lock (the leadership) while CMD runs, and
// stop CMD at once when they can no longer vouch for it:
// - the session is created with an Idempotency-Key, then the lock is asked for (a queued
//   candidacy campaigns again) until granted, or until --wait has passed (exit 5);
// - a thread sends a keepalive every ttl/3 through the client's failover; the session lives at
//   least ttl past the sending of a keepalive that was acknowledged, so CMD is stopped once
//   ttl - ttl/5 has passed since the last such sending without a newer one acknowledged;
// - a keepalive answered 404, or a blocking read of the lock (the election) that no longer
//   shows this session holding it with its token (term), stops CMD as well;
// - stopping CMD: SIGTERM to its process group at once, SIGKILL after --grace, one line on
//   stderr, then exit 6. CMD runs in a process group of its own (not the terminal's
//   foreground one), so that its children are stopped with it;
// - when CMD exits on its own, what it left running in its group is stopped the same way, the
//   lock is released by its token (the candidacy resigns), the session is closed, and the exit
//   status is CMD's (128 + N when signal N ended it);
// - SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to CMD's group; before CMD runs they end
//   the wait: the session is closed and the exit status is 128 + N.
// CMD sees WARDEN_SESSION and WARDEN_LOCK_TOKEN (lock) or WARDEN_ELECTION_TERM (elect).

#include <string>
#include <vector>

#include "api/Args.h"
#include "api/HttpClient.h"

namespace warden::api {

bool isLockCommand(const std::string& command);

// `args` holds the command's words (Cli's Args: "shared" and "watch" among its booleans);
// `json` is -o json. Throws UsageError and CliFailure (api/Cli.h) as the other commands do
// before anything is held; returns the exit code otherwise. lock, elect and leader --watch
// block SIGINT, SIGTERM, SIGHUP, SIGQUIT (and SIGCHLD) in the calling thread: call them before
// any other thread exists. lock and elect may end the process themselves (std::_Exit, after
// flushing stdout and stderr) when a thread of theirs is stuck in a request with no deadline
// near enough to wait for.
int runLockCommand(const std::string& command, HttpClient& client, const std::vector<std::string>& endpoints,
                   const Args& args, bool json);

}  // namespace warden::api
