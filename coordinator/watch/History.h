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

class History {
 public:
  History(Limits limits, std::uint64_t revision) : limits_(limits), revision_(revision), floor_(revision) {}

  // Takes an apply's events; a replaced state starts the history over at its revision. Each
  // event that falls out of the bounds is shown to `dropped` (if given), oldest first, as it
  // goes: once the history is full, every apply drops about as many as it adds.
  using Dropped = std::function<void(const Event&)>;
  void add(Applied& applied, const Dropped& dropped = {});

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
  struct Batch {
    std::uint64_t revision;
    std::vector<Event> events;
    std::size_t bytes;
  };
  void trim(const Dropped& dropped);

  Limits limits_;
  std::uint64_t revision_;
  std::uint64_t floor_;
  std::deque<Batch> batches_;  // one per revision with events, ascending
  std::size_t events_ = 0;
  std::size_t bytes_ = 0;
};

// Whether `path` is `root` or inside its subtree.
bool within(std::string_view root, std::string_view path);

}  // namespace warden::coordinator::watch
