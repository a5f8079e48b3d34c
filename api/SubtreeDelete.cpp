#include "api/SubtreeDelete.h"

#include <vector>

#include <nlohmann/json.hpp>

#include "api/Url.h"

namespace warden::api {

using json = nlohmann::ordered_json;

namespace {

constexpr std::size_t kPage = 1024;            // children per list page, and the ops a txn takes
constexpr std::size_t kMaxBody = 1 << 20;      // a txn body stays well below the server's 1.5 MiB
constexpr int kMaxRounds = 100;                // passes over one node's children
constexpr std::size_t kMaxPages = 1'000'000;   // pages of one pass: a bound on a server that never ends

std::string nodeTarget(const std::string& path) { return "/v1/nodes" + percentEncodePath(path); }

std::string childPath(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

std::string errorField(const HttpResponse& response, const char* field) {
  const json body = response.json();
  if (!body.is_object() || !body.contains(field) || !body[field].is_string()) return {};
  return body[field].get<std::string>();
}

std::string describe(const HttpResponse& response) {
  std::string text = std::to_string(response.status);
  if (auto code = errorField(response, "error"); !code.empty()) text += " " + code;
  if (auto message = errorField(response, "message"); !message.empty()) text += ": " + message;
  return text;
}

// One pass of deleteSubtree: the state of one call, so that the writes can be counted.
class Deleter {
 public:
  explicit Deleter(HttpClient& client) : client_(client) {}

  // Deletes path and its subtree. `mustExist`: a 404 on the first request is an error (else the
  // node was deleted by someone else, which is what we wanted).
  void deleteNode(const std::string& path, bool mustExist) {
    HttpResponse response;
    for (int round = 0; round < kMaxRounds; ++round) {
      response = write("DELETE", nodeTarget(path) + "?recursive");
      if (response.status == 204) return;
      if (response.status == 404 && !(mustExist && round == 0)) return;
      if (!isOverWriteLimit(response)) fail("deleting", path, response);
      deleteChildren(path);
    }
    throw SubtreeDeleteError("deleting " + path + " did not finish after " + std::to_string(kMaxRounds) +
                                 " rounds: children kept coming in",
                             path, response, result.batches);
  }

  SubtreeDeleted result;

 private:
  // Deletes every child of path with its subtree, a page at a time.
  void deleteChildren(const std::string& path) {
    std::string after;
    for (std::size_t pages = 0; pages < kMaxPages; ++pages) {
      std::string target = nodeTarget(path) + "?children&limit=" + std::to_string(kPage);
      if (!after.empty()) target += "&after=" + percentEncodePath(after);
      HttpResponse list = client_.send(HttpRequest{"GET", target, {}, {}, {}});
      if (list.status == 404) return;  // deleted meanwhile
      if (list.status != 200) fail("listing the children of", path, list);
      const json body = list.json();
      if (!body.is_object() || !body.contains("children") || !body["children"].is_array()) {
        malformed(path, list, "no \"children\" array");
      }
      std::vector<std::string> children;
      for (const auto& name : body["children"]) {
        if (!name.is_string() || name.get<std::string>().empty()) malformed(path, list, "a child name is not a name");
        children.push_back(childPath(path, name.get<std::string>()));
      }
      deleteBatch(children, 0, children.size());
      if (!body.contains("next") || body["next"].is_null()) return;
      if (!body["next"].is_string() || body["next"].get<std::string>().empty() || body["next"] == after) {
        malformed(path, list, "the page cursor \"next\" does not move on");
      }
      after = body["next"].get<std::string>();
    }
    throw SubtreeDeleteError("listing the children of " + path + " took more than " + std::to_string(kMaxPages) +
                                 " pages",
                             path, HttpResponse{}, result.batches);
  }

  // Deletes children[begin, end) with their subtrees: in one transaction if the server allows
  // it, else in halves; a single child as a node of its own.
  void deleteBatch(const std::vector<std::string>& children, std::size_t begin, std::size_t end) {
    if (begin == end) return;
    if (end - begin == 1) return deleteNode(children[begin], false);
    json ops = json::array();
    for (std::size_t i = begin; i < end; ++i) ops.push_back({{"op", "delete"}, {"path", children[i]}, {"recursive", true}});
    const std::string body = json{{"ops", ops}}.dump();
    if (body.size() <= kMaxBody) {
      HttpResponse response = write("POST", "/v1/txn", body);
      if (response.status == 200) return;
      // A child deleted meanwhile fails the transaction (409 not_found): the halves go on.
      const bool goneMeanwhile = response.status == 409 && errorField(response, "error") == "not_found";
      if (!isOverWriteLimit(response) && !goneMeanwhile) fail("deleting under", parentOf(children[begin]), response);
    }
    const std::size_t middle = begin + (end - begin) / 2;
    deleteBatch(children, begin, middle);
    deleteBatch(children, middle, end);
  }

  // Sends a write under a fresh Idempotency-Key; counts it when it succeeded.
  HttpResponse write(const std::string& method, const std::string& target, const std::string& body = {}) {
    HttpResponse response =
        client_.send(HttpRequest{method, target, body, "application/json", HttpClient::newIdempotencyKey()});
    if (response.status < 300) {
      ++result.batches;
      if (response.revision) result.revision = response.revision;
    }
    return response;
  }

  static std::string parentOf(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
  }

  [[noreturn]] void fail(const char* what, const std::string& path, const HttpResponse& response) const {
    throw SubtreeDeleteError(std::string(what) + " " + path + " failed: " + describe(response), path,
                             response, result.batches);
  }

  [[noreturn]] void malformed(const std::string& path, const HttpResponse& response, const char* why) const {
    throw SubtreeDeleteError("listing the children of " + path + ": malformed reply from " + response.endpoint +
                                 ": " + why,
                             path, response, result.batches);
  }

  HttpClient& client_;
};

}  // namespace

bool isOverWriteLimit(const HttpResponse& response) {
  return response.status == 413 && errorField(response, "error") == "too_large" &&
         errorField(response, "message").find("--max-txn-nodes") != std::string::npos;
}

SubtreeDeleted deleteSubtree(HttpClient& client, const std::string& path) {
  Deleter deleter(client);
  deleter.deleteNode(path, true);
  return deleter.result;
}

}  // namespace warden::api
