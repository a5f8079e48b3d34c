#include "coordinator/storage/Wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "coordinator/storage/Crc32.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator::storage {

namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'W', 'R', 'D', 'N', 'W', 'A', 'L', '1'};
constexpr std::size_t kHeaderBytes = 32;  // magic, id, first sequence number, crc, padding
constexpr std::size_t kBatchHeaderBytes = 16;  // length, crc, sequence number
// Far above any batch the node writes (a Ready's records): a length beyond it is garbage.
constexpr std::uint32_t kMaxBatchBytes = 1u << 30;
constexpr std::size_t kKeptBufferBytes = 1u << 20;  // an append's buffer kept for the next one

void put32(char* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>(v >> (8 * i));
}
void put64(char* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get32(const char* at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}
std::uint64_t get64(const char* at) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}

[[noreturn]] void fail(const std::string& what, int code) {
  throw LmdbError(("write-ahead log: " + what).c_str(), code);
}
[[noreturn]] void failErrno(const std::string& what) { fail(what + ": " + std::strerror(errno), errno); }

std::string segmentName(std::uint64_t firstSeq) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.wal", static_cast<unsigned long long>(firstSeq));
  return name;
}

void writeAll(int fd, const std::string& bytes, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) failErrno("write");
    done += static_cast<std::size_t>(n);
  }
}

void syncFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) failErrno("open " + path.string());
  const int rc = ::fdatasync(fd);
  ::close(fd);
  if (rc != 0) failErrno("fdatasync " + path.string());
}

void syncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) failErrno("open " + directory);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) failErrno("fsync " + directory);
}

std::string readFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) failErrno("open " + path.string());
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      failErrno("read " + path.string());
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return bytes;
}

}  // namespace

Wal::Wal(std::string directory, std::uint64_t id, std::uint64_t foldedSeq, bool sync, const Visit& visit,
         std::size_t segmentBytes)
    : directory_(std::move(directory)), id_(id), nextSeq_(foldedSeq + 1), sync_(sync), segmentBytes_(segmentBytes) {
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec) fail("cannot create " + directory_ + ": " + ec.message(), EIO);
  if (id_ == 0) {
    // Nobody vouches for what is here (a first start, or a data directory whose LMDB file was
    // wiped while this stayed): it describes no state the owner has, so it goes.
    for (const auto& entry : fs::directory_iterator(directory_)) fs::remove(entry.path());
    std::random_device device;
    while (id_ == 0) id_ = (std::uint64_t{device()} << 32) | device();
    startSegment();
    // The directory's own entry too, before the owner names this log (found by review 7: a
    // power loss could keep the name and lose the directory).
    if (sync_) syncDirectory(fs::path(directory_).parent_path().string());
    return;
  }
  replay(foldedSeq, visit);
  if (sync_) syncDirectory(directory_);
}

Wal::~Wal() = default;

Wal::File::~File() {
  if (fd >= 0) ::close(fd);
}

void Wal::useFile(int fd) {
  auto file = std::make_shared<File>(fd);
  std::lock_guard lock(mutex_);
  file_ = std::move(file);
}

void Wal::flushWritten() {
  if (!sync_) return;
  std::shared_ptr<File> file;
  std::uint64_t upTo = 0;
  {
    std::lock_guard lock(mutex_);
    upTo = writtenSeq_;
    if (upTo <= flushedSeq_ || !file_) return;
    file = file_;
  }
  if (::fdatasync(file->fd) != 0) failErrno("fdatasync");
  std::lock_guard lock(mutex_);
  flushedSeq_ = std::max(flushedSeq_, upTo);
}

void Wal::replay(std::uint64_t foldedSeq, const Visit& visit) {
  std::vector<std::pair<std::uint64_t, fs::path>> files;
  for (const auto& entry : fs::directory_iterator(directory_)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 20 || name.substr(16) != ".wal" ||
        name.find_first_not_of("0123456789abcdef") != 16) {
      continue;
    }
    files.emplace_back(std::stoull(name.substr(0, 16), nullptr, 16), entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("no segment in " + directory_ + " (was it emptied?)", EUCLEAN);
  bool cleanEnd = false;
  fs::path last;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& [firstSeq, path] = files[i];
    const std::string bytes = readFile(path);
    const bool header = bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0 &&
                        get32(bytes.data() + 24) == crc32(std::string_view(bytes.data(), 24));
    if (!header && bytes.size() <= kHeaderBytes && i + 1 == files.size()) {
      // Only the newest segment can be a stub, from a crash while it was being made (a file
      // system may show its size before its bytes): a segment is synced with its header before
      // any batch goes in.
      fs::remove(path);
      break;
    }
    if (!header || get64(bytes.data() + 8) != id_ || get64(bytes.data() + 16) != firstSeq) {
      fail(path.string() + " is not a segment of this log", EUCLEAN);
    }
    // Contiguous, except below what the owner folded: segments it dropped may be gone in any
    // order after a crash (their unlinks were not synced one by one).
    const std::uint64_t expected = segments_.empty() ? foldedSeq + 1 : segments_.back().lastSeq + 1;
    if (firstSeq != expected && firstSeq > foldedSeq + 1) {
      fail("batches " + std::to_string(expected) + " to " + std::to_string(firstSeq - 1) + " are missing",
           EUCLEAN);
    }
    Segment segment{firstSeq, firstSeq - 1};
    std::size_t at = kHeaderBytes;
    while (bytes.size() - at >= kBatchHeaderBytes) {
      const std::uint32_t length = get32(bytes.data() + at);
      const std::uint32_t crc = get32(bytes.data() + at + 4);
      const std::uint64_t seq = get64(bytes.data() + at + 8);
      if (length > kMaxBatchBytes || bytes.size() - at - kBatchHeaderBytes < length || seq != segment.lastSeq + 1) break;
      const std::string_view payload(bytes.data() + at + kBatchHeaderBytes, length);
      if (crc32(std::string_view(bytes.data() + at + 8, 8), payload) != crc) break;
      visit(firstSeq, seq, payload);
      segment.lastSeq = seq;
      at += kBatchHeaderBytes + length;
    }
    // What follows the last intact batch is a torn append, never acknowledged (its flush did not
    // return). A later segment then begins right after the intact part; if acknowledged batches
    // were damaged instead, the next segment does not follow and the check above stops us.
    // Zeros after it are space made ahead of time (extend()), not a torn append.
    cleanEnd = bytes.find_first_not_of('\0', at) == std::string::npos;
    // A batch read back may be one a killed process wrote but never flushed: flushed now, before
    // the owner acts on it (re-acknowledging a vote it finds it already holds; review 7).
    if (sync_) syncFile(path);
    segments_.push_back(segment);
    offset_ = at;
    allocated_ = bytes.size();
    last = path;
  }
  if (segments_.empty()) {
    startSegment();
    return;
  }
  nextSeq_ = std::max(nextSeq_, segments_.back().lastSeq + 1);
  if (!cleanEnd || segments_.back().lastSeq + 1 != nextSeq_) {
    startSegment();  // never append after a torn tail
    return;
  }
  const int fd = ::open(last.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) failErrno("open " + last.string());
  useFile(fd);
}

