#pragma once
// One sample of each encoding Warden produces (EncodingSamples.cpp says which).

#include <string>
#include <vector>

#include "coordinator/Command.h"
#include "coordinator/paxos/Record.h"

namespace warden::tests {

struct Sample {
  std::string name;
  std::string bytes;  // the fuzz target's input: a leading byte picks the decoder or the sender
};

// Inputs of fuzz_record: a selector byte, then a state record, log entry, command, proposal,
// session record, ballot or accepted value.
std::vector<Sample> recordSamples();
// Inputs of fuzz_peer_frame: the sender's byte, then a hello or a peer frame of each kind.
std::vector<Sample> peerFrameSamples();
// Entries of commands of every type (keyed forms, lock-delays, expiries, some failing), for the
// state they leave to be pinned: every table's rows, as a snapshot carries them.
std::vector<std::vector<coordinator::Command>> stateScript();
// One acceptor record of each kind, as the write-ahead log takes them.
std::vector<coordinator::paxos::Record> acceptorRecords();

}  // namespace warden::tests
