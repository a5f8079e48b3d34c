#include <catch2/catch.hpp>

#include "coordinator/paxos/Types.h"

using warden::coordinator::paxos::Commands;
using warden::coordinator::paxos::Value;

TEST_CASE("a value's copies share its batch, and a change to one copy leaves the others as they were") {
  Value proposed{false, {"a", "b"}};
  Value accepted = proposed;  // as an acceptor keeps the Accept's value
  CHECK(&accepted.commands.list() == &proposed.commands.list());  // shared, not copied
  CHECK(accepted == proposed);

  // A holder that adds to its copy (as a proposal is built) gets a batch of its own.
  accepted.commands.push_back("c");
  CHECK(proposed.commands == Commands::List{"a", "b"});
  CHECK(accepted.commands == Commands::List{"a", "b", "c"});
  CHECK(accepted != proposed);
  Value other = proposed;
  other.commands.emplace_back("d");
  CHECK(proposed.commands.size() == 2);
  CHECK(other.commands[2] == "d");

  // A batch held once is changed in place.
  Value alone{false, {"x"}};
  const auto* before = &alone.commands.list();
  alone.commands.push_back("y");
  CHECK(&alone.commands.list() == before);

  // Equal contents are equal whether shared or not; an empty batch is not a no-op.
  CHECK(Value{false, {"a", "b"}} == proposed);
  CHECK(Value{} != Value::makeNoop());
  CHECK(Value{}.commands.empty());
}
