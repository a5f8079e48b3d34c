#include "session/Keeper.h"

#include <algorithm>

namespace warden::session {

void Keeper::takeOver(std::uint64_t nowMs, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& sessions) {
  leading_ = true;
  sessions_.clear();
  sessions_.reserve(sessions.size());
  for (const auto& [id, ttl] : sessions) {
    sessions_[id] = Entry{nowMs + ttl, static_cast<std::uint32_t>(ttl), false};
  }
}

void Keeper::stepDown() {
  leading_ = false;
  std::unordered_map<std::uint64_t, Entry>().swap(sessions_);  // give the memory back
}

void Keeper::created(std::uint64_t id, std::uint64_t ttlMs, std::uint64_t nowMs) {
  if (leading_) sessions_[id] = Entry{nowMs + ttlMs, static_cast<std::uint32_t>(ttlMs), false};
}

void Keeper::ended(std::uint64_t id) { sessions_.erase(id); }

void Keeper::applied(const coordinator::Command& command, const coordinator::CommandResult& result,
                     std::uint64_t nowMs) {
  if (result.status != coordinator::Status::Ok) return;
  switch (command.type) {
    case coordinator::CommandType::SessionCreate: created(command.session, command.ttlMs, nowMs); break;
    case coordinator::CommandType::SessionClose:
    case coordinator::CommandType::SessionExpire: ended(command.session); break;
    case coordinator::CommandType::Txn: break;
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
  for (auto& [id, entry] : sessions_) {
    if (nowMs < entry.deadlineMs) continue;
    // From here on a keepalive is refused: the client must not hear "alive" about a session
    // whose expiry may already be chosen.
    entry.expiring = true;
    entry.deadlineMs = nowMs + kRetryExpiryMs;
    out.push_back(id);
  }
  std::sort(out.begin(), out.end());  // the same order on every run, whatever the hashing
  return out;
}

}  // namespace warden::session
