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
  // Where to send it, for providers whose every device has its own host (WNS channel URIs).
  // Empty = the ProviderClient's default endpoint; port 0 = 443. ProviderClient routes on these;
  // the ConnectionPool ignores them (a pool has one endpoint).
  std::string host;
  uint16_t port = 0;
  // The generation of the credential encode() put in this request (AccessToken::generation);
  // ProviderClient copies it to Response::credential_generation for onAuthRejected(). 0 = none.
  uint64_t credential_generation = 0;
};

struct Response {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  // Which pool connection carried the response (ConnectionPool::recycle takes it); 0 = none.
  uint64_t connection_id = 0;
  // Request::credential_generation of the request this answers (set by ProviderClient).
  uint64_t credential_generation = 0;

  // First value of a header by its lowercase name; empty when absent.
  std::string_view header(std::string_view lowercase_name) const;
};

}  // namespace pushhub::providers
