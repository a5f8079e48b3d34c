#include "coordinator/watch/History.h"

#include <algorithm>

#include "coordinator/Path.h"

namespace warden::coordinator::watch {

namespace {
constexpr std::size_t kEventOverheadBytes = 96;  // the Event itself, beside its path and data

std::size_t eventBytes(const Event& e) { return kEventOverheadBytes + e.path.size() + e.data.size(); }

// What a filter makes of one event: takes it, sees its parent's child set change (a
// non-recursive watch of the parent), or neither.
enum class Seen { Taken, ChildSet, No };
Seen seen(const Filter& filter, EventType type, std::string_view path) {
  if (filter.recursive ? within(filter.path, path) : path == filter.path) return Seen::Taken;
  if (!filter.recursive && type != EventType::Changed && path != "/" && parentOf(path) == filter.path) return Seen::ChildSet;
  return Seen::No;
}
}  // namespace

const char* typeName(EventType type) {
  switch (type) {
    case EventType::Created: return "created";
    case EventType::Changed: return "changed";
    case EventType::Deleted: return "deleted";
    case EventType::Children: return "children";
  }
  return "?";
}

bool within(std::string_view root, std::string_view path) {
  if (root == "/") return true;
  return path.starts_with(root) && (path.size() == root.size() || path[root.size()] == '/');
}

void History::add(const Applied& applied, const Dropped& dropped) {
  if (applied.replaced) {
    // Nothing is known of what happened between the old state and this one.
    chunks_.clear();
    events_ = bytes_ = revisions_ = 0;
    revision_ = floor_ = applied.revision;
    return;
  }
  if (!applied.events.empty()) {
    Chunk chunk;
    std::size_t size = 0;
    for (const Event& e : applied.events) size += e.path.size() + e.data.size();
    chunk.bytes.reserve(size);
    chunk.events.reserve(applied.events.size());
    for (const Event& e : applied.events) {
      chunk.events.push_back(Kept{e.revision, e.stat, chunk.bytes.size(), e.path.size(), e.data.size(), e.type});
      chunk.bytes += e.path;
      chunk.bytes += e.data;
      // One revision's events are consecutive (a txn's share one): a read never splits them.
      if (revisions_ == 0 || e.revision != newest_) ++revisions_;
      newest_ = e.revision;
      ++events_;
      bytes_ += eventBytes(e);
    }
    chunks_.push_back(std::move(chunk));
  }
  revision_ = std::max(revision_, applied.revision);
  trim(dropped);
}

void History::trim(const Dropped& dropped) {
  // The oldest revision goes whole. The newest stays, whatever its size: a watcher must be able
  // to get past it.
  while (revisions_ > 1 && (events_ > limits_.events || bytes_ > limits_.bytes)) {
    const std::uint64_t oldest = kept(At{0, chunks_.front().first}).revision;
    while (!chunks_.empty()) {
      Chunk& front = chunks_.front();
      const Kept& k = front.events[front.first];
      if (k.revision != oldest) break;
      if (dropped) dropped(EventView{k.type, path(At{0, front.first}), k.revision});
      --events_;
      bytes_ -= kEventOverheadBytes + k.pathSize + k.dataSize;
      if (++front.first == front.events.size()) chunks_.pop_front();
    }
    --revisions_;
    floor_ = oldest;
  }
}

std::string_view History::path(At at) const {
  const Kept& k = kept(at);
  return std::string_view(chunks_[at.chunk].bytes).substr(k.at, k.pathSize);
}

Event History::event(At at) const {
  const Kept& k = kept(at);
  const std::string_view bytes = chunks_[at.chunk].bytes;
  return Event{k.type, std::string(bytes.substr(k.at, k.pathSize)), k.revision, k.stat,
               std::string(bytes.substr(k.at + k.pathSize, k.dataSize))};
}

History::At History::next(At at) const {
  if (++at.event < chunks_[at.chunk].events.size()) return at;
  return ++at.chunk < chunks_.size() ? At{at.chunk, chunks_[at.chunk].first} : At{chunks_.size(), 0};
}

void History::match(const Filter& filter, const std::vector<Event>& events, std::vector<Event>& out) {
  bool childrenChanged = false;
  std::uint64_t revision = 0;
  for (const Event& e : events) {
    const Seen s = seen(filter, e.type, e.path);
    if (s == Seen::Taken) out.push_back(e);
    if (s == Seen::ChildSet) {
      childrenChanged = true;
      revision = e.revision;
    }
  }
  if (childrenChanged) out.push_back(Event{EventType::Children, filter.path, revision, {}, {}});
}

History::Page History::read(const Filter& filter, std::uint64_t since, std::size_t maxEvents,
                            std::size_t maxBytes) const {
  Page page;
  page.upTo = std::max(since, revision_);
  // The first chunk with an event after `since`, then that event.
  auto chunk = std::partition_point(chunks_.begin(), chunks_.end(),
                                    [since](const Chunk& c) { return c.events.back().revision <= since; });
  if (chunk == chunks_.end()) return page;
  const auto first = std::partition_point(chunk->events.begin() + static_cast<std::ptrdiff_t>(chunk->first),
                                          chunk->events.end(), [since](const Kept& k) { return k.revision <= since; });
  At at{static_cast<std::size_t>(chunk - chunks_.begin()), static_cast<std::size_t>(first - chunk->events.begin())};
  std::size_t bytes = 0;
  std::uint64_t taken = 0;  // the last revision read whole
  while (!atEnd(at)) {
    if (!page.events.empty() && (page.events.size() >= maxEvents || bytes >= maxBytes)) {
      page.upTo = taken;  // complete up to the last revision taken
      break;
    }
    // One revision, as match() takes it.
    const std::uint64_t revision = kept(at).revision;
    const std::size_t before = page.events.size();
    bool childrenChanged = false;
    for (; !atEnd(at) && kept(at).revision == revision; at = next(at)) {
      const Seen s = seen(filter, kept(at).type, path(at));
      if (s == Seen::Taken) page.events.push_back(event(at));
      if (s == Seen::ChildSet) childrenChanged = true;
    }
    if (childrenChanged) page.events.push_back(Event{EventType::Children, filter.path, revision, {}, {}});
    for (std::size_t i = before; i < page.events.size(); ++i) bytes += eventBytes(page.events[i]);
    taken = revision;
  }
  return page;
}

}  // namespace warden::coordinator::watch
