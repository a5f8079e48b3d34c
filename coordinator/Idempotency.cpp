// Idempotency keys (StateMachine::replayed and remember): a keyed write is remembered with its
// first result, so that a retry is answered alike and applies nothing. Part of the replicated
// state: every replica replays, refuses and forgets the same keys.

#include "coordinator/ResultCodec.h"
#include "coordinator/StateMachine.h"
#include "coordinator/storage/Keys.h"

namespace warden::coordinator {

namespace {
constexpr std::string_view kIdempotencyCountKey = "idempotency_keys";  // rows of the idempotency table
}  // namespace

std::optional<CommandResult> StateMachine::replayed(storage::Txn& txn, const Command& command) const {
  auto stored = txn.get(dbs_.idempotency, command.idempotencyKey);
  if (!stored) return std::nullopt;
  return storage::decodeStored(*stored, [&](std::string_view bytes) {
    Decoder in(bytes);
    const std::uint64_t atMs = in.varint();
    const std::string digest(in.bytes());
    CommandResult first = decodeResult(in.bytes());
    in.expectDone();
    if (digest == storage::sha256(encodeOps(command))) return first;
    CommandResult reused;
    reused.status = Status::KeyReused;
    reused.revision = first.revision;
    reused.message = "Idempotency-Key '" + command.idempotencyKey + "' was used for another write (at " +
                     std::to_string(atMs) + " ms since the epoch); use a new key for a new write";
    return reused;
  });
}

void StateMachine::remember(storage::Txn& txn, const Command& command, const CommandResult& result,
                            std::uint64_t timestampMs) const {
  // Forget keys past their time, and the oldest beyond the count, a few at a time (each write
  // with a key pays for its own).
  std::uint64_t count = readMeta(txn, kIdempotencyCountKey);
  std::vector<std::string> doomed;
  {
    storage::Cursor cursor(txn, dbs_.idempotencyByTime);
    for (auto item = cursor.first(); item && doomed.size() < 4; item = cursor.next()) {
      const std::uint64_t atMs = storage::decodeU64Key(item->key.substr(0, 8));
      if (atMs + kIdempotencyMemoryMs >= timestampMs && count - doomed.size() < kMaxIdempotencyKeys) break;
      doomed.emplace_back(item->key);
    }
  }
  for (const auto& key : doomed) {
    txn.erase(dbs_.idempotencyByTime, key);
    txn.erase(dbs_.idempotency, key.substr(8));
  }
  count -= doomed.size();
  Encoder value;
  value.varint(timestampMs);
  value.bytes(storage::sha256(encodeOps(command)));
  value.bytes(encodeResult(result));
  txn.put(dbs_.idempotency, command.idempotencyKey, value.data());
  txn.put(dbs_.idempotencyByTime, storage::encodeU64Key(timestampMs) + command.idempotencyKey, {});
  txn.put(meta_, kIdempotencyCountKey, storage::encodeU64Key(count + 1));
}

bool StateMachine::keeperHears(storage::Txn& txn, const Command& command) const {
  return command.type != CommandType::SessionCreate || sessions_.get(txn, command.session).has_value();
}

}  // namespace warden::coordinator
