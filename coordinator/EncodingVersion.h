#pragma once
// The version of the encodings members exchange and keep: commands, proposals, Paxos messages
// and peer frames, acceptor records, state records and snapshots.
//
// A binary decodes every version up to its own (old logs and data directories replay as they
// were), but two members of different versions must never share a log: one that cannot decode
// an entry skips it where the others apply it, and their states part for good. So:
//  - every peer link opens with a hello carrying the version, and a member refuses a peer of
//    any other version (transport/PeerTransport);
//  - a data directory records the version of the binaries that opened it, and a binary of a
//    lower version refuses to open it (checkEncodingVersion).
// Upgrading across a version is one member at a time; members of the two versions do not talk,
// so the cluster answers while one side holds a majority (README: "Upgrades").
//
// Bump it with every change to one of those encodings: the fingerprint test
// (tests/unit/EncodingVersionTest.cpp) fails until the new bytes are pinned under a new version.
//   1  everything up to keyed transactions and keyed session commands
//   2  keyed lock and election commands (kKeyedLock)

#include <cstdint>
#include <string>

#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator {

inline constexpr std::uint32_t kEncodingVersion = 2;

// Records kEncodingVersion in the data directory of `txn`'s environment, or throws
// std::runtime_error when a binary of a higher version has opened it (naming `directory`).
void checkEncodingVersion(storage::Txn& txn, const std::string& directory);

}  // namespace warden::coordinator
