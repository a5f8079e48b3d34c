#pragma once
// The version of the encodings members exchange and keep: commands, proposals, Paxos messages
// and peer frames, acceptor records, state records and snapshots.
//
// A binary reads every version up to its own and applies an older version's entries exactly as
// the binaries of that version did (old logs and data directories replay as they were), but two
// members of different versions must never share a log: one that cannot decode an entry, or
// applies it otherwise, parts from the others for good. So:
//  - every peer link opens with a hello carrying the version, and a member refuses a peer of
//    any other version (transport/PeerTransport);
//  - a data directory records the version of the binaries that opened it, and a binary of a
//    lower version refuses to open it (checkEncodingVersion). Binaries from before the record
//    (commit 2237504) do not look: never run one on a directory a later binary opened.
// Upgrading across a version is one member at a time; members of the two versions do not talk,
// so the cluster answers while one side holds a majority (README: "Upgrades").
//
// Bump it with every change to one of those encodings, and with every change to what apply makes
// of an entry: the fingerprint test (tests/unit/EncodingVersionTest.cpp: one sample of each
// record, command and frame, the rows a scripted mix of every command type leaves in every
// table, and a write-ahead log segment) fails until the new bytes are pinned under a new version.
//   1  hellos of binaries up to 2237504; these wrote keyed transactions and keyed session
//      commands, and from a310c43 on also keyed lock and election commands (kKeyedLock), which
//      binaries before a310c43 cannot decode: 1 names two encodings
//   2  2237504 on: the version checked, keyed lock and election commands

#include <cstdint>
#include <string>

#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator {

inline constexpr std::uint32_t kEncodingVersion = 2;

// Records kEncodingVersion in the data directory of `txn`'s environment, or throws
// std::runtime_error when a binary of a higher version has opened it (naming `directory`).
void checkEncodingVersion(storage::Txn& txn, const std::string& directory);

}  // namespace warden::coordinator
