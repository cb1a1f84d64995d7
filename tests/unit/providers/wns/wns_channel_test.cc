// WnsProvider::parseChannelUri: the channel URI a device registers is checked before pushhub
// connects anywhere (SSRF guard).
#include <gtest/gtest.h>

#include "providers/wns/wns_channel.h"
#include "providers/wns/wns_provider.h"

namespace pushhub::providers::wns {
namespace {

const std::vector<std::string> kDefault = {"*.notify.windows.com"};

struct Row {
  const char* uri;
  bool ok;
  const char* host_or_error;  // expected host when ok, a fragment of the error otherwise
  uint16_t port;
  const char* target;
};

void PrintTo(const Row& row, std::ostream* os) { *os << row.uri; }

class ChannelTable : public ::testing::TestWithParam<Row> {};

TEST_P(ChannelTable, DefaultPatterns) {
  const Row& row = GetParam();
  auto c = WnsProvider::parseChannelUri(row.uri, kDefault);
  if (row.ok) {
    ASSERT_TRUE(c) << row.uri << ": " << c.error().message;
    EXPECT_EQ(c->host, row.host_or_error);
    EXPECT_EQ(c->port, row.port);
    EXPECT_EQ(c->target, row.target);
  } else {
    ASSERT_FALSE(c) << row.uri;
    EXPECT_EQ(c.error().code, Error::Code::kInvalidArgument);
    EXPECT_NE(c.error().message.find(row.host_or_error), std::string::npos)
        << row.uri << ": " << c.error().message;
    EXPECT_EQ(c.error().message.find("AwYAAAB"), std::string::npos) << c.error().message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, ChannelTable,
    ::testing::Values(
        // Real channel shapes.
        Row{"https://dm3p.notify.windows.com/?token=AwYAAAB%2bQ%3d%3d", true,
            "dm3p.notify.windows.com", 443, "/?token=AwYAAAB%2bQ%3d%3d"},
        Row{"https://wns2-by3p.notify.windows.com/w/?token=AwYAAAB", true,
            "wns2-by3p.notify.windows.com", 443, "/w/?token=AwYAAAB"},
        Row{"HTTPS://DM3P.Notify.Windows.COM/?token=AwYAAAB", true, "dm3p.notify.windows.com", 443,
            "/?token=AwYAAAB"},
        Row{"https://a.b.notify.windows.com:443/x", true, "a.b.notify.windows.com", 443, "/x"},
        Row{"https://dm3p.notify.windows.com", true, "dm3p.notify.windows.com", 443, "/"},
        // Host tricks.
        Row{"https://notify.windows.com/?token=AwYAAAB", false, "not an allowed", 0, ""},
        Row{"https://evilnotify.windows.com/?token=AwYAAAB", false, "not an allowed", 0, ""},
        Row{"https://notify.windows.com.evil.com/?token=AwYAAAB", false, "not an allowed", 0, ""},
        Row{"https://x.notify.windows.com.evil.com/?token=AwYAAAB", false, "not an allowed", 0, ""},
        Row{"https://evil.com/x.notify.windows.com?token=AwYAAAB", false, "not an allowed", 0, ""},
        Row{"https://evil.com?.notify.windows.com", false, "not an allowed", 0, ""},
        Row{"https://x.notify.windows.com./?token=AwYAAAB", false, "empty labels", 0, ""},
        Row{"https://x..notify.windows.com/", false, "empty labels", 0, ""},
        Row{"https://x%2enotify.windows.com/", false, "host must be", 0, ""},
        Row{"https://x_y.notify.windows.com/", false, "host must be", 0, ""},
        Row{"https://x.notify.windows.com\\@evil.com/", false, "not an absolute URI", 0, ""},
        Row{"https://x.notify.windows.com /", false, "not an absolute URI", 0, ""},
        // User info, fragment, scheme.
        Row{"https://a@x.notify.windows.com/?token=AwYAAAB", false, "user info", 0, ""},
        Row{"https://a:b@x.notify.windows.com/", false, "user info", 0, ""},
        Row{"https://@x.notify.windows.com/", false, "user info", 0, ""},
        Row{"https://evil.com@x.notify.windows.com/", false, "user info", 0, ""},
        Row{"https://x.notify.windows.com/?token=AwYAAAB#frag", false, "fragment", 0, ""},
        Row{"http://x.notify.windows.com/?token=AwYAAAB", false, "https", 0, ""},
        Row{"wss://x.notify.windows.com/", false, "https", 0, ""},
        Row{"//x.notify.windows.com/", false, "not an absolute URI", 0, ""},
        Row{"https:/x.notify.windows.com/", false, "host missing", 0, ""},
        Row{"https:///path", false, "host missing", 0, ""},
        Row{"x.notify.windows.com/?token=AwYAAAB", false, "", 0, ""},
        Row{"", false, "empty", 0, ""},
        // Ports.
        Row{"https://x.notify.windows.com:8443/", false, "port 8443", 0, ""},
        Row{"https://x.notify.windows.com:0/", false, "port", 0, ""},
        Row{"https://x.notify.windows.com:99999/", false, "port", 0, ""},
        Row{"https://x.notify.windows.com:/", false, "port", 0, ""},
        // IP literals never match a wildcard.
        Row{"https://127.0.0.1/?token=AwYAAAB", false, "not an allowed", 0, ""},
        Row{"https://[::1]/", false, "not an allowed", 0, ""},
        Row{"https://169.254.169.254/latest/meta-data", false, "not an allowed", 0, ""},
        Row{"https://[v1.fe]/", false, "unsupported host", 0, ""}));

TEST(ChannelUri, LengthLimit) {
  std::string base = "https://x.notify.windows.com/?token=";
  std::string ok = base + std::string(2048 - base.size(), 'A');
  ASSERT_EQ(ok.size(), 2048u);
  EXPECT_TRUE(WnsProvider::parseChannelUri(ok, kDefault));
  auto r = WnsProvider::parseChannelUri(ok + "A", kDefault);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("2048"), std::string::npos);
  EXPECT_EQ(r.error().message.find("AAAA"), std::string::npos);
}

TEST(ChannelUri, ExactPatternsAndPorts) {
  std::vector<std::string> allowed = {"127.0.0.1:8443", "wns.test", "[::1]:9443",
                                      "*.Example.ORG:444"};
  auto ip = WnsProvider::parseChannelUri("https://127.0.0.1:8443/c?token=t", allowed);
  ASSERT_TRUE(ip) << ip.error().message;
  EXPECT_EQ(ip->host, "127.0.0.1");
  EXPECT_EQ(ip->port, 8443);
  EXPECT_EQ(ip->target, "/c?token=t");
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://127.0.0.1/c", allowed));       // port 443
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://127.0.0.1:8444/c", allowed));  // other port
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://127.0.0.2:8443/c", allowed));

  EXPECT_TRUE(WnsProvider::parseChannelUri("https://wns.test/c", allowed));
  EXPECT_TRUE(WnsProvider::parseChannelUri("https://WNS.test:443/c", allowed));
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://a.wns.test/c", allowed));  // exact only
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://wns.test:8443/c", allowed));

  auto v6 = WnsProvider::parseChannelUri("https://[::1]:9443/c", allowed);
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9443);

