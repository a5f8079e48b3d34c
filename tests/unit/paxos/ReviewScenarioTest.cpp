// Schedules found by the adversarial review of the node-safety work (issue 9), each replayed
// step by step against the real Replica.

#include <catch2/catch.hpp>

#include "tests/unit/paxos/ScriptedNet.h"

using namespace warden::tests::paxos;