void Wal::startSegment() {
  // What the current segment holds is durable before the next one exists: a flush only ever
  // covers the segment current when it began (flushWritten), and a power loss that kept a new
  // segment after an old one missing batches would leave a log that refuses to open (replay
  // sees a hole; found by the review of flush behind: FlushBehindReviewTest).
  flushWritten();
  // A torn segment with no intact batch has this very name: it is replaced, not listed twice
  // (listed twice, dropping the first entry would unlink the live file; review 7).
  if (!segments_.empty() && segments_.back().firstSeq == nextSeq_) segments_.pop_back();
  const fs::path path = fs::path(directory_) / segmentName(nextSeq_);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) failErrno("create " + path.string());
  std::string header(kHeaderBytes, '\0');
  std::memcpy(header.data(), kMagic, sizeof kMagic);
  put64(header.data() + 8, id_);
  put64(header.data() + 16, nextSeq_);
  put32(header.data() + 24, crc32(std::string_view(header.data(), 24)));
  try {
    writeAll(fd, header, 0);
    // The header and the file's name are durable before a batch goes in: replay can then tell
    // a segment that lost batches from one that never had any.
    if (sync_ && ::fdatasync(fd) != 0) failErrno("fdatasync");
    if (sync_) syncDirectory(directory_);
  } catch (...) {
    ::close(fd);
    throw;
  }
  useFile(fd);
  offset_ = kHeaderBytes;
  allocated_ = kHeaderBytes;
  segments_.push_back(Segment{nextSeq_, nextSeq_ - 1});
}

std::uint64_t Wal::append(std::string_view payload, bool flush) {
  if (payload.size() > kMaxBatchBytes) fail("batch too large", EINVAL);
  if (offset_ >= segmentBytes_) startSegment();
  const std::uint64_t seq = nextSeq_;
  // One buffer for every append (a batch is a few KiB under load: a large allocation each time).
  std::string& batch = batch_;
  batch.assign(kBatchHeaderBytes, '\0');
  batch.append(payload);
  put32(batch.data(), static_cast<std::uint32_t>(payload.size()));
  put64(batch.data() + 8, seq);
  put32(batch.data() + 4, crc32(std::string_view(batch.data() + 8, 8), payload));
  if (offset_ + batch.size() > allocated_) extend(offset_ + batch.size());  // flushed below
  writeAll(fd(), batch, offset_);
  offset_ += batch.size();
  if (batch.capacity() > kKeptBufferBytes) std::string().swap(batch);  // a rare huge batch
  ++nextSeq_;
  segments_.back().lastSeq = seq;
  {
    std::lock_guard lock(mutex_);
    writtenSeq_ = seq;
  }
  if (flush) flushWritten();
  return seq;
}

void Wal::extend(std::uint64_t end) {
  // Zeros written ahead of the appends: the appends after this one overwrite blocks the file
  // already has, and their fdatasync flushes that data alone, not the file's size as well (a
  // third less time a flush, measured on ext4). In steps of 256 KiB, flushed by the append that
  // needed them: a 2 MiB step with a flush of its own held that append (and the driver's turn)
  // 4 to 17 ms, about every 0.7 s under load, which showed in the p99 of writes; a 256 KiB step
  // in the append's flush costs it at most about 1.5 ms (measured on this machine's disk). A
  // crash before that flush returns leaves zeros, or nothing, after the last intact batch: a
  // clean end (replay()).
  constexpr std::uint64_t kChunk = 256u << 10;
  const std::uint64_t target = std::max(end, allocated_ + kChunk);
  writeAll(fd(), std::string(target - allocated_, '\0'), allocated_);
  allocated_ = target;
}

void Wal::dropBefore(const std::function<bool(const Segment&)>& done) {
  // Oldest first, and only a prefix: replay insists on contiguous segments. Never the current
  // segment's file, whatever the list says.
  std::size_t n = 0;
  while (n + 1 < segments_.size() && done(segments_[n]) && segments_[n].firstSeq != segments_.back().firstSeq) ++n;
  for (std::size_t i = 0; i < n; ++i) {
    std::error_code ec;
    fs::remove(fs::path(directory_) / segmentName(segments_[i].firstSeq), ec);
    if (ec) fail("cannot remove a segment: " + ec.message(), EIO);
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace warden::coordinator::storage
