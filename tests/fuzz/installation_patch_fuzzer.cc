// libFuzzer target for registry/installation_patch.cc: Azure's JSON Patch on an installation, fed
// as the REST API takes it (a JSON array of {"op","path","value"}; a value that is not a string
// travels as its JSON text). Besides crashes, hangs and unbounded allocation, it aborts when:
// - a refusal is not kInvalidArgument, or its message is empty;
// - applying the same operations twice gives different results (the patch is deterministic);
// - a patch that succeeds changes the installation's id or platform (the identity).

#include <boost/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "registry/installation_patch.h"

namespace {

using pushhub::Error;
using pushhub::registry::Installation;
using pushhub::registry::PatchOperation;
namespace json = boost::json;

void check(bool ok) {
  if (!ok) std::abort();
}

Installation base() {
  Installation i;
  i.id = "fuzz-1";
  i.platform = pushhub::registry::Platform::kApns;
  i.push_channel = std::string(64, 'a');
  i.tags = {"a", "b"};
  i.user_id = "user";
  pushhub::registry::InstallationTemplate t;
  t.body = R"x({"aps":{"alert":"$(m)"}})x";
  t.headers["apns-priority"] = "10";
  t.tags = {"t"};
  i.templates.emplace("alert", t);
  return i;
}

bool same(const Installation& a, const Installation& b) {
  if (a.tags != b.tags || a.user_id != b.user_id || a.push_channel != b.push_channel ||
      a.expiration_unix != b.expiration_unix || a.templates.size() != b.templates.size()) {
    return false;
  }
  for (const auto& [name, t] : a.templates) {
    auto it = b.templates.find(name);
    if (it == b.templates.end() || it->second.body != t.body || it->second.tags != t.tags ||
        it->second.headers != t.headers || it->second.expiry != t.expiry) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boost::system::error_code ec;
  json::value doc = json::parse(std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec || !doc.is_array()) return 0;
  std::vector<PatchOperation> ops;
  for (const auto& v : doc.as_array()) {
    if (!v.is_object()) return 0;
    const auto& o = v.as_object();
    auto* op = o.if_contains("op");
    auto* path = o.if_contains("path");
    if (!op || !path || !op->is_string() || !path->is_string()) return 0;
    std::optional<std::string> value;
    if (auto* val = o.if_contains("value"); val && !val->is_null()) {
      value = val->is_string() ? std::string(val->as_string()) : json::serialize(*val);
    }
    ops.push_back({std::string(op->as_string()), std::string(path->as_string()), value});
  }
  const Installation original = base();
  auto first = pushhub::registry::applyPatch(original, ops);
  auto second = pushhub::registry::applyPatch(original, ops);
  check(first.has_value() == second.has_value());
  if (!first) {
    check(first.error().code == Error::Code::kInvalidArgument);
    check(!first.error().message.empty());
    check(first.error().message == second.error().message);
    return 0;
  }
  check(same(*first, *second));
  check(first->id == original.id && first->platform == original.platform);
  return 0;
}
