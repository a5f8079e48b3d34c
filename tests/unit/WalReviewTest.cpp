// Review of 8cdf6e3 (the acceptor's write-ahead log), review 7: crash and power-loss schedules
// against storage::Wal and LmdbLogStore.
//
// The crash-consistency harness (interposed flushes, power-loss and kill images) is
// tests/FlushTracker.h.

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>

#include "coordinator/LmdbLogStore.h"
#include "coordinator/paxos/Replica.h"
#include "coordinator/storage/Wal.h"
#include "tests/FlushTracker.h"
#include "tests/SplitMixRandom.h"
#include "tests/TempDir.h"

namespace {

namespace fs = std::filesystem;
using namespace warden::coordinator;
using warden::tests::TempDir;

using warden::tests::FlushCrash;
using warden::tests::killImage;
using warden::tests::powerLossImage;
using warden::tests::Tracking;

const storage::EnvOptions kNoSync{std::size_t{1} << 26, 16, false};
const storage::EnvOptions kSync{std::size_t{1} << 26, 16, true};

std::vector<paxos::Message> persist(paxos::LogStore& store, std::vector<paxos::Record> records) {
  paxos::Ready ready;
  ready.records = std::move(records);
  return ready.release(store.persist(ready));
}
paxos::Value valueFor(paxos::Slot slot) { return paxos::Value{false, {"v" + std::to_string(slot)}}; }
paxos::AcceptRecord accept(paxos::Slot slot, paxos::Ballot ballot = paxos::Ballot{3, 1}) {
  return paxos::AcceptRecord{slot, ballot, valueFor(slot)};
}
std::set<std::string> walFiles(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "wal")) names.insert(e.path().filename().string());
  return names;
}
std::string segmentPath(const std::string& dir, std::uint64_t firstSeq) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.wal", static_cast<unsigned long long>(firstSeq));
  return (fs::path(dir) / "wal" / name).string();
}

// Segments of 64 bytes: a 32-byte header, then a promise and an accept; the next batch rolls over.
constexpr std::size_t kTinySegments = 64;

// Seq 1 (promise) and 2 (accept of slot 1) in segment 1; seq 3 (accept of slot 2) starts segment 3
// and is torn: a power loss (or a kill -9 in a large write) while the first batch of a new segment
// was being written, so never acknowledged. Returns with the store closed.
void logWithTornFirstBatchOfSegment(const std::string& dir) {
  {
    storage::Env env(dir, kNoSync);
    LmdbLogStore store(env, kTinySegments);
    (void)store.load();
    persist(store, {paxos::PromiseRecord{paxos::Ballot{3, 1}}});
    persist(store, {accept(1)});
    REQUIRE(walFiles(dir).size() == 1);
    persist(store, {accept(2)});
    REQUIRE(walFiles(dir).size() == 2);
  }
  fs::resize_file(segmentPath(dir, 3), 32 + 5);  // the header and 5 bytes of the batch
}

}  // namespace

// ---- 1. a torn first batch of a segment: the reopened log lists that segment twice -----------

TEST_CASE("review7 a torn first batch of a new segment makes a later compaction unlink the live segment and the node refuses to start", "[review7]") {
  TempDir dir;
  logWithTornFirstBatchOfSegment(dir.path());
  {
    storage::Env env(dir.path(), kNoSync);
    LmdbLogStore store(env, kTinySegments);
    const paxos::DurableState state = store.load();
    CHECK(state.accepted.size() == 1);  // slot 2 was torn, never acknowledged
    // A compaction (the node applied slot 1): it folds, and drops the segments it covers.
    persist(store, {paxos::CompactRecord{1}});
    // The live segment (seq 3 on) must still be on disk: every later vote goes into it.
    CHECK(fs::exists(segmentPath(dir.path(), 3)));
    // A promise, acknowledged to a candidate.
    persist(store, {paxos::PromiseRecord{paxos::Ballot{4, 2}}});
  }
  // kill -9 and restart.
  storage::Env env(dir.path(), kNoSync);
  LmdbLogStore store(env, kTinySegments);
  paxos::DurableState state;
  REQUIRE_NOTHROW(state = store.load());
  CHECK(state.promised == paxos::Ballot{4, 2});
}

