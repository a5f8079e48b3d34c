#include "coordinator/Tree.h"

#include <algorithm>

#include "coordinator/Bytes.h"
#include "coordinator/storage/Keys.h"

namespace warden::coordinator {

namespace {

constexpr std::size_t kParentDigest = 16;

using storage::sha256;
using storage::shortKey;

std::string childPrefix(std::string_view parent) { return sha256(parent).substr(0, kParentDigest); }

std::string childKey(std::string_view parent, std::string_view name) {
  return childPrefix(parent) + shortKey(name);
}

}  // namespace

std::optional<NodeRecord> Tree::get(storage::Txn& txn, std::string_view path) const {
  auto bytes = txn.get(dbs_.nodes, storage::KeyView(path));
  if (!bytes) return std::nullopt;
  return storage::decodeStored(*bytes, decodeNodeRecord);
}

bool Tree::exists(storage::Txn& txn, std::string_view path) const {
  return txn.get(dbs_.nodes, storage::KeyView(path)).has_value();
}

std::vector<std::string> Tree::children(storage::Txn& txn, std::string_view path) const {
  std::vector<std::string> names;
  const std::string prefix = childPrefix(path);
  bool shortened = false;
  storage::Cursor cursor(txn, dbs_.children);
  for (auto item = cursor.seek(prefix); item && item->key.starts_with(prefix); item = cursor.next()) {
    std::string_view name = item->key.substr(prefix.size());
    if (name.find('\0') != std::string_view::npos) {
      shortened = true;
      names.emplace_back(item->value);
    } else {
      names.emplace_back(name);
    }
  }
  // Shortened keys sort by digest among names sharing their 360-byte prefix.
  if (shortened) std::sort(names.begin(), names.end());
  return names;
}

Tree::Page Tree::childrenPage(storage::Txn& txn, std::string_view path, std::string_view after,
                              std::size_t limit) const {
  Page page;
  const std::string prefix = childPrefix(path);
  const std::string start = after.empty() ? prefix : childKey(path, after);
  storage::Cursor cursor(txn, dbs_.children);
  for (auto item = cursor.seek(start); item && item->key.starts_with(prefix); item = cursor.next()) {
    if (!after.empty() && item->key == start) continue;  // the cursor's own name
    if (page.names.size() == limit) {
      page.more = true;
      break;
    }
    std::string_view name = item->key.substr(prefix.size());
    page.names.emplace_back(name.find('\0') != std::string_view::npos ? item->value : name);
  }
  return page;
}

void Tree::put(storage::Txn& txn, std::string_view path, const NodeRecord& record) const {
  // Encoded into this thread's buffer (LMDB copies it): no allocation a write.
  thread_local Encoder bytes;
  bytes.clear();
  encodeNodeRecordInto(bytes, record);
  txn.put(dbs_.nodes, storage::KeyView(path), bytes.data());
  if (bytes.data().capacity() > (1u << 20)) bytes = Encoder{};  // after a rare large node
}

void Tree::erase(storage::Txn& txn, std::string_view path) const { txn.erase(dbs_.nodes, storage::KeyView(path)); }

void Tree::addChild(storage::Txn& txn, std::string_view parent, std::string_view name) const {
  txn.put(dbs_.children, childKey(parent, name), name.size() > storage::kMaxPlainKey ? name : std::string_view{});
}

void Tree::removeChild(storage::Txn& txn, std::string_view parent, std::string_view name) const {
  txn.erase(dbs_.children, childKey(parent, name));
}

}  // namespace warden::coordinator
