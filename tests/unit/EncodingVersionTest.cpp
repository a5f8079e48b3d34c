// The encoding version (coordinator/EncodingVersion.h): the bytes of every encoding are pinned
// to it, so that no encoding changes without a new version; and a data directory a binary of a
// higher version opened is refused.

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "coordinator/Command.h"
#include "coordinator/EncodingVersion.h"
#include "coordinator/LmdbLogStore.h"
#include "coordinator/storage/Wal.h"
#include "coordinator/Node.h"
#include "tests/TempDir.h"
#include "tests/fuzz/EncodingSamples.h"
#include "tests/unit/StoreFixture.h"

using namespace warden;
namespace storage = warden::coordinator::storage;
using coordinator::kEncodingVersion;

namespace {

// FNV-1a over every sample's name and bytes, each length-prefixed so that no two lists collide
// by moving bytes across a boundary.
std::uint64_t fingerprint(const std::vector<tests::Sample>& samples) {
  std::uint64_t h = 0xcbf29ce484222325;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : std::to_string(bytes.size()) + ":") h = (h ^ c) * 0x100000001b3;
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3;
  };
  for (const auto& sample : samples) {
    mix(sample.name);
    mix(sample.bytes);
  }
  return h;
}

// What each encoding version's bytes fingerprint to, since they were pinned.
struct Pins {
  std::uint64_t samples;  // one sample of each record, command and peer frame (EncodingSamples.cpp)
  std::uint64_t state;    // every row of every replicated table after stateScript(), as snapshots carry them
  std::uint64_t wal;      // a write-ahead log segment holding acceptorRecords(), its random id masked
};
const std::map<std::uint32_t, Pins> kPinned = {
    {2, {0x558b5f73c9ebe47d, 0xa26861128724f18b, 0xc26a2afcb616ee10}},
};

std::string hex(std::uint64_t v) {
  char text[19];
  std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(v));
  return text;
}

const char* const kWhatToDo =
    "If an encoding changed (or what apply makes of an entry), members of the old and the new binary would "
    "apply the same entry differently: raise kEncodingVersion (coordinator/EncodingVersion.h, with a line in its "
    "history) and pin the new fingerprints under it here. If you only added samples, pin them under the same version.";

std::string storedVersion(const std::string& directory) {
  storage::Env env(directory, storage::EnvOptions{std::size_t{1} << 30, 16, false});
  storage::Txn txn = storage::Txn::write(env);
  const MDB_dbi table = txn.openDb("encoding");
  auto v = txn.get(table, "version");
  return v ? std::string(*v) : "";
}

void storeVersion(const std::string& directory, const std::string& version) {
  storage::Env env(directory, storage::EnvOptions{std::size_t{1} << 30, 16, false});
  storage::Txn txn = storage::Txn::write(env);
  txn.put(txn.openDb("encoding"), "version", version);
  txn.commit();
}

coordinator::NodeOptions nodeIn(const std::string& directory) {
  coordinator::NodeOptions options;
  options.dataDir = directory;
  options.fsync = false;
  options.mapSize = std::size_t{1} << 30;
  return options;
}

}  // namespace