TEST_CASE("review7 a torn first batch of a new segment makes the log lose an acknowledged accept silently after a rollover", "[review7]") {
  TempDir dir;
  logWithTornFirstBatchOfSegment(dir.path());
  {
    storage::Env env(dir.path(), kNoSync);
    LmdbLogStore store(env, kTinySegments);
    (void)store.load();
    persist(store, {paxos::CompactRecord{1}});  // unlinks segment 3, which stays the live one
    persist(store, {accept(5)});                // acknowledged: into the unlinked file
    // The next write rolls over to segment 5 (a file with a name again); a compaction that
    // leaves slot 5 alone folds there.
    persist(store, {paxos::CompactRecord{2}});
  }
  storage::Env env(dir.path(), kNoSync);
  LmdbLogStore store(env, kTinySegments);
  paxos::DurableState state;
  REQUIRE_NOTHROW(state = store.load());
  CHECK(state.compactedUpTo == 2);
  // The acceptor voted for slot 5 and must still say so in its promises.
  REQUIRE(state.accepted.count(5) == 1);
  CHECK(state.accepted.at(5).value == valueFor(5));
}

TEST_CASE("review7 the Wal lists a segment once after reopening on a torn first batch", "[review7]") {
  TempDir dir;
  std::uint64_t id = 0;
  const auto noVisit = [](std::uint64_t, std::uint64_t, std::string_view) {};
  {
    storage::Wal wal(dir.path(), 0, 0, false, noVisit, 64);
    id = wal.id();
    wal.append(std::string(20, 'a'));  // 32 + 16 + 20 >= 64: the next append rolls over
    wal.append(std::string(20, 'b'));  // the first batch of segment 2
  }
  fs::resize_file(fs::path(dir.path()) / "0000000000000002.wal", 32 + 5);  // torn
  storage::Wal wal(dir.path(), id, 0, false, noVisit, 64);
  REQUIRE(wal.segments().size() == 2);
  CHECK(wal.segments()[0].firstSeq == 1);
  CHECK(wal.segments()[1].firstSeq == 2);
  // Whatever the owner says it no longer needs, the live segment's file stays.
  wal.dropBefore([](const storage::Wal::Segment&) { return true; });
  CHECK(fs::exists(fs::path(dir.path()) / "0000000000000002.wal"));
}

// ---- 2. a batch read from the page cache is acted on without ever being flushed --------------

TEST_CASE("review7 an accept written but not flushed before a kill is acknowledged again after the restart and lost by a power loss", "[review7]") {
  TempDir dir;
  TempDir images;
  Tracking tracking(dir.path());
  {
    storage::Env env(dir.path(), kSync);
    LmdbLogStore store(env);
    (void)store.load();
    persist(store, {paxos::PromiseRecord{paxos::Ballot{3, 1}}});
    // The process is killed inside the accept's fdatasync: its batch is in the page cache only.
    tracking.t.before = [](const std::string& path) {
      if (path.find("/wal/") != std::string::npos) throw FlushCrash{};
    };
    CHECK_THROWS_AS(persist(store, {accept(1)}), FlushCrash);
    tracking.t.before = nullptr;
  }
  // The restarted process reads it back and votes as it says.
  std::vector<paxos::Message> sent;
  {
    storage::Env env(dir.path(), kSync);
    LmdbLogStore store(env);
    paxos::DurableState state = store.load();
    REQUIRE(state.accepted.count(1) == 1);
    paxos::ReplicaConfig config;
    config.id = 2;
    config.members = {1, 2, 3};
    warden::tests::SplitMixRandom random;
    paxos::Replica replica(config, state, 0, false, random, 10'000'000);
    // The leader's Accept again (it retransmits until it hears a majority).
    paxos::Ready ready = replica.step(paxos::Message{1, 2, paxos::Accept{paxos::Ballot{3, 1}, 1, valueFor(1), 0, 0}}, 10'000'001);
    CHECK(ready.records.empty());  // the acceptor holds it already: nothing to write, nothing flushed
    sent = ready.release(store.persist(ready));
  }
  REQUIRE(sent.size() == 1);
  const auto* reply = std::get_if<paxos::Accepted>(&sent[0].payload);
  REQUIRE(reply != nullptr);
  CHECK(reply->ok);  // the vote counts towards choosing slot 1
  // Power loss.
  const std::string image = images.path() + "/power";
  powerLossImage(tracking.t, image);
  warden::tests::stopTracking();
  storage::Env env(image, kNoSync);
  LmdbLogStore store(env);
  paxos::DurableState state;
  REQUIRE_NOTHROW(state = store.load());
  CHECK(state.promised == paxos::Ballot{3, 1});
  CHECK(state.accepted.count(1) == 1);  // an acknowledged vote must survive
}

