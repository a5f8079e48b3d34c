#pragma once
// What applying the log did to the namespace, as watchers see it (API.md "Watches"): every
// replica derives the same events, in the same order, from the same entries.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "coordinator/NodeRecord.h"

namespace warden::coordinator::watch {

// Children is never stored: a non-recursive watch on a node gets one when a child of it is
// created or deleted (History::read).
enum class EventType { Created, Changed, Deleted, Children };

struct Event {
  EventType type = EventType::Created;
  std::string path;
  std::uint64_t revision = 0;  // of the command that did it: a txn's events share one
  Stat stat;                   // after the change; for a deleted node, its last
  std::string data;            // none for a deleted node

  bool operator==(const Event&) const = default;
};

const char* typeName(EventType type);

// One apply (a slot, or a snapshot install) as the watch history takes it.
struct Applied {
  std::uint64_t revision = 0;  // the state's revision after it
  std::vector<Event> events;   // in revision order
  bool replaced = false;       // a snapshot replaced the state: no history before `revision`
};

using AppliedHook = std::function<void(Applied& applied)>;

// How far the applying thread has looked through the events of an apply not yet committed for
// one a watcher waits for (WatchHub::concerns). A watcher registered since makes it look at
// them all again.
struct PendingScan {
  std::size_t events = 0;       // events[0, events) concern no watcher of `generation`
  std::uint64_t generation = 0;  // WatchHub's registrations, when they were looked at
};

}  // namespace warden::coordinator::watch
