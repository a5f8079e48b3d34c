#pragma once
// Commands are what the log carries: the HTTP edge turns a request into a Command, the log
// orders Commands into entries, and StateMachine::apply executes them. A Command is plain data
// with a stable binary encoding, so it can cross the peer link and be replayed identically.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/Bytes.h"

namespace warden::coordinator {

enum class OpType : std::uint8_t { Check = 1, Create = 2, Set = 3, Delete = 4 };

const char* opTypeName(OpType type);

// One namespace operation. Fields that do not belong to the op's type stay at their defaults.
struct Op {
  OpType type = OpType::Check;
  std::string path;
  std::string data;                    // create, set
  std::optional<std::int64_t> version;  // check, set, delete: compare-and-swap on Stat.version
  bool ephemeral = false;               // create
  bool sequential = false;              // create
  bool makeParents = false;             // create
  std::uint64_t session = 0;            // create: owner of an ephemeral node
  bool createIfMissing = false;         // set
  bool recursive = false;               // delete

  bool operator==(const Op&) const = default;
};

enum class CommandType : std::uint8_t {
  // All ops apply, in order and each seeing the previous ones, or none does; one revision.
  Txn = 1,
};

struct Command {
  CommandType type = CommandType::Txn;
  std::vector<Op> ops;

  bool operator==(const Command&) const = default;
};

void encodeCommand(Encoder& out, const Command& command);
Command decodeCommand(Decoder& in);  // throws DecodeError

}  // namespace warden::coordinator