// ---- 3. wal/ itself: is its name in the data directory durable before data.mdb names the log? --

TEST_CASE("review7 a power loss right after the first start keeps the wal directory that data.mdb names", "[review7]") {
  TempDir dir;
  TempDir images;
  Tracking tracking(dir.path());
  {
    storage::Env env(dir.path(), kSync);
    LmdbLogStore store(env);
    (void)store.load();  // makes wal/, its first segment, and commits wal_id durably
    persist(store, {paxos::LearnerRecord{false}, paxos::PromiseRecord{paxos::Ballot{3, 1}}});
  }
  const std::string image = images.path() + "/power";
  powerLossImage(tracking.t, image, /*strictWalEntry=*/true);
  warden::tests::stopTracking();
  CHECK(fs::exists(fs::path(image) / "wal"));
  storage::Env env(image, kNoSync);
  LmdbLogStore store(env);
  paxos::DurableState state;
  REQUIRE_NOTHROW(state = store.load());
  CHECK(state.promised == paxos::Ballot{3, 1});
}

// ---- 4. a sweep: power loss or kill -9 at every flush of a run with rollovers and compactions --

namespace {
struct Taken {
  std::string dir;
  std::size_t acked;  // persists returned when the image was taken
  bool power;
};
std::uint64_t appliedIn(storage::Env& env) {
  storage::Txn txn = storage::Txn::write(env);
  const MDB_dbi db = txn.openDb("review7_applied");
  auto v = txn.get(db, "applied");
  const std::uint64_t applied = v ? storage::decodeU64Key(*v) : 0;
  txn.commit();
  return applied;
}
}  // namespace

