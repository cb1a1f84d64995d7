#include "registry/cluster_slots.h"

#include <algorithm>
#include <charconv>

#include "registry/redis_connection.h"

namespace pushhub::registry {
namespace {

using Type = RedisReply::Type;

constexpr std::array<uint16_t, 256> makeCrcTable() {
  std::array<uint16_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1;
    }
    table[byte] = static_cast<uint16_t>(crc);
  }
  return table;
}
constexpr auto kCrcTable = makeCrcTable();

bool equalsUpper(std::string_view a, std::string_view upper) {
  return a.size() == upper.size() &&
         std::equal(a.begin(), a.end(), upper.begin(), [](char x, char y) {
           return (x >= 'a' && x <= 'z' ? static_cast<char>(x - 'a' + 'A') : x) == y;
         });
}

template <typename Int>
std::optional<Int> parseInt(std::string_view s) {
  Int v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "host:port", split on the last ':' (IPv6 hosts are printed without brackets).
std::optional<ClusterNode> parseEndpoint(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto port = parseInt<uint16_t>(text.substr(colon + 1));
  if (!port || *port == 0) return std::nullopt;
  return ClusterNode{std::string(text.substr(0, colon)), *port};
}

// A RESP2 flat map's value by name, or null.
const RedisReply* field(const RedisReply& map, std::string_view name) {
  if (map.type != Type::kArray) return nullptr;
  for (size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (map.elements[i].str == name) return &map.elements[i + 1];
  }
  return nullptr;
}

std::optional<int64_t> intOf(const RedisReply* r) {
  if (r == nullptr) return std::nullopt;
  if (r->type == Type::kInteger) return r->integer;
  if (r->type == Type::kString) return parseInt<int64_t>(r->str);
  return std::nullopt;
}

Result<void> assign(SlotMap& map, int64_t first, int64_t last, const ClusterNode& node) {
  if (first < 0 || last < first || last >= kClusterSlots) {
    return Error::internal("cluster topology: bad slot range " + std::to_string(first) + "-" +
                           std::to_string(last));
  }
  uint16_t index = map.indexOf(node);
  std::fill(map.owner.begin() + first, map.owner.begin() + last + 1, index);
  return {};
}

}  // namespace

uint16_t crc16Xmodem(std::string_view bytes) {
  uint16_t crc = 0;
  for (unsigned char b : bytes) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ b) & 0xff]);
  }
  return crc;
}

uint16_t keySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16Xmodem(key) & (kClusterSlots - 1);
}

std::optional<std::string_view> routingKey(const std::vector<std::string>& argv) {
  if (argv.size() < 2) return std::nullopt;
  const std::string& name = argv[0];
  if (equalsUpper(name, "EVALSHA") || equalsUpper(name, "EVAL") || equalsUpper(name, "FCALL")) {
    if (argv.size() < 4 || argv[2] == "0") return std::nullopt;
    return argv[3];
  }
  if (equalsUpper(name, "XREADGROUP") || equalsUpper(name, "XREAD")) {
    for (size_t i = 1; i + 1 < argv.size(); ++i) {
      if (equalsUpper(argv[i], "STREAMS")) return argv[i + 1];
    }
    return std::nullopt;
  }
  if (equalsUpper(name, "XGROUP") || equalsUpper(name, "XINFO") || equalsUpper(name, "OBJECT") ||
      equalsUpper(name, "MEMORY")) {
    return argv.size() > 2 ? std::optional<std::string_view>(argv[2]) : std::nullopt;
  }
  for (std::string_view keyless :
       {"PING",     "INFO",    "SCRIPT",   "CLUSTER", "CONFIG",  "CLIENT", "DBSIZE",
        "FLUSHALL", "FLUSHDB", "AUTH",     "ASKING",  "MULTI",   "EXEC",   "READONLY",
        "FUNCTION", "SCAN",    "WAIT",     "ROLE",    "COMMAND", "SELECT", "HELLO",
        "ECHO",     "TIME",    "LASTSAVE", "DEBUG"}) {
    if (equalsUpper(name, keyless)) return std::nullopt;
  }
  return argv[1];
}

