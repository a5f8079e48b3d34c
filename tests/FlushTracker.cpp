#include "tests/FlushTracker.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace warden::tests {

namespace {

namespace fs = std::filesystem;

Tracker* tracker = nullptr;

std::string trackedPath(int fd) {
  if (tracker == nullptr) return {};
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[4096];
  const ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n <= 0) return {};
  std::string path(target, static_cast<std::size_t>(n));
  if (path.compare(0, tracker->root.size(), tracker->root) != 0) return {};
  return path;
}

void recordFlush(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(path, ec)) names.insert(e.path().filename().string());
    tracker->entries[path] = std::move(names);
  } else {
    tracker->content[path] = readWholeFile(path);
  }
  tracker->events.push_back(path);
}

int interposedFlush(long call, int fd) {
  const std::string path = trackedPath(fd);
  if (!path.empty() && tracker->before) tracker->before(path);
  const int rc = static_cast<int>(::syscall(call, fd));
  if (rc == 0 && !path.empty() && tracker != nullptr) {
    recordFlush(path);
    if (tracker->after) tracker->after(path);
  }
  return rc;
}

}  // namespace

Tracking::Tracking(const std::string& root) {
  t.root = fs::canonical(root).string();
  tracker = &t;
}

Tracking::~Tracking() { tracker = nullptr; }

void stopTracking() { tracker = nullptr; }

std::string readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeWholeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void powerLossImage(const Tracker& t, const std::string& into, bool strictWalEntry) {
  fs::create_directories(into);
  if (auto mdb = t.content.find(t.root + "/data.mdb"); mdb != t.content.end()) {
    writeWholeFile((fs::path(into) / "data.mdb").string(), mdb->second);
  }
  const auto rootEntries = t.entries.find(t.root);
  if (strictWalEntry && (rootEntries == t.entries.end() || rootEntries->second.count("wal") == 0)) return;
  fs::create_directories(fs::path(into) / "wal");
  const auto walEntries = t.entries.find(t.root + "/wal");
  if (walEntries == t.entries.end()) return;
  for (const auto& name : walEntries->second) {
    const auto bytes = t.content.find(t.root + "/wal/" + name);
    writeWholeFile((fs::path(into) / "wal" / name).string(), bytes == t.content.end() ? std::string() : bytes->second);
  }
}

void killImage(const std::string& from, const std::string& into) {
  fs::create_directories(fs::path(into) / "wal");
  fs::copy_file(fs::path(from) / "data.mdb", fs::path(into) / "data.mdb");
  for (const auto& e : fs::directory_iterator(fs::path(from) / "wal")) {
    fs::copy_file(e.path(), fs::path(into) / "wal" / e.path().filename());
  }
}

}  // namespace warden::tests

namespace warden::tests {
int flushThroughTracker(long call, int fd) { return interposedFlush(call, fd); }
}  // namespace warden::tests

extern "C" int fdatasync(int fd) { return warden::tests::flushThroughTracker(SYS_fdatasync, fd); }
extern "C" int fsync(int fd) { return warden::tests::flushThroughTracker(SYS_fsync, fd); }
