// WnsProvider::parseChannelUri and the host pattern rules: the check that keeps a
// device-supplied URL from turning pushhub into a request forwarder (SSRF).
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "providers/wns/wns_provider.h"

namespace pushhub::providers::wns {
namespace {

constexpr uint16_t kHttpsPort = 443;

struct Pattern {
  std::string host;  // lower case, IPv6 without brackets; for a wildcard the suffix ".x.y"
  bool wildcard = false;
  std::optional<uint16_t> port;
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::optional<uint16_t> parsePort(std::string_view digits) {
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
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
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
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

}  // namespace

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
  if (uri.empty()) {
    return channelError("empty");
  }
  if (uri.size() > kMaxChannelUriBytes) {
    return channelError(std::to_string(uri.size()) + " bytes, at most " +
                        std::to_string(kMaxChannelUriBytes) + " allowed");
  }
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

  Channel c;
  bool is_name = false;
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      c.host = lower(u.encoded_host());
      if (!validHostName(c.host)) {
        return channelError("host must be letters, digits, '-' and '.' without empty labels");
      }
      is_name = true;
      break;
    case boost::urls::host_type::ipv4:
      c.host = std::string(u.encoded_host());
      break;
    case boost::urls::host_type::ipv6:
      c.host = lower(u.encoded_host_address());
      break;
    default:
      return channelError("unsupported host form");
  }
  if (u.has_port()) {
    auto port = parsePort(u.port());
    if (!port) {
      return channelError("port must be a number from 1 to 65535");
    }
    c.port = *port;
  }

  bool allowed = false;
  for (const std::string& text : allowed_hosts) {
    auto pattern = parsePattern(text);
    if (pattern && matches(*pattern, c.host, is_name, c.port)) {
      allowed = true;
      break;
    }
  }
  if (!allowed) {
    // The host passed the character checks above, so it is safe to show; the query is not.
    return channelError("host " + c.host + " port " + std::to_string(c.port) +
                        " is not an allowed WNS host");
  }

  std::string_view path = u.encoded_path();
  c.target = path.empty() ? "/" : std::string(path);
  if (u.has_query()) {
    c.target += '?';
    c.target += std::string_view(u.encoded_query());
  }
  return c;
}

}  // namespace pushhub::providers::wns
