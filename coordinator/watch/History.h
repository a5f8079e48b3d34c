#pragma once
// The watch history of one node: the events of the latest revisions it applied, bounded in
// events and bytes, oldest dropped first. Every replica feeds it the same events in the same
// order; only where it starts (process start, snapshot install) and how much it keeps differ.
// Not thread-safe (WatchHub locks it).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/watch/Event.h"

namespace warden::coordinator::watch {

// What a watch looks at: the node itself, or (recursive) the node and its whole subtree.
struct Filter {
  std::string path;
  bool recursive = false;
};

struct Limits {
  std::size_t events = 100'000;
  std::size_t bytes = std::size_t{64} << 20;
};

// An event where the history keeps it (valid until the history next changes).
struct EventView {
  EventType type;
  std::string_view path;
  std::uint64_t revision;
};

class History {
 public:
  History(Limits limits, std::uint64_t revision) : limits_(limits), revision_(revision), floor_(revision) {}

  // Takes an apply's events; a replaced state starts the history over at its revision. Each
  // event that falls out of the bounds is shown to `dropped` (if given), oldest first, just
  // before it goes.
  using Dropped = std::function<void(const EventView&)>;
  void add(const Applied& applied, const Dropped& dropped = {});

  std::uint64_t revision() const { return revision_; }  // the latest applied
  // The oldest `since` a read still answers completely.
  std::uint64_t floor() const { return floor_; }

  // The events after `since` that the filter matches, whole revisions at a time, stopping once
  // at least `maxEvents` are out (or `maxBytes` of data). `upTo`: everything the filter matches
  // up to it is in `events`. Precondition: since >= floor().
  struct Page {
    std::vector<Event> events;
    std::uint64_t upTo = 0;
  };
  Page read(const Filter& filter, std::uint64_t since, std::size_t maxEvents, std::size_t maxBytes) const;

  // The events of one revision that the filter matches, with a children event for a
  // non-recursive watch whose node gained or lost a child.
  static void match(const Filter& filter, const std::vector<Event>& events, std::vector<Event>& out);

 private:
  // An event as kept: its path, then its data, at `at` in its chunk's bytes.
  struct Kept {
    std::uint64_t revision;
    Stat stat;
    std::size_t at;
    std::size_t pathSize;
    std::size_t dataSize;
    EventType type;
  };
  // The events of one add(), their strings in one buffer: two allocations an apply, where an
  // Event each, with its path and data, was three allocations kept for seconds among the
  // driver's short-lived ones, and fragmented its heap (glibc's malloc then slowed every
  // allocation: the throughput of puts fell by a fifth within half a minute; issue 14).
  struct Chunk {
    std::string bytes;
    std::vector<Kept> events;
    std::size_t first = 0;  // the events before it are gone
  };
  // A position in the chunks: chunk, event.
  struct At {
    std::size_t chunk;
    std::size_t event;
  };
  void trim(const Dropped& dropped);
  const Kept& kept(At at) const { return chunks_[at.chunk].events[at.event]; }
  std::string_view path(At at) const;
  Event event(At at) const;
  At next(At at) const;  // the one after `at` (chunks_.size() at the end)
  bool atEnd(At at) const { return at.chunk >= chunks_.size(); }

  Limits limits_;
  std::uint64_t revision_;
  std::uint64_t floor_;
  std::deque<Chunk> chunks_;  // ascending revisions; none empty
  std::size_t events_ = 0;
  std::size_t bytes_ = 0;
  std::size_t revisions_ = 0;  // the distinct revisions among the events kept
  std::uint64_t newest_ = 0;   // the newest event's revision (when revisions_ > 0)
};

// Whether `path` is `root` or inside its subtree.
bool within(std::string_view root, std::string_view path);

}  // namespace warden::coordinator::watch
