#pragma once
// The parts of the Azure REST wire format that come before any message is built: request targets
// and the direct batch's multipart body. Kept apart from rest_codec.h (which needs the v1
// messages) so the fuzzer (tests/fuzz/rest_parse_fuzzer.cc) builds them alone. Pure functions:
// no I/O, any thread; every error is kInvalidArgument naming what is wrong.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pushhub::gateway::rest {

// A request target: path segments (percent-decoded; a trailing slash dropped) and the query
// (form-decoded; the last value of a name wins). A "." or ".." segment, an empty one, and an
// encoded '/' or '\' in a segment are refused: no id can be made to name another resource.
struct Target {
  std::vector<std::string> segments;
  std::string collection;  // segments[1] lower-cased, when there is one
  std::map<std::string, std::string> query;
  // A flag such as test or direct: present, and not "false" ("&test" alone counts, as .NET
  // sends it).
  bool flag(const std::string& name) const;
};
Result<Target> parseTarget(std::string_view target);

// A direct batch's body (multipart/mixed): the notification part and the devices part (a JSON
// array of handles; single quotes are accepted as the docs' examples use them).
struct Batch {
  std::string notification;
  std::vector<std::string> devices;
};
Result<Batch> parseBatch(std::string_view content_type, std::string_view body);

}  // namespace pushhub::gateway::rest
