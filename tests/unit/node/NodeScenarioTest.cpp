// Whole-node scenarios, step by step (issue 9, counterexamples 2 and 3): the real node core on a
// hand-cranked network. Each schedule broke a guarantee before its fix; each test also plants the
// fixed defect back (a ClusterOptions bug switch) and shows the schedule breaking it again.

#include <catch2/catch.hpp>

#include <optional>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

namespace {


// Starts three nodes and lets only `leader` campaign, until it serves sessions.
// Counterexample 3: a follower whose disk was wiped replays its earlier process's forwarded
// writes (request ids 1, 2, 3...) while its new process numbers its new writes from 1 again.
// Returns the path the new write was answered with.
std::string wipedFollowerAnswers(ClusterOptions::Bugs bugs) {
  NodeNet net(3, bugs);
  elect(net, 1);
  const NodeId follower = 2;
  int answered = 0;
  for (int i = 1; i <= 3; ++i) {
    net.core(follower).submit(createCommand("/old-" + std::to_string(i)), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      ++answered;
    });
  }
  net.runUntil({1, 2, 3}, all, [&] { return answered == 3; });
  REQUIRE(answered == 3);

  net.wipe(follower);
  net.restart(follower);
  std::optional<CommandResult> result;
  net.core(follower).submit(createCommand("/new"), [&](CommandResult r) { result = std::move(r); });
  net.runUntil({1, 2, 3}, all, [&] { return result.has_value(); });
  REQUIRE(result);
  REQUIRE(result->status == Status::Ok);
  REQUIRE(result->results.size() == 1);
  return result->results[0].path;
}

// Counterexample 2: leader 1 proposes the expiry of S, which only its own acceptor takes; leader 2
// takes over and acknowledges S's keepalive, then dies before anything is chosen in its term;
// leader 3's phase 1 finds the old expiry.
struct ExpiryOutcome {
  bool acknowledged = false;              // node 2 acknowledged the keepalive
  std::optional<std::uint64_t> goneAfterMs;  // then the session vanished this long after it
};

ExpiryOutcome expiryAfterKeepalive(ClusterOptions::Bugs bugs) {
  NodeNet net(3, bugs);
  elect(net, 1);
  const std::uint64_t session = 0x5e55;
  const std::uint64_t ttlMs = 2000;
  Command create = sessionCommand(CommandType::SessionCreate, session);
  create.ttlMs = ttlMs;
  bool created = false;
  net.core(1).submit(create, [&](CommandResult r) { created = r.status == Status::Ok; });
  net.runUntil({1}, all, [&] { return created; });
  REQUIRE(created);

  // No keepalive for a ttl: leader 1 proposes the expiry. Its Accepts never reach the others;
  // its heartbeats do, so it keeps its lease meanwhile.
  auto acceptFrom1 = [](const Frame& f) { return f.from == 1 && f.to != 1 && f.is("Accept"); };
  net.runUntil({1}, [&](const Frame& f) { return !acceptFrom1(f); },
               [&] { return net.inflight(acceptFrom1) > 0 && net.now > 10'000'000 + ttlMs * 1000; }, acceptFrom1);
  net.settle([&](const Frame& f) { return !acceptFrom1(f); }, acceptFrom1);

  // Node 1 is cut off. Node 2 campaigns and is elected by {2, 3}; its Accepts to 3 are lost.
  auto cut1 = [](const Frame& f) { return (f.from == 1 || f.to == 1) && f.from != f.to; };
  auto acceptFrom2 = [](const Frame& f) { return f.from == 2 && f.to == 3 && f.is("Accept"); };
  net.runUntil({1, 2}, [&](const Frame& f) { return !cut1(f) && !acceptFrom2(f); },
               [&] { return net.leads(2) && net.replica(2)->leaseValid(net.now); },
               [&](const Frame& f) { return cut1(f) || acceptFrom2(f); });
  REQUIRE(net.leads(2));

  // The client's keepalive reaches node 2.
  std::optional<std::uint64_t> ackedAtUs;
  auto keepalive = [&](Status status, std::uint64_t) {
    if (status == Status::Ok) ackedAtUs = net.now;
  };
  if (auto ttl = net.core(2).fastKeepalive(session)) {
    keepalive(Status::Ok, *ttl);
  } else {
    net.core(2).keepalive(session, keepalive);
  }
  net.runUntil({1, 2}, [&](const Frame& f) { return !cut1(f) && !acceptFrom2(f); }, [&] { return ackedAtUs.has_value(); },
               [&](const Frame& f) { return cut1(f) || acceptFrom2(f); }, 50);

  // Node 2 dies; 1 and 3 talk again; node 3 leads, and its phase 1 meets node 1's acceptor.
  net.crash(2);
  auto toOrFrom2 = [](const Frame& f) { return f.from == 2 || f.to == 2; };
  std::optional<std::uint64_t> goneAtUs;
  net.runUntil({1, 3}, [&](const Frame& f) { return !toOrFrom2(f); },
               [&] {
                 if (!goneAtUs && !net.read(3, [&](const StateMachine& sm, auto& txn) { return sm.sessions().get(txn, session).has_value(); })) {
                   goneAtUs = net.now;
                 }
                 return goneAtUs.has_value();
               },
               toOrFrom2, 500);
  ExpiryOutcome out;
  out.acknowledged = ackedAtUs.has_value();
  if (ackedAtUs && goneAtUs) out.goneAfterMs = (*goneAtUs - *ackedAtUs) / 1000;
  return out;
}

}  // namespace

