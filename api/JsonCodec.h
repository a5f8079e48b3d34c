#pragma once
// JSON at the HTTP edge: Stat, node data, session ids, and the strict parsing of request bodies
// into coordinator Ops. Every malformed input becomes an ApiError (4xx), never a crash.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/Reply.h"
#include "coordinator/Command.h"
#include "coordinator/NodeRecord.h"
#include "coordinator/Status.h"

namespace warden::api {

inline constexpr std::size_t kMaxBodyBytes = 1536 * 1024;  // 1.5 MiB

nlohmann::ordered_json statJson(const coordinator::Stat& stat);
// Sets "data" when the bytes are UTF-8, else "data_b64".
void putData(nlohmann::ordered_json& object, std::string_view bytes);
std::string sessionIdText(std::uint64_t id);

// The hot replies written straight into text, byte for byte what dumping the same ordered_json
// gives (JsonCodecTest compares them), without building a json tree first:
//   {"path":P,"data":D (or "data_b64"),"stat":{...}}   a node, as GET /v1/nodes answers
//   {"path":P,"stat":{...}}                              a create's or set's answer
std::string nodeJsonText(std::string_view path, std::string_view data, const coordinator::Stat& stat);
std::string pathStatJsonText(std::string_view path, const coordinator::Stat& stat);

// An empty body is an empty object; anything else must be a JSON object.
nlohmann::ordered_json parseBody(std::string_view body);
// The body most writes send, {"data": "text"} (JSON whitespace allowed between the tokens),
// with text that needs no escape (no '"', '\\' or control character) and is valid UTF-8: the
// text, read without the JSON parser (parseSetBody, parseCreateBody). nullopt for anything else,
// which they parse in full. Whatever it accepts, the JSON parser reads alike (JsonCodecTest, the
// JSON fuzz target).
std::optional<std::string_view> plainDataBody(std::string_view body);

// A well-formed namespace path (ApiError invalid_path / too_large otherwise).
std::string requirePath(std::string_view path);
// Refuses writes under the reserved /_warden prefix (ApiError forbidden).
void requireWritable(std::string_view path);

// Request bodies of POST and PUT /v1/nodes/{path}.
coordinator::Op parseCreate(std::string path, const nlohmann::ordered_json& body);
coordinator::Op parseSet(std::string path, const nlohmann::ordered_json& body);
// The same from the raw body: a plain data body (plainDataBody) becomes the op without a json
// tree (eight of a put's allocations), anything else goes through parseBody and the above.
coordinator::Op parseCreateBody(std::string path, std::string_view body);
coordinator::Op parseSetBody(std::string path, std::string_view body);
// One element of POST /v1/txn's "ops".
coordinator::Op parseTxnOp(const nlohmann::ordered_json& op);

nlohmann::ordered_json opResultJson(const coordinator::OpResult& result);

// The HTTP status and error code of a failed command.
unsigned httpStatus(coordinator::Status status);
const char* errorCode(coordinator::Status status);

}  // namespace warden::api
