#pragma once
// A lock's queue, as the state machine keeps it in the namespace (API.md "Locks"): under
// /_warden/locks/{name}, one sequential ephemeral node per request, owned by the requesting
// session, in arrival order. Its data (JSON, so that a read or a watch of /_warden shows it)
// says who asked, how, and once granted the fencing token: the revision of the grant.
// Everything here is pure: the StateMachine applies it (coordinator/StateMachineLocks.cpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace warden::locks {

inline constexpr std::string_view kLocksRoot = "/_warden/locks";
// Elections are queues of the same kind (API.md "Leader election"): every candidacy is an
// exclusive request, the holder is the leader, its token the term, its owner text the value.
inline constexpr std::string_view kElectionsRoot = "/_warden/elections";
inline constexpr std::size_t kMaxOwnerBytes = 1024;

struct Request {
  std::uint64_t session = 0;
  bool shared = false;
  std::string owner;        // the client's text, for people reading the lock
  std::uint64_t token = 0;  // 0 while waiting; the grant's revision once held
  std::uint64_t sinceMs = 0;  // when it was granted (leader time)
  // Chubby's lock-delay: if the holder's session expires (not a release, not a close), the lock
  // stays unavailable this long, so that a paused holder's late writes find nobody new.
  std::uint64_t delayMs = 0;

  bool granted() const { return token != 0; }
  bool operator==(const Request&) const = default;
};

// Under /_warden/elections the fields read as an election's: {"session","value","term","since"}.
std::string encodeRequest(const Request& request, bool election = false);
// nullopt when the bytes are not a request (a node someone else put there cannot be).
std::optional<Request> decodeRequest(std::string_view bytes);

// Why a lock name is refused, if it is: 1 to 256 bytes, one path component (no '/', not "."
// or ".."), no control characters.
std::optional<std::string> lockNameProblem(std::string_view name);
std::string lockPath(std::string_view name);
// The revision that queued a request, from its path's last component ("r-" and 20 digits); 0 if
// it is not one.
std::uint64_t queuedRevision(std::string_view requestPath);
std::string electionPath(std::string_view name);
// Whether `path` is a lock's or an election's node (a queue), and which.
bool isQueue(std::string_view path);
bool isElection(std::string_view queue);

inline constexpr std::uint64_t kMaxLockDelayMs = 60'000;

// A lock node's own data while a lock-delay runs (a holder with one expired): nobody is granted
// the lock until the leader ends it, once `delayMs` passed on its monotonic clock since the delay
// began (locks/DelayTimers.h); wall clocks, which jump and differ between nodes, decide nothing.
// `availableAtMs` (leader time) is what a reader is told to expect. `revision` (not encoded): the
// revision that set it, the lock node's stat.modified, which names it for LockDelayEnd.
struct Delay {
  std::uint64_t availableAtMs = 0;
  std::uint64_t delayMs = 0;
};
std::string encodeDelay(const Delay& delay);
std::optional<Delay> decodeDelay(std::string_view bytes);  // nullopt: none runs

// Which requests of a queue (in arrival order) hold the lock: the first, alone if it is
// exclusive; else every shared request before the first exclusive one. A shared request behind
// an exclusive one waits, so the queue stays fair. Returns how many lead the queue as holders.
std::size_t holders(const std::vector<Request>& queue);

}  // namespace warden::locks
