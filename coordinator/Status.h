#pragma once
// Outcomes of applying a command: expected results, not exceptions. The HTTP edge maps each to
// a status code and an error code of API.md.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/Command.h"
#include "coordinator/NodeRecord.h"

namespace warden::coordinator {

enum class Status {
  Ok,
  NotFound,
  NoParent,
  Exists,
  BadVersion,
  NotEmpty,
  SessionNotFound,
  EphemeralParent,  // ephemeral nodes cannot have children
  InvalidArgument,
  TooLarge,
  NoSpace,      // the state is over its quota: writes that grow it are refused
  Overloaded,   // the log's queue is full: try again later
  Unavailable,  // the log could not commit (storage failure, shutting down)
  NoQuorum,     // not applied, and never will be: no leader with a majority took it in time
  Timeout,      // the outcome is unknown: it may yet be applied (a retry needs an idempotency key)
  KeyReused,    // an idempotency key already answered a different write
  NotHolder,    // a lock release by a session that does not hold it with that token
  NotLeader,    // a proclaim by a session that does not lead the election in that term
};

struct OpResult {
  OpType type = OpType::Check;
  std::string path;          // the actual path (a sequential create's full name)
  std::optional<Stat> stat;  // after the op, for create and set

  bool operator==(const OpResult&) const = default;
};

struct CommandResult {
  Status status = Status::Ok;
  std::string message;                  // human text when status != Ok
  std::optional<std::size_t> failedOp;  // index of the op that failed
  // The write's own revision; for a command that changed nothing, the revision it saw.
  std::uint64_t revision = 0;
  std::vector<OpResult> results;  // one per op when status == Ok

  bool operator==(const CommandResult&) const = default;
};

// A keepalive's answer: Ok with the session's ttl, SessionNotFound, or why nobody could tell.
using KeepaliveDone = std::function<void(Status, std::uint64_t ttlMs)>;

}  // namespace warden::coordinator