  EXPECT_TRUE(WnsProvider::parseChannelUri("https://a.example.org:444/", allowed));
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://a.example.org/", allowed));
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://example.org:444/", allowed));

  // A name that looks numeric is not an IP literal to the parser, but still needs an exact
  // pattern (a resolver may read "127.1" as 127.0.0.1).
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://127.1:8443/", allowed));

  // No patterns: nothing is allowed.
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://x.notify.windows.com/", {}));
}

TEST(ChannelUri, MalformedPatternsNeverMatch) {
  std::vector<std::string> bad = {
      "*",         "*.",     "**.notify.windows.com",      "x.*.com", "::1", "[::1",
      "host:port", "host:0", "*.notify.windows.com:99999", "a..b",    ""};
  for (const std::string& p : bad) {
    EXPECT_FALSE(WnsProvider::validateAllowedHosts({p})) << p;
  }
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://x.notify.windows.com/", bad));
  EXPECT_FALSE(WnsProvider::parseChannelUri("https://host/", {"host:port"}));
  EXPECT_TRUE(WnsProvider::validateAllowedHosts(
      {"*.notify.windows.com", "127.0.0.1:8443", "[::1]:443", "wns.test", "*.Example.org:444"}));
}

// A send checks every channel URI again through splitCommonUri, which only knows the shape
// real channel URIs have; whatever it accepts, the RFC 3986 parser must split the same way.
TEST(ChannelUri, CommonShapeSplitsLikeTheFullParser) {
  const std::vector<std::string> schemes = {"https://", "HTTPS://", "http://", "https:/",
                                            "hxxps://"};
  const std::vector<std::string> hosts = {"x.notify.windows.com",
                                          "X.Notify.Windows.COM",
                                          "wns2-by3p.notify.windows.com",
                                          "1a.b",
                                          "127.0.0.1",
                                          "127.1",
                                          "[::1]",
                                          "a@b.com",
                                          "a:b@c.com",
                                          "a_b.com",
                                          "x%2e.com",
                                          "x.com.",
                                          "x..com",
                                          "",
                                          "-x.com",
                                          "x!y.com"};
  const std::vector<std::string> ports = {"", ":", ":443", ":0", ":8443", ":99999", ":4a", "::1"};
  const std::vector<std::string> paths = {
      "",    "/",    "/w/", "//x", "/a b", "/%zz", "/%2b", "/%2", "/~!$&'()*+,;=:@",
      "/\\", "/[x]", "/\"x"};
  const std::vector<std::string> queries = {"",       "?",     "?token=AwYAAAB%2bQ%3d%3d",
                                            "?a?b/c", "?x#f",  "?\"",
                                            "?%",     "?%4",   "?a b",
                                            "?{}",    "?\x7f", "?\xc3\xa9"};
  const std::vector<std::string> fragments = {"", "#", "#x"};
  size_t common = 0, total = 0;
  for (const auto& scheme : schemes) {
    for (const auto& host : hosts) {
      for (const auto& port : ports) {
        for (const auto& path : paths) {
          for (const auto& query : queries) {
            for (const auto& fragment : fragments) {
              std::string uri = scheme + host + port + path + query + fragment;
              ++total;
              auto fast = detail::splitCommonUri(uri);
              if (!fast) continue;
              ++common;
              auto full = detail::splitAnyUri(uri);
              ASSERT_TRUE(full) << uri << ": " << full.error().message;
              EXPECT_TRUE(*fast == *full) << uri;
            }
          }
        }
      }
    }
  }
  // Not vacuous: the shapes real channels have take the short way.
  EXPECT_GT(common, 1000u) << common << " of " << total;
  EXPECT_TRUE(detail::splitCommonUri("https://dm3p.notify.windows.com/?token=AwYAAAB%2bQ%3d%3d"));
  EXPECT_TRUE(detail::splitCommonUri("https://a.b.notify.windows.com:443/x"));
  auto ip = detail::splitCommonUri("https://127.0.0.1:8443/?token=A");
  ASSERT_TRUE(ip);
  EXPECT_FALSE(ip->host_is_name);
  EXPECT_FALSE(detail::splitCommonUri("https://[::1]/"));  // IPv6: the full parse
}

}  // namespace
}  // namespace pushhub::providers::wns
