#pragma once
// An append-only write-ahead log of opaque batches, kept in segment files in one directory. It
// exists for the one flush a vote costs: an append and an fdatasync, where an LMDB commit needs
// two (its pages, then the meta page that publishes them).
//
// Each batch carries a sequence number, one more than the batch before it, and a CRC over its
// sequence number and payload. A crash mid-append leaves a torn batch at the end of the last
// segment; it was never acknowledged (the flush did not return), and replay ends before it. A
// reopened log never writes after a torn tail: it starts a new segment. A segment grows by
// zeros written ahead of its batches (so that an append's flush is of data alone); zeros after
// the last batch are a clean end.
//
// Segment files are named by the first sequence number they hold and begin with a header naming
// the log (`id`), so a segment of another log, or a missing one, is noticed instead of silently
// replaying a hole. What a segment holds is the owner's business: it asks to drop those it no
// longer needs (dropBefore), and the current segment is never dropped.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace warden::coordinator::storage {

class Wal {
 public:
  struct Segment {
    std::uint64_t firstSeq = 0;
    std::uint64_t lastSeq = 0;  // firstSeq - 1 while empty
  };
  // `segment`: the first sequence number of the segment the batch is in.
  using Visit = std::function<void(std::uint64_t segment, std::uint64_t seq, std::string_view payload)>;

  // Opens the log in `directory` (created if missing) and replays every intact batch, oldest
  // first, through `visit`. The owner has captured every batch up to `foldedSeq` elsewhere.
  // With `id` 0 nobody vouches for what the directory holds: it is cleared and a new log with a
  // fresh id begins after `foldedSeq`. Otherwise the segments must belong to log `id` and be
  // contiguous from a first sequence number at most foldedSeq + 1, or the constructor throws
  // LmdbError(MDB_CORRUPTED): a hole would be acceptor state silently forgotten.
  // `sync` false: no fdatasync (a machine crash may lose the latest batches).
  Wal(std::string directory, std::uint64_t id, std::uint64_t foldedSeq, bool sync, const Visit& visit,
      std::size_t segmentBytes = std::size_t{64} << 20);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  std::uint64_t id() const { return id_; }
  std::uint64_t nextSeq() const { return nextSeq_; }
  // Writes one batch and, with `flush`, flushes it; returns its sequence number. Throws
  // LmdbError on failure. The caller's thread only (one writer).
  std::uint64_t append(std::string_view payload, bool flush = true);
  // Makes every batch appended before the call durable. Safe from another thread while the
  // writer appends (a flush behind the writer's back): it flushes the segment current when it
  // began, and a change of segment flushes the old one before it begins the next.
  void flushWritten();
  // Deletes every segment but the current one for which `done(segment)` holds.
  void dropBefore(const std::function<bool(const Segment&)>& done);
  const std::vector<Segment>& segments() const { return segments_; }

 private:
  void startSegment();
  void extend(std::uint64_t end);  // zeros up to at least `end`, for the caller's flush to make durable
  void replay(std::uint64_t foldedSeq, const Visit& visit);

  std::string directory_;
  std::uint64_t id_;
  std::uint64_t nextSeq_;
  bool sync_;
  std::size_t segmentBytes_;
  std::vector<Segment> segments_;
  // The current (last) segment's descriptor, shared with a flush on another thread, so that a
  // change of segment cannot close it under that flush.
  struct File {
    int fd = -1;
    explicit File(int f) : fd(f) {}
    ~File();
  };
  std::shared_ptr<File> file_;
  int fd() const { return file_ ? file_->fd : -1; }
  void useFile(int fd);  // makes `fd` the current segment's
  std::mutex mutex_;              // file_ (its change), writtenSeq_, flushedSeq_
  std::uint64_t writtenSeq_ = 0;  // the last batch whose bytes are all in file_ (or before)
  std::uint64_t flushedSeq_ = 0;  // the last batch a flush made durable
  std::uint64_t offset_ = 0;     // where the next batch goes
  std::uint64_t allocated_ = 0;  // the file's size: zeros from offset_ on
  std::string batch_;             // the append's bytes, kept for the next append
};

}  // namespace warden::coordinator::storage
