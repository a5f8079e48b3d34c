// Idempotency keys (StateMachine::replayed and remember): a keyed write is remembered with its
// first result, so that a retry is answered alike and applies nothing. Part of the replicated
// state: every replica replays, refuses and forgets the same keys.

#include "coordinator/ResultCodec.h"
#include "coordinator/StateMachine.h"
#include "coordinator/storage/Keys.h"

namespace warden::coordinator {

namespace {
constexpr std::string_view kIdempotencyCountKey = "idempotency_keys";   // rows of the idempotency table
constexpr std::string_view kIdempotencyBytesKey = "idempotency_bytes";  // their bytes, both tables

// A remembered write: when (leader time) and in which slot it applied, what its key was used
// for (a digest of its ops), and its first result.
struct Remembered {
  std::uint64_t atMs = 0;
  std::string digest;
  std::string result;  // encoded
  std::uint64_t slot = 0;
};

Remembered decodeRemembered(std::string_view stored) {
  return storage::decodeStored(stored, [](std::string_view bytes) {
    Decoder in(bytes);
    Remembered r;
    r.atMs = in.varint();
    r.digest = std::string(in.bytes());
    r.result = std::string(in.bytes());
    if (!in.done()) r.slot = in.varint();  // rows from before slots were kept have none
    in.expectDone();
    return r;
  });
}

// The longest key stored as it is: what the time index could hold behind its 8 bytes of time
// within LMDB's 511-byte keys. Binaries before the limit stored every key up to it as it is
// (longer ones failed the write), so a key must keep that form for their rows to be found.
constexpr std::size_t kMaxRawKey = 511 - 8;

storage::KeyView storedKey(const std::string& key) { return storage::KeyView(key, kMaxRawKey); }

// What a key costs in the table and its time index.
std::uint64_t rememberedBytes(std::string_view key, std::size_t valueBytes) { return 2 * key.size() + 8 + valueBytes; }
}  // namespace

std::optional<CommandResult> StateMachine::replayed(storage::Txn& txn, const Command& command) const {
  if (forgetIdempotencyKeys) return std::nullopt;
  auto stored = txn.get(dbs_.idempotency, storedKey(command.idempotencyKey));
  if (!stored) return std::nullopt;
  const Remembered first = decodeRemembered(*stored);
  CommandResult result = storage::decodeStored(first.result, [](std::string_view bytes) { return decodeResult(bytes); });
  if (first.digest == storage::sha256(encodeOps(command))) return result;
  CommandResult reused;
  reused.status = Status::KeyReused;
  reused.revision = result.revision;
  reused.message = "Idempotency-Key '" + command.idempotencyKey + "' was used for another write (at " +
                   std::to_string(first.atMs) + " ms since the epoch); use a new key for a new write";
  return reused;
}

void StateMachine::remember(storage::Txn& txn, const Command& command, const CommandResult& result,
                            std::uint64_t timestampMs, std::uint64_t slot) const {
  Encoder value;
  value.varint(timestampMs);
  value.bytes(storage::sha256(encodeOps(command)));
  value.bytes(encodeResult(result));
  value.varint(slot);
  // Stored under its key as it is, or shortened past kMaxRawKey (the edge takes keys of at most
  // 128 characters, but a longer one in the log must not stop every replica with
  // MDB_BAD_VALSIZE). The rows below are in that stored form, and counted in it.
  const storage::KeyView keyView = storedKey(command.idempotencyKey);
  const std::string_view ownKey = keyView;
  const std::uint64_t incoming = rememberedBytes(ownKey, value.data().size());
  // Forget keys past their time (and slots), a few at a time (each write with a key pays for its
  // own), and the oldest beyond the count or the bytes, as many as that takes.
  std::uint64_t count = readMeta(txn, kIdempotencyCountKey);
  std::uint64_t bytes = readMeta(txn, kIdempotencyBytesKey);
  std::size_t expired = 0;
  std::vector<std::string> doomed;
  {
    storage::Cursor cursor(txn, dbs_.idempotencyByTime);
    for (auto item = cursor.first(); item; item = cursor.next()) {
      const std::string_view key = item->key.substr(8);
      const auto stored = txn.get(dbs_.idempotency, key);
      const std::uint64_t size = rememberedBytes(key, stored ? stored->size() : 0);
      const bool full = count >= kMaxIdempotencyKeys || bytes + incoming > kMaxIdempotencyBytes;
      if (!full) {
        const Remembered old = stored ? decodeRemembered(*stored) : Remembered{};
        const bool oldEnough = old.atMs + kIdempotencyMemoryMs < timestampMs && old.slot + kIdempotencyMemorySlots <= slot;
        if (!oldEnough || expired == 4) break;
        expired++;
      }
      doomed.emplace_back(item->key);
      count -= 1;
      bytes -= std::min(bytes, size);
    }
  }
  for (const auto& key : doomed) {
    txn.erase(dbs_.idempotencyByTime, key);
    txn.erase(dbs_.idempotency, key.substr(8));
  }
  txn.put(dbs_.idempotency, ownKey, value.data());
  txn.put(dbs_.idempotencyByTime, storage::encodeU64Key(timestampMs) + std::string(ownKey), {});
  txn.put(meta_, kIdempotencyCountKey, storage::encodeU64Key(count + 1));
  txn.put(meta_, kIdempotencyBytesKey, storage::encodeU64Key(bytes + incoming));
}

}  // namespace warden::coordinator