TEST_CASE("a wiped follower never answers a new write with its earlier process's result") {
  CHECK(wipedFollowerAnswers({}) == "/new");
}

TEST_CASE("matching replies by request id alone answers a wiped follower's new write with an old result") {
  ClusterOptions::Bugs bugs;
  bugs.ignoreIncarnation = true;
  CHECK(wipedFollowerAnswers(bugs) != "/new");
}

TEST_CASE("a deposed leader's expiry never removes a session a later leader kept alive") {
  // With the fix node 2 never speaks for sessions (its epoch is never chosen), so it does not
  // acknowledge the keepalive, and the client knows to try elsewhere.
  const auto outcome = expiryAfterKeepalive({});
  CHECK_FALSE(outcome.acknowledged);
  CHECK_FALSE(outcome.goneAfterMs);
}

TEST_CASE("a leader that serves sessions before its epoch is chosen lets an old expiry kill a live session") {
  ClusterOptions::Bugs bugs;
  bugs.serveWithoutEpoch = true;
  const auto outcome = expiryAfterKeepalive(bugs);
  REQUIRE(outcome.acknowledged);
  REQUIRE(outcome.goneAfterMs);
  CHECK(*outcome.goneAfterMs < 2000);
}

namespace {

// The empty-disk path of counterexample 1 (5 nodes): W promised candidate D's ballot, then lost
// its disk before the cluster chose anything. D's Prepares to the others are still on their way,
// so they truthfully answer W's probe "no history"; D's own answer is slow. Returns W's promised
// ballot once it votes, or nullopt while it does not.
std::optional<paxos::Ballot> wipedBeforeFirstChoice(ClusterOptions::Bugs bugs) {
  const NodeId W = 4, D = 5;
  // Only D's election timer runs out within the scenario (the others' take a minute or two;
  // they grant pre-votes a minute after they start, so D waits for that).
  NodeNet net(5, bugs, [&](NodeId id, ClusterOptions& o) {
    if (id != D) o.paxos.electionTimeout = 60'000'000;
  });
  net.runUntil({1, 2, 3, 4, 5}, all, [&] {
    for (NodeId id = 1; id <= 5; ++id) {
      if (!net.replica(id)) return false;
    }
    return true;
  }, none, 20);
  net.now += 60'100'000;
  // D campaigns; its Prepare reaches W (and D), W's promise reaches D; the rest are held.
  auto held = [&](const Frame& f) { return f.from == D && f.to <= 3 && f.is("Prepare"); };
  net.runUntil({D}, [&](const Frame& f) { return !held(f); }, [&] { return net.inflight(held) == 3; });
  REQUIRE(net.inflight(held) == 3);
  REQUIRE(net.replica(W)->promised().node == D);

  // W restarts on an empty disk; D's answers to it are slow to come.
  net.wipe(W);
  net.restart(W);
  auto fromD = [&](const Frame& f) { return f.from == D && f.to == W; };
  net.runUntil({W}, [&](const Frame& f) { return !held(f) && !fromD(f); }, [&] { return net.replica(W) != nullptr; }, none,
               100);
  if (!net.replica(W) || net.replica(W)->isLearner()) return std::nullopt;
  return net.replica(W)->promised();
}

}  // namespace

TEST_CASE("an empty disk that promised before the cluster chose anything does not vote as new") {
  const auto promised = wipedBeforeFirstChoice({});
  // It rebuilds as a learner: D's own promise tells it the cluster has a past.
  CHECK_FALSE(promised);
}

TEST_CASE("an empty disk that votes once a majority of peers say empty forgets its promise") {
  ClusterOptions::Bugs bugs;
  bugs.bootstrapOnMajority = true;
  const auto promised = wipedBeforeFirstChoice(bugs);
  REQUIRE(promised);
  CHECK(*promised < (paxos::Ballot{1, 5}));
}

