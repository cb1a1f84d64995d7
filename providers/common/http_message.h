#pragma once
// The protocol-neutral request and response a Provider builds and the ConnectionPool carries.
// Plain values; a Request is moved into the pool and a Response is moved into the handler.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pushhub::providers {

struct Header {
  std::string name;  // lowercase (HTTP/2 requires it)
  std::string value;
  // Sent as HPACK "literal never indexed" (NGHTTP2_NV_FLAG_NO_INDEX): secrets such as bearer
  // tokens, and values that change on every request and would only churn the dynamic table.
  bool sensitive = false;
};

struct Request {
  std::string method = "POST";
  std::string path;
  std::vector<Header> headers;
  std::string body;
  // Send `:path` literal-never-indexed too (APNs: the path carries the per-device token).
  bool sensitive_path = false;
};

struct Response {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  // Which pool connection carried the response (ConnectionPool::recycle takes it); 0 = none.
  uint64_t connection_id = 0;

  // First value of a header by its lowercase name; empty when absent.
  std::string_view header(std::string_view lowercase_name) const;
};

}  // namespace pushhub::providers
