#pragma once
// The protocol-neutral request and response a Provider builds and the ConnectionPool carries.
// Plain values; a Request is moved into the pool and a Response is moved into the handler.

#include <cstdint>
#include <memory>
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
  // The body is `shared_body` when that is set, else `body`; read it with bodyView(). Set one,
  // not both. `shared_body` is for a payload many requests carry unchanged (a notification's
  // body goes to every target of a broadcast): the requests share one immutable string instead
  // of a copy each. It keeps the string alive as long as this Request or any copy of it exists,
  // which covers the connection sending it, a resubmission on another connection and a retry.
  // Often an aliasing pointer into a shared Notification (see Provider::encode).
  std::string body;
  std::shared_ptr<const std::string> shared_body;
  // Headers every request of one send carries unchanged (the credential, the topic, the content
  // type), shared like `shared_body` instead of built for each target. They go out before
  // `headers`, which are this request's own. Read both with forEachHeader().
  std::shared_ptr<const std::vector<Header>> shared_headers;
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

  std::string_view bodyView() const {
    return shared_body ? std::string_view(*shared_body) : std::string_view(body);
  }
  // Calls f(const Header&) for the shared headers, then for this request's own.
  template <typename F>
  void forEachHeader(F&& f) const {
    if (shared_headers) {
      for (const Header& h : *shared_headers) f(h);
    }
    for (const Header& h : headers) f(h);
  }
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
