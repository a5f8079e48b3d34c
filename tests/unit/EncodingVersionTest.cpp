// The encoding version (coordinator/EncodingVersion.h): the bytes of every encoding are pinned
// to it, so that no encoding changes without a new version; and a data directory a binary of a
// higher version opened is refused.

#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <set>

#include "coordinator/Command.h"
#include "coordinator/EncodingVersion.h"
#include "coordinator/Node.h"
#include "tests/TempDir.h"
#include "tests/fuzz/EncodingSamples.h"

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

// The fingerprint of the samples under each encoding version since they were pinned.
const std::map<std::uint32_t, std::uint64_t> kPinned = {
    {2, 0x0dafc3f8fe3824eb},
};

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
  auto samples = tests::recordSamples();
  auto frames = tests::peerFrameSamples();
  samples.insert(samples.end(), frames.begin(), frames.end());
  const std::uint64_t now = fingerprint(samples);
  char hex[19];
  std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(now));
  INFO("the encodings' fingerprint is " << hex << " at encoding version " << kEncodingVersion
       << ". If an encoding changed, members of the old and the new binary would apply the same entry "
          "differently: raise kEncodingVersion (coordinator/EncodingVersion.h, with a line in its history) "
          "and pin the new fingerprint under it here. If you only added samples, pin it under the same version.");
  REQUIRE(kPinned.count(kEncodingVersion) == 1);
  CHECK(now == kPinned.at(kEncodingVersion));
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
