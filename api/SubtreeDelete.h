#pragma once
// Deleting a subtree that may be larger than one write may delete (the server's --max-txn-nodes):
// shared by `warden rm -r` and the cleanup of `warden bench`.
//
// The whole subtree goes in one DELETE ?recursive when the server allows it. When it answers 413
// too_large for --max-txn-nodes, the subtree goes bottom up in bounded batches instead: the
// node's children, a page of at most 1024 at a time, are deleted with their subtrees in one
// transaction; a transaction that is still too large is split in halves, and a single child too
// large for one write is deleted the same way, its own children first. Then the node itself.
// The subtree then disappears over several revisions, not atomically; a child created meanwhile
// is deleted in a further round (at most 100 rounds per node).

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "api/HttpClient.h"

namespace warden::api {

struct SubtreeDeleted {
  std::uint64_t batches = 0;              // the writes that deleted it: 1 when it went at once
  std::optional<std::uint64_t> revision;  // of the last of them
};

// The server refused a write or a list (what() names the node and the server's error), or a list
// of children came back malformed (then `response().status` is 200, or 0 for a list that never
// ended). `path()` is the node it was deleting or listing; `batches()` writes of the subtree had
// succeeded before: that part of it is gone.
class SubtreeDeleteError : public std::runtime_error {
 public:
  SubtreeDeleteError(const std::string& what, std::string path, HttpResponse response, std::uint64_t batches)
      : std::runtime_error(what), path_(std::move(path)), response_(std::move(response)), batches_(batches) {}
  const std::string& path() const { return path_; }
  const HttpResponse& response() const { return response_; }
  std::uint64_t batches() const { return batches_; }

 private:
  std::string path_;
  HttpResponse response_;
  std::uint64_t batches_;
};

// Deletes `path` (not "/") and its subtree through `client`. Every write carries a fresh
// Idempotency-Key, so the client may repeat it on another endpoint. A 404 for `path` itself on
// the first request is a SubtreeDeleteError; a node (path or below) that another client deletes
// meanwhile is not an error. HttpClientError passes through (then part of the subtree may be
// gone: running it again goes on from there).
SubtreeDeleted deleteSubtree(HttpClient& client, const std::string& path);

// True for the server's 413 too_large for a write over --max-txn-nodes (not for, say, a path
// over 1024 bytes, which batches would not cure).
bool isOverWriteLimit(const HttpResponse& response);

}  // namespace warden::api
