#include "session/SessionTable.h"

#include <algorithm>
#include <cstdio>

#include "coordinator/Bytes.h"
#include "coordinator/storage/Keys.h"

namespace warden::session {

namespace {

std::string ownedKey(std::uint64_t id, std::string_view path) {
  return storage::encodeU64Key(id) + storage::shortKey(path);
}

}  // namespace

std::string encodeSessionRecord(const SessionRecord& record) {
  coordinator::Encoder out;
  out.varint(record.ttlMs);
  out.bytes(record.name);
  out.varint(record.created);
  out.varint(record.ctime);
  return out.take();
}

SessionRecord decodeSessionRecord(std::string_view bytes) {
  coordinator::Decoder in(bytes);
  SessionRecord record;
  record.ttlMs = in.varint();
  record.name = std::string(in.bytes());
  record.created = in.varint();
  record.ctime = in.varint();
  in.expectDone();
  return record;
}

std::string formatSessionId(std::uint64_t id) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(id));
  return text;
}

std::optional<std::uint64_t> parseSessionId(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  std::uint64_t id = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    id = id << 4 | static_cast<std::uint64_t>(digit);
  }
  if (id == 0) return std::nullopt;
  return id;
}

std::optional<SessionRecord> SessionTable::get(storage::Txn& txn, std::uint64_t id) const {
  auto bytes = txn.get(dbs_.sessions, storage::encodeU64Key(id));
  if (!bytes) return std::nullopt;
  return storage::decodeStored(*bytes, decodeSessionRecord);
}

void SessionTable::put(storage::Txn& txn, std::uint64_t id, const SessionRecord& record) const {
  txn.put(dbs_.sessions, storage::encodeU64Key(id), encodeSessionRecord(record));
}

void SessionTable::erase(storage::Txn& txn, std::uint64_t id) const {
  txn.erase(dbs_.sessions, storage::encodeU64Key(id));
  std::vector<std::string> keys;
  {
    const std::string prefix = storage::encodeU64Key(id);
    storage::Cursor cursor(txn, dbs_.owned);
    for (auto item = cursor.seek(prefix); item && item->key.starts_with(prefix); item = cursor.next()) {
      keys.emplace_back(item->key);
    }
  }
  for (const auto& key : keys) txn.erase(dbs_.owned, key);
}

void SessionTable::forEach(storage::Txn& txn,
                           const std::function<void(std::uint64_t, const SessionRecord&)>& visit) const {
  storage::Cursor cursor(txn, dbs_.sessions);
  for (auto item = cursor.first(); item; item = cursor.next()) {
    visit(storage::decodeU64Key(item->key), storage::decodeStored(item->value, decodeSessionRecord));
  }
}

void SessionTable::forEachAfter(storage::Txn& txn, std::uint64_t after,
                                const std::function<bool(std::uint64_t, const SessionRecord&)>& visit) const {
  storage::Cursor cursor(txn, dbs_.sessions);
  for (auto item = cursor.seek(storage::encodeU64Key(after)); item; item = cursor.next()) {
    const std::uint64_t id = storage::decodeU64Key(item->key);
    if (id <= after) continue;
    if (!visit(id, storage::decodeStored(item->value, decodeSessionRecord))) return;
  }
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> SessionTable::ttls(storage::Txn& txn) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  out.reserve(count(txn));
  forEach(txn, [&out](std::uint64_t id, const SessionRecord& record) { out.emplace_back(id, record.ttlMs); });
  return out;
}

std::size_t SessionTable::count(storage::Txn& txn) const {
  MDB_stat stat;
  if (int rc = mdb_stat(txn.get(), dbs_.sessions, &stat); rc != 0) throw storage::LmdbError("mdb_stat", rc);
  return stat.ms_entries;
}

void SessionTable::addEphemeral(storage::Txn& txn, std::uint64_t id, std::string_view path) const {
  txn.put(dbs_.owned, ownedKey(id, path), path);
}

void SessionTable::removeEphemeral(storage::Txn& txn, std::uint64_t id, std::string_view path) const {
  txn.erase(dbs_.owned, ownedKey(id, path));
}

std::size_t SessionTable::ephemeralsUpTo(storage::Txn& txn, std::uint64_t id, std::size_t limit) const {
  std::size_t n = 0;
  const std::string prefix = storage::encodeU64Key(id);
  storage::Cursor cursor(txn, dbs_.owned);
  for (auto item = cursor.seek(prefix); item && item->key.starts_with(prefix) && n < limit; item = cursor.next()) ++n;
  return n;
}

std::vector<std::string> SessionTable::ephemerals(storage::Txn& txn, std::uint64_t id) const {
  std::vector<std::string> paths;
  const std::string prefix = storage::encodeU64Key(id);
  storage::Cursor cursor(txn, dbs_.owned);
  for (auto item = cursor.seek(prefix); item && item->key.starts_with(prefix); item = cursor.next()) {
    paths.emplace_back(item->value);
  }
  std::sort(paths.begin(), paths.end());  // shortened keys may sort out of place
  return paths;
}

}  // namespace warden::session