TEST_CASE("the bytes of every encoding are those pinned to the encoding version") {
  REQUIRE(kPinned.count(kEncodingVersion) == 1);
  const Pins& pinned = kPinned.at(kEncodingVersion);

  auto samples = tests::recordSamples();
  auto frames = tests::peerFrameSamples();
  samples.insert(samples.end(), frames.begin(), frames.end());
  const std::uint64_t sampleBytes = fingerprint(samples);

  // Stored state: node records, sessions, locks, meta values, the exactly-once memory and the
  // idempotency table's stored results, each as a snapshot row.
  tests::StoreFixture store;
  std::uint64_t stamp = 1'700'000'000'000;
  std::string statuses;  // what the script did: most of it succeeds, some fails on purpose
  for (const auto& entry : tests::stateScript()) {
    for (const auto& r : store.applyAll(entry, stamp += 1000)) statuses += std::to_string(static_cast<int>(r.status)) + " ";
  }
  CHECK(statuses == "0 0 0 0 0 4 0 0 16 0 0 17 0 0 0 0 0 0 0 ");
  {
    auto txn = storage::Txn::write(store.env());
    store.stateMachine().admitRequest(txn, 2, 0x9e3779b97f4a7c15, 17, 7, stamp + 5000, stamp);
    store.stateMachine().admitRequest(txn, 3, 0x9e3779b97f4a7c15, 18, 7);
    txn.commit();
  }
  std::vector<tests::Sample> rows;
  for (auto& row : store.rows()) rows.push_back({std::to_string(row.table) + "/" + row.key, row.value});
  const std::uint64_t stateBytes = fingerprint(rows);

  // The acceptor's log: its records, and the segment's framing around them.
  tests::TempDir dir;
  std::string segment;
  {
    storage::Wal wal(dir.path(), 0, 0, false, {});
    wal.append(coordinator::encodeRecords(tests::acceptorRecords()));
    wal.append(coordinator::encodeRecords({coordinator::paxos::CompactRecord{12}}));
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      std::ifstream in(entry.path(), std::ios::binary);
      segment.assign(std::istreambuf_iterator<char>(in), {});
    }
  }
  REQUIRE(segment.size() > 32);
  segment.replace(8, 8, 8, '\0');    // the log's random id...
  segment.replace(24, 4, 4, '\0');   // ...and the header's CRC over it
  segment.erase(segment.find_last_not_of('\0') + 1);  // the zeros written ahead
  const std::uint64_t walBytes = fingerprint({{"segment", segment}});

  INFO("fingerprints at encoding version " << kEncodingVersion << ": samples " << hex(sampleBytes) << ", state "
       << hex(stateBytes) << ", wal " << hex(walBytes) << ". " << kWhatToDo);
  CHECK(sampleBytes == pinned.samples);
  CHECK(stateBytes == pinned.state);
  CHECK(walBytes == pinned.wal);
}

TEST_CASE("the samples hold every command type, keyed forms included, and no name twice") {
  std::set<std::string> names;
  for (const auto& sample : tests::recordSamples()) CHECK(names.insert(sample.name).second);
  for (const char* name : {"command_txn", "command_txn_limited", "command_txn_keyed", "command_session_create_keyed",
                           "command_session_close", "command_session_close_keyed", "command_session_expire",
                           "command_session_epoch", "command_tick", "command_lock_acquire", "command_lock_acquire_keyed",
                           "command_lock_release_keyed", "command_lock_withdraw", "command_lock_delay_end",
                           "command_election_campaign", "command_election_proclaim_keyed",
                           "command_election_resign_keyed"}) {
    CHECK(names.count(name) == 1);
  }
  // Each command sample decodes whole and encodes back to its bytes.
  for (const auto& sample : tests::recordSamples()) {
    if (sample.name.rfind("command_", 0) != 0) continue;
    INFO(sample.name);
    const std::string bytes = sample.bytes.substr(1);
    coordinator::Decoder in(bytes);
    const coordinator::Command command = coordinator::decodeCommand(in);
    CHECK(in.done());
    coordinator::Encoder out;
    coordinator::encodeCommand(out, command);
    CHECK(out.data() == bytes);
  }
}

TEST_CASE("a data directory takes this binary's encoding version, and one a newer binary opened is refused") {
  tests::TempDir dir;
  SECTION("a new directory records this version") {
    { coordinator::Node node(nodeIn(dir.path())); }
    CHECK(storedVersion(dir.path()) == std::to_string(kEncodingVersion));
  }
  SECTION("one of version 1's binaries (no record, or 1) is read, and then records this version") {
    const std::string before = GENERATE(std::string(), std::string("1"));
    if (!before.empty()) storeVersion(dir.path(), before);
    { coordinator::Node node(nodeIn(dir.path())); }
    CHECK(storedVersion(dir.path()) == std::to_string(kEncodingVersion));
  }
  SECTION("one a binary of a higher version opened is refused, and its record stays") {
    const std::string newer = std::to_string(kEncodingVersion + 1);
    storeVersion(dir.path(), newer);
    CHECK_THROWS_WITH(coordinator::Node(nodeIn(dir.path())),
                      Catch::Contains("was opened by a Warden of encoding version " + newer) &&
                          Catch::Contains("this binary speaks version " + std::to_string(kEncodingVersion)));
    CHECK(storedVersion(dir.path()) == newer);
  }
}
