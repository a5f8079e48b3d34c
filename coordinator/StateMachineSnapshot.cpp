// Snapshots of the replicated state (StateMachine's export and import): the sender cuts rows
// from a read transaction piece by piece; the receiver stages them on disk, then installs them
// in steps of bounded size, each its own transaction, so that a multi-GiB state never holds the
// node's driver for long. An install in progress is marked durably in the staging table: a
// process that stops halfway finishes it in initialize() before anything reads the state, and
// readers that see the mark (StateMachine::installing) must not trust the tables.

#include "coordinator/StateMachine.h"

#include "coordinator/storage/Keys.h"

namespace warden::coordinator {

namespace {
// The replicated tables, in snapshot order; Row::table indexes this list.
std::vector<MDB_dbi> replicatedTables(const StateMachine::Dbs& dbs) {
  return {dbs.nodes,    dbs.children,       dbs.meta,        dbs.sessions,         dbs.owned,
          dbs.requests, dbs.requestsBySlot, dbs.idempotency, dbs.idempotencyByTime, dbs.requestsByDeadline};
}

// The install mark: a staging key no staged row can have (rows start with their table number,
// below 0xff), so it sorts after all of them. Its value says which phase the install is in.
const std::string kInstallMark(1, '\xff');
constexpr std::string_view kClearing = "clearing";  // the old rows are being deleted
constexpr std::string_view kCopying = "copying";    // the staged rows are being moved in

// A row is staged under its table number and its key, unless that would be longer than LMDB
// takes (the exactly-once time index holds keys of 8 + 503 bytes, which a table byte makes 512:
// every receiver of such a snapshot stopped on MDB_BAD_VALSIZE). Such a row is staged under
// this byte and a sequence number instead, with its table and key in the value. It sorts after
// every table number and before the mark; stagings left by earlier binaries have none.
constexpr char kLongRow = '\xfe';

std::string longRowKey(std::uint64_t seq) { return kLongRow + storage::encodeU64Key(seq); }

struct StagedRow {
  unsigned table;
  std::string_view key, value;  // views into the staging row
};

StagedRow decodeLongRow(std::string_view bytes) {
  Decoder in(bytes);
  StagedRow row;
  row.table = in.u8();
  row.key = in.bytes();
  row.value = in.bytes();
  in.expectDone();
  return row;
}

// The sequence number after the last long row staged so far.
std::uint64_t nextLongRow(storage::Txn& txn, MDB_dbi staging) {
  storage::Cursor cursor(txn, staging);
  auto item = cursor.last();
  if (item && item->key == kInstallMark) item = cursor.prev();
  if (!item || item->key.size() != 9 || item->key[0] != kLongRow) return 0;
  return storage::decodeU64Key(item->key.substr(1)) + 1;
}

}  // namespace

void StateMachine::exportState(storage::Txn& txn, const std::function<void(Row)>& emit) const {
  ExportPosition at;
  exportPiece(txn, at, SIZE_MAX, emit);
}

bool StateMachine::exportPiece(storage::Txn& txn, ExportPosition& at, std::size_t budgetBytes,
                               const std::function<void(Row)>& emit) const {
  const auto tables = replicatedTables(dbs_);
  std::size_t bytes = 0;
  for (; at.table < tables.size(); ++at.table, at.after.reset()) {
    storage::Cursor cursor(txn, tables[at.table]);
    auto item = at.after ? cursor.seek(*at.after) : cursor.first();
    if (item && at.after && item->key == *at.after) item = cursor.next();
    for (; item; item = cursor.next()) {
      if (bytes >= budgetBytes) return false;
      bytes += item->key.size() + item->value.size();
      at.after = std::string(item->key);
      emit(Row{at.table, std::string(item->key), std::string(item->value)});
    }
  }
  return true;
}

void StateMachine::importState(storage::Txn& txn, const std::vector<Row>& rows) const {
  clearStaging(txn);
  stageRows(txn, rows);
  installStaged(txn);
}

void StateMachine::clearStaging(storage::Txn& txn) const { txn.clear(dbs_.staging); }

bool StateMachine::rowFits(const Row& row) const {
  return row.table < replicatedTables(dbs_).size() && !row.key.empty() && row.key.size() <= storage::kMaxLmdbKey;
}

void StateMachine::stageRows(storage::Txn& txn, const std::vector<Row>& rows) const {
  std::optional<std::uint64_t> longRows;  // looked up at the first long row only
  for (const auto& row : rows) {
    // The receiver checks rows as it decodes them (a bad frame is dropped); this is the backstop.
    if (!rowFits(row)) throw storage::LmdbError("snapshot row for an unknown table or too long a key", MDB_CORRUPTED);
    if (1 + row.key.size() <= storage::kMaxLmdbKey || bugs.stageLongRowsPlain) {
      txn.put(dbs_.staging, std::string(1, static_cast<char>(row.table)) + row.key, row.value);
      continue;
    }
    if (!longRows) longRows = nextLongRow(txn, dbs_.staging);
    Encoder value;
    value.u8(row.table);
    value.bytes(row.key);
    value.bytes(row.value);
    txn.put(dbs_.staging, longRowKey((*longRows)++), value.data());
  }
}

void StateMachine::installStaged(storage::Txn& txn) const {
  beginInstall(txn);
  while (!installStep(txn, SIZE_MAX)) {
  }
}

bool StateMachine::finishInterruptedInstall(storage::Txn& txn) const {
  if (!installing(txn)) return false;
  while (!installStep(txn, SIZE_MAX)) {
  }
  return true;
}

bool StateMachine::installing(storage::Txn& txn) const { return txn.get(dbs_.staging, kInstallMark).has_value(); }

void StateMachine::beginInstall(storage::Txn& txn) const { txn.put(dbs_.staging, kInstallMark, kClearing); }

bool StateMachine::installStep(storage::Txn& txn, std::size_t budgetBytes) const {
  auto mark = txn.get(dbs_.staging, kInstallMark);
  if (!mark) return true;
  const auto tables = replicatedTables(dbs_);
  std::size_t bytes = 0;
  if (*mark == kClearing) {
    for (MDB_dbi db : tables) {
      std::vector<std::string> doomed;
      {
        storage::Cursor cursor(txn, db);
        for (auto item = cursor.first(); item && bytes < budgetBytes; item = cursor.next()) {
          bytes += item->key.size() + item->value.size() + 1;
          doomed.emplace_back(item->key);
        }
      }
      for (const auto& key : doomed) txn.erase(db, key);
      if (bytes >= budgetBytes) return false;
    }
    txn.put(dbs_.staging, kInstallMark, kCopying);
  } else if (*mark != kCopying) {
    throw storage::LmdbError("unknown snapshot install phase", MDB_CORRUPTED);
  }
  std::vector<std::string> moved;
  {
    storage::Cursor cursor(txn, dbs_.staging);
    for (auto item = cursor.first(); item && item->key != kInstallMark && bytes < budgetBytes; item = cursor.next()) {
      StagedRow row = item->key.starts_with(kLongRow)
                          ? storage::decodeStored(item->value, decodeLongRow)
                          : StagedRow{item->key.empty() ? 0xffu : static_cast<std::uint8_t>(item->key[0]),
                                      item->key.substr(1), item->value};
      if (row.table >= tables.size()) {
        throw storage::LmdbError("staged snapshot row for an unknown table", MDB_CORRUPTED);
      }
      txn.put(tables[row.table], row.key, row.value);
      bytes += item->key.size() + item->value.size() + 1;
      moved.emplace_back(item->key);
    }
  }
  for (const auto& key : moved) txn.erase(dbs_.staging, key);
  if (bytes >= budgetBytes) return false;
  txn.erase(dbs_.staging, kInstallMark);
  return true;
}

}  // namespace warden::coordinator
