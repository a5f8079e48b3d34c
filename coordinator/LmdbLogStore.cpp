#include "coordinator/LmdbLogStore.h"

#include "coordinator/paxos/MessageCodec.h"

namespace warden::coordinator {

namespace {
constexpr std::string_view kPromised = "promised";
constexpr std::string_view kCompacted = "compacted";
constexpr std::string_view kLearner = "learner";
}  // namespace

LmdbLogStore::LmdbLogStore(storage::Env& env) : env_(env) {
  storage::Txn txn = storage::Txn::write(env_);
  meta_ = txn.openDb("paxos_meta");
  log_ = txn.openDb("paxos_log");
  txn.commit();
}

paxos::DurableState LmdbLogStore::load() {
  paxos::DurableState state;
  storage::Txn txn = storage::Txn::read(env_);
  try {
    if (auto promised = txn.get(meta_, kPromised)) {
      Decoder in(*promised);
      state.promised = paxos::decodeBallot(in);
    }
    if (auto compacted = txn.get(meta_, kCompacted)) state.compactedUpTo = storage::decodeU64Key(*compacted);
    if (auto learner = txn.get(meta_, kLearner)) {
      state.learner = *learner == "1";
      state.started = true;
    }
    storage::Cursor cursor(txn, log_);
    for (auto item = cursor.first(); item; item = cursor.next()) {
      Decoder in(item->value);
      paxos::AcceptedValue accepted;
      accepted.ballot = paxos::decodeBallot(in);
      accepted.value = paxos::decodeValue(in);
      in.expectDone();
      state.accepted.emplace(storage::decodeU64Key(item->key), std::move(accepted));
    }
  } catch (const DecodeError& e) {
    // Corrupt acceptor state must never be voted on: stop loudly.
    throw storage::LmdbError(e.what(), MDB_CORRUPTED);
  }
  return state;
}

void LmdbLogStore::write(const std::vector<paxos::Record>& records) {
  if (records.empty() && !carried_) return;
  storage::Txn txn = carried_ ? std::move(*carried_) : storage::Txn::write(env_);
  carried_.reset();
  for (const auto& record : records) {
    if (const auto* p = std::get_if<paxos::PromiseRecord>(&record)) {
      Encoder out;
      paxos::encodeBallot(out, p->promised);
      txn.put(meta_, kPromised, out.data());
    } else if (const auto* a = std::get_if<paxos::AcceptRecord>(&record)) {
      Encoder out;
      paxos::encodeBallot(out, a->ballot);
      paxos::encodeValue(out, a->value);
      txn.put(log_, storage::encodeU64Key(a->slot), out.data());
    } else if (const auto* c = std::get_if<paxos::CompactRecord>(&record)) {
      txn.put(meta_, kCompacted, storage::encodeU64Key(c->upTo));
      std::vector<std::string> doomed;
      {
        storage::Cursor cursor(txn, log_);
        for (auto item = cursor.first(); item && storage::decodeU64Key(item->key) <= c->upTo; item = cursor.next()) {
          doomed.emplace_back(item->key);
        }
      }
      for (const auto& key : doomed) txn.erase(log_, key);
    } else if (const auto* l = std::get_if<paxos::LearnerRecord>(&record)) {
      txn.put(meta_, kLearner, l->learner ? "1" : "0");
    }
  }
  txn.commit();
}

void LmdbLogStore::sync() {
  // With fsync on, the commit in write() already reached the disk (Txn::commit syncs). With
  // --fsync off the node accepts losing recent state on a machine crash: nothing to force.
}

}  // namespace warden::coordinator
