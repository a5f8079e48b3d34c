#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench-locks ...` (issue 12): the cost of Warden's locks, side by side with etcd's v3
// lock API (`/v3/lock/lock` and `/v3/lock/unlock` through etcd's JSON gateway) when --etcd names
// an etcd.
//
// 1. Uncontended cycles: for each --clients count, that many clients, each with its own session
//    (etcd: its own lease) and its own lock, acquire and release back to back for --duration
//    seconds; prints cycles/s, the cycle's latency (p50, p99, max) and the server's CPU per cycle
//    (given --server-pid, --etcd-pid).
// 2. Waiters: --waiters sessions each queue one blocking acquire on one lock held by another
//    session; then the lock is released grant after grant (each grantee releases as soon as it
//    is granted) and the bench counts, for each release, the waiters it woke (whose request was
//    answered): exactly one is right. Prints the wake-ups per release, the latency from a
//    release to the next grant, and the server's CPU.
//
// Every lock, session and lease is the run's own (names carry --prefix and a random part); the
// sessions and leases are closed at the end. Exit codes: 0 no request failed and every release
// woke exactly one waiter in queue order, 1 otherwise, 2 usage, 3 a server could not be reached
// or the run could not be set up.
int runLockBench(const std::vector<std::string>& args);

}  // namespace warden::api
