#pragma once
// A log entry: the unit the log orders and the state machine applies atomically. The leader
// stamps the timestamp once; every replica applies the entry with that same time.

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/Command.h"

namespace warden::coordinator {

struct Entry {
  std::uint64_t index = 0;        // position in the log, from 1
  std::uint64_t timestampMs = 0;  // leader's wall clock, milliseconds since the epoch
  std::vector<Command> commands;

  bool operator==(const Entry&) const = default;
};

std::string encodeEntry(const Entry& entry);
Entry decodeEntry(std::string_view bytes);  // throws DecodeError

}  // namespace warden::coordinator
