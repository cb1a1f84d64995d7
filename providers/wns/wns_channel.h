#pragma once
// Internals of WnsProvider::parseChannelUri, declared here so a test can hold the two ways of
// splitting a channel URI against each other. Not for other callers.

#include <optional>
#include <string_view>

#include "base/result.h"

namespace pushhub::providers::wns::detail {

// What the channel checks read from a URI. Every view points into the URI.
struct UriParts {
  std::string_view host;      // as written (case kept); an IPv6 literal without brackets
  bool host_is_name = false;  // a registered name, not an IP literal
  bool has_port = false;
  std::string_view port;  // the digits after ':' when has_port (may be empty)
  std::string_view path;  // encoded, may be empty
  bool has_query = false;
  std::string_view query;  // encoded, after '?'

  bool operator==(const UriParts&) const = default;
};

// Any URI by RFC 3986 (boost::url): the scheme must be https, and there must be a host and no
// user info or fragment. Errors are the ones parseChannelUri reports.
Result<UriParts> splitAnyUri(std::string_view uri);

// Only the shape real channel URIs have, "https://host[:port]/path?query": a host of letters,
// digits, '-' and '.' (a name or an IPv4 address), a port of digits, then only characters
// RFC 3986 allows in a path and query, with well-formed %XX escapes.
// nullopt for anything else. Where it gives parts, splitAnyUri gives the same ones; it exists
// because a send checks every channel URI again and the generic parse cost more than the rest
// of encoding a WNS request.
std::optional<UriParts> splitCommonUri(std::string_view uri);

}  // namespace pushhub::providers::wns::detail
