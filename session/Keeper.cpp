#include "session/Keeper.h"

#include <algorithm>

namespace warden::session {

void Keeper::file(std::uint64_t id, Entry& entry) {
  entry.bucket = entry.deadlineMs / kBucketMs;
  buckets_[entry.bucket].push_back(id);
}

void Keeper::track(std::uint64_t id, std::uint64_t deadlineMs, std::uint32_t ttlMs) {
  Entry& entry = sessions_[id];
  entry = Entry{deadlineMs, 0, ttlMs, false};
  file(id, entry);
}

void Keeper::takeOver(std::uint64_t nowMs, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& sessions) {
  leading_ = true;
  std::unordered_map<std::uint64_t, Entry> before;
  if (bugs.keepDeadlinesOnTakeover) before.swap(sessions_);
  sessions_.clear();
  buckets_.clear();
  sessions_.reserve(sessions.size());
  for (const auto& [id, ttl] : sessions) {
    auto old = before.find(id);
    track(id, old != before.end() ? old->second.deadlineMs : nowMs + ttl, static_cast<std::uint32_t>(ttl));
  }
}

void Keeper::stepDown() {
  leading_ = false;
  if (bugs.keepDeadlinesOnTakeover) return;
  std::unordered_map<std::uint64_t, Entry>().swap(sessions_);  // give the memory back
  buckets_.clear();
}

void Keeper::created(std::uint64_t id, std::uint64_t ttlMs, std::uint64_t nowMs) {
  if (leading_) track(id, nowMs + ttlMs, static_cast<std::uint32_t>(ttlMs));
}

void Keeper::ended(std::uint64_t id) { sessions_.erase(id); }  // its bucket reference goes stale

void Keeper::applied(const coordinator::Command& command, const coordinator::CommandResult& result,
                     std::uint64_t nowMs) {
  if (result.status != coordinator::Status::Ok) return;
  switch (command.type) {
    case coordinator::CommandType::SessionCreate: created(command.session, command.ttlMs, nowMs); break;
    case coordinator::CommandType::SessionClose:
    case coordinator::CommandType::SessionExpire: ended(command.session); break;
    case coordinator::CommandType::Txn:
    case coordinator::CommandType::SessionEpoch:
    case coordinator::CommandType::Tick:
    case coordinator::CommandType::LockAcquire:
    case coordinator::CommandType::LockRelease:
    case coordinator::CommandType::LockWithdraw:
    case coordinator::CommandType::LockDelayEnd:
    case coordinator::CommandType::ElectionCampaign:
    case coordinator::CommandType::ElectionProclaim:
    case coordinator::CommandType::ElectionResign: break;
  }
}

std::optional<std::uint64_t> Keeper::keepalive(std::uint64_t id, std::uint64_t nowMs) {
  auto it = sessions_.find(id);
  if (!leading_ || it == sessions_.end() || it->second.expiring) return std::nullopt;
  it->second.deadlineMs = nowMs + it->second.ttlMs;
  return it->second.ttlMs;
}

std::vector<std::uint64_t> Keeper::due(std::uint64_t nowMs) {
  std::vector<std::uint64_t> out;
  if (!leading_) return out;
  // A bucket is looked at once all of its span has passed: every deadline filed in it has then
  // passed too, unless a keepalive moved it on.
  while (!buckets_.empty() && (buckets_.begin()->first + 1) * kBucketMs <= nowMs) {
    const std::uint64_t bucket = buckets_.begin()->first;
    std::vector<std::uint64_t> ids = std::move(buckets_.begin()->second);
    buckets_.erase(buckets_.begin());
    for (std::uint64_t id : ids) {
      auto it = sessions_.find(id);
      if (it == sessions_.end() || it->second.bucket != bucket) continue;  // ended, or filed again
      Entry& entry = it->second;
      if (nowMs < entry.deadlineMs) {
        file(id, entry);
        continue;
      }
      // From here on a keepalive is refused: the client must not hear "alive" about a session
      // whose expiry may already be chosen.
      entry.expiring = true;
      entry.deadlineMs = nowMs + kRetryExpiryMs;
      file(id, entry);
      out.push_back(id);
    }
  }
  std::sort(out.begin(), out.end());  // the same order on every run, whatever the hashing
  return out;
}

}  // namespace warden::session
