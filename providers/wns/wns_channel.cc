// WnsProvider::parseChannelUri and the host pattern rules: the check that keeps a
// device-supplied URL from turning pushhub into a request forwarder (SSRF).
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>

#include "providers/wns/wns_channel.h"
#include "providers/wns/wns_provider.h"

namespace pushhub::providers::wns {
namespace {

constexpr uint16_t kHttpsPort = 443;

using Pattern = WnsProvider::AllowedHosts::Pattern;

std::string lower(std::string_view s) {  // ASCII only: hosts and schemes are ASCII
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool isHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::optional<uint16_t> parsePort(std::string_view digits) {
  if (digits.empty() || digits.size() > 5 || !std::all_of(digits.begin(), digits.end(), isDigit)) {
    return std::nullopt;
  }
  unsigned value = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// Letters, digits, '-' and '.', no empty label (so no leading, trailing or doubled dot).
bool validHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) {
      return false;
    }
  }
  return label != 0;
}

std::optional<Pattern> parsePattern(std::string_view text) {
  std::string p = lower(text);
  Pattern out;
  std::string_view rest;
  if (!p.empty() && p.front() == '[') {
    size_t close = p.find(']');
    if (close == std::string::npos || close == 1) {
      return std::nullopt;
    }
    out.host = p.substr(1, close - 1);
    rest = std::string_view(p).substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return std::nullopt;
    }
    // Only hex digits, ':' and '.' (an embedded IPv4) belong in an IPv6 literal.
    for (char c : out.host) {
      if (!isHexDigit(c) && c != ':' && c != '.') {
        return std::nullopt;
      }
    }
  } else {
    size_t colon = p.find(':');
    if (colon != std::string::npos && p.find(':', colon + 1) != std::string::npos) {
      return std::nullopt;  // an IPv6 literal must be bracketed
    }
    out.host = p.substr(0, colon);
    rest = colon == std::string::npos ? std::string_view() : std::string_view(p).substr(colon);
    if (out.host.rfind("*.", 0) == 0) {
      out.wildcard = true;
      out.host.erase(0, 1);  // keep the dot: ".notify.windows.com"
      if (!validHostName(std::string_view(out.host).substr(1))) {
        return std::nullopt;
      }
    } else if (!validHostName(out.host)) {
      return std::nullopt;
    }
  }
  if (!rest.empty()) {
    out.port = parsePort(rest.substr(1));
    if (!out.port) {
      return std::nullopt;
    }
  }
  return out;
}

bool matches(const Pattern& p, std::string_view host, bool is_name, uint16_t port) {
  if (port != p.port.value_or(kHttpsPort)) {
    return false;
  }
  if (p.wildcard) {
    // ".notify.windows.com" must be a proper suffix preceded by at least one label.
    return is_name && host.size() > p.host.size() &&
           host.compare(host.size() - p.host.size(), p.host.size(), p.host) == 0;
  }
  return host == p.host;
}

Error channelError(std::string what) { return Error::invalidArgument("channel uri: " + what); }

// RFC 3986 characters of a path or query other than '%': unreserved, sub-delims, ':', '@', '/'
// and '?'.
constexpr std::array<bool, 256> kPathOrQueryChars = [] {
  std::array<bool, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (unsigned char c : std::string_view("-._~!$&'()*+,;=:@/?")) table[c] = true;
  return table;
}();

// RFC 3986 IPv4address: four dec-octets (0-255, no leading zero) joined by dots. Anything else
// of digits and dots ("127.1", "01.2.3.4") is a registered name to a URI parser.
bool isIpv4Address(std::string_view host) {
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (host.empty() || host.front() != '.') return false;
      host.remove_prefix(1);
    }
    size_t digits = 0;
    while (digits < host.size() && digits < 4 && isDigit(host[digits])) ++digits;
    if (digits == 0 || digits > 3 || (digits > 1 && host.front() == '0')) return false;
    unsigned value = 0;
    std::from_chars(host.data(), host.data() + digits, value);
    if (value > 255) return false;
    host.remove_prefix(digits);
  }
  return host.empty();
}

}  // namespace

namespace detail {

Result<UriParts> splitAnyUri(std::string_view uri) {
  auto parsed = boost::urls::parse_uri(boost::urls::string_view(uri.data(), uri.size()));
  if (!parsed) {
    return channelError("not an absolute URI (RFC 3986)");
  }
  const boost::urls::url_view& u = *parsed;
  if (lower(u.scheme()) != "https") {
    return channelError("scheme must be https");
  }
  if (!u.has_authority() || u.host_type() == boost::urls::host_type::none ||
      u.encoded_host().empty()) {
    return channelError("host missing");
  }
  if (u.has_userinfo()) {
    return channelError("must not contain user info ('user@')");
  }
  if (u.has_fragment()) {
    return channelError("must not contain a fragment ('#')");
  }
  UriParts parts;
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      parts.host = u.encoded_host();
      parts.host_is_name = true;
      break;
    case boost::urls::host_type::ipv4:
      parts.host = u.encoded_host();
      break;
    case boost::urls::host_type::ipv6:
      parts.host = u.encoded_host_address();
      break;
    default:
      return channelError("unsupported host form");
  }
  parts.has_port = u.has_port();
  parts.port = u.port();
  parts.path = u.encoded_path();
  parts.has_query = u.has_query();
  parts.query = u.encoded_query();
  return parts;
}

