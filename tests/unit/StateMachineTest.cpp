#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <iterator>

#include "locks/LockQueue.h"

#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;
namespace locks = warden::locks;

TEST_CASE("create stores data and a full Stat and takes one revision") {
  StoreFixture store;
  auto r = store.apply({createOp("/app", "hello")}, 1234);
  REQUIRE(r.status == Status::Ok);
  CHECK(r.revision == 1);
  REQUIRE(r.results.size() == 1);
  CHECK(r.results[0].path == "/app");

  auto node = store.get("/app");
  REQUIRE(node);
  CHECK(node->data == "hello");
  CHECK(node->stat == Stat{0, 0, 1, 1, 1234, 1234, 0, 0, 5});
  CHECK(*r.results[0].stat == node->stat);

  auto root = store.get("/");
  CHECK(root->stat.cversion == 1);
  CHECK(root->stat.numChildren == 1);
  CHECK(store.revision() == 1);
  CHECK(store.appliedIndex() == 1);
}

TEST_CASE("create refuses existing nodes and missing parents and the root") {
  StoreFixture store;
  REQUIRE(store.apply({createOp("/a")}).status == Status::Ok);
  CHECK(store.apply({createOp("/a")}).status == Status::Exists);
  CHECK(store.apply({createOp("/")}).status == Status::Exists);
  auto r = store.apply({createOp("/x/y")});
  CHECK(r.status == Status::NoParent);
  CHECK_THAT(r.message, Catch::Contains("/x"));
  CHECK(store.revision() == 1);  // failed writes take no revision
}

TEST_CASE("make_parents creates every missing ancestor in the same revision") {
  StoreFixture store;
  Op op = createOp("/a/b/c", "leaf");
  op.makeParents = true;
  auto r = store.apply({op});
  REQUIRE(r.status == Status::Ok);
  CHECK(r.revision == 1);
  for (const char* path : {"/a", "/a/b"}) {
    auto node = store.get(path);
    REQUIRE(node);
    CHECK(node->data.empty());
    CHECK(node->stat.created == 1);
    CHECK(node->stat.numChildren == 1);
  }
  CHECK(store.get("/a/b/c")->data == "leaf");
  // Existing ancestors are kept as they are.
  Op again = createOp("/a/b/d");
  again.makeParents = true;
  REQUIRE(store.apply({again}).status == Status::Ok);
  CHECK(store.get("/a")->stat.created == 1);
  CHECK(store.children("/a/b") == std::vector<std::string>{"c", "d"});
}

TEST_CASE("sequential names carry a 10-digit counter per parent") {
  StoreFixture store;
  store.apply({createOp("/q1")});
  store.apply({createOp("/q2")});
  Op op = createOp("/q1/item-");
  op.sequential = true;
  CHECK(store.apply({op}).results[0].path == "/q1/item-0000000000");
  CHECK(store.apply({op}).results[0].path == "/q1/item-0000000001");
  Op other = createOp("/q2/job");
  other.sequential = true;
  CHECK(store.apply({other}).results[0].path == "/q2/job0000000000");
  // The counter keeps rising after deletes, so names are never reused.
  store.apply({deleteOp("/q1/item-0000000001")});
  CHECK(store.apply({op}).results[0].path == "/q1/item-0000000002");
}

TEST_CASE("set replaces data and bumps version and honours compare-and-swap") {
  StoreFixture store;
  store.apply({createOp("/a", "v0")}, 1000);
  auto r = store.apply({setOp("/a", "v1", 0)}, 2000);
  REQUIRE(r.status == Status::Ok);
  auto node = store.get("/a");
  CHECK(node->data == "v1");
  CHECK(node->stat.version == 1);
  CHECK(node->stat.modified == 2);
  CHECK(node->stat.created == 1);
  CHECK(node->stat.mtime == 2000);
  CHECK(node->stat.ctime == 1000);

  auto stale = store.apply({setOp("/a", "v2", 0)});
  CHECK(stale.status == Status::BadVersion);
  CHECK(store.get("/a")->data == "v1");
  CHECK(store.apply({setOp("/missing", "x")}).status == Status::NotFound);
}

TEST_CASE("set with create makes a missing node but not under a missing parent") {
  StoreFixture store;
  Op op = setOp("/new", "x");
  op.createIfMissing = true;
  REQUIRE(store.apply({op}).status == Status::Ok);
  CHECK(store.get("/new")->stat.version == 0);
  Op orphan = setOp("/no/parent", "x");
  orphan.createIfMissing = true;
  CHECK(store.apply({orphan}).status == Status::NoParent);
}

TEST_CASE("delete honours version and refuses non-empty nodes unless recursive and never the root") {
  StoreFixture store;
  Op deep = createOp("/a/b/c");
  deep.makeParents = true;
  store.apply({deep});
  store.apply({setOp("/a", "x")});

  CHECK(store.apply({deleteOp("/missing")}).status == Status::NotFound);
  CHECK(store.apply({deleteOp("/a", 0)}).status == Status::BadVersion);
  CHECK(store.apply({deleteOp("/a")}).status == Status::NotEmpty);
  CHECK(store.apply({deleteOp("/")}).status == Status::InvalidArgument);
  const auto before = store.revision();

  auto r = store.apply({deleteOp("/a", 1, true)});
  REQUIRE(r.status == Status::Ok);
  CHECK(r.revision == before + 1);
  CHECK_FALSE(store.get("/a"));
  CHECK_FALSE(store.get("/a/b"));
  CHECK_FALSE(store.get("/a/b/c"));
  CHECK(store.children("/").empty());
  CHECK(store.get("/")->stat.numChildren == 0);
}