namespace {

// The same leader, twice (found by the whole-node simulator, seed 954, and by the review): leader
// 1 proposes the expiry of S, but its Accepts are slow; its lease lapses (its heartbeat replies
// are lost for 400 ms, less than an election timeout) and comes back; it takes the sessions over
// again with fresh ttls and is asked S's keepalive; then the old expiry is chosen. Returns whether
// the keepalive was acknowledged before the session vanished.
bool keepaliveAckedBeforeOldExpiry(ClusterOptions::Bugs bugs) {
  NodeNet net(3, bugs);
  elect(net, 1);
  const std::uint64_t session = 0x5e56;
  Command create = sessionCommand(CommandType::SessionCreate, session);
  create.ttlMs = 1000;
  bool created = false;
  net.core(1).submit(create, [&](CommandResult r) { created = r.status == Status::Ok; });
  net.runUntil({1}, all, [&] { return created; });
  REQUIRE(created);

  // No keepalive for a ttl: leader 1 proposes the expiry; its Accepts are held back.
  auto slowAccept = [](const Frame& f) { return f.from == 1 && f.to != 1 && f.is("Accept"); };
  const auto start = net.now;
  net.runUntil({1}, [&](const Frame& f) { return !slowAccept(f); },
               [&] { return net.inflight(slowAccept) > 0 && net.now > start + 1'100'000; });
  REQUIRE(net.inflight(slowAccept) > 0);

  // Its lease lapses: the replies to its heartbeats are lost for 400 ms; then they come again.
  auto repliesTo1 = [](const Frame& f) { return f.to == 1 && f.from != 1; };
  net.runUntil({1}, [&](const Frame& f) { return !slowAccept(f) && !repliesTo1(f); }, [] { return false; },
               repliesTo1, 40);
  REQUIRE_FALSE(net.replica(1)->leaseValid(net.now));
  net.runUntil({1}, [&](const Frame& f) { return !slowAccept(f); }, [&] { return net.replica(1)->leaseValid(net.now); });
  REQUIRE(net.leads(1));

  // The client's keepalive, while the old expiry is still on its way.
  bool acked = false;
  if (net.core(1).fastKeepalive(session)) {
    acked = true;
  } else {
    net.core(1).keepalive(session, [&](Status status, std::uint64_t) { acked = acked || status == Status::Ok; });
  }
  net.runUntil({1}, [&](const Frame& f) { return !slowAccept(f); }, [&] { return acked; }, none, 20);
  const bool ackedEarly = acked;

  // The held Accepts arrive: the expiry is chosen.
  net.runUntil({1, 2, 3}, all, [&] {
    return !net.read(1, [&](const StateMachine& sm, auto& txn) { return sm.sessions().get(txn, session).has_value(); });
  });
  return ackedEarly;
}

}  // namespace

TEST_CASE("a leader whose lease lapsed does not acknowledge a keepalive its own old expiry will undo") {
  CHECK_FALSE(keepaliveAckedBeforeOldExpiry({}));
}

TEST_CASE("taking sessions over again in the same epoch acknowledges a keepalive its old expiry undoes") {
  ClusterOptions::Bugs bugs;
  bugs.sameEpochAfterLapse = true;
  CHECK(keepaliveAckedBeforeOldExpiry(bugs));
}

namespace {

struct StaleReadOutcome {
  bool doneByStaleReply = false;  // the new read completed on the old process's ReadIndexReply
  std::string read;               // what the new read returned
};

// Counterexample 3, the read index: follower 2 asks leader 1 for a read index (its read 1) and
// crashes before the answer arrives; the answer stays queued on the link. Leader 1 then
// acknowledges a write of "new". Node 2 restarts; its new process numbers reads from 1 again,
// and a client's read begins there after the write was acknowledged. The old answer arrives
// first: its index is below the new write.
StaleReadOutcome readAfterRestart(ClusterOptions::Bugs bugs) {
  using Kind = warden::coordinator::node::Frame;
  NodeNet net(3, bugs);
  elect(net, 1);
  const NodeId follower = 2;
  auto value = [&](NodeId id) {
    return net.read(id, [](const StateMachine& sm, auto& txn) {
      auto record = sm.tree().get(txn, "/k");
      return record ? record->data : std::string();
    });
  };
  bool created = false;
  net.core(1).submit(txnCommand({warden::tests::createOp("/k", "old")}), [&](CommandResult r) { created = r.status == Status::Ok; });
  net.runUntil({1, 2, 3}, all, [&] { return created && value(follower) == "old"; });
  REQUIRE(value(follower) == "old");

  // Node 2's first read: the leader's answer is held on the link.
  auto reply = [&](const Frame& f) { return f.to == follower && f.isKind(Kind::ReadIndexReply); };
  auto notReply = [&](const Frame& f) { return !reply(f); };
  net.core(follower).readBarrier([](Status) {});
  net.runUntil({1, 2, 3}, notReply, [&] { return net.inflight(reply) == 1; }, none, 20);
  REQUIRE(net.inflight(reply) == 1);
  net.crashKeepingQueued(follower);

  // The write of "new" is acknowledged while node 2 is down.
  bool written = false;
  net.core(1).submit(txnCommand({warden::tests::setOp("/k", "new")}), [&](CommandResult r) { written = r.status == Status::Ok; });
  net.runUntil({1, 3}, notReply, [&] { return written; });
  REQUIRE(written);

  // Node 2 restarts; a client's read begins there; the old answer is the first frame it gets.
  net.restart(follower);
  StaleReadOutcome out;
  std::optional<std::string> read;
  net.core(follower).readBarrier([&](Status status) {
    if (status == Status::Ok) read = value(follower);
  });
  net.settle(reply);
  out.doneByStaleReply = read.has_value();
  net.runUntil({1, 2, 3}, all, [&] { return read.has_value(); });
  REQUIRE(read);
  out.read = *read;
  return out;
}

}  // namespace

