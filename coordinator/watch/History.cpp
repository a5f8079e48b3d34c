#include "coordinator/watch/History.h"

#include <algorithm>

#include "coordinator/Path.h"

namespace warden::coordinator::watch {

namespace {
constexpr std::size_t kEventOverheadBytes = 96;  // the Event itself, beside its path and data

std::size_t eventBytes(const Event& e) { return kEventOverheadBytes + e.path.size() + e.data.size(); }
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

void History::add(Applied& applied, const Dropped& dropped) {
  if (applied.replaced) {
    // Nothing is known of what happened between the old state and this one.
    batches_.clear();
    events_ = bytes_ = 0;
    revision_ = floor_ = applied.revision;
    return;
  }
  // Split by revision: one batch per revision, so that a read never splits a txn.
  for (auto it = applied.events.begin(); it != applied.events.end();) {
    auto end = std::find_if(it, applied.events.end(), [&](const Event& e) { return e.revision != it->revision; });
    Batch batch{it->revision, {}, 0};
    batch.events.reserve(static_cast<std::size_t>(end - it));
    for (; it != end; ++it) {
      batch.bytes += eventBytes(*it);
      batch.events.push_back(std::move(*it));
    }
    events_ += batch.events.size();
    bytes_ += batch.bytes;
    batches_.push_back(std::move(batch));
  }
  revision_ = std::max(revision_, applied.revision);
  trim(dropped);
}

void History::trim(const Dropped& dropped) {
  // The newest revision stays, whatever its size: a watcher must be able to get past it.
  while (batches_.size() > 1 && (events_ > limits_.events || bytes_ > limits_.bytes)) {
    Batch& oldest = batches_.front();
    events_ -= oldest.events.size();
    bytes_ -= oldest.bytes;
    floor_ = oldest.revision;
    if (dropped) {
      for (const Event& e : oldest.events) dropped(e);
    }
    batches_.pop_front();
  }
}

void History::match(const Filter& filter, const std::vector<Event>& events, std::vector<Event>& out) {
  bool childrenChanged = false;
  std::uint64_t revision = 0;
  for (const Event& e : events) {
    if (filter.recursive ? within(filter.path, e.path) : e.path == filter.path) {
      out.push_back(e);
    } else if (!filter.recursive && e.type != EventType::Changed && e.path != "/" && parentOf(e.path) == filter.path) {
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
  auto it = std::upper_bound(batches_.begin(), batches_.end(), since,
                             [](std::uint64_t r, const Batch& b) { return r < b.revision; });
  std::size_t bytes = 0;
  for (; it != batches_.end(); ++it) {
    if (!page.events.empty() && (page.events.size() >= maxEvents || bytes >= maxBytes)) {
      page.upTo = std::prev(it)->revision;  // complete up to the last revision taken
      break;
    }
    const std::size_t before = page.events.size();
    match(filter, it->events, page.events);
    for (std::size_t i = before; i < page.events.size(); ++i) bytes += eventBytes(page.events[i]);
  }
  return page;
}

}  // namespace warden::coordinator::watch