Redirect parseRedirect(std::string_view error) {
  Redirect r;
  size_t space = error.find(' ');
  std::string_view word = error.substr(0, space);
  if (word == "MOVED" || word == "ASK") {
    std::string_view rest = space == std::string_view::npos ? "" : error.substr(space + 1);
    size_t gap = rest.find(' ');
    auto slot = parseInt<uint16_t>(rest.substr(0, gap));
    auto node = gap == std::string_view::npos ? std::nullopt : parseEndpoint(rest.substr(gap + 1));
    if (!slot || *slot >= kClusterSlots || !node) return r;  // malformed: not a redirection
    r.kind = word == "MOVED" ? Redirect::Kind::kMoved : Redirect::Kind::kAsk;
    r.slot = *slot;
    r.host = std::move(node->host);
    r.port = node->port;
    return r;
  }
  for (std::string_view retryable :
       {"TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "NOREPLICAS"}) {
    if (word == retryable) r.kind = Redirect::Kind::kRetryLater;
  }
  return r;
}

SlotMap SlotMap::standalone(ClusterNode node) {
  SlotMap map;
  map.nodes.push_back(std::move(node));
  std::fill(map.owner.begin(), map.owner.end(), 0);
  return map;
}

uint16_t SlotMap::indexOf(const ClusterNode& node) {
  auto it = std::find(nodes.begin(), nodes.end(), node);
  if (it != nodes.end()) return static_cast<uint16_t>(it - nodes.begin());
  nodes.push_back(node);
  return static_cast<uint16_t>(nodes.size() - 1);
}

size_t SlotMap::uncovered() const {
  return static_cast<size_t>(std::count(owner.begin(), owner.end(), kNoOwner));
}

Result<SlotMap> parseClusterShards(const RedisReply& reply, std::string_view asked_host) {
  if (reply.type != Type::kArray) return Error::internal("CLUSTER SHARDS: not an array");
  SlotMap map;
  map.cluster = true;
  for (const auto& shard : reply.elements) {
    const RedisReply* slots = field(shard, "slots");
    const RedisReply* nodes = field(shard, "nodes");
    if (slots == nullptr || nodes == nullptr || slots->elements.empty()) continue;
    const RedisReply* master = nullptr;
    for (const auto& node : nodes->elements) {
      const RedisReply* role = field(node, "role");
      const RedisReply* health = field(node, "health");
      if (role != nullptr && role->str == "master" && health != nullptr &&
          health->str == "online") {
        master = &node;
        break;
      }
    }
    if (master == nullptr) continue;
    const RedisReply* ip = field(*master, "ip");
    const RedisReply* endpoint = field(*master, "endpoint");
    std::optional<int64_t> port = intOf(field(*master, "port"));
    if (!port || *port <= 0 || *port > 65535) continue;
    std::string host = endpoint != nullptr && !endpoint->str.empty() && endpoint->str != "?"
                           ? endpoint->str
                       : ip != nullptr && !ip->str.empty() ? ip->str
                                                           : std::string(asked_host);
    ClusterNode node{host, static_cast<uint16_t>(*port)};
    for (size_t i = 0; i + 1 < slots->elements.size(); i += 2) {
      auto first = intOf(&slots->elements[i]);
      auto last = intOf(&slots->elements[i + 1]);
      if (!first || !last) return Error::internal("CLUSTER SHARDS: slot range is not a number");
      if (auto ok = assign(map, *first, *last, node); !ok) return ok.error();
    }
  }
  if (map.nodes.empty()) return Error::unavailable("CLUSTER SHARDS: no master serves a slot");
  return map;
}

Result<SlotMap> parseClusterSlots(const RedisReply& reply, std::string_view asked_host) {
  if (reply.type != Type::kArray) return Error::internal("CLUSTER SLOTS: not an array");
  SlotMap map;
  map.cluster = true;
  for (const auto& range : reply.elements) {
    if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) {
      return Error::internal("CLUSTER SLOTS: a range without its master");
    }
    auto first = intOf(&range.elements[0]);
    auto last = intOf(&range.elements[1]);
    const RedisReply& master = range.elements[2];
    auto port = intOf(&master.elements[1]);
    if (!first || !last || !port || *port <= 0 || *port > 65535) {
      return Error::internal("CLUSTER SLOTS: malformed range");
    }
    std::string host = master.elements[0].type == Type::kString && !master.elements[0].str.empty()
                           ? master.elements[0].str
                           : std::string(asked_host);
    if (auto ok = assign(map, *first, *last, {host, static_cast<uint16_t>(*port)}); !ok) {
      return ok.error();
    }
  }
  if (map.nodes.empty()) return Error::unavailable("CLUSTER SLOTS: no master serves a slot");
  return map;
}

}  // namespace pushhub::registry
