#include "coordinator/Command.h"

namespace warden::coordinator {

const char* opTypeName(OpType type) {
  switch (type) {
    case OpType::Check: return "check";
    case OpType::Create: return "create";
    case OpType::Set: return "set";
    case OpType::Delete: return "delete";
  }
  return "unknown";
}

namespace {

// Flag bits of an op, so that adding a flag does not change the layout of the others.
constexpr std::uint64_t kEphemeral = 1, kSequential = 2, kMakeParents = 4, kCreateIfMissing = 8,
                        kRecursive = 16;

void encodeOp(Encoder& out, const Op& op) {
  out.u8(static_cast<std::uint8_t>(op.type));
  out.bytes(op.path);
  out.bytes(op.data);
  // 0 means "no version"; versions are never negative.
  out.varint(op.version ? static_cast<std::uint64_t>(*op.version) + 1 : 0);
  std::uint64_t flags = (op.ephemeral ? kEphemeral : 0) | (op.sequential ? kSequential : 0) |
                        (op.makeParents ? kMakeParents : 0) |
                        (op.createIfMissing ? kCreateIfMissing : 0) | (op.recursive ? kRecursive : 0);
  out.varint(flags);
  out.varint(op.session);
}

Op decodeOp(Decoder& in) {
  Op op;
  std::uint8_t type = in.u8();
  if (type < 1 || type > 4) throw DecodeError("unknown op type");
  op.type = static_cast<OpType>(type);
  op.path = std::string(in.bytes());
  op.data = std::string(in.bytes());
  std::uint64_t version = in.varint();
  if (version != 0) {
    if (version - 1 > static_cast<std::uint64_t>(INT64_MAX)) throw DecodeError("version out of range");
    op.version = static_cast<std::int64_t>(version - 1);
  }
  std::uint64_t flags = in.varint();
  op.ephemeral = flags & kEphemeral;
  op.sequential = flags & kSequential;
  op.makeParents = flags & kMakeParents;
  op.createIfMissing = flags & kCreateIfMissing;
  op.recursive = flags & kRecursive;
  op.session = in.varint();
  return op;
}

}  // namespace

Command txnCommand(std::vector<Op> ops) {
  Command command;
  command.ops = std::move(ops);
  return command;
}

Command txnCommand(Op op) {
  Command command;
  command.ops.push_back(std::move(op));
  return command;
}

Command sessionCommand(CommandType type, std::uint64_t session) {
  Command command;
  command.type = type;
  command.session = session;
  return command;
}

std::string toString(const SessionEpoch& epoch) {
  return paxos::toString(epoch.ballot) + "#" + std::to_string(epoch.takeover);
}

Command expireCommand(std::uint64_t session, SessionEpoch epoch) {
  Command command = sessionCommand(CommandType::SessionExpire, session);
  command.epoch = epoch;
  return command;
}

namespace {
// A lock or election command's type and own fields: its encoding's start, and what its key's
// digest covers.
void encodeLockCommand(Encoder& out, const Command& command) {
  out.u8(static_cast<std::uint8_t>(command.type));
  out.varint(command.session);
  out.bytes(command.name);
  out.bytes(command.text);
  out.varint(command.token);
  out.boolean(command.shared);
}
}  // namespace

std::string encodeOps(const Command& command) {
  Encoder out;
  if (isLockCommand(command.type)) {
    // A keyed lock or election command: which one, by whom, on what (marked, as a close is).
    out.bytes("lock");
    encodeLockCommand(out, command);
    return out.take();
  }
  if (command.type == CommandType::SessionClose) {
    // A keyed close: which session it ends (marked, so that no create's digest can match it).
    out.bytes("close");
    out.varint(command.session);
    return out.take();
  }
  if (command.type != CommandType::Txn) {
    // A keyed session create: what it creates (its id comes from the key).
    out.varint(command.session);
    out.varint(command.ttlMs);
    out.bytes(command.name);
    return out.take();
  }
  out.varint(command.ops.size());
  for (const Op& op : command.ops) encodeOp(out, op);
  return out.take();
}

Command tickCommand() {
  Command command;
  command.type = CommandType::Tick;
  return command;
}

Command epochCommand(SessionEpoch epoch) {
  Command command;
  command.type = CommandType::SessionEpoch;
  command.epoch = epoch;
  return command;
}

namespace {
// On the wire, a transaction with limits (or an idempotency key) has a type of its own, so that
// entries logged before these existed still decode (and apply) exactly as they did.
constexpr std::uint8_t kLimitedTxn = 6;
constexpr std::uint8_t kKeyedSessionCreate = 8;  // a SessionCreate with an idempotency key
constexpr std::uint8_t kKeyedSessionClose = 9;   // a SessionClose with an idempotency key
// A lock or election command with an idempotency key: this byte, the command's own type, its
// fields, then the key (unkeyed ones keep the encoding entries logged before keys had).
constexpr std::uint8_t kKeyedLock = 30;

bool keyedSessionCommand(const Command& command) {
  return (command.type == CommandType::SessionCreate || command.type == CommandType::SessionClose) &&
         !command.idempotencyKey.empty();
}
}  // namespace

bool isElectionCommand(CommandType type) {
  return type == CommandType::ElectionCampaign || type == CommandType::ElectionProclaim ||
         type == CommandType::ElectionResign;
}

bool isLockCommand(CommandType type) {
  return type == CommandType::LockAcquire || type == CommandType::LockRelease || type == CommandType::LockWithdraw ||
         type == CommandType::LockDelayEnd || isElectionCommand(type);
}

void encodeCommand(Encoder& out, const Command& command) {
  if (isLockCommand(command.type)) {
    const bool keyed = !command.idempotencyKey.empty();
    if (keyed) out.u8(kKeyedLock);
    encodeLockCommand(out, command);
    out.varint(command.maxNodes);
    out.varint(command.quotaBytes);
    if (keyed) out.bytes(command.idempotencyKey);
    return;
  }
  const bool limited = command.type == CommandType::Txn &&
                       (command.maxNodes != 0 || command.quotaBytes != 0 || !command.idempotencyKey.empty());
  const bool keyed = keyedSessionCommand(command);
  std::uint8_t type = static_cast<std::uint8_t>(command.type);
  if (limited) type = kLimitedTxn;
  if (keyed) type = command.type == CommandType::SessionCreate ? kKeyedSessionCreate : kKeyedSessionClose;
  out.u8(type);
  if (limited) {
    out.varint(command.maxNodes);
    out.varint(command.quotaBytes);
    out.bytes(command.idempotencyKey);
  }
  if (command.type != CommandType::Txn) {
    out.varint(command.session);
    out.varint(command.ttlMs);
    out.bytes(command.name);
    out.varint(command.epoch.ballot.round);
    out.varint(command.epoch.ballot.node);
    out.varint(command.epoch.takeover);
    if (keyed) out.bytes(command.idempotencyKey);
    return;
  }
  out.varint(command.ops.size());
  for (const Op& op : command.ops) encodeOp(out, op);
}

Command decodeCommand(Decoder& in) {
  Command command;
  std::uint8_t type = in.u8();
  const bool keyedLock = type == kKeyedLock;
  if (keyedLock) {
    type = in.u8();
    if (!isLockCommand(static_cast<CommandType>(type))) throw DecodeError("a keyed lock command of another type");
  }
  if (isLockCommand(static_cast<CommandType>(type))) {
    command.type = static_cast<CommandType>(type);
    command.session = in.varint();
    command.name = std::string(in.bytes());
    command.text = std::string(in.bytes());
    command.token = in.varint();
    command.shared = in.boolean();
    command.maxNodes = in.varint();
    command.quotaBytes = in.varint();
    if (keyedLock) command.idempotencyKey = std::string(in.bytes());
    return command;
  }
  if (type < 1 || type > kKeyedSessionClose) throw DecodeError("unknown command type");
  const bool keyed = type == kKeyedSessionCreate || type == kKeyedSessionClose;
  if (type == kKeyedSessionCreate) type = static_cast<std::uint8_t>(CommandType::SessionCreate);
  if (type == kKeyedSessionClose) type = static_cast<std::uint8_t>(CommandType::SessionClose);
  if (type == kLimitedTxn) {
    type = static_cast<std::uint8_t>(CommandType::Txn);
    command.maxNodes = in.varint();
    command.quotaBytes = in.varint();
    command.idempotencyKey = std::string(in.bytes());
  }
  command.type = static_cast<CommandType>(type);
  if (command.type != CommandType::Txn) {
    command.session = in.varint();
    command.ttlMs = in.varint();
    command.name = std::string(in.bytes());
    command.epoch.ballot.round = in.varint();
    command.epoch.ballot.node = in.varint();
    command.epoch.takeover = in.varint();
    if (keyed) command.idempotencyKey = std::string(in.bytes());
    return command;
  }
  std::uint64_t n = in.varint();
  if (n > 1'000'000 || n > in.remaining()) throw DecodeError("too many ops");
  command.ops.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) command.ops.push_back(decodeOp(in));
  return command;
}

}  // namespace warden::coordinator
