#pragma once
// The namespace tree's storage layout in LMDB.
//
// LMDB keys are at most 511 bytes but a path may be 1024, so long keys are shortened to a
// prefix plus a SHA-256 of the whole; NUL never occurs in a path, so it marks a shortened key.
//   nodes:    nodeKey(path)                      -> encoded NodeRecord
//   children: digest(parent) ++ nameKey(name)    -> "" (or the full name when nameKey shortened it)
// A parent's children are one key range, already in byte order for names up to 400 bytes.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/NodeRecord.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator {

class Tree {
 public:
  struct Dbs {
    MDB_dbi nodes;
    MDB_dbi children;
  };
  explicit Tree(Dbs dbs) : dbs_(dbs) {}

  std::optional<NodeRecord> get(storage::Txn& txn, std::string_view path) const;
  bool exists(storage::Txn& txn, std::string_view path) const;
  // Child names in byte order.
  std::vector<std::string> children(storage::Txn& txn, std::string_view path) const;
  // One page of them: at most `limit` names after `after` (from the first if empty), in key
  // order (byte order, but names over 400 bytes sort by digest among those sharing their first
  // 360 bytes); `more` when names remain after the page.
  struct Page {
    std::vector<std::string> names;
    bool more = false;
  };
  Page childrenPage(storage::Txn& txn, std::string_view path, std::string_view after, std::size_t limit) const;

  // Writes the record alone; linking it under its parent is addChild's job.
  void put(storage::Txn& txn, std::string_view path, const NodeRecord& record) const;
  void erase(storage::Txn& txn, std::string_view path) const;
  void addChild(storage::Txn& txn, std::string_view parent, std::string_view name) const;
  void removeChild(storage::Txn& txn, std::string_view parent, std::string_view name) const;

 private:
  Dbs dbs_;
};

}  // namespace warden::coordinator