std::optional<UriParts> splitCommonUri(std::string_view uri) {
  constexpr std::string_view kScheme = "https://";
  if (uri.size() <= kScheme.size() || lower(uri.substr(0, kScheme.size())) != kScheme) {
    return std::nullopt;
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  UriParts parts;
  parts.host = authority.substr(0, authority.find(':'));
  if (parts.host.size() < authority.size()) {
    parts.has_port = true;
    parts.port = authority.substr(parts.host.size() + 1);
    if (!std::all_of(parts.port.begin(), parts.port.end(), isDigit)) {
      return std::nullopt;
    }
  }
  if (parts.host.empty() || !std::all_of(parts.host.begin(), parts.host.end(), [](char c) {
        return isLetter(c) || isDigit(c) || c == '-' || c == '.';
      })) {
    return std::nullopt;
  }
  parts.host_is_name = !isIpv4Address(parts.host);
  rest.remove_prefix(authority_end);
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '%') {
      if (i + 2 >= rest.size() || !isHexDigit(rest[i + 1]) || !isHexDigit(rest[i + 2])) {
        return std::nullopt;
      }
      i += 2;
    } else if (!kPathOrQueryChars[static_cast<unsigned char>(rest[i])]) {
      return std::nullopt;  // '#' among them
    }
  }
  size_t query = rest.find('?');
  parts.path = rest.substr(0, query);
  if (query != std::string_view::npos) {
    parts.has_query = true;
    parts.query = rest.substr(query + 1);
  }
  return parts;
}

}  // namespace detail

WnsProvider::AllowedHosts::AllowedHosts(const std::vector<std::string>& patterns) {
  for (const std::string& text : patterns) {
    if (auto pattern = parsePattern(text)) {
      patterns_.push_back(std::move(*pattern));
    }
  }
}

bool WnsProvider::AllowedHosts::allows(std::string_view host, bool is_name, uint16_t port) const {
  return std::any_of(patterns_.begin(), patterns_.end(),
                     [&](const Pattern& p) { return matches(p, host, is_name, port); });
}

Result<void> WnsProvider::validateAllowedHosts(const std::vector<std::string>& allowed_hosts) {
  for (size_t i = 0; i < allowed_hosts.size(); ++i) {
    if (!parsePattern(allowed_hosts[i])) {
      return Error::invalidArgument("allowed_hosts[" + std::to_string(i) + "]: '" +
                                    allowed_hosts[i] +
                                    "' is not *.domain, a host name or an IP literal, with an "
                                    "optional :port");
    }
  }
  return {};
}

Result<WnsProvider::Channel> WnsProvider::parseChannelUri(
    std::string_view uri, const std::vector<std::string>& allowed_hosts) {
  return parseChannelUri(uri, AllowedHosts(allowed_hosts));
}

Result<WnsProvider::Channel> WnsProvider::parseChannelUri(std::string_view uri,
                                                          const AllowedHosts& allowed) {
  if (uri.empty()) {
    return channelError("empty");
  }
  if (uri.size() > kMaxChannelUriBytes) {
    return channelError(std::to_string(uri.size()) + " bytes, at most " +
                        std::to_string(kMaxChannelUriBytes) + " allowed");
  }
  std::optional<detail::UriParts> common = detail::splitCommonUri(uri);
  Result<detail::UriParts> split =
      common ? Result<detail::UriParts>(*common) : detail::splitAnyUri(uri);
  if (!split) {
    return split.error();
  }
  const detail::UriParts& parts = *split;

  Channel c;
  c.host = lower(parts.host);
  if (parts.host_is_name && !validHostName(c.host)) {
    return channelError("host must be letters, digits, '-' and '.' without empty labels");
  }
  if (parts.has_port) {
    auto port = parsePort(parts.port);
    if (!port) {
      return channelError("port must be a number from 1 to 65535");
    }
    c.port = *port;
  }
  if (!allowed.allows(c.host, parts.host_is_name, c.port)) {
    // The host passed the character checks above, so it is safe to show; the query is not.
    return channelError("host " + c.host + " port " + std::to_string(c.port) +
                        " is not an allowed WNS host");
  }

  c.target.reserve(1 + parts.path.size() + 1 + parts.query.size());
  c.target = parts.path.empty() ? "/" : parts.path;
  if (parts.has_query) {
    c.target += '?';
    c.target += parts.query;
  }
  return c;
}

}  // namespace pushhub::providers::wns
