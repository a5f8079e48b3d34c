#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "coordinator/storage/Lmdb.h"
#include "coordinator/storage/Wal.h"
#include "tests/TempDir.h"

using warden::coordinator::storage::LmdbError;
using warden::coordinator::storage::Wal;
using warden::tests::TempDir;
namespace fs = std::filesystem;

namespace {

struct Replayed {
  std::vector<std::pair<std::uint64_t, std::string>> batches;  // seq, payload
  Wal::Visit visit() {
    return [this](std::uint64_t, std::uint64_t seq, std::string_view payload) { batches.emplace_back(seq, payload); };
  }
};

std::vector<fs::path> segmentFiles(const std::string& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// A new log in `dir` holding batches "b1".."bN"; returns its id.
std::uint64_t makeLog(const std::string& dir, int n, std::size_t segmentBytes = 1 << 20) {
  Replayed none;
  Wal wal(dir, 0, 0, false, none.visit(), segmentBytes);
  for (int i = 1; i <= n; ++i) CHECK(wal.append("b" + std::to_string(i)) == static_cast<std::uint64_t>(i));
  return wal.id();
}

}  // namespace

TEST_CASE("the write-ahead log replays every batch it flushed in order across reopenings and segments") {
  TempDir dir;
  const std::uint64_t id = makeLog(dir.path(), 50, 200);  // a segment holds a few batches
  CHECK(segmentFiles(dir.path()).size() > 5);
  {
    Replayed r;
    Wal wal(dir.path(), id, 0, false, r.visit(), 200);
    REQUIRE(r.batches.size() == 50);
    for (std::size_t i = 0; i < 50; ++i) {
      CHECK(r.batches[i].first == i + 1);
      CHECK(r.batches[i].second == "b" + std::to_string(i + 1));
    }
    CHECK(wal.append("after") == 51);
  }
  Replayed r;
  Wal wal(dir.path(), id, 0, false, r.visit(), 200);
  REQUIRE(r.batches.size() == 51);
  CHECK(r.batches.back() == std::make_pair(std::uint64_t{51}, std::string("after")));
}

TEST_CASE("a torn append at the end of the log is dropped and the log goes on after the intact batches") {
  TempDir dir;
  const std::uint64_t id = makeLog(dir.path(), 3);
  const fs::path segment = segmentFiles(dir.path()).back();
  // The segment's header (32 bytes), then three batches of 16 + 2 bytes, then zeros made ahead.
  const std::uintmax_t end = 32 + 3 * (16 + 2);
  REQUIRE(fs::file_size(segment) > end);
  SECTION("cut short") { fs::resize_file(segment, end - 1); }
  SECTION("its end zeros among the zeros made ahead") {
    fs::resize_file(segment, end - 2);
    fs::resize_file(segment, end + 4096);
  }
  SECTION("a flipped byte in its payload") {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(end - 1));
    f.put('x');
  }
  {
    Replayed r;
    Wal wal(dir.path(), id, 0, false, r.visit());
    REQUIRE(r.batches.size() == 2);
    CHECK(wal.append("new3") == 3);  // into a new segment, never after the torn bytes
    CHECK(wal.segments().size() == 2);
  }
  Replayed r;
  Wal wal(dir.path(), id, 0, false, r.visit());
  REQUIRE(r.batches.size() == 3);
  CHECK(r.batches[2].second == "new3");
}

TEST_CASE("a write-ahead log with a hole or a foreign segment refuses to open") {
  TempDir dir;
  const std::uint64_t id = makeLog(dir.path(), 30, 200);
  auto files = segmentFiles(dir.path());
  REQUIRE(files.size() > 3);
  Replayed r;
  SECTION("a middle segment gone") {
    fs::remove(files[2]);
    CHECK_THROWS_AS(Wal(dir.path(), id, 0, false, r.visit(), 200), LmdbError);
  }
  SECTION("the first segment gone while nothing is folded") {
    fs::remove(files[0]);
    CHECK_THROWS_AS(Wal(dir.path(), id, 0, false, r.visit(), 200), LmdbError);
  }
  SECTION("every segment gone") {
    for (const auto& f : files) fs::remove(f);
    CHECK_THROWS_AS(Wal(dir.path(), id, 0, false, r.visit(), 200), LmdbError);
  }
  SECTION("damage inside an earlier segment") {
    std::fstream f(files[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('x');
    f.close();
    CHECK_THROWS_AS(Wal(dir.path(), id, 0, false, r.visit(), 200), LmdbError);
  }
  SECTION("another log's id") { CHECK_THROWS_AS(Wal(dir.path(), id + 1, 0, false, r.visit(), 200), LmdbError); }
  SECTION("but segments below what the owner folded may be missing") {
    fs::remove(files[0]);
    fs::remove(files[2]);  // unlinks of dropped segments reach the disk in any order
    Replayed rest;
    Wal wal(dir.path(), id, 30, false, rest.visit(), 200);
    CHECK(wal.append("x") == 31);
  }
}

TEST_CASE("a write-ahead log nobody vouches for is cleared and begins after what the owner folded") {
  TempDir dir;
  makeLog(dir.path(), 5);
  Replayed r;
  Wal wal(dir.path(), 0, 41, false, r.visit());
  CHECK(r.batches.empty());
  CHECK(wal.append("x") == 42);
  CHECK(segmentFiles(dir.path()).size() == 1);
}

TEST_CASE("dropping segments keeps the current one and a contiguous rest") {
  TempDir dir;
  const std::uint64_t id = makeLog(dir.path(), 40, 200);
  Replayed r;
  Wal wal(dir.path(), id, 0, false, r.visit(), 200);
  const std::size_t before = wal.segments().size();
  wal.dropBefore([](const Wal::Segment& s) { return s.lastSeq <= 20; });
  CHECK(wal.segments().size() < before);
  CHECK(wal.segments().front().firstSeq <= 21);
  wal.dropBefore([](const Wal::Segment&) { return true; });
  CHECK(wal.segments().size() == 1);
  CHECK(segmentFiles(dir.path()).size() == 1);
  CHECK(wal.append("x") == 41);
  Replayed again;
  Wal reopened(dir.path(), id, 40, false, again.visit(), 200);
  CHECK(again.batches.back().first == 41);
}

TEST_CASE("a log reopened after a clean end goes on in the same segment over the zeros made ahead") {
  TempDir dir;
  const std::uint64_t id = makeLog(dir.path(), 3);
  REQUIRE(segmentFiles(dir.path()).size() == 1);
  const std::uintmax_t size = fs::file_size(segmentFiles(dir.path()).back());
  for (int restart = 0; restart < 3; ++restart) {
    Replayed r;
    Wal wal(dir.path(), id, 0, false, r.visit());
    CHECK(r.batches.size() == static_cast<std::size_t>(3 + restart));
    CHECK(wal.append("more") == static_cast<std::uint64_t>(4 + restart));
  }
  CHECK(segmentFiles(dir.path()).size() == 1);
  CHECK(fs::file_size(segmentFiles(dir.path()).back()) == size);  // written into the zeros
}
