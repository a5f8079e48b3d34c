#pragma once
// Thin RAII over LMDB in the spirit of lmdbxx: a missing key is an empty optional, a real LMDB
// failure throws LmdbError. Values returned as string_view point into the memory map and stay
// valid only until the transaction that read them ends or writes that key again.

#include <lmdb.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "coordinator/Bytes.h"

namespace warden::coordinator::storage {

class LmdbError : public std::runtime_error {
 public:
  LmdbError(const char* what, int code);
  int code() const { return code_; }

 private:
  int code_;
};

struct EnvOptions {
  std::size_t mapSize = std::size_t{16} << 30;  // address space reserved; the file grows as used
  unsigned maxDbs = 16;
  bool fsync = true;  // false: MDB_NOSYNC, a crash of the machine may lose the latest commits
};

// One LMDB environment (a directory). Thread-safe; opened with MDB_NOTLS so read transactions
// may live on any thread of the HTTP pool.
//
// With fsync on it is opened with MDB_NOMETASYNC: a commit flushes its pages but not the meta
// page that publishes them, so the database is never corrupt but a machine crash may undo the
// latest commits, back to the last durable one. Txn::commit() is durable (it syncs after);
// Txn::commitWithoutSync() is for state that can be rebuilt from what a durable commit holds
// (the state machine, replayed from the acceptor log), and saves one disk flush.
class Env {
 public:
  Env(const std::string& directory, const EnvOptions& options);
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  MDB_env* get() const { return env_; }
  const std::string& directory() const { return directory_; }
  bool fsync() const { return fsync_; }
  // Makes every commit so far durable (with fsync on; a no-op with it off).
  void sync();

  // Runs after each top-level commit, `synced` when it is durable (Txn::commit), and after
  // sync() with `synced`. For tests that model a machine crash: with MDB_NOMETASYNC, a commit
  // made without a sync may be undone by one, but it makes the commit before it durable (its
  // flush of pages also flushes that commit's meta page).
  std::function<void(bool synced)> afterCommit;

 private:
  friend class Txn;
  void flush();
  MDB_env* env_ = nullptr;
  std::string directory_;
  bool fsync_;
  // The thread holding the write transaction. LMDB would block a second one begun on that same
  // thread forever (its writer lock is not recursive): Txn::write throws instead.
  std::atomic<std::thread::id> writer_{};
};

// A read or write transaction. Ends (aborts) on destruction unless committed.
class Txn {
 public:
  static Txn read(Env& env);
  static Txn write(Env& env);
  // A child of a write transaction: its changes become part of the parent on commit, vanish on
  // abort. Used to make each command all-or-nothing inside a batch.
  static Txn nested(Txn& parent);

  Txn(Txn&& other) noexcept;
  Txn& operator=(Txn&&) = delete;
  Txn(const Txn&) = delete;
  ~Txn();

  // Durable once it returns (with fsync on).
  void commit();
  // Visible to later transactions at once, durable at the next commit() or Env::sync(); a
  // machine crash before then may undo it (never half of it). For a nested transaction the same
  // as commit(): its parent decides.
  void commitWithoutSync();
  void abort();

  MDB_dbi openDb(const char* name);  // creates it when the transaction writes
  std::optional<std::string_view> get(MDB_dbi db, std::string_view key) const;
  void put(MDB_dbi db, std::string_view key, std::string_view value);
  // Puts a key that is not there yet, in one descent: false (and nothing changed) if it is.
  bool insert(MDB_dbi db, std::string_view key, std::string_view value);
  bool erase(MDB_dbi db, std::string_view key);
  void clear(MDB_dbi db);  // removes every key, keeps the database

  MDB_txn* get() const { return txn_; }

 private:
  Txn(MDB_env* env, MDB_txn* parent, unsigned flags, Env* syncs = nullptr);
  void commitOnly();
  void released();  // a top-level write transaction ended: its thread may begin another
  MDB_txn* txn_ = nullptr;
  Env* syncs_ = nullptr;  // a top-level write transaction's environment, synced by commit()
};

// A cursor over one database inside a transaction. It must be destroyed before its transaction
// commits or aborts (LMDB frees a write transaction's cursors itself).
class Cursor {
 public:
  Cursor(Txn& txn, MDB_dbi db);
  ~Cursor();
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  struct Item {
    std::string_view key;
    std::string_view value;
  };
  std::optional<Item> seek(std::string_view key);  // first item with key >= the given one
  std::optional<Item> next();
  std::optional<Item> first();
  std::optional<Item> last();
  std::optional<Item> prev();
  // Deletes the item the cursor is at; next() then gives the one that followed it.
  void erase();

 private:
  std::optional<Item> move(MDB_cursor_op op, std::string_view key = {});
  MDB_cursor* cursor_ = nullptr;
};

// Decodes a stored value with `decode`. Bytes we wrote ourselves that no longer decode are
// corrupt storage, not bad input: reported as LmdbError(MDB_CORRUPTED), which stops the node.
template <typename Decode>
auto decodeStored(std::string_view bytes, Decode decode) {
  try {
    return decode(bytes);
  } catch (const DecodeError& e) {
    throw LmdbError(e.what(), MDB_CORRUPTED);
  }
}

// Big-endian fixed-width keys so that LMDB's byte order is numeric order.
std::string encodeU64Key(std::uint64_t value);
std::uint64_t decodeU64Key(std::string_view key);

// Several such keys side by side (the bytes of encodeU64Key(a) + encodeU64Key(b) + ...), on the
// stack: the exactly-once memory's keys cost no allocation.
template <std::size_t N>
struct PackedKey {
  std::array<char, N> bytes;
  operator std::string_view() const { return {bytes.data(), N}; }
};
template <typename... U>
PackedKey<8 * sizeof...(U)> packU64Keys(U... values) {
  PackedKey<8 * sizeof...(U)> key{};
  std::size_t at = 0;
  for (std::uint64_t value : {static_cast<std::uint64_t>(values)...}) {
    for (int i = 7; i >= 0; --i) key.bytes[at + i] = static_cast<char>((value >> (8 * (7 - i))) & 0xff);
    at += 8;
  }
  return key;
}

}  // namespace warden::coordinator::storage
