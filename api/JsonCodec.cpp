#include "api/JsonCodec.h"

#include <set>

#include "api/Base64.h"
#include "coordinator/Path.h"
#include "coordinator/StateMachine.h"
#include "coordinator/Utf8.h"
#include "session/SessionTable.h"

namespace warden::api {

using json = nlohmann::ordered_json;
using coordinator::Op;
using coordinator::OpType;
using coordinator::Status;

std::string dumpJson(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

Reply jsonReply(unsigned status, const json& body, std::optional<std::uint64_t> revision) {
  return textReply(status, dumpJson(body), revision);
}

Reply textReply(unsigned status, std::string json, std::optional<std::uint64_t> revision) {
  Reply reply;
  reply.status = status;
  reply.body = std::move(json);
  reply.revision = revision;
  return reply;
}

Reply errorReply(unsigned status, const std::string& code, const std::string& message,
                 std::optional<std::uint64_t> revision, const json& extra) {
  json body = {{"error", code}, {"message", message}};
  if (extra.is_object()) {
    for (auto& [key, value] : extra.items()) body[key] = value;
  }
  return jsonReply(status, body, revision);
}

Reply errorReply(const ApiError& error, std::optional<std::uint64_t> revision) {
  return errorReply(error.status(), error.code(), error.what(), revision, error.extra());
}

Reply deferredReply(std::function<Reply()> build) {
  Reply reply;
  reply.later = std::move(build);
  return reply;
}

Reply settleReply(Reply reply, std::optional<std::uint64_t> revision) {
  if (!reply.later) return reply;
  const std::function<Reply()> build = std::move(reply.later);
  try {
    return settleReply(build(), revision);
  } catch (const ApiError& e) {
    return errorReply(e, revision);
  } catch (const std::exception& e) {
    return errorReply(500, "internal", e.what(), revision);
  }
}

Reply methodNotAllowed(const std::string& method, const std::string& where, const char* allow,
                       std::optional<std::uint64_t> revision) {
  Reply reply = errorReply(405, "method_not_allowed", method + " is not allowed on " + where, revision);
  reply.headers.emplace_back("Allow", allow);
  return reply;
}

json statJson(const coordinator::Stat& stat) {
  return json{{"version", stat.version},
              {"cversion", stat.cversion},
              {"created", stat.created},
              {"modified", stat.modified},
              {"ctime", stat.ctime},
              {"mtime", stat.mtime},
              {"ephemeral_owner", stat.ephemeralOwner ? json(sessionIdText(stat.ephemeralOwner)) : json(nullptr)},
              {"num_children", stat.numChildren},
              {"data_length", stat.dataLength}};
}

void putData(json& object, std::string_view bytes) {
  if (coordinator::isValidUtf8(bytes)) {
    object["data"] = std::string(bytes);
  } else {
    object["data_b64"] = base64Encode(bytes);
  }
}

std::string sessionIdText(std::uint64_t id) { return session::formatSessionId(id); }

namespace {

// As nlohmann's dump escapes a string (ensure_ascii off), for text known to be UTF-8.
void appendUtf8JsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHex[static_cast<unsigned char>(c) >> 4];
          out += kHex[static_cast<unsigned char>(c) & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// The same for any bytes: those that are not UTF-8 go through the library, which replaces them.
void appendJsonString(std::string& out, std::string_view text) {
  if (coordinator::isValidUtf8(text)) return appendUtf8JsonString(out, text);
  out += dumpJson(json(std::string(text)));
}

template <typename Number>
void appendField(std::string& out, const char* name, Number value) {
  out += name;
  out += std::to_string(value);
}

void appendStat(std::string& out, const coordinator::Stat& stat) {
  appendField(out, "{\"version\":", stat.version);
  appendField(out, ",\"cversion\":", stat.cversion);
  appendField(out, ",\"created\":", stat.created);
  appendField(out, ",\"modified\":", stat.modified);
  appendField(out, ",\"ctime\":", stat.ctime);
  appendField(out, ",\"mtime\":", stat.mtime);
  out += ",\"ephemeral_owner\":";
  if (stat.ephemeralOwner) {
    appendJsonString(out, sessionIdText(stat.ephemeralOwner));
  } else {
    out += "null";
  }
  appendField(out, ",\"num_children\":", stat.numChildren);
  appendField(out, ",\"data_length\":", stat.dataLength);
  out += '}';
}

}  // namespace

std::string nodeJsonText(std::string_view path, std::string_view data, const coordinator::Stat& stat) {
  std::string out;
  out.reserve(200 + path.size() + data.size() + data.size() / 8);
  out += "{\"path\":";
  appendJsonString(out, path);
  if (coordinator::isValidUtf8(data)) {
    out += ",\"data\":";
    appendUtf8JsonString(out, data);
  } else {
    out += ",\"data_b64\":\"";
    out += base64Encode(data);
    out += '"';
  }
  out += ",\"stat\":";
  appendStat(out, stat);
  out += '}';
  return out;
}

std::string pathStatJsonText(std::string_view path, const coordinator::Stat& stat) {
  std::string out;
  out.reserve(200 + path.size());
  out += "{\"path\":";
  appendJsonString(out, path);
  out += ",\"stat\":";
  appendStat(out, stat);
  out += '}';
  return out;
}

std::optional<std::string_view> plainDataBody(std::string_view body) {
  std::size_t i = 0;
  auto space = [&] {
    while (i < body.size() && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) ++i;
  };
  auto take = [&](std::string_view token) {
    if (body.substr(i, token.size()) != token) return false;
    i += token.size();
    return true;
  };
  space();
  if (!take("{")) return std::nullopt;
  space();
  if (!take("\"data\"")) return std::nullopt;
  space();
  if (!take(":")) return std::nullopt;
  space();
  if (!take("\"")) return std::nullopt;
  const std::size_t start = i;
  for (; i < body.size() && body[i] != '"'; ++i) {
    const auto c = static_cast<unsigned char>(body[i]);
    if (c < 0x20 || c == '\\') return std::nullopt;
  }
  if (i == body.size()) return std::nullopt;
  const std::string_view text = body.substr(start, i - start);
  ++i;
  space();
  if (!take("}")) return std::nullopt;
  space();
  if (i != body.size() || !coordinator::isValidUtf8(text)) return std::nullopt;
  return text;
}

json parseBody(std::string_view body) {
  // (The plain bodies of puts and creates skip this: parseSetBody, parseCreateBody.)
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded()) throw ApiError(400, "bad_json", "the request body is not valid JSON");
  if (!parsed.is_object()) throw ApiError(400, "bad_json", "the request body must be a JSON object");
  return parsed;
}

std::string requirePath(std::string_view path) {
  if (auto problem = coordinator::checkPath(path)) {
    if (problem->tooLong) throw ApiError(413, "too_large", problem->message);
    throw ApiError(400, "invalid_path", problem->message);
  }
  return std::string(path);
}

void requireWritable(std::string_view path) {
  if (coordinator::isReserved(path)) {
    throw ApiError(403, "forbidden", std::string(coordinator::kReservedPrefix) + " is reserved and read-only");
  }
}

namespace {

// Reads the fields of one JSON object strictly: wrong types and unknown fields are 400s.
class Fields {
 public:
  Fields(const json& object, std::string where) : object_(object), where_(std::move(where)) {
    if (!object_.is_object()) fail(where_ + " must be a JSON object");
  }

  const json* find(const char* name) {
    seen_.insert(name);
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::optional<std::string> string(const char* name) {
    const json* value = find(name);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) fail(field(name) + " must be a string");
    return value->get<std::string>();
  }

  bool flag(const char* name) {
    const json* value = find(name);
    if (value == nullptr) return false;
    if (!value->is_boolean()) fail(field(name) + " must be true or false");
    return value->get<bool>();
  }

  std::optional<std::int64_t> version(const char* name) {
    const json* value = find(name);
    if (value == nullptr) return std::nullopt;
    if (value->is_number_unsigned() && value->get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(value->get<std::uint64_t>());
    }
    if (value->is_number_integer() && !value->is_number_unsigned() && value->get<std::int64_t>() >= 0) {
      return value->get<std::int64_t>();
    }
    fail(field(name) + " must be a non-negative integer");
  }

  std::string data() {
    auto text = string("data");
    auto b64 = string("data_b64");
    if (text && b64) fail(where_ + ": give either data or data_b64, not both");
    std::string bytes;
    if (text) bytes = std::move(*text);
    if (b64) {
      auto decoded = base64Decode(*b64);
      if (!decoded) fail(field("data_b64") + " is not valid base64");
      bytes = std::move(*decoded);
    }
    if (bytes.size() > coordinator::kMaxDataBytes) {
      throw ApiError(413, "too_large", "node data is larger than 1 MiB");
    }
    return bytes;
  }

  std::uint64_t session() {
    auto text = string("session");
    if (!text) return 0;
    auto id = session::parseSessionId(*text);
    if (!id) fail(field("session") + " must be a session id (16 hex digits)");
    return *id;
  }

  void done() {
    for (auto& [key, value] : object_.items()) {
      if (!seen_.count(key)) fail(where_ + ": unknown field '" + key + "'");
    }
  }

  [[noreturn]] void fail(const std::string& message) { throw ApiError(400, "invalid_argument", message); }

 private:
  std::string field(const char* name) const { return where_ + ": '" + name + "'"; }

  const json& object_;
  std::string where_;
  std::set<std::string> seen_;
};

void readCreate(Fields& fields, Op& op) {
  op.type = OpType::Create;
  op.data = fields.data();
  op.ephemeral = fields.flag("ephemeral");
  op.sequential = fields.flag("sequential");
  op.makeParents = fields.flag("make_parents");
  op.session = fields.session();
  if (op.ephemeral && op.session == 0) fields.fail("an ephemeral node needs a 'session'");
  if (!op.ephemeral && op.session != 0) fields.fail("'session' is only used with 'ephemeral': true");
}

void readSet(Fields& fields, Op& op) {
  op.type = OpType::Set;
  op.data = fields.data();
  op.version = fields.version("version");
  op.createIfMissing = fields.flag("create");
}

}  // namespace

Op parseCreate(std::string path, const json& body) {
  Fields fields(body, "body");
  Op op;
  op.path = std::move(path);
  readCreate(fields, op);
  fields.done();
  return op;
}

Op parseSet(std::string path, const json& body) {
  Fields fields(body, "body");
  Op op;
  op.path = std::move(path);
  readSet(fields, op);
  fields.done();
  return op;
}

namespace {

// What readCreate or readSet make of {"data": text} alone: the op's other fields keep their
// defaults, as they do when the body names nothing else.
std::optional<Op> plainOp(OpType type, std::string& path, std::string_view body) {
  const auto text = plainDataBody(body);
  if (!text) return std::nullopt;
  if (text->size() > coordinator::kMaxDataBytes) throw ApiError(413, "too_large", "node data is larger than 1 MiB");
  Op op;
  op.type = type;
  op.path = std::move(path);
  op.data = std::string(*text);
  return op;
}

}  // namespace

Op parseCreateBody(std::string path, std::string_view body) {
  if (auto op = plainOp(OpType::Create, path, body)) return std::move(*op);
  return parseCreate(std::move(path), parseBody(body));
}

Op parseSetBody(std::string path, std::string_view body) {
  if (auto op = plainOp(OpType::Set, path, body)) return std::move(*op);
  return parseSet(std::move(path), parseBody(body));
}

Op parseTxnOp(const json& body) {
  Fields fields(body, "op");
  auto kind = fields.string("op");
  auto path = fields.string("path");
  if (!kind) fields.fail("every op needs \"op\": check, create, set or delete");
  if (!path) fields.fail("every op needs a \"path\"");
  Op op;
  op.path = requirePath(*path);
  if (*kind == "check") {
    op.type = OpType::Check;
    op.version = fields.version("version");
  } else if (*kind == "create") {
    readCreate(fields, op);
  } else if (*kind == "set") {
    readSet(fields, op);
  } else if (*kind == "delete") {
    op.type = OpType::Delete;
    op.version = fields.version("version");
    op.recursive = fields.flag("recursive");
  } else {
    fields.fail("unknown op '" + *kind + "': use check, create, set or delete");
  }
  fields.done();
  if (op.type != OpType::Check) requireWritable(op.path);
  return op;
}

json opResultJson(const coordinator::OpResult& result) {
  json out = {{"op", coordinator::opTypeName(result.type)}, {"path", result.path}};
  if (result.stat) out["stat"] = statJson(*result.stat);
  return out;
}

unsigned httpStatus(Status status) {
  switch (status) {
    case Status::Ok: return 200;
    case Status::NotFound:
    case Status::NoParent:
    case Status::SessionNotFound: return 404;
    case Status::Exists:
    case Status::BadVersion:
    case Status::NotEmpty:
    case Status::EphemeralParent: return 409;
    case Status::InvalidArgument: return 400;
    case Status::TooLarge: return 413;
    case Status::NoSpace: return 507;
    case Status::Overloaded: return 429;
    case Status::Unavailable:
    case Status::NoQuorum: return 503;
    case Status::Timeout: return 504;
    case Status::KeyReused: return 409;
    case Status::NotHolder: return 409;
    case Status::NotLeader: return 409;
  }
  return 500;
}

const char* errorCode(Status status) {
  switch (status) {
    case Status::Ok: return "ok";
    case Status::NotFound: return "not_found";
    case Status::NoParent: return "no_parent";
    case Status::SessionNotFound: return "session_not_found";
    case Status::Exists: return "exists";
    case Status::BadVersion: return "bad_version";
    case Status::NotEmpty: return "not_empty";
    case Status::EphemeralParent: return "no_children_for_ephemerals";
    case Status::InvalidArgument: return "invalid_argument";
    case Status::TooLarge: return "too_large";
    case Status::NoSpace: return "no_space";
    case Status::Overloaded: return "too_many_requests";
    case Status::Unavailable: return "unavailable";
    case Status::NoQuorum: return "no_quorum";
    case Status::Timeout: return "timeout";
    case Status::KeyReused: return "idempotency_key_reused";
    case Status::NotHolder: return "not_holder";
    case Status::NotLeader: return "not_leader_of_election";
  }
  return "internal";
}

}  // namespace warden::api
