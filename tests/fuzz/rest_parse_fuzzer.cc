// libFuzzer target for gateway/rest_parse.cc: request targets and the direct batch's multipart
// body, the parts of the Azure REST API that read bytes straight from the network. The first
// byte picks the parser ('t' a target; anything else a batch, whose content type is the first
// line and body the rest). Besides crashes, hangs and unbounded allocation, it aborts when:
// - a refusal is not kInvalidArgument, or its message is empty;
// - a parsed target has an empty, "." or ".." segment, or one with a '/' (an encoded slash got
//   through), or a collection that is not its second segment lower-cased;
// - a parsed batch has no device.

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/rest_parse.h"

namespace {

using pushhub::Error;
namespace rest = pushhub::gateway::rest;

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void checkRefusal(const pushhub::Result<T>& r) {
  if (r) return;
  check(r.error().code == Error::Code::kInvalidArgument);
  check(!r.error().message.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 't') {
    auto target = rest::parseTarget(input);
    checkRefusal(target);
    if (!target) return 0;
    for (const auto& segment : target->segments) {
      check(!segment.empty() && segment != "." && segment != "..");
      check(segment.find('/') == std::string::npos);
    }
    if (target->segments.size() > 1) {
      std::string lowered = target->segments[1];
      for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      check(target->collection == lowered);
    }
    return 0;
  }
  size_t newline = input.find('\n');
  std::string_view content_type = input.substr(0, newline);
  std::string_view body =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  auto batch = rest::parseBatch(content_type, body);
  checkRefusal(batch);
  if (batch) check(!batch->devices.empty());
  return 0;
}