TEST_CASE("a read index answered to a restarted node's earlier process completes no read of the new one") {
  const StaleReadOutcome outcome = readAfterRestart({});
  CHECK_FALSE(outcome.doneByStaleReply);
  CHECK(outcome.read == "new");
}

TEST_CASE("matching read-index replies by id alone lets a restarted node read a value overwritten before the read began") {
  ClusterOptions::Bugs bugs;
  bugs.ignoreIncarnation = true;
  const StaleReadOutcome outcome = readAfterRestart(bugs);
  CHECK(outcome.doneByStaleReply);
  CHECK(outcome.read == "old");
}

namespace {

bool holds(NodeNet& net, NodeId id, const std::string& path) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.tree().get(txn, path).has_value(); });
}

// Writes `count` keys through `via`, one slot each, each acknowledged before the next.
void writeKeys(NodeNet& net, NodeId via, const std::string& prefix, int count, const std::vector<NodeId>& ticking) {
  for (int i = 1; i <= count; ++i) {
    bool done = false;
    net.core(via).submit(createCommand(prefix + std::to_string(i)), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      done = true;
    });
    net.runUntil(ticking, all, [&] { return done; });
    REQUIRE(done);
  }
}

}  // namespace

// Issue 14 (b0827f3): applies commit without a flush of their own; a power loss (NodeNet's model:
// the LMDB file as of the node's last durable commit) undoes those after the last acceptor commit,
// and the restarted node applies the same slots again alike (SAFETY.md 5).
TEST_CASE("a follower that loses power undoes its unflushed applies and applies them again alike") {
  NodeNet net(3);
  elect(net, 1);
  writeKeys(net, 1, "/k-", 5, {1, 2, 3});
  // The heartbeat that tells node 2 the last slot is chosen: it applies it, with no vote to flush it.
  const auto chosen = net.replica(1)->commitIndex();
  net.runUntil({1, 2, 3}, all, [&] { return net.core(2).applied() == chosen; });
  REQUIRE(net.core(2).applied() == chosen);
  REQUIRE(holds(net, 2, "/k-5"));

  net.powerLoss(2);
  net.restart(2);
  CHECK(net.core(2).applied() < chosen);  // the model undid the unflushed apply
  CHECK_FALSE(holds(net, 2, "/k-5"));

  net.runUntil({1, 2, 3}, all, [&] { return net.core(2).applied() >= chosen; });
  REQUIRE(net.core(2).applied() >= chosen);
  CHECK(holds(net, 2, "/k-5"));
  CHECK(revisionOf(net, 2) == revisionOf(net, 1));
}

TEST_CASE("acknowledged writes outlive the leader's power loss after its unflushed applies") {
  NodeNet net(3);
  elect(net, 1);
  writeKeys(net, 1, "/k-", 5, {1, 2, 3});
  const auto chosen = net.replica(1)->commitIndex();
  REQUIRE(net.core(1).applied() == chosen);

  net.powerLoss(1);
  const NodeId leader = net.servingLeader({2, 3});
  REQUIRE(leader != 0);
  writeKeys(net, leader, "/after-", 1, {2, 3});
  for (int i = 1; i <= 5; ++i) CHECK(holds(net, leader, "/k-" + std::to_string(i)));

  net.restart(1);
  CHECK(net.core(1).applied() < chosen);  // its last apply had not reached the disk
  net.runUntil({1, 2, 3}, all, [&] { return holds(net, 1, "/after-1"); });
  CHECK(holds(net, 1, "/after-1"));
  CHECK(revisionOf(net, 1) == revisionOf(net, leader));
}
