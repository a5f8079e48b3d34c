#pragma once
// A small crash-consistency harness for the storage tests: fdatasync() and fsync() are interposed
// (tests/FlushTracker.cpp, linked into each test executable that uses it: its definitions win
// over libc's, for our own code and for liblmdb alike). Each call passes through to the kernel
// and, while a Tracking is alive, records what it made durable under the tracked data directory:
// a file's bytes, or a directory's entries. A "power loss" is then an image of the directory
// built from that record alone: every file as of its last flush, and in wal/ only the names
// present at that directory's last fsync (an unlink or a create not followed by one may be
// undone). A "kill -9" is a plain copy of the files (the page cache survives). data.mdb is always
// kept (its own name is LMDB's business).

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace warden::tests {

struct FlushCrash {};  // thrown from an interposed flush (by `before`): the process dies right there

struct Tracker {
  std::string root;                                      // canonical data directory
  std::map<std::string, std::string> content;            // file -> bytes at its last flush
  std::map<std::string, std::set<std::string>> entries;  // directory -> names at its last fsync
  std::vector<std::string> events;                       // flushed paths, in order
  // Called around each flush of a path under root; `before` may throw FlushCrash.
  std::function<void(const std::string& path)> before;
  std::function<void(const std::string& path)> after;
};

// Tracks flushes under `root` for its lifetime (one at a time).
struct Tracking {
  Tracker t;
  explicit Tracking(const std::string& root);
  ~Tracking();
  Tracking(const Tracking&) = delete;
  Tracking& operator=(const Tracking&) = delete;
};
void stopTracking();  // before a Tracking's end, when a test wants no more records

// The data directory after a power loss now: see the top of the file. `strictWalEntry`: wal/
// survives only if the data directory was fsynced after it was made.
void powerLossImage(const Tracker& t, const std::string& into, bool strictWalEntry = false);
// The data directory after kill -9 now: the files as they are.
void killImage(const std::string& from, const std::string& into);

std::string readWholeFile(const std::string& path);
int flushThroughTracker(long call, int fd);  // the interposed calls' body
void writeWholeFile(const std::string& path, const std::string& bytes);

}  // namespace warden::tests
