#pragma once
// How one member of a replicated cluster is set up: who the members are, its timing, and the
// deliberate bugs that tests plant to show each safety check can fail.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "coordinator/EncodingVersion.h"
#include "coordinator/paxos/Replica.h"
#include "coordinator/watch/Event.h"

namespace warden::coordinator::node {

struct ClusterOptions {
  std::uint64_t id = 1;
  std::map<std::uint64_t, std::string> members;  // id -> peer address, this node included
  std::string http;                              // this node's HTTP address, advertised to peers
  std::uint64_t writeTimeoutMs = 5000;
  std::uint64_t retainedSlots = 10'000;  // applied slots kept in the log for laggards
  // ...and, since they sit in memory, once they hold twice this many bytes only the newest this
  // many bytes' worth (16 slots at least; a snapshot's hold keeps up to 8 times this): slots of
  // large writes (transactions of thousands of creates) are compacted sooner.
  std::uint64_t retainedBytes = 64u << 20;
  std::size_t snapshotChunkBytes = 1u << 20;  // rows per snapshot chunk, in bytes
  std::size_t installStepBytes = 4u << 20;    // snapshot rows installed per turn, in bytes
  // A Ping to each peer this node sent nothing else to for this long, so that every node hears
  // every peer and reports a dead one unhealthy within a second. 0: none (the simulator and the
  // scripted scenarios, which count frames; pings only feed the health view).
  std::uint64_t pingUs = 200'000;
  // How long what apply did may stay uncommitted when nothing needs it visible, so that one
  // commit (one disk flush, beside the votes' own in the write-ahead log) covers many turns.
  // Reads that need it, writes whose callers read the state, compactions, snapshots, the
  // keeper's takeover and appliesWanted commit it at once. 0: commit at the end of every turn.
  std::uint64_t applyCommitDelayUs = 50'000;
  // Whether someone outside the driver waits to see what the open apply did (`pending`: its
  // revision and events so far): a read waiting for a revision it reached, or a watcher one of
  // its events concerns. Then it commits at the end of the turn instead of after the delay.
  // `scan` is the caller's to carry on from (watch::WatchHub::concerns); it starts over at each
  // commit. Called on the driver thread at the end of each turn while an apply is open.
  std::function<bool(const watch::Applied& pending, watch::PendingScan& scan)> appliesWanted;
  // Votes and promises flushed behind the driver (LogStore::writeBehind): the driver writes a
  // turn's records and goes on while the store flushes them (a thread of its own in production);
  // the messages that rest on them wait until a flush covers them, the leader's Accepts excepted
  // (SAFETY.md 9). Off: each turn waits for its own flush.
  bool flushBehind = false;
  paxos::ReplicaConfig paxos;            // timing; id and members are filled in
  // The encoding version this node's hellos claim (coordinator/EncodingVersion.h). Only tests set
  // another (1000 and up, which no release speaks): a member of another binary, without one.
  std::uint32_t encodingVersion = kEncodingVersion;
  // Deliberate bugs, for tests that prove the checks can fail. Never set elsewhere.
  struct Bugs {
    bool unboundedHeldBytes = false;  // compact by slot count alone, however large the slots
    bool noMinRetainedSlots = false;  // compact large slots by bytes right up to the applied slot
    bool unboundedSnapshotHold = false;  // a snapshot's hold keeps the log whatever its bytes
    bool serveWithoutEpoch = false;  // speak for sessions before this leadership's epoch is applied
    bool sameEpochAfterLapse = false;  // take the sessions over again after a lapse in the same epoch
    bool serveWithoutLease = false;  // speak for sessions whenever it leads, lease or not, caught up or not
    bool staleTtlOnTakeover = false;  // count each session's ttl from long before the takeover
    bool followersAnswerKeepalives = false;  // a follower vouches for a session from its own table
    bool neverExpire = false;                // the keeper never proposes an expiry
    bool neverEndLockDelays = false;         // the leader never proposes the end of a lock-delay
    bool localReads = false;  // answer linearizable reads from local state, without a read index
    bool forgetIdempotencyKeys = false;  // (for the state machine) apply a retried write again
    bool tornReads = false;  // (for the HTTP edge) read a subtree's children each from a later state
    bool watchFromFloor = false;  // (for the HTTP edge) a long-poll older than the history starts at
                                  // the history's start instead of answering 410
    bool ignoreIncarnation = false;  // match replies and chosen proposals by request id alone
    bool bootstrapOnMajority = false;  // an empty disk votes once n - majority + 1 peers say "empty"
    bool applyPastDeadline = false;    // apply a write chosen after its deadline (its origin said 503)
    bool refuseOnDeadline = false;     // answer 503 at the deadline without an entry stamped past it
    bool installOverUnapplied = false;  // install a snapshot that chosen entries not yet applied already cover
    bool fastReadWithoutLease = false;  // a leader answers reads without the driver, lease or not
    bool voterBeforeLearnedDurable = false;  // a rebuilt member votes before what it learned is durable
    bool readsBeforeApplyCommitted = false;  // answer a read barrier while the apply it waited for is uncommitted
    bool compactUnderSnapshot = false;  // compact past a snapshot a peer is receiving or installing
    bool admitAnyEncodingVersion = false;  // (for the peer link) let in a peer of another encoding version
    bool votesBeforeFlush = false;  // flushBehind: a vote's answer leaves before the vote is durable
  } bugs;
};

}  // namespace warden::coordinator::node