TEST_CASE("review7 a power loss or a kill at every flush of a run with rollovers and compactions keeps every acknowledged record", "[review7]") {
  TempDir dir;
  TempDir images;
  std::vector<Taken> taken;
  std::vector<paxos::DurableState> ackedStates(1);  // [n]: after n persists returned
  {
    Tracking tracking(dir.path());
    auto take = [&] {
      const std::size_t k = taken.size();
      const std::string power = images.path() + "/" + std::to_string(k) + "p";
      const std::string kill = images.path() + "/" + std::to_string(k) + "k";
      powerLossImage(tracking.t, power);
      taken.push_back({power, ackedStates.size() - 1, true});
      if (fs::exists(fs::path(dir.path()) / "data.mdb") && fs::exists(fs::path(dir.path()) / "wal")) {
        killImage(dir.path(), kill);
        taken.push_back({kill, ackedStates.size() - 1, false});
      }
    };
    tracking.t.after = [&](const std::string&) { take(); };
    storage::Env env(dir.path(), kSync);
    LmdbLogStore store(env, 200);
    (void)store.load();
    auto step = [&](std::vector<paxos::Record> records) {
      paxos::DurableState next = ackedStates.back();
      for (const auto& r : records) paxos::applyRecord(next, r);
      persist(store, std::move(records));
      ackedStates.push_back(std::move(next));
    };
    auto applyUpTo = [&](paxos::Slot slot) {  // NodeCore's apply: a commit without a flush
      storage::Txn txn = storage::Txn::write(env);
      const MDB_dbi db = txn.openDb("review7_applied");
      txn.put(db, "applied", storage::encodeU64Key(slot));
      txn.commitWithoutSync();
    };
    step({paxos::LearnerRecord{false}});
    step({paxos::PromiseRecord{paxos::Ballot{3, 1}}});
    paxos::Ballot ballot{3, 1};
    for (paxos::Slot s = 1; s <= 60; ++s) {
      step({accept(s, ballot)});
      if (s % 3 == 0) applyUpTo(s);
      if (s % 12 == 0) step({paxos::CompactRecord{s - 1}});  // above the apply before the last
      if (s == 30) {
        ballot = paxos::Ballot{5, 2};
        step({paxos::PromiseRecord{ballot}, paxos::AcceptRecord{29, ballot, paxos::Value{false, {"w29"}}}});
      }
    }
  }
  INFO("images: " << taken.size());
  REQUIRE(taken.size() > 100);
  for (const auto& image : taken) {
    INFO("image " << image.dir << " after " << image.acked << " persists");
    storage::Env env(image.dir, kNoSync);
    LmdbLogStore store(env, 200);
    paxos::DurableState state;
    REQUIRE_NOTHROW(state = store.load());
    const paxos::DurableState& acked = ackedStates[image.acked];
    const paxos::DurableState& next = ackedStates[std::min(image.acked + 1, ackedStates.size() - 1)];
    CHECK(state.promised >= acked.promised);
    CHECK(state.compactedUpTo >= acked.compactedUpTo);
    if (acked.started) CHECK((state.started && state.learner == acked.learner));
    for (const auto& [slot, value] : acked.accepted) {
      if (slot <= state.compactedUpTo) continue;
      REQUIRE(state.accepted.count(slot) == 1);
      const bool asAcked = state.accepted.at(slot).ballot == value.ballot && state.accepted.at(slot).value == value.value;
      const bool asNext = next.accepted.count(slot) == 1 && state.accepted.at(slot).ballot == next.accepted.at(slot).ballot;
      CHECK((asAcked || asNext));
    }
    // The applied state the compaction relies on is durable before it.
    CHECK(appliedIn(env) >= state.compactedUpTo);
  }
}

// ---- 5. the newest segment's header lost by a power loss while it was being made --------------

TEST_CASE("review7 a newest segment whose header never reached the disk is a crash while making it not a corrupt log", "[review7]") {
  TempDir dir;
  std::uint64_t id = 0;
  const auto noVisit = [](std::uint64_t, std::uint64_t, std::string_view) {};
  {
    storage::Wal wal(dir.path(), 0, 0, false, noVisit, 64);
    id = wal.id();
    wal.append(std::string(20, 'a'));  // the next append rolls over
  }
  // startSegment's open(O_CREAT|O_TRUNC) + pwrite(header), and the power went before its
  // fdatasync: on a file system that may expose the new size before the data (ext4
  // data=writeback, for one), the file holds 32 zero bytes. No batch was ever written into it.
  warden::tests::writeWholeFile((fs::path(dir.path()) / "0000000000000002.wal").string(), std::string(32, '\0'));
  std::vector<std::uint64_t> seqs;
  REQUIRE_NOTHROW(storage::Wal(dir.path(), id, 0, false,
                               [&](std::uint64_t, std::uint64_t seq, std::string_view) { seqs.push_back(seq); }, 64));
  CHECK(seqs == std::vector<std::uint64_t>{1});
}
