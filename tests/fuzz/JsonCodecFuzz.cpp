// Fuzzes the JSON request decoders of the HTTP edge (api/JsonCodec, api/Base64, session ids)
// with arbitrary request bodies. The only acceptable refusal is an ApiError with a 4xx status;
// and:
//   - every Op they accept is well formed (a valid path where they check it, no writes under
//     /_warden, an ephemeral node has its session, data within the limit) and survives the log's
//     binary encoding unchanged;
//   - node data put into a reply (putData) comes back byte for byte, and the reply's JSON
//     (dumpJson) parses to what was put in;
//   - base64 and session ids decode, re-encode and decode to the same value;
//   - a create's or set's raw body (parseCreateBody, parseSetBody, which skip the json tree for
//     a plain body) makes the op, or the error, that the json tree makes.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "api/Base64.h"
#include "api/JsonCodec.h"
#include "coordinator/Bytes.h"
#include "coordinator/Command.h"
#include "coordinator/Path.h"
#include "coordinator/StateMachine.h"
#include "session/SessionTable.h"
#include "tests/fuzz/FuzzCheck.h"

namespace {

using namespace warden;
using json = nlohmann::ordered_json;
using tests::fuzz::printable;

// Runs one decoder; a 4xx ApiError is a clean refusal, anything else escapes.
template <typename Decode>
void refusedCleanly(std::string_view body, Decode decode) {
  try {
    decode();
  } catch (const api::ApiError& e) {
    FUZZ_CHECK(e.status() >= 400 && e.status() < 500 && !e.code().empty(),
               "ApiError " + std::to_string(e.status()) + " " + e.code() + " on body " + printable(body));
  }
}

void checkOp(const coordinator::Op& op, std::string_view body) {
  FUZZ_CHECK(op.data.size() <= coordinator::kMaxDataBytes, "oversized data accepted from " + printable(body));
  if (op.type == coordinator::OpType::Create) {
    FUZZ_CHECK(op.ephemeral == (op.session != 0), "session without ephemeral (or back) from " + printable(body));
  }
  if (op.version) FUZZ_CHECK(*op.version >= 0, "negative version accepted from " + printable(body));
  coordinator::Encoder out;
  const coordinator::Command command = coordinator::txnCommand({op});
  coordinator::encodeCommand(out, command);
  coordinator::Decoder in(out.data());
  const coordinator::Command back = coordinator::decodeCommand(in);
  in.expectDone();
  FUZZ_CHECK(back == command, "an accepted op changes in the log's encoding, from " + printable(body));
}

void checkTxnOp(const json& element, std::string_view body) {
  refusedCleanly(body, [&] {
    const coordinator::Op op = api::parseTxnOp(element);
    FUZZ_CHECK(!coordinator::checkPath(op.path), "txn op with an invalid path from " + printable(body));
    FUZZ_CHECK(op.type == coordinator::OpType::Check || !coordinator::isReserved(op.path),
               "txn write under the reserved prefix from " + printable(body));
    checkOp(op, body);
  });
}

// The op a decoder makes, or the status and code of its refusal.
template <typename Decode>
std::variant<coordinator::Op, std::pair<unsigned, std::string>> outcome(Decode decode) {
  try {
    return decode();
  } catch (const api::ApiError& e) {
    return std::pair<unsigned, std::string>{e.status(), e.code()};
  }
}

void checkBody(std::string_view body) {
  FUZZ_CHECK(outcome([&] { return api::parseSetBody("/fuzz", body); }) ==
                 outcome([&] { return api::parseSet("/fuzz", api::parseBody(body)); }),
             "parseSetBody differs from the json tree on " + printable(body));
  FUZZ_CHECK(outcome([&] { return api::parseCreateBody("/fuzz", body); }) ==
                 outcome([&] { return api::parseCreate("/fuzz", api::parseBody(body)); }),
             "parseCreateBody differs from the json tree on " + printable(body));
  // The fast path for {"data": "text"} bodies: whatever it takes, the JSON parser reads alike.
  if (auto text = api::plainDataBody(body)) {
    const json full = json::parse(body, nullptr, false);
    const json expected = {{"data", std::string(*text)}};
    FUZZ_CHECK(!full.is_discarded() && full == expected,
               "plainDataBody took what the JSON parser reads otherwise: " + printable(body));
  }
  json parsed;
  try {
    parsed = api::parseBody(body);
  } catch (const api::ApiError& e) {
    FUZZ_CHECK(e.status() == 400, "parseBody: " + std::to_string(e.status()));
    return;
  }
  FUZZ_CHECK(parsed.is_object(), "parseBody returned a non-object for " + printable(body));
  refusedCleanly(body, [&] { checkOp(api::parseCreate("/fuzz", parsed), body); });
  refusedCleanly(body, [&] { checkOp(api::parseSet("/fuzz", parsed), body); });
  checkTxnOp(parsed, body);
  if (auto ops = parsed.find("ops"); ops != parsed.end() && ops->is_array()) {
    for (const auto& element : *ops) checkTxnOp(element, body);
  }
  // The reply side: what parsed must dump and parse back unchanged.
  const std::string dumped = api::dumpJson(parsed);
  FUZZ_CHECK(json::parse(dumped) == parsed, "dumpJson does not round-trip " + printable(body));
}

void checkData(std::string_view bytes) {
  json object = json::object();
  api::putData(object, bytes);
  const json reparsed = json::parse(api::dumpJson(object));
  if (auto text = reparsed.find("data"); text != reparsed.end()) {
    FUZZ_CHECK(text->get<std::string>() == bytes, "putData \"data\" changed " + printable(bytes));
  } else {
    const auto decoded = api::base64Decode(reparsed.at("data_b64").get<std::string>());
    FUZZ_CHECK(decoded && *decoded == bytes, "putData \"data_b64\" changed " + printable(bytes));
  }
  if (const auto decoded = api::base64Decode(bytes)) {
    const auto again = api::base64Decode(api::base64Encode(*decoded));
    FUZZ_CHECK(again && *again == *decoded, "base64 does not round-trip " + printable(bytes));
  }
  if (const auto id = session::parseSessionId(bytes)) {
    const std::string text = session::formatSessionId(*id);
    FUZZ_CHECK(text.size() == 16 && session::parseSessionId(text) == id, "session id " + printable(bytes));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  checkBody(input);
  checkData(input);
  return 0;
}