TEST_CASE("a transaction applies all its ops at one revision or none of them") {
  StoreFixture store;
  store.apply({createOp("/a", "1")});

  auto ok = store.apply({checkOp("/a", 0), createOp("/b"), createOp("/b/c"), setOp("/a", "2")});
  REQUIRE(ok.status == Status::Ok);
  CHECK(ok.revision == 2);
  CHECK(store.get("/b/c")->stat.created == 2);  // later ops see earlier ones
  CHECK(store.get("/a")->stat.modified == 2);

  const std::string before = store.dump();
  auto failed = store.apply({createOp("/d"), setOp("/a", "3"), checkOp("/a", 0)});
  CHECK(failed.status == Status::BadVersion);
  CHECK(failed.failedOp == std::size_t{2});
  CHECK(failed.results.empty());
  CHECK(store.dump() == before);
  CHECK(store.revision() == 2);
}

TEST_CASE("a transaction of checks alone changes nothing and takes no revision") {
  StoreFixture store;
  store.apply({createOp("/a")});
  auto r = store.apply({checkOp("/a", 0), checkOp("/")});
  CHECK(r.status == Status::Ok);
  CHECK(r.revision == 1);
  CHECK(store.revision() == 1);
  CHECK(store.apply({checkOp("/nope")}).status == Status::NotFound);
}

TEST_CASE("commands in one entry take consecutive revisions and failures in between take none") {
  StoreFixture store;
  auto results = store.applyAll({txnCommand({createOp("/a")}),
                                 txnCommand({createOp("/a")}),
                                 txnCommand({createOp("/b")})});
  CHECK(results[0].revision == 1);
  CHECK(results[1].status == Status::Exists);
  CHECK(results[2].revision == 2);
  CHECK(store.revision() == 2);
  CHECK(store.appliedIndex() == 1);
}

TEST_CASE("apply re-checks what the edge checks: bad paths and oversized data are refused") {
  StoreFixture store;
  CHECK(store.apply({createOp("/a//b")}).status == Status::InvalidArgument);
  CHECK(store.apply({createOp("/" + std::string(1100, 'x'))}).status == Status::TooLarge);
  CHECK(store.apply({createOp("/big", std::string((1 << 20) + 1, 'x'))}).status == Status::TooLarge);
  CHECK(store.apply({}).status == Status::InvalidArgument);
  CHECK(store.revision() == 0);
}

TEST_CASE("ephemeral nodes need a live session") {
  StoreFixture store;
  Op op = createOp("/e");
  op.ephemeral = true;
  op.session = 99;
  CHECK(store.apply({op}).status == Status::SessionNotFound);
  CHECK_FALSE(store.get("/e"));
}

TEST_CASE("names longer than an LMDB key are stored and listed in order") {
  StoreFixture store;
  store.apply({createOp("/p")});
  const std::string prefix(500, 'n');
  std::vector<std::string> names = {prefix + "b", prefix + "a", "short", prefix + "c"};
  for (const auto& name : names) REQUIRE(store.apply({createOp("/p/" + name, name)}).status == Status::Ok);
  std::sort(names.begin(), names.end());
  CHECK(store.children("/p") == names);
  CHECK(store.get("/p/" + prefix + "a")->data == prefix + "a");
  CHECK(store.apply({createOp("/p/" + prefix + "a")}).status == Status::Exists);
  REQUIRE(store.apply({deleteOp("/p", std::nullopt, true)}).status == Status::Ok);
  CHECK_FALSE(store.get("/p/" + prefix + "b"));
}

TEST_CASE("state and revision and applied index survive closing and reopening the store") {
  StoreFixture store;
  store.apply({createOp("/a", "x")});
  store.apply({setOp("/a", "y")});
  const std::string before = store.dump();
  store.reopen();
  CHECK(store.dump() == before);
  CHECK(store.revision() == 2);
  CHECK(store.appliedIndex() == 2);
  CHECK(store.apply({createOp("/b")}).revision == 3);
}

TEST_CASE("applying the same entries to two stores gives identical state") {
  StoreFixture one, two;
  std::vector<std::vector<Op>> script = {{createOp("/a", "1")},
                                         {createOp("/a/b")},
                                         {setOp("/a", "2", 0)},
                                         {createOp("/a/b")},  // fails
                                         {checkOp("/a", 1), createOp("/c")},
                                         {deleteOp("/a", std::nullopt, true)}};
  std::uint64_t t = 5000;
  for (const auto& ops : script) {
    CHECK(one.apply(ops, t) == two.apply(ops, t));
    t += 7;
  }
  CHECK(one.dump() == two.dump());
}
