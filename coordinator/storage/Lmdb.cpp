#include "coordinator/storage/Lmdb.h"

#include <filesystem>

#include "coordinator/storage/Keys.h"

namespace warden::coordinator::storage {

namespace {

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) throw LmdbError(what, rc);
}

MDB_val toVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view toView(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

LmdbError::LmdbError(const char* what, int code)
    : std::runtime_error(std::string(what) + ": " + mdb_strerror(code)), code_(code) {}

Env::Env(const std::string& directory, const EnvOptions& options) : directory_(directory), fsync_(options.fsync) {
  std::filesystem::create_directories(directory);
  check(mdb_env_create(&env_), "mdb_env_create");
  try {
    check(mdb_env_set_mapsize(env_, options.mapSize), "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(env_, options.maxDbs), "mdb_env_set_maxdbs");
    check(mdb_env_set_maxreaders(env_, 1024), "mdb_env_set_maxreaders");
    unsigned flags = MDB_NOTLS;
    // NOMETASYNC: see Env in Lmdb.h. Durable commits sync explicitly after committing.
    flags |= options.fsync ? MDB_NOMETASYNC : MDB_NOSYNC;
    check(mdb_env_open(env_, directory.c_str(), flags, 0640), "mdb_env_open");
    // Keys are shortened and snapshot rows staged to fit this (Keys.h); a liblmdb built with
    // smaller keys would refuse some of them at the first write that needs them.
    if (mdb_env_get_maxkeysize(env_) < static_cast<int>(kMaxLmdbKey)) {
      throw std::runtime_error("this liblmdb takes keys of at most " + std::to_string(mdb_env_get_maxkeysize(env_)) +
                               " bytes; Warden needs " + std::to_string(kMaxLmdbKey));
    }
  } catch (...) {
    mdb_env_close(env_);
    throw;
  }
}

Env::~Env() { mdb_env_close(env_); }

void Env::sync() {
  flush();
  if (afterCommit) afterCommit(true);
}

void Env::flush() {
  if (fsync_) check(mdb_env_sync(env_, 1), "mdb_env_sync");
}

Txn::Txn(MDB_env* env, MDB_txn* parent, unsigned flags, Env* syncs) : syncs_(syncs) {
  check(mdb_txn_begin(env, parent, flags, &txn_), "mdb_txn_begin");
}

Txn Txn::read(Env& env) { return Txn(env.get(), nullptr, MDB_RDONLY); }
Txn Txn::write(Env& env) {
  if (env.writer_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    throw std::logic_error("a write transaction begun on the thread that holds one (it would wait for itself)");
  }
  Txn txn(env.get(), nullptr, 0, &env);
  env.writer_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  return txn;
}

void Txn::released() {
  if (syncs_ != nullptr) syncs_->writer_.store(std::thread::id{}, std::memory_order_relaxed);
}
Txn Txn::nested(Txn& parent) { return Txn(mdb_txn_env(parent.txn_), parent.txn_, 0); }

Txn::Txn(Txn&& other) noexcept : txn_(other.txn_), syncs_(other.syncs_) { other.txn_ = nullptr; }

Txn::~Txn() { abort(); }

void Txn::commit() {
  commitOnly();
  if (syncs_ == nullptr) return;
  syncs_->flush();
  if (syncs_->afterCommit) syncs_->afterCommit(true);
}

void Txn::commitWithoutSync() {
  commitOnly();
  if (syncs_ != nullptr && syncs_->afterCommit) syncs_->afterCommit(false);
}

void Txn::commitOnly() {
  MDB_txn* txn = txn_;
  txn_ = nullptr;
  released();
  check(mdb_txn_commit(txn), "mdb_txn_commit");
}

void Txn::abort() {
  if (txn_ != nullptr) {
    released();
    mdb_txn_abort(txn_);
  }
  txn_ = nullptr;
}

void Txn::clear(MDB_dbi db) { check(mdb_drop(txn_, db, 0), "mdb_drop"); }

MDB_dbi Txn::openDb(const char* name) {
  MDB_dbi dbi;
  check(mdb_dbi_open(txn_, name, MDB_CREATE, &dbi), "mdb_dbi_open");
  return dbi;
}

std::optional<std::string_view> Txn::get(MDB_dbi db, std::string_view key) const {
  MDB_val k = toVal(key);
  MDB_val v;
  int rc = mdb_get(txn_, db, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  check(rc, "mdb_get");
  return toView(v);
}

void Txn::put(MDB_dbi db, std::string_view key, std::string_view value) {
  MDB_val k = toVal(key);
  MDB_val v = toVal(value);
  check(mdb_put(txn_, db, &k, &v, 0), "mdb_put");
}

bool Txn::insert(MDB_dbi db, std::string_view key, std::string_view value) {
  MDB_val k = toVal(key);
  MDB_val v = toVal(value);
  const int rc = mdb_put(txn_, db, &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) return false;
  check(rc, "mdb_put");
  return true;
}

bool Txn::erase(MDB_dbi db, std::string_view key) {
  MDB_val k = toVal(key);
  int rc = mdb_del(txn_, db, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  check(rc, "mdb_del");
  return true;
}

Cursor::Cursor(Txn& txn, MDB_dbi db) { check(mdb_cursor_open(txn.get(), db, &cursor_), "mdb_cursor_open"); }

Cursor::~Cursor() { mdb_cursor_close(cursor_); }

std::optional<Cursor::Item> Cursor::move(MDB_cursor_op op, std::string_view key) {
  MDB_val k = toVal(key);
  MDB_val v;
  int rc = mdb_cursor_get(cursor_, &k, &v, op);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  check(rc, "mdb_cursor_get");
  return Item{toView(k), toView(v)};
}

std::optional<Cursor::Item> Cursor::seek(std::string_view key) { return move(MDB_SET_RANGE, key); }
std::optional<Cursor::Item> Cursor::next() { return move(MDB_NEXT); }
std::optional<Cursor::Item> Cursor::first() { return move(MDB_FIRST); }
std::optional<Cursor::Item> Cursor::last() { return move(MDB_LAST); }
std::optional<Cursor::Item> Cursor::prev() { return move(MDB_PREV); }
void Cursor::erase() { check(mdb_cursor_del(cursor_, 0), "mdb_cursor_del"); }

std::string encodeU64Key(std::uint64_t value) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return key;
}

std::uint64_t decodeU64Key(std::string_view key) {
  if (key.size() != 8) throw LmdbError("bad u64 key", MDB_CORRUPTED);
  std::uint64_t value = 0;
  for (char c : key) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

}  // namespace warden::coordinator::storage
